"""Stream names, and the channel-layer group each stream is fanned out through.

A stream's live messages travel as ordinary group messages, so a stream name
must give a valid group name once prefixed.  The prefix keeps stream groups
apart from the groups an application names itself (``chat.lobby`` the group
and ``chat.lobby`` the stream never share members).
"""

from __future__ import annotations

import re
from typing import Any

#: Prefix of the group a stream's live messages are sent to.
GROUP_PREFIX = "channels_app.stream."
#: Group names must be shorter than 100 characters (the layer contract), so a
#: stream name keeps to what fits after :data:`GROUP_PREFIX`.
MAX_STREAM_NAME_LENGTH = 99 - len(GROUP_PREFIX)

_STREAM_NAME = re.compile(r"[a-zA-Z0-9\-_.]+\Z")


class InvalidStreamName(ValueError):
    """A stream name that breaks the naming rule (the message says which)."""


def require_valid_stream_name(name: Any) -> str:
    """Return ``name`` if it is a valid stream name, else raise a clear error.

    Not a str: :class:`TypeError`.  A str breaking the rule:
    :class:`InvalidStreamName` (a ``ValueError``), quoting the rule.
    """
    if not isinstance(name, str):
        raise TypeError(f"A stream name must be a str, not {type(name).__name__}")
    if (
        not name
        or len(name) > MAX_STREAM_NAME_LENGTH
        or _STREAM_NAME.match(name) is None
    ):
        raise InvalidStreamName(
            f"Invalid stream name {name!r}: use ASCII letters, digits, hyphens, "
            f"underscores and periods only, 1 to {MAX_STREAM_NAME_LENGTH} "
            f"characters"
        )
    return name


def group_for(stream: str) -> str:
    """The channel-layer group that carries ``stream``'s live messages."""
    return GROUP_PREFIX + require_valid_stream_name(stream)
