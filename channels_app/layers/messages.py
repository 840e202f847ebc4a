"""Copying messages the way a network layer would see them.

A layer that crosses process boundaries serialises every message with msgpack
or JSON, so only str-keyed dicts, lists, tuples, str, bytes, numbers,
booleans and ``None`` survive the trip.  :func:`portable_copy` checks that and
copies the message in the same single pass, which is several times cheaper
than ``copy.deepcopy`` and lets an in-process layer refuse, on the spot and
naming the key, what production would have lost.
"""

from __future__ import annotations

from typing import Any

from ..types import Message

#: Immutable values that can be shared between the copy and the original.
_ATOMS = frozenset({str, bytes, int, float, bool, type(None)})
#: Their base classes, for subclasses such as ``SafeString`` or ``IntEnum``.
_ATOM_BASES = (str, bytes, int, float)
_ALLOWED = "str, bytes, int, float, bool, None, list, tuple or a dict with str keys"


class _Unportable(Exception):
    """Raised deep in the walk; the path is filled in on the way out."""

    def __init__(self, value: Any, bad_key: bool = False) -> None:
        self.value = value
        self.bad_key = bad_key
        self.path: list[Any] = []


def _copy_dict(value: dict[str, Any]) -> Message:
    copied = dict(value)
    for key, item in value.items():
        if type(key) is not str and not isinstance(key, str):
            raise _Unportable(key, bad_key=True)
        if type(item) not in _ATOMS:
            try:
                copied[key] = _copy_value(item)
            except _Unportable as exc:
                exc.path.append(key)
                raise
    return copied


def _copy_sequence(value: list[Any] | tuple[Any, ...]) -> list[Any]:
    copied = []
    for index, item in enumerate(value):
        if type(item) in _ATOMS:
            copied.append(item)
            continue
        try:
            copied.append(_copy_value(item))
        except _Unportable as exc:
            exc.path.append(index)
            raise
    return copied


def _copy_value(value: Any) -> Any:
    kind = type(value)
    if kind is dict:
        return _copy_dict(value)
    if kind is list:
        return _copy_sequence(value)
    if kind is tuple:
        return tuple(_copy_sequence(value))
    if kind in _ATOMS or isinstance(value, _ATOM_BASES):
        return value
    if isinstance(value, dict):
        return _copy_dict(value)
    if isinstance(value, (list, tuple)):
        return _copy_sequence(value)
    raise _Unportable(value)


def _describe(exc: _Unportable) -> str:
    path = "message" + "".join(f"[{step!r}]" for step in reversed(exc.path))
    if exc.bad_key:
        return (
            f"{path} has the key {exc.value!r} of type {type(exc.value).__name__}; "
            f"a channel layer needs str keys"
        )
    return (
        f"{path} is a {type(exc.value).__name__}, which neither msgpack nor JSON "
        f"can carry between processes; use {_ALLOWED}"
    )


def require_dict(message: Any) -> None:
    """Messages are dicts; anything else is a programming error."""
    if not isinstance(message, dict):
        raise TypeError(f"Message must be a dict, not {type(message).__name__}")


def portable_copy(message: Message) -> Message:
    """Return an independent copy of ``message``, refusing unportable values.

    Raises ``TypeError`` naming the offending key (``message['a'][0]``) when a
    value or key could not be serialised by a network layer.  Tuples stay
    tuples, dict and list subclasses become plain dicts and lists.
    """
    require_dict(message)
    try:
        return _copy_dict(message)
    except _Unportable as exc:
        raise TypeError(_describe(exc)) from None
    except RecursionError:
        raise TypeError(
            "message is nested too deeply or contains itself; a channel layer "
            "cannot serialise it"
        ) from None


def is_flat(message: Message) -> bool:
    """True when every value is immutable, so a shallow copy is a full copy."""
    return all(type(value) in _ATOMS for value in message.values())


def estimate_size(message: Any) -> int:
    """Roughly how many bytes ``message`` takes once serialised (portable input)."""
    size = 0
    stack = [message]
    while stack:
        value = stack.pop()
        if isinstance(value, (str, bytes)):
            size += len(value)
        elif isinstance(value, dict):
            size += sum(len(key) for key in value)
            stack.extend(value.values())
        elif isinstance(value, (list, tuple)):
            stack.extend(value)
        else:
            size += 8
    return size
