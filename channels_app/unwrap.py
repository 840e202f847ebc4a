"""Seeing through middleware to the routers and validators it wraps.

Middleware keeps the application it wraps in ``inner`` (Channels'
convention); the worker looks for the ``ChannelNameRouter`` that way, and
the system checks for the ``ProtocolTypeRouter`` and the origin validators.
One walk here, so they all agree on what "wrapped" means.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

#: Longer chains are taken for a cycle (an ``inner`` pointing back up).
MAX_DEPTH = 50


def wrapping_chain(application: Any) -> Iterator[Any]:
    """``application``, then what it wraps, then what that wraps, and so on."""
    depth = 0
    while application is not None and depth <= MAX_DEPTH:
        yield application
        application = getattr(application, "inner", None)
        depth += 1


def find_wrapped(application: Any, wanted: type | tuple[type, ...]) -> Any:
    """The outermost application of type ``wanted`` in the chain, or None."""
    for candidate in wrapping_chain(application):
        if isinstance(candidate, wanted):
            return candidate
    return None


def protocol_branch(application: Any, scope_type: str) -> Any:
    """What the root ``ProtocolTypeRouter`` routes ``scope_type`` to, or None."""
    from .routing import ProtocolTypeRouter

    router = find_wrapped(application, ProtocolTypeRouter)
    return None if router is None else router.application_mapping.get(scope_type)
