"""The command-line options ``runserver`` adds to Django's own.

Each maps onto one knob of the server: the WebSocket and HTTP timeouts and
sizes Daphne takes, and the connection limits of
:mod:`channels_app.server_limits`.  Kept apart from the command so that its
module reads as what the command does, not as a page of ``--help``.
"""

from __future__ import annotations

from django.core.management.base import CommandParser

from ..server_limits import (
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_MAX_HEADER_SIZE,
    DEFAULT_MAX_HEADERS,
    DEFAULT_MAX_PENDING,
    DEFAULT_MAX_REQUEST_LINE,
    DEFAULT_SEND_BUFFER_BYTES,
    DEFAULT_SEND_BUFFER_MESSAGES,
    DEFAULT_SEND_TIMEOUT,
)

#: Default largest incoming WebSocket frame and message: 1 MiB.
DEFAULT_WEBSOCKET_LIMIT = 1024 * 1024


def add_server_options(parser: CommandParser, staticfiles: bool) -> None:
    """Add the ASGI server's options; ``staticfiles``: those of static serving
    too, as ``django.contrib.staticfiles``' runserver has them."""
    parser.add_argument(
        "--noasgi",
        action="store_false",
        dest="use_asgi",
        help="Run Django's WSGI development server instead (no WebSockets).",
    )
    parser.add_argument(
        "--noworker",
        action="store_false",
        dest="use_worker",
        help="Do not run in-process workers for the ChannelNameRouter.",
    )
    parser.add_argument(
        "--http-timeout",
        "--http_timeout",
        type=int,
        dest="http_timeout",
        default=None,
        help="Answer 503 when the application has not responded to an HTTP "
        "request within this many seconds (default: no limit).",
    )
    parser.add_argument(
        "--websocket-handshake-timeout",
        "--websocket_handshake_timeout",
        type=int,
        dest="websocket_handshake_timeout",
        default=5,
        help="Seconds a WebSocket handshake may take (default: 5).",
    )
    parser.add_argument(
        "--websocket-max-message-size",
        type=int,
        default=None,
        help="Largest incoming WebSocket message in bytes (default: the "
        "DAPHNE_WEBSOCKET_MAX_MESSAGE_SIZE setting, else 1 MiB; 0: no limit).",
    )
    parser.add_argument(
        "--websocket-max-frame-size",
        type=int,
        default=None,
        help="Largest incoming WebSocket frame in bytes (default: the "
        "DAPHNE_WEBSOCKET_MAX_FRAME_SIZE setting, else 1 MiB; 0: no limit).",
    )
    parser.add_argument(
        "--header-timeout",
        type=float,
        default=DEFAULT_HEADER_TIMEOUT,
        help="Close a connection that has not sent complete request headers "
        "within this many seconds, answering 408 if it sent part of them "
        f"(default: {DEFAULT_HEADER_TIMEOUT:g}; 0: no limit).",
    )
    parser.add_argument(
        "--max-pending-connections",
        type=int,
        default=DEFAULT_MAX_PENDING,
        help="Most connections that may be waiting to send their request "
        "headers at once; beyond it the one waiting longest is closed "
        f"(default: {DEFAULT_MAX_PENDING}; 0: no limit).",
    )
    parser.add_argument(
        "--max-request-line",
        type=int,
        default=DEFAULT_MAX_REQUEST_LINE,
        help="Longest request line (method, URL, version) in bytes; a longer "
        f"one is answered 414 (default: {DEFAULT_MAX_REQUEST_LINE}).",
    )
    parser.add_argument(
        "--max-header-size",
        type=int,
        default=DEFAULT_MAX_HEADER_SIZE,
        help="Most bytes of request headers, all lines together; more is "
        f"answered 431 (default: {DEFAULT_MAX_HEADER_SIZE}).",
    )
    parser.add_argument(
        "--max-headers",
        type=int,
        default=DEFAULT_MAX_HEADERS,
        help="Most request header lines; more is answered 431 "
        f"(default: {DEFAULT_MAX_HEADERS}).",
    )
    parser.add_argument(
        "--send-buffer-bytes",
        type=int,
        default=None,
        help="Most bytes waiting to be sent to one client; a WebSocket message "
        "that would pass it closes the connection (default: SEND_BUFFER_BYTES "
        f"in CHANNELS_APP_SERVER_LIMITS, else {DEFAULT_SEND_BUFFER_BYTES}; "
        "0: no limit).",
    )
    parser.add_argument(
        "--send-buffer-messages",
        type=int,
        default=None,
        help="Most messages waiting to be sent to one client, likewise "
        "(default: SEND_BUFFER_MESSAGES in CHANNELS_APP_SERVER_LIMITS, else "
        f"{DEFAULT_SEND_BUFFER_MESSAGES}; 0: no limit).",
    )
    parser.add_argument(
        "--send-timeout",
        type=float,
        default=None,
        help="Close a client whose send buffer is full and that has read "
        "nothing of it for this many seconds (default: SEND_TIMEOUT in "
        f"CHANNELS_APP_SERVER_LIMITS, else {DEFAULT_SEND_TIMEOUT:g}; 0: no limit).",
    )
    if staticfiles:
        parser.add_argument(
            "--nostatic",
            action="store_false",
            dest="use_static_handler",
            help="Do not serve static files at STATIC_URL.",
        )
        parser.add_argument(
            "--insecure",
            action="store_true",
            dest="insecure_serving",
            help="Serve static files even if DEBUG is False.",
        )
