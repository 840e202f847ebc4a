"""How much ``runserver``'s server accepts from a client, and how long it waits.

The numbers are one frozen :class:`ConnectionLimits`, checked when built, so
a bad command-line value fails at start-up rather than on a connection.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Seconds a connection has to send complete request headers.
DEFAULT_HEADER_TIMEOUT = 10.0
#: Connections that may be waiting for their request headers at once.
DEFAULT_MAX_PENDING = 500
#: Longest request line (method, URL, version), in bytes: beyond it, 414.
DEFAULT_MAX_REQUEST_LINE = 8 * 1024
#: Most bytes of header lines in one request: beyond it, 431.
DEFAULT_MAX_HEADER_SIZE = 16 * 1024
#: Most header lines in one request: beyond it, 431.
DEFAULT_MAX_HEADERS = 100
#: Most bytes waiting to be sent to one client: past it, a WebSocket is closed.
DEFAULT_SEND_BUFFER_BYTES = 1024 * 1024
#: Most messages waiting to be sent to one client, likewise.
DEFAULT_SEND_BUFFER_MESSAGES = 1000
#: Seconds a client may leave a full send buffer unread before it is closed.
DEFAULT_SEND_TIMEOUT = 10.0


@dataclass(frozen=True)
class ConnectionLimits:
    """What ``runserver``'s server accepts from a client.

    ``header_timeout``, ``max_pending`` and the three ``send_*`` limits may
    be 0 for "no limit"; the sizes of requests must be positive.  The
    ``send_*`` limits bound what the server holds for a client that does not
    read (see :mod:`.slow_clients`).
    """

    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    max_pending: int = DEFAULT_MAX_PENDING
    max_request_line: int = DEFAULT_MAX_REQUEST_LINE
    max_header_size: int = DEFAULT_MAX_HEADER_SIZE
    max_headers: int = DEFAULT_MAX_HEADERS
    send_buffer_bytes: int = DEFAULT_SEND_BUFFER_BYTES
    send_buffer_messages: int = DEFAULT_SEND_BUFFER_MESSAGES
    send_timeout: float = DEFAULT_SEND_TIMEOUT

    def __post_init__(self) -> None:
        if self.header_timeout < 0 or self.max_pending < 0:
            raise ValueError("header_timeout and max_pending cannot be negative")
        sending = (self.send_buffer_bytes, self.send_buffer_messages, self.send_timeout)
        if min(sending) < 0:
            raise ValueError(
                "send_buffer_bytes, send_buffer_messages and send_timeout "
                "cannot be negative"
            )
        sizes = (self.max_request_line, self.max_header_size, self.max_headers)
        if min(sizes) <= 0:
            raise ValueError(
                "max_request_line, max_header_size and max_headers must be positive"
            )
