"""``runserver``'s request log, in the format of Django's own runserver.

One line per HTTP response and per WebSocket event, on the ``django.server``
logger with the ``status_code`` and ``server_time`` extras Django's
``ServerFormatter`` reads, so a project's ``LOGGING`` for runserver applies
unchanged.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

request_logger = logging.getLogger("django.server")


def log_server_action(protocol: str, action: str, details: dict[str, Any]) -> None:
    """Log one of the server's actions (Daphne's ``action_logger`` contract)."""
    if protocol == "http" and action == "complete":
        status = details["status"]
        level = logging.INFO
        if status >= 500:
            level = logging.ERROR
        elif status >= 400:
            level = logging.WARNING
        request_logger.log(
            level,
            '"%s %s" %s [%.2fs, %s]',
            details["method"],
            details["path"],
            status,
            details["time_taken"],
            details["client"],
            extra={"status_code": status, "server_time": _server_time()},
        )
    elif protocol == "websocket":
        label = {
            "connecting": "HANDSHAKING",
            "connected": "CONNECT",
            "rejected": "REJECT",
            "disconnected": "DISCONNECT",
        }.get(action)
        if label:
            request_logger.info(
                "WebSocket %s %s [%s]",
                label,
                details["path"],
                details["client"],
                extra={"server_time": _server_time()},
            )


def _server_time() -> str:
    """The timestamp Django's request log shows."""
    return datetime.now().strftime("%d/%b/%Y %H:%M:%S")
