"""The ``CHANNELS_APP_PRESENCE`` setting, and the process's :class:`Presence`.

::

    CHANNELS_APP_PRESENCE = {
        # Where presence lives (default: this process's memory).
        "STORE": {
            "BACKEND": "channels_app.presence.RedisPresenceStore",
            "OPTIONS": {"url": "redis://127.0.0.1:6379/0", "prefix": "myapp:"},
        },
        "LAYER": "default",  # the channel layer events go through
        "LEASE": 30,  # seconds a dead process's members stay listed, at most
    }

Unknown keys are refused, so a typo fails loudly.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from .. import DEFAULT_CHANNEL_LAYER
from .tracker import Presence

SETTING = "CHANNELS_APP_PRESENCE"
DEFAULT_STORE = "channels_app.presence.InMemoryPresenceStore"
_KEYS = {"STORE", "LAYER", "LEASE"}

_presence: Presence | None = None


def _fail(problem: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"{SETTING} {problem}")


def build(value: Any) -> Presence:
    """A :class:`Presence` from a setting value (None: every default)."""
    value = {} if value is None else value
    if not isinstance(value, dict):
        raise _fail(f"must be a dict, not {type(value).__name__}")
    unknown = set(value) - _KEYS
    if unknown:
        raise _fail(f"has unknown key(s) {sorted(unknown)}; allowed: {sorted(_KEYS)}")
    store = value.get("STORE", {})
    if not isinstance(store, dict) or set(store) - {"BACKEND", "OPTIONS"}:
        raise _fail('["STORE"] must be a dict {"BACKEND": ..., "OPTIONS": {...}}')
    backend = store.get("BACKEND", DEFAULT_STORE)
    try:
        made = import_string(backend)(**store.get("OPTIONS", {}))
    except ImportError as exc:
        raise _fail(f'["STORE"]["BACKEND"] {backend!r} cannot be imported: {exc}')
    except TypeError as exc:
        raise _fail(f'["STORE"]["OPTIONS"] do not fit {backend}: {exc}')
    layer = value.get("LAYER", DEFAULT_CHANNEL_LAYER)
    lease = value.get("LEASE", 30.0)
    if not isinstance(lease, int | float) or isinstance(lease, bool) or lease <= 0:
        raise _fail(f'["LEASE"] must be a positive number of seconds, not {lease!r}')
    return Presence(made, layer, float(lease))


def get_presence() -> Presence:
    """This process's :class:`Presence`, as the settings describe it."""
    global _presence
    if _presence is None:
        _presence = build(getattr(settings, SETTING, None))
    return _presence


def _reset(setting: str, **kwargs: Any) -> None:
    global _presence
    if setting == SETTING:
        _presence = None


setting_changed.connect(_reset)
