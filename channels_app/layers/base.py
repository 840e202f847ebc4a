"""The contract every channel layer keeps: names, messages and capacities.

Concrete layers (in-memory, database, anything third-party that follows the
same API) subclass :class:`BaseChannelLayer` so that validation and capacity
rules are identical everywhere and a project can swap layers freely.
"""

from __future__ import annotations

import fnmatch
import re
import warnings
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from ..exceptions import MessageTooLarge
from ..logging_limits import RateLimitedLog
from ..types import Message
from .messages import estimate_size, portable_copy, require_dict

# ASCII only and matched against the whole string: Channels 4 used ``$`` (which
# accepts a trailing newline) and ``\w`` (which accepts any Unicode letter).
# The ``\Z`` anchor makes even a plain ``.match()`` check the whole name, so
# code written against Channels' ``channel_name_regex.match(name)`` gets our rule.
_CHANNEL_NAME = re.compile(r"[a-zA-Z0-9\-_.]+(![a-zA-Z0-9\-_.]*)?\Z")
_GROUP_NAME = re.compile(r"[a-zA-Z0-9\-_.]+\Z")
#: The message a layer sends to a channel it has dropped from groups while
#: its consumer may still be alive (its messages expired unread, or its
#: membership expired): ``{"type": GROUPS_LOST, "groups": [...]}``.  Consumers
#: re-join those groups by default (``AsyncConsumer.groups_lost``), so a
#: connection is never left open and deaf to its groups.
GROUPS_LOST = "channels_app.groups.lost"

_NAME_RULE = (
    "ASCII letters, digits, hyphens, underscores and periods only"
    "{bang}, shorter than {limit} characters"
)


def require_positive(name: str, value: Any, integer: bool = False) -> None:
    """Refuse a setting that must be a positive number (bool is not one)."""
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value <= 0:
        kind = "a positive integer" if integer else "a positive number"
        raise ValueError(f"InMemoryChannelLayer {name} must be {kind}, not {value!r}")


def _compile_rules(channel_capacity: Any) -> list[tuple[Any, int]]:
    """``{glob or regex: capacity}``, or pairs compiled before, as ordered matchers.

    Pairs are accepted so that compiling twice is harmless: a layer written
    for Channels compiles ``channel_capacity`` itself, and may hand us a value
    that is already compiled.
    """
    if hasattr(channel_capacity, "items"):
        entries = channel_capacity.items()
    elif isinstance(channel_capacity, Iterable) and not isinstance(
        channel_capacity, (str, bytes)
    ):
        entries = channel_capacity
    else:
        raise TypeError(
            f"channel_capacity must be a dict of glob patterns or compiled regular "
            f"expressions to capacities, not {type(channel_capacity).__name__}"
        )
    compiled = []
    for entry in entries:
        try:
            pattern, capacity = entry
        except (TypeError, ValueError):
            raise TypeError(
                f"channel_capacity entries must be (pattern, capacity) pairs, "
                f"not {entry!r}"
            ) from None
        if isinstance(pattern, str):
            compiled.append((re.compile(fnmatch.translate(pattern)), capacity))
        elif callable(getattr(pattern, "match", None)):
            # Any compiled expression (``re`` or the ``regex`` package) matches.
            compiled.append((pattern, capacity))
        else:
            raise TypeError(
                f"channel_capacity keys must be glob strings or compiled regular "
                f"expressions, not {type(pattern).__name__}"
            )
    return compiled


