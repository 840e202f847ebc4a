"""Reading origins and the patterns that allow them.

A pattern follows Django's ``ALLOWED_HOSTS`` rules, extended with ports and
schemes (see :mod:`channels_app.security.websocket`); parsing it once, with
the reasons a pattern can never match, lets a validator refuse a typo when
it is built instead of refusing every handshake.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from urllib.parse import ParseResult, urlparse

#: The port each scheme means when an origin or a pattern names none.
DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}

#: Stands for an Origin header that cannot be read as one origin (several
#: headers, or bytes that are not ASCII): like ``Origin: null``, only ``"*"``
#: admits it, and hooks written for Channels see a value without a hostname.
OPAQUE_ORIGIN = urlparse("null")


def is_origin(parts: ParseResult) -> bool:
    """Whether ``parts`` is ``scheme://host[:port]`` and nothing more.

    A browser never sends anything else; a value with a path, credentials
    or an impossible port is forged or broken, so it matches no pattern.
    """
    if not parts.scheme or not parts.hostname or parts.username is not None:
        return False
    if parts.path not in ("", "/") or parts.params or parts.query or parts.fragment:
        return False
    try:
        parts.port  # noqa: B018 - raises for ports out of range or not numbers
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=256)
def parse_pattern(pattern: str) -> ParseResult:
    """``pattern`` split like an origin; a pattern may leave out the scheme.

    Raises ``ValueError`` for anything that could never match an origin, so
    a typo in ``allowed_origins`` fails when the validator is built instead
    of silently refusing every handshake.
    """
    has_scheme = "://" in pattern
    parts = urlparse(pattern.lower() if has_scheme else f"//{pattern}")
    if has_scheme and not parts.scheme:
        raise ValueError("no scheme before '://'")
    if not parts.hostname:
        raise ValueError("no host")
    if parts.path not in ("", "/") or parts.params or parts.query or parts.fragment:
        raise ValueError("a pattern is scheme://host[:port], without a path")
    if parts.username is not None:
        raise ValueError("a pattern cannot carry credentials")
    parts.port  # noqa: B018 - ValueError when out of range or not a number
    return parts


def check_patterns(allowed: Iterable[str]) -> None:
    """Raise ``ValueError`` naming the first pattern that can match no origin."""
    for pattern in allowed:
        if pattern == "*":
            continue
        try:
            parse_pattern(pattern)
        except ValueError as exc:
            raise ValueError(f"Invalid allowed origin {pattern!r}: {exc}") from None
