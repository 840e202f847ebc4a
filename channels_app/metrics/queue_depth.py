"""How many messages wait on a worker's channels, read when Prometheus scrapes.

Read at scrape time rather than kept up to date, so the layer's operations
pay nothing for it.  Layers that can tell: ours (the in-memory layer from
its queues, the database layer with one ``COUNT`` per channel) and any layer
with a synchronous ``queue_depth(channel)`` method.  Others give no sample.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

from prometheus_client.core import REGISTRY, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .exposition import PREFIX


def queue_depth(layer: Any, channel: str) -> int | None:
    """Messages queued on ``channel`` of ``layer``, or None if it cannot tell.

    Synchronous, and for the database layer a query: call it from a thread,
    never on the event loop (scrapes run in the HTTP server's thread).
    """
    from ..layers.database.layer import DatabaseChannelLayer
    from ..layers.inmemory import InMemoryChannelLayer

    reader = getattr(layer, "queue_depth", None)
    if callable(reader):
        return int(reader(channel))
    if isinstance(layer, InMemoryChannelLayer):
        return layer.channels[channel].qsize() if channel in layer.channels else 0
    if isinstance(layer, DatabaseChannelLayer):
        return _database_depth(layer.database, channel)
    return None


def _database_depth(alias: str, channel: str) -> int:
    from django.db import connections

    from ..layers.database.models import ChannelMessage

    connection = connections[alias]
    opened_here = connection.connection is None
    try:
        return (
            ChannelMessage.objects.using(alias)
            .filter(channel=channel, expires__gt=time.time())
            .count()
        )
    finally:
        if opened_here:  # a scrape thread's connection would outlive it
            connection.close()


class QueueDepth(Collector):
    """The depth of every watched (layer, channel), as one gauge family."""

    def __init__(self) -> None:
        self._watched: list[tuple[Any, str]] = []
        self._lock = threading.Lock()

    def watch(self, layer: Any, channels: Iterable[str]) -> None:
        with self._lock:
            for channel in channels:
                if (layer, channel) not in self._watched:
                    self._watched.append((layer, channel))

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            PREFIX + "worker_queue_depth",
            "Messages waiting on a worker's channel (for layers that can tell).",
            labels=["channel"],
        )
        with self._lock:
            watched = list(self._watched)
        for layer, channel in watched:
            depth = queue_depth(layer, channel)
            if depth is not None:
                family.add_metric([channel], depth)
        yield family


depths = QueueDepth()
REGISTRY.register(depths)


def watch_queue_depth(layer: Any, channels: Iterable[str]) -> None:
    """Report the depth of ``channels`` on ``layer`` in every scrape."""
    depths.watch(layer, channels)
