"""Prometheus metrics for connections, handlers, channel layers and workers.

The recording functions are chosen once, when this module is imported: with
``prometheus_client`` importable they record into its default registry
(:mod:`.recording`, :mod:`.layer_counts`, :mod:`.queue_depth`); without it
they are the no-ops of :mod:`.disabled`, which return what they are given,
so nothing is collected and nothing costs.  The views live in
:mod:`channels_app.metrics.views`.
"""

from __future__ import annotations

from .disabled import MISSING, MetricsUnavailable

try:
    import prometheus_client  # noqa: F401
except ImportError:
    ENABLED = False
else:
    ENABLED = True

if ENABLED:
    from .layer_counts import instrument_layer
    from .queue_depth import watch_queue_depth
    from .recording import (
        open_connection,
        record_slow_client_close,
        start_metrics_server,
        timed_dispatch,
        worker_message_started,
    )
else:
    from .disabled import (
        instrument_layer,
        open_connection,
        record_slow_client_close,
        start_metrics_server,
        timed_dispatch,
        watch_queue_depth,
        worker_message_started,
    )

__all__ = [
    "ENABLED",
    "MISSING",
    "MetricsUnavailable",
    "instrument_layer",
    "open_connection",
    "record_slow_client_close",
    "start_metrics_server",
    "timed_dispatch",
    "watch_queue_depth",
    "worker_message_started",
]
