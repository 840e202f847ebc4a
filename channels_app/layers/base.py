"""The contract every channel layer keeps: names, messages and capacities.

Concrete layers (in-memory, database, anything third-party that follows the
same API) subclass :class:`BaseChannelLayer` so that validation and capacity
rules are identical everywhere and a project can swap layers freely.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ..exceptions import MessageTooLarge
from .messages import estimate_size, portable_copy, require_dict

# ASCII only and matched against the whole string: Channels 4 used ``$`` (which
# accepts a trailing newline) and ``\w`` (which accepts any Unicode letter).
_CHANNEL_NAME = re.compile(r"[a-zA-Z0-9\-_.]+(![a-zA-Z0-9\-_.]*)?")
_GROUP_NAME = re.compile(r"[a-zA-Z0-9\-_.]+")
_NAME_RULE = (
    "ASCII letters, digits, hyphens, underscores and periods only"
    "{bang}, shorter than {limit} characters"
)


class BaseChannelLayer:
    """Shared behaviour of channel layers; subclasses supply the transport."""

    MAX_NAME_LENGTH = 100
    extensions: list[str] = []

    def __init__(
        self,
        expiry: float = 60,
        capacity: int = 100,
        channel_capacity: Mapping[Any, int] | None = None,
    ) -> None:
        self.expiry = expiry
        self.capacity = capacity
        self.channel_capacity = self.compile_capacities(channel_capacity or {})

    # -- capacities -------------------------------------------------------

    @staticmethod
    def compile_capacities(
        channel_capacity: Mapping[Any, int],
    ) -> list[tuple[re.Pattern[str], int]]:
        """Turn ``{glob or compiled regex: capacity}`` into ordered matchers."""
        compiled = []
        for pattern, capacity in channel_capacity.items():
            if isinstance(pattern, re.Pattern):
                compiled.append((pattern, capacity))
            elif isinstance(pattern, str):
                compiled.append((re.compile(fnmatch.translate(pattern)), capacity))
            else:
                raise TypeError(
                    f"channel_capacity keys must be glob strings or compiled regular "
                    f"expressions, not {type(pattern).__name__}"
                )
        return compiled

    def get_capacity(self, channel: str) -> int:
        """The capacity of ``channel``: the first matching pattern wins."""
        for pattern, capacity in self.channel_capacity:
            if pattern.match(channel):
                return capacity
        return self.capacity

    # -- names ------------------------------------------------------------

    def require_valid_channel_name(self, name: Any, receive: bool = False) -> bool:
        """Raise ``TypeError`` explaining the rule unless ``name`` is a channel name."""
        self._require_name(name, "Channel", _CHANNEL_NAME, bang=True)
        if receive and "!" in name and not name.endswith("!"):
            raise TypeError(
                f"Channel name {name!r} cannot be received from directly: pass the "
                f"process-specific prefix ending at '!' ({self.non_local_name(name)!r})"
            )
        return True

    def require_valid_group_name(self, name: Any) -> bool:
        """Raise ``TypeError`` explaining the rule unless ``name`` is a group name."""
        self._require_name(name, "Group", _GROUP_NAME, bang=False)
        return True

    def valid_channel_names(self, names: Iterable[Any], receive: bool = False) -> bool:
        """Check a list of channel names, raising on the first bad one."""
        if isinstance(names, str) or not isinstance(names, Iterable):
            raise TypeError(f"Expected a list of channel names, not {names!r}")
        for name in names:
            self.require_valid_channel_name(name, receive=receive)
        return True

    def _require_name(
        self, name: Any, kind: str, pattern: re.Pattern[str], bang: bool
    ) -> None:
        if (
            isinstance(name, str)
            and len(name) < self.MAX_NAME_LENGTH
            and pattern.fullmatch(name)
        ):
            return
        rule = _NAME_RULE.format(
            bang=", optionally one '!' followed by a process-local part"
            if bang
            else "",
            limit=self.MAX_NAME_LENGTH,
        )
        if not isinstance(name, str):
            raise TypeError(
                f"{kind} name must be a str, not {type(name).__name__} ({name!r})"
            )
        if len(name) >= self.MAX_NAME_LENGTH:
            raise TypeError(
                f"{kind} name {name[:20]!r}... is {len(name)} characters long; "
                f"names must be {rule}"
            )
        if not pattern.fullmatch(name):
            raise TypeError(f"{kind} name {name!r} is invalid: names must be {rule}")

    @staticmethod
    def non_local_name(name: str) -> str:
        """The part of a process-specific name up to and including the ``!``."""
        bang = name.find("!")
        return name if bang == -1 else name[: bang + 1]

    # -- messages ---------------------------------------------------------

    @staticmethod
    def require_valid_message(message: Any) -> None:
        """Messages are dicts; anything else is a programming error."""
        require_dict(message)

    @staticmethod
    def require_portable_message(message: dict, max_size: int | None = None) -> int:
        """Refuse values a network layer could not carry; return a size estimate.

        A network layer serialises with msgpack or JSON, so only str, bytes,
        numbers, booleans, None, lists and str-keyed dicts survive the trip.
        Checking here lets tests on an in-process layer catch what production
        would lose.  ``MessageTooLarge`` is raised past ``max_size`` bytes.
        """
        portable_copy(message)
        size = estimate_size(message)
        if max_size is not None and size > max_size:
            raise MessageTooLarge(
                f"Message is about {size} bytes, larger than this layer's limit "
                f"of {max_size} bytes"
            )
        return size

    # -- the API subclasses implement ---------------------------------------

    async def send(self, channel: str, message: dict) -> None:
        raise NotImplementedError("send() is not implemented by this layer")

    async def receive(self, channel: str) -> dict:
        raise NotImplementedError("receive() is not implemented by this layer")

    async def new_channel(self, prefix: str = "specific.") -> str:
        raise NotImplementedError("new_channel() is not implemented by this layer")

    async def group_add(self, group: str, channel: str) -> None:
        raise NotImplementedError("this layer does not support groups")

    async def group_discard(self, group: str, channel: str) -> None:
        raise NotImplementedError("this layer does not support groups")

    async def group_send(self, group: str, message: dict) -> Any:
        raise NotImplementedError("this layer does not support groups")

    async def flush(self) -> None:
        raise NotImplementedError("this layer does not support flush")

    async def close(self) -> None:
        """Release connections and tasks; a no-op for layers that hold none."""