class BaseChannelLayer:
    """Shared behaviour of channel layers; subclasses supply the transport."""

    MAX_NAME_LENGTH = 100
    extensions: list[str] = []

    #: What :meth:`get_capacity` consults; kept in step with ``channel_capacity``.
    #: The class defaults serve layers that never call our ``__init__``.
    _capacity_rules: tuple[tuple[Any, int], ...] | list[tuple[Any, int]] = ()
    _channel_capacity: Any = MappingProxyType({})

    def __init__(
        self,
        expiry: float = 60,
        capacity: int = 100,
        channel_capacity: Mapping[Any, int] | None = None,
    ) -> None:
        self.expiry = expiry
        self.capacity = capacity
        self.channel_capacity = channel_capacity or {}

    # -- capacities -------------------------------------------------------

    @property
    def channel_capacity(self) -> Any:
        """The per-channel capacities as last assigned (by us or a subclass).

        Channels' base class keeps the dict as given and leaves compiling to
        each layer, so third-party layers either assign
        ``self.compile_capacities(...)`` here themselves or read the raw dict
        back.  Both work because every assignment is also compiled, once,
        into the rules :meth:`get_capacity` reads: a layer that never
        compiles still gets working per-channel capacities.
        """
        return self._channel_capacity

    @channel_capacity.setter
    def channel_capacity(self, value: Any) -> None:
        # Our own compiler, not self.compile_capacities: a subclass may have
        # replaced that with one that only accepts a dict.
        self._capacity_rules = _compile_rules(value or {})
        self._channel_capacity = value

    def compile_capacities(self, channel_capacity: Any) -> list[tuple[Any, int]]:
        """Turn ``{glob or compiled regex: capacity}`` into ordered matchers.

        Already compiled ``(pattern, capacity)`` pairs come back unchanged, so
        calling this on a value that was compiled before is harmless.
        """
        return _compile_rules(channel_capacity)

    def get_capacity(self, channel: str) -> int:
        """The capacity of ``channel``: the first matching pattern wins."""
        for pattern, capacity in self._capacity_rules:
            if pattern.match(channel):
                return capacity
        return self.capacity

    # -- names ------------------------------------------------------------

    #: Whole-string rules (``.match`` and ``.fullmatch`` agree); a subclass may
    #: assign its own, as with Channels, and validation then follows it.
    channel_name_regex = _CHANNEL_NAME
    group_name_regex = _GROUP_NAME
    #: One ``{}`` for ``"Channel"`` or ``"Group"``, for code that words its own
    #: errors the way Channels' base class does.
    invalid_name_error = (
        "{} name must be a str shorter than "
        + str(MAX_NAME_LENGTH)
        + " characters of ASCII letters, digits, hyphens, underscores or periods "
        "(a channel name may add one '!' and a process-local part)"
    )

    def match_type_and_length(self, name: Any) -> bool:
        """Whether ``name`` is a str shorter than ``MAX_NAME_LENGTH``."""
        return isinstance(name, str) and len(name) < self.MAX_NAME_LENGTH

    def require_valid_channel_name(self, name: Any, receive: bool = False) -> bool:
        """Raise ``TypeError`` explaining the rule unless ``name`` is a channel name."""
        self._require_name(name, "Channel", self.channel_name_regex, bang=True)
        if receive and "!" in name and not name.endswith("!"):
            raise TypeError(
                f"Channel name {name!r} cannot be received from directly: pass the "
                f"process-specific prefix ending at '!' ({self.non_local_name(name)!r})"
            )
        return True

    def require_valid_group_name(self, name: Any) -> bool:
        """Raise ``TypeError`` explaining the rule unless ``name`` is a group name."""
        self._require_name(name, "Group", self.group_name_regex, bang=False)
        return True

    def valid_channel_names(self, names: Iterable[Any], receive: bool = False) -> bool:
        """Check a list of channel names, raising on the first bad one."""
        if isinstance(names, str) or not isinstance(names, Iterable):
            raise TypeError(f"Expected a list of channel names, not {names!r}")
        for name in names:
            self.require_valid_channel_name(name, receive=receive)
        return True

    def valid_channel_name(self, channel_name: Any, receive: bool = False) -> bool:
        """Deprecated in Channels 4 in favour of :meth:`require_valid_channel_name`.

        Kept so code that still calls it runs, warning so it gets updated.
        Unlike Channels, ``receive`` is passed on rather than ignored.
        """
        warnings.warn(
            "valid_channel_name() is deprecated; call require_valid_channel_name()",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.require_valid_channel_name(channel_name, receive=receive)

    def valid_group_name(self, group_name: Any) -> bool:
        """Deprecated in Channels 4 in favour of :meth:`require_valid_group_name`."""
        warnings.warn(
            "valid_group_name() is deprecated; call require_valid_group_name()",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.require_valid_group_name(group_name)

    def _require_name(
        self, name: Any, kind: str, pattern: re.Pattern[str], bang: bool
    ) -> None:
        # Inline rather than through match_type_and_length(): this runs on
        # every operation, and only the failure path needs to say why.
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
        if pattern is not _CHANNEL_NAME and pattern is not _GROUP_NAME:
            # A subclass's own rule: our wording would not describe it.
            raise TypeError(f"{self.invalid_name_error.format(kind)} ({name!r})")
        raise TypeError(f"{kind} name {name!r} is invalid: names must be {rule}")

    def non_local_name(self, name: str) -> str:
        """The part of a process-specific name up to and including the ``!``."""
        bang = name.find("!")
        return name if bang == -1 else name[: bang + 1]

    # -- messages ---------------------------------------------------------

    @staticmethod
    def require_valid_message(message: Any) -> None:
        """Messages are dicts; anything else is a programming error."""
        require_dict(message)

    @staticmethod
    def require_portable_message(message: Message, max_size: int | None = None) -> int:
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

    async def send(self, channel: str, message: Message) -> None:
        raise NotImplementedError("send() is not implemented by this layer")

    async def receive(self, channel: str) -> Message:
        raise NotImplementedError("receive() is not implemented by this layer")

    async def new_channel(self, prefix: str = "specific.") -> str:
        raise NotImplementedError("new_channel() is not implemented by this layer")

    async def group_add(self, group: str, channel: str) -> None:
        raise NotImplementedError("this layer does not support groups")

    async def group_discard(self, group: str, channel: str) -> None:
        raise NotImplementedError("this layer does not support groups")

    async def group_send(self, group: str, message: Message) -> Any:
        raise NotImplementedError("this layer does not support groups")

    async def flush(self) -> None:
        raise NotImplementedError("this layer does not support flush")

    async def close(self) -> None:
        """Release connections and tasks; a no-op for layers that hold none."""


def warn_members_skipped(
    log: RateLimitedLog,
    group: str,
    dropped: int,
    size: int,
    named: list[str],
    capacities: set[int],
) -> None:
    """One line for one group_send that skipped full members; rate-limited per
    group, so a flood of sends to a stuck group cannot flood the log."""
    low, high = min(capacities), max(capacities)
    log.log(
        group,
        "group_send to group %r skipped %d of %d members: their channels are "
        "full (capacity %s), so they miss this message (%s%s)",
        group,
        dropped,
        size,
        low if low == high else f"{low}-{high}",
        ", ".join(map(repr, named)),
        ", ..." if dropped > len(named) else "",
        totals={"members skipped": dropped},
    )
