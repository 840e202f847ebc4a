"""Let third-party layers (such as channels_redis) raise our exceptions.

A layer written for Django Channels raises ``channels.exceptions.ChannelFull``,
which ``except channels_app.exceptions.ChannelFull`` would not catch.
``except`` matches on the real class hierarchy (``__subclasscheck__`` is not
consulted), so the exception itself has to change: :func:`adapt_layer`
wraps the layer's API coroutines, as attributes of that one instance, and
any exception whose class name matches one of ours is re-classed to a
subclass of *both* classes.  Code catching either name keeps working, and the
layer object stays the same object of the same type.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, cast

from .. import exceptions
from ..types import ChannelLayer

#: The layer API methods whose exceptions are translated.
API_METHODS = (
    "send",
    "receive",
    "new_channel",
    "group_add",
    "group_discard",
    "group_send",
    "flush",
    "close",
)

#: Our exceptions a foreign layer may raise under the same class name.
BRIDGED_EXCEPTIONS = {
    cls.__name__: cls for cls in (exceptions.ChannelFull, exceptions.MessageTooLarge)
}

_ADAPTED_MARK = "_channels_app_adapted"
_bridges: dict[type, type] = {}


def bridge_class(foreign: type[BaseException]) -> type[BaseException] | None:
    """The class deriving from ours and ``foreign``; None if nothing matches."""
    ours = BRIDGED_EXCEPTIONS.get(foreign.__name__)
    if ours is None or issubclass(foreign, ours):
        return None
    bridge = _bridges.get(foreign)
    if bridge is None:
        bridge = type(
            foreign.__name__,
            (foreign, ours),
            {
                "__module__": foreign.__module__,
                "__qualname__": foreign.__qualname__,
                "__doc__": f"{foreign.__module__}.{foreign.__qualname__}, also "
                f"catchable as {ours.__module__}.{ours.__qualname__}.",
            },
        )
        _bridges[foreign] = bridge
    return bridge


def translate(exc: BaseException) -> BaseException:
    """Make ``exc`` an instance of our same-named exception too, if there is one.

    The instance is re-classed in place, keeping its arguments, traceback and
    identity; when its layout forbids that, an equivalent bridged instance
    chained to the original is returned instead.
    """
    bridge = bridge_class(type(exc))
    if bridge is None:
        return exc
    try:
        exc.__class__ = bridge
    except TypeError:
        replacement = bridge.__new__(bridge, *exc.args)
        replacement.args = exc.args
        replacement.__cause__ = exc
        return replacement.with_traceback(exc.__traceback__)
    return exc


def _translating(
    method: Callable[..., Awaitable[Any]],
) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(method)
    async def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return await method(*args, **kwargs)
        except Exception as exc:
            translated = translate(exc)
            if translated is exc:
                raise
            raise translated from exc

    return call


def adapt_layer(layer: Any) -> ChannelLayer:
    """Translate the exceptions of ``layer``'s API coroutines; returns ``layer``.

    Layers built on :class:`~channels_app.layers.BaseChannelLayer` already
    raise our exceptions and are returned untouched, as is a layer adapted
    before.
    """
    from .base import BaseChannelLayer

    # getattr_static: some layers resolve unknown attributes dynamically, and
    # that may need a running event loop (channels_redis' pub/sub layer does).
    if isinstance(layer, BaseChannelLayer) or inspect.getattr_static(
        layer, _ADAPTED_MARK, False
    ):
        return cast(ChannelLayer, layer)
    for name in API_METHODS:
        try:
            method = getattr(layer, name)
        except Exception:  # not offered by this layer
            continue
        if inspect.iscoroutinefunction(method):
            setattr(layer, name, _translating(method))
    setattr(layer, _ADAPTED_MARK, True)
    return cast(ChannelLayer, layer)
