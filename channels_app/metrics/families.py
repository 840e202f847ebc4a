"""The metric objects, created once in the default Prometheus registry.

Imported only when ``prometheus_client`` is importable.  The default
registry is used so that ``start_http_server`` and the project's own
metrics share one exposition with ours.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PREFIX = "channels_app_"

connections_open = Gauge(
    PREFIX + "connections_open",
    "Connections being served by a consumer, from the handshake to its end.",
    ["protocol", "route"],
)
websocket_messages = Counter(
    PREFIX + "websocket_messages",
    "WebSocket frames received from (in) and sent to (out) clients.",
    ["route", "direction"],
)
websocket_bytes = Counter(
    PREFIX + "websocket_bytes",
    "Payload bytes of WebSocket frames (text as UTF-8), by direction.",
    ["route", "direction"],
)
handler_duration = Histogram(
    PREFIX + "handler_duration_seconds",
    "Time a consumer spent in one message handler.",
    ["consumer", "handler"],
)
handler_errors = Counter(
    PREFIX + "handler_errors",
    "Message handlers that raised an exception (StopConsumer excluded).",
    ["consumer", "handler"],
)
layer_sends = Counter(
    PREFIX + "layer_sends",
    "Channel layer send() calls that queued their message.",
    ["layer"],
)
layer_receives = Counter(
    PREFIX + "layer_receives",
    "Messages returned by channel layer receive().",
    ["layer"],
)
layer_group_sends = Counter(
    PREFIX + "layer_group_sends",
    "Channel layer group_send() calls.",
    ["layer"],
)
channel_full = Counter(
    PREFIX + "layer_channel_full",
    "send() calls refused with ChannelFull.",
    ["layer"],
)
group_send_full_members = Counter(
    PREFIX + "layer_group_send_full_members",
    "Group members that missed a group_send because their channel was full.",
    ["layer"],
)
slow_client_closes = Counter(
    PREFIX + "slow_client_closes",
    "Connections closed because the client did not read fast enough.",
    ["protocol"],
)
worker_in_flight = Gauge(
    PREFIX + "worker_in_flight",
    "Messages a worker is handling right now.",
    ["channel"],
)
worker_messages = Counter(
    PREFIX + "worker_messages",
    "Messages a worker finished, by outcome (handled or failed).",
    ["channel", "outcome"],
)
