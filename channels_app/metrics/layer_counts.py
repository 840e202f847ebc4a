"""Counting a channel layer's traffic at one seam: the layer registry.

:func:`instrument_layer` replaces the instance's ``send``, ``receive`` and
``group_send`` with counting wrappers, as attributes of that one object, so
every layer class (ours, channels_redis', a project's own) is counted the
same way without any of them knowing.  Expired messages are not counted
here: layers that already count them (``expired_messages``) are read at
scrape time, which costs their operations nothing.
"""

from __future__ import annotations

import inspect
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from prometheus_client.core import REGISTRY, CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from ..exceptions import ChannelFull
from . import tallies
from .exposition import PREFIX
from .tallies import LayerTally

_MARK = "_channels_app_metrics"
LayerT = TypeVar("LayerT")
Method = Callable[..., Awaitable[Any]]


def _counted_send(method: Method, tally: LayerTally) -> Method:
    async def send(channel: str, message: Any) -> None:
        try:
            await method(channel, message)
        except ChannelFull:
            with tally.lock:
                tally.channel_full += 1
            raise
        with tally.lock:
            tally.sends += 1

    return send


def _counted_receive(method: Method, tally: LayerTally) -> Method:
    async def receive(channel: str) -> Any:
        message = await method(channel)
        with tally.lock:
            tally.receives += 1
        return message

    return receive


def _counted_group_send(method: Method, tally: LayerTally) -> Method:
    async def group_send(group: str, message: Any) -> Any:
        missed = await method(group, message)
        # Our layers return how many members were full; others return None.
        full = missed if type(missed) is int and missed > 0 else 0
        with tally.lock:
            tally.group_sends += 1
            tally.full_members += full
        return missed

    return group_send


_WRAPPERS = {
    "send": _counted_send,
    "receive": _counted_receive,
    "group_send": _counted_group_send,
}


class ExpiredMessages(Collector):
    """``expired_messages`` of every instrumented layer, summed by class."""

    def __init__(self) -> None:
        self._layers: weakref.WeakSet[Any] = weakref.WeakSet()
        self._lock = threading.Lock()

    def add(self, layer: Any) -> None:
        with self._lock:
            self._layers.add(layer)

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(
            PREFIX + "layer_expired_messages",
            "Messages a layer dropped because nobody received them in time "
            "(layers that count them: the in-memory layer).",
            labels=["layer"],
        )
        with self._lock:
            layers = list(self._layers)
        totals: dict[str, int] = {}
        for layer in layers:
            # Read from the instance itself: a proxying layer's __getattr__
            # (channels_redis' pub/sub layer) needs an event loop to answer.
            count = getattr(layer, "__dict__", {}).get("expired_messages")
            if type(count) is int:
                name = type(layer).__name__
                totals[name] = totals.get(name, 0) + count
        for name, total in sorted(totals.items()):
            family.add_metric([name], total)
        yield family


expired_messages = ExpiredMessages()
REGISTRY.register(expired_messages)


def instrument_layer(layer: LayerT) -> LayerT:
    """Count ``layer``'s sends, receives, ChannelFull and full group members.

    Returns the same object; a layer instrumented before is left as it is,
    so nothing is counted twice.
    """
    if inspect.getattr_static(layer, _MARK, False):
        return layer
    try:
        setattr(layer, _MARK, True)
    except (AttributeError, TypeError):  # __slots__: cannot be wrapped
        return layer
    tally = tallies.find(tallies.layers, type(layer).__name__, LayerTally)
    for method_name, wrap in _WRAPPERS.items():
        try:
            method = getattr(layer, method_name)
        except Exception:  # not offered by this layer
            continue
        if inspect.iscoroutinefunction(method):
            setattr(layer, method_name, wrap(method, tally))
    try:
        expired_messages.add(layer)
    except TypeError:  # not weakly referenceable
        pass
    return layer
