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


@dataclass(frozen=True)
class ConnectionLimits:
    """What ``runserver``'s server accepts from a client.

    ``header_timeout`` and ``max_pending`` may be 0 for "no limit"; the
    sizes must be positive.
    """

    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    max_pending: int = DEFAULT_MAX_PENDING
    max_request_line: int = DEFAULT_MAX_REQUEST_LINE
    max_header_size: int = DEFAULT_MAX_HEADER_SIZE
    max_headers: int = DEFAULT_MAX_HEADERS

    def __post_init__(self) -> None:
        if self.header_timeout < 0 or self.max_pending < 0:
            raise ValueError("header_timeout and max_pending cannot be negative")
        sizes = (self.max_request_line, self.max_header_size, self.max_headers)
        if min(sizes) <= 0:
            raise ValueError(
                "max_request_line, max_header_size and max_headers must be positive"
            )
