"""Turning the tallies into Prometheus metric families, at scrape time only.

One collector in the default registry, so ``generate_latest()`` and
``start_http_server`` include ours beside the project's own metrics.
Snapshots use ``list(table.items())``, which CPython builds without
releasing the GIL, so a tally created meanwhile cannot break the iteration.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import accumulate

from prometheus_client.core import (
    REGISTRY,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from . import tallies

PREFIX = "channels_app_"


def _connections() -> Iterable[Metric]:
    open_now = GaugeMetricFamily(
        PREFIX + "connections_open",
        "Connections being served by a consumer, from the handshake to its end.",
        labels=["protocol", "route"],
    )
    frames = CounterMetricFamily(
        PREFIX + "websocket_messages",
        "WebSocket frames received from (in) and sent to (out) clients.",
        labels=["route", "direction"],
    )
    size = CounterMetricFamily(
        PREFIX + "websocket_bytes",
        "Payload bytes of WebSocket frames (text as UTF-8), by direction.",
        labels=["route", "direction"],
    )
    for (protocol, route), tally in sorted(list(tallies.connections.items())):
        open_now.add_metric([protocol, route], tally.open)
        if protocol == "websocket":
            frames.add_metric([route, "in"], tally.in_frames)
            frames.add_metric([route, "out"], tally.out_frames)
            size.add_metric([route, "in"], tally.in_bytes)
            size.add_metric([route, "out"], tally.out_bytes)
    return open_now, frames, size


def _handlers() -> Iterable[Metric]:
    duration = HistogramMetricFamily(
        PREFIX + "handler_duration_seconds",
        "Time a consumer spent in one message handler.",
        labels=["consumer", "handler"],
    )
    errors = CounterMetricFamily(
        PREFIX + "handler_errors",
        "Message handlers that raised an exception (StopConsumer excluded).",
        labels=["consumer", "handler"],
    )
    bounds = [*map(str, tallies.BOUNDS), "+Inf"]
    for labels, tally in sorted(list(tallies.handlers.items())):
        # The sum is read before the buckets (whose last is the count): a
        # handler finishing in between leaves the count one ahead at worst.
        total = tally.total
        cumulative = list(accumulate(list(tally.buckets)))
        buckets = list(zip(bounds, cumulative, strict=True))
        duration.add_metric(list(labels), buckets, total)
        errors.add_metric(list(labels), tally.errors)
    return duration, errors


_LAYER_COUNTERS = (
    ("sends", "layer_sends", "Channel layer send() calls that queued their message."),
    ("receives", "layer_receives", "Messages returned by channel layer receive()."),
    ("group_sends", "layer_group_sends", "Channel layer group_send() calls."),
    ("channel_full", "layer_channel_full", "send() calls refused with ChannelFull."),
    (
        "full_members",
        "layer_group_send_full_members",
        "Group members that missed a group_send because their channel was full.",
    ),
)


def _layers() -> Iterable[Metric]:
    snapshot = sorted(list(tallies.layers.items()))
    for attribute, name, documentation in _LAYER_COUNTERS:
        family = CounterMetricFamily(PREFIX + name, documentation, labels=["layer"])
        for layer, tally in snapshot:
            family.add_metric([layer], getattr(tally, attribute))
        yield family


def _workers() -> Iterable[Metric]:
    in_flight = GaugeMetricFamily(
        PREFIX + "worker_in_flight",
        "Messages a worker is handling right now.",
        labels=["channel"],
    )
    finished = CounterMetricFamily(
        PREFIX + "worker_messages",
        "Messages a worker finished, by outcome (handled or failed).",
        labels=["channel", "outcome"],
    )
    for channel, tally in sorted(list(tallies.workers.items())):
        in_flight.add_metric([channel], tally.in_flight)
        finished.add_metric([channel, "handled"], tally.handled)
        finished.add_metric([channel, "failed"], tally.failed)
    return in_flight, finished


def _slow_clients() -> Iterable[Metric]:
    family = CounterMetricFamily(
        PREFIX + "slow_client_closes",
        "Connections closed because the client did not read fast enough.",
        labels=["protocol"],
    )
    for protocol, count in sorted(list(tallies.slow_client_closes.items())):
        family.add_metric([protocol], count)
    yield family


class TallyCollector(Collector):
    """Every tally of :mod:`.tallies`, as Prometheus families."""

    def collect(self) -> Iterable[Metric]:
        yield from _connections()
        yield from _handlers()
        yield from _layers()
        yield from _workers()
        yield from _slow_clients()


REGISTRY.register(TallyCollector())
