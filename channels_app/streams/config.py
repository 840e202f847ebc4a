"""The ``CHANNELS_APP_STREAMS`` setting: which store, which layer, how much history.

::

    CHANNELS_APP_STREAMS = {
        # Where histories live (default: in this process's memory).
        "STORE": {
            "BACKEND": "channels_app.streams.RedisStreamStore",
            "OPTIONS": {"url": "redis://127.0.0.1:6379/0", "prefix": "myapp:"},
        },
        # The channel layer alias live messages go through (default "default").
        "LAYER": "default",
        # History per stream name pattern (shell-style globs); first match wins.
        "HISTORY": [
            {"PATTERN": "chat.*", "MAX_MESSAGES": 1000, "MAX_AGE": 3600},
            {"PATTERN": "ticker.*", "MAX_MESSAGES": 50, "MAX_AGE": None},
        ],
        # For streams no pattern matches (these are the defaults).
        "DEFAULT_HISTORY": {"MAX_MESSAGES": 1000, "MAX_AGE": 3600},
    }

The keys follow Django's own upper-case style (``CACHES``, ``DATABASES``);
any key the parser does not know is refused, so a typo fails loudly instead
of silently keeping the defaults.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from .. import DEFAULT_CHANNEL_LAYER
from .store import HistoryLimits, StreamStore

SETTING = "CHANNELS_APP_STREAMS"
DEFAULT_STORE = "channels_app.streams.InMemoryStreamStore"
_TOP_KEYS = {"STORE", "LAYER", "HISTORY", "DEFAULT_HISTORY"}
_LIMIT_KEYS = {"MAX_MESSAGES": "max_messages", "MAX_AGE": "max_age"}


@dataclass(frozen=True)
class StreamsConfig:
    store_backend: str = DEFAULT_STORE
    store_options: dict[str, Any] = field(default_factory=dict)
    layer: str = DEFAULT_CHANNEL_LAYER
    rules: tuple[tuple[re.Pattern[str], HistoryLimits], ...] = ()
    default_limits: HistoryLimits = field(default_factory=HistoryLimits)

    def limits_for(self, stream: str) -> HistoryLimits:
        """The history limits of ``stream``: the first matching pattern's."""
        for pattern, limits in self.rules:
            if pattern.match(stream):
                return limits
        return self.default_limits

    def make_store(self) -> StreamStore:
        try:
            backend = import_string(self.store_backend)
        except ImportError as exc:
            raise ImproperlyConfigured(
                f"{SETTING}['STORE']['BACKEND'] {self.store_backend!r} cannot be "
                f"imported: {exc}"
            ) from exc
        try:
            store: StreamStore = backend(**self.store_options)
        except TypeError as exc:
            raise ImproperlyConfigured(
                f"{SETTING}['STORE']['OPTIONS'] do not fit {self.store_backend}: {exc}"
            ) from exc
        return store


def _fail(where: str, problem: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"{SETTING}{where} {problem}")


def _limits(where: str, entry: Any, allowed: set[str]) -> HistoryLimits:
    if not isinstance(entry, dict):
        raise _fail(where, f"must be a dict, not {type(entry).__name__}")
    unknown = set(entry) - allowed
    if unknown:
        raise _fail(
            where,
            f"has unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}",
        )
    given = {_LIMIT_KEYS[k]: v for k, v in entry.items() if k in _LIMIT_KEYS}
    try:
        return HistoryLimits(**given)
    except ValueError as exc:
        raise _fail(where, str(exc)) from exc


def parse(value: Any) -> StreamsConfig:
    """Check and parse a ``CHANNELS_APP_STREAMS`` value (None: all defaults)."""
    if value is None:
        return StreamsConfig()
    if not isinstance(value, dict):
        raise _fail("", f"must be a dict, not {type(value).__name__}")
    unknown = set(value) - _TOP_KEYS
    if unknown:
        raise _fail(
            "", f"has unknown key(s) {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}"
        )
    store = value.get("STORE", {})
    if not isinstance(store, dict) or set(store) - {"BACKEND", "OPTIONS"}:
        raise _fail("['STORE']", 'must be a dict {"BACKEND": ..., "OPTIONS": {...}}')
    backend = store.get("BACKEND", DEFAULT_STORE)
    options = store.get("OPTIONS", {})
    if not isinstance(backend, str) or not isinstance(options, dict):
        raise _fail("['STORE']", "BACKEND must be a dotted path, OPTIONS a dict")
    layer = value.get("LAYER", DEFAULT_CHANNEL_LAYER)
    if not isinstance(layer, str):
        raise _fail("['LAYER']", "must be a channel layer alias (str)")
    history = value.get("HISTORY", [])
    if not isinstance(history, list | tuple):
        raise _fail("['HISTORY']", "must be a list of dicts with a PATTERN")
    rules = []
    for index, entry in enumerate(history):
        where = f"['HISTORY'][{index}]"
        limits = _limits(where, entry, {"PATTERN", *_LIMIT_KEYS})
        pattern = entry.get("PATTERN")
        if not isinstance(pattern, str) or not pattern:
            raise _fail(where, "needs a PATTERN: a glob such as 'chat.*'")
        rules.append((re.compile(fnmatch.translate(pattern)), limits))
    default = _limits(
        "['DEFAULT_HISTORY']", value.get("DEFAULT_HISTORY", {}), set(_LIMIT_KEYS)
    )
    return StreamsConfig(backend, dict(options), layer, tuple(rules), default)


def current() -> StreamsConfig:
    """The parsed setting as it is now."""
    return parse(getattr(settings, SETTING, None))
