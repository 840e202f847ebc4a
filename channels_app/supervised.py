"""The child's end of ``manage.py serve``'s supervision.

Each process the supervisor starts inherits one end of a socket pair, named
by :data:`LINK_ENV`.  The child writes one byte on it once it is ready to
serve, which is how the supervisor knows when a new process can take over
from an old one; and it sees end-of-file on it when the supervisor is gone,
even after a SIGKILL that left no chance to signal anyone, and drains then
rather than lingering as an orphan.  The children run in their own
sessions, so a CONTROL-C in the terminal reaches only the supervisor, which
stops them once, in order.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable

#: The environment variable holding the link's file descriptor.
LINK_ENV = "CHANNELS_APP_SUPERVISOR_FD"
#: The environment variable holding the child's name ("server 1", "worker 2").
NAME_ENV = "CHANNELS_APP_PROCESS_NAME"

READY = b"r"


class SupervisorLink:
    """The link to the supervisor, or a do-nothing one outside ``serve``."""

    def __init__(self, sock: socket.socket | None, name: str) -> None:
        self.sock = sock
        self.name = name

    @classmethod
    def from_environment(cls) -> SupervisorLink:
        fd = os.environ.pop(LINK_ENV, None)
        name = os.environ.pop(NAME_ENV, "")
        if fd is None:
            return cls(None, name)
        return cls(socket.socket(fileno=int(fd)), name)

    @property
    def supervised(self) -> bool:
        return self.sock is not None

    def ready(self) -> None:
        """Tell the supervisor this process is serving."""
        if self.sock is not None:
            self.sock.sendall(READY)

    def watch(
        self, loop: asyncio.AbstractEventLoop, on_lost: Callable[[], None]
    ) -> None:
        """Call ``on_lost`` once if the supervisor goes away."""
        sock = self.sock
        if sock is None:
            return
        sock.setblocking(False)

        def readable() -> None:
            try:
                data = sock.recv(64)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                loop.remove_reader(sock.fileno())
                logging.getLogger("channels_app.serve").warning(
                    "The supervisor has gone; stopping"
                )
                on_lost()

        loop.add_reader(sock.fileno(), readable)

    def tag_logs(self) -> None:
        """Start every log line of this process with its name, so that the
        interleaved output of all the processes says which one wrote what."""
        if not self.name:
            return
        prefix = f"[{self.name} pid {os.getpid()}] "

        def tag(record: logging.LogRecord) -> bool:
            if not getattr(record, "_serve_tagged", False):
                record.msg = prefix + str(record.msg)
                record._serve_tagged = True
            return True

        loggers = [logging.getLogger()]
        loggers += [
            logger
            for logger in logging.Logger.manager.loggerDict.values()
            if isinstance(logger, logging.Logger)
        ]
        for logger in loggers:
            for handler in logger.handlers:
                handler.addFilter(tag)
