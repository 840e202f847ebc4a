"""Daphne, plus what ``runserver`` adds: the lifespan protocol and in-process workers.

Daphne serves HTTP and WebSocket but neither sends the ASGI ``lifespan``
scope nor runs workers.  :class:`DevelopmentServer` does both on Daphne's own
event loop: the application's startup hooks complete before the reactor
starts taking connections, workers run next to the consumers (which is what
lets the in-memory layer reach them), and on shutdown the workers drain
before the shutdown hooks run.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import deque
from collections.abc import Iterable
from functools import partial
from typing import Any

# Installs Twisted's asyncio reactor; must come before anything imports
# twisted.internet.reactor.
from daphne.server import Server  # isort: skip

from daphne.http_protocol import WebRequest
from daphne.ws_protocol import WebSocketProtocol
from twisted.internet import defer, reactor
from twisted.python import failure

from .lifespan import LifespanClient, LifespanFailed
from .server_limits import ConnectionLimits, PendingConnections, install
from .server_limits.slow_clients import send_buffer_of
from .types import Scope
from .worker import Worker, WorkerStats

logger = logging.getLogger("channels_app.server")

# Twisted types the reactor as zope interfaces, whose methods mypy reads with
# their first argument taken for ``self``; the reactor is used untyped.
_reactor: Any = reactor

#: How ``URLRouter`` says that no route matches a connection's path.  Channels
#: code relies on the ``ValueError``, so the router keeps raising it; the
#: server recognises it and refuses the connection with one log line.
NO_ROUTE_PREFIX = "No route found for path"


class ConnectionEvents:
    """One connection's incoming events, read by its application's ``receive``.

    Stands in for the ``asyncio.Queue`` Daphne gives every connection: the
    same ``put_nowait``/``get`` contract for one reader, without the four
    deques and the event a full queue allocates up front -- a few kilobytes
    per idle connection, and a server holds them by the thousand.
    """

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: deque[dict[str, Any]] | None = None
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: dict[str, Any]) -> None:
        if self._items is None:
            self._items = deque()
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> dict[str, Any]:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.popleft()


class DevelopmentServer(Server):  # type: ignore[misc]  # daphne is untyped
    """Daphne's server, running lifespan hooks and ``workers`` on its event loop."""

    def __init__(
        self,
        application: Any,
        *,
        workers: Iterable[Worker] = (),
        limits: ConnectionLimits | None = None,
        inherited_sockets: Iterable[int] = (),
        **kwargs: Any,
    ) -> None:
        #: Listening sockets (file descriptors) to serve on besides
        #: ``endpoints``, of any address family (see ``_adopt_sockets``).
        self.inherited_sockets = list(inherited_sockets)
        adopting_only = self.inherited_sockets and not kwargs.get("endpoints")
        if adopting_only:
            # Daphne's constructor exits when given no endpoint string.
            kwargs["endpoints"] = ["(inherited sockets)"]
        super().__init__(application, **kwargs)
        if adopting_only:
            self.endpoints: list[str] = []
        self.workers = list(workers)
        self.limits = limits or ConnectionLimits()
        self.pending: PendingConnections | None = None
        self.listen_failure: str | None = None
        #: The ports listening for this server (a drain stops them).
        self.listening_ports: list[Any] = []
        self._worker_tasks: list[asyncio.Task[WorkerStats]] = []
        self._lifespan = LifespanClient(application)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        loop: asyncio.AbstractEventLoop = _reactor._asyncioEventloop
        return loop

    def run(self) -> None:
        """Start up the application, serve until stopped, then shut it down.

        Raises ``LifespanFailed`` without serving if a startup hook fails.
        """
        asyncio.set_event_loop(self.loop)
        # The reactor is not running yet, so nothing is accepted before the
        # startup hooks have finished.
        self.loop.run_until_complete(self._lifespan.startup())
        # Daphne's run() builds its factories and starts listening; the
        # reactor accepts nothing before its startup triggers have run.
        _reactor.callWhenRunning(self._install_limits)
        _reactor.callWhenRunning(self._start_workers)
        _reactor.addSystemEventTrigger("before", "shutdown", self._before_shutdown)
        if self.inherited_sockets:
            # Daphne calls ready_callable once its endpoints listen, just
            # before the reactor runs: the moment to adopt ours too.
            ready: Any = getattr(self, "ready_callable", None)  # Daphne's, untyped
            self.ready_callable = partial(self._adopt_sockets, ready)
        super().run()

    def _adopt_sockets(self, then: Any) -> None:
        """Serve on the inherited sockets, then report ready (``then``).

        Daphne's ``fd:`` endpoint string can only say IPv4: Twisted's parser
        passes its ``domain`` on as a string, which ``adoptStreamPort``
        refuses.  Adopting the descriptor ourselves, with the family read
        from the socket, serves IPv6 addresses too.  As the endpoint does,
        Twisted keeps its own duplicate and the inherited descriptor is closed.
        """
        for fd in self.inherited_sockets:
            inherited = socket.socket(fileno=fd)
            family = inherited.family
            inherited.setblocking(False)  # as Twisted's endpoint does first
            try:
                port = _reactor.adoptStreamPort(fd, family, self.http_factory)
            except Exception:
                inherited.detach()
                self.listen_error(failure.Failure())  # type: ignore[no-untyped-call]
                return
            inherited.close()
            self.listen_success(port)
        if then is not None:
            then()

    def create_application(
        self, protocol: Any, scope: Scope
    ) -> ConnectionEvents | None:
        """Start the application for a new connection; return where its events go.

        The contract of Daphne's method, with a :class:`ConnectionEvents` for a queue.
        """
        details = self.connections.get(protocol)
        if details is None:
            return None
        if "application_instance" in details:
            raise RuntimeError(f"{protocol!r} already has an application instance")
        events = ConnectionEvents()
        scope.setdefault("asgi", {"version": "3.0"})
        details["application_instance"] = asyncio.ensure_future(
            self.application(
                scope=scope,
                receive=events.get,
                send=partial(self.handle_reply, protocol),
            )
        )
        return events

    async def handle_reply(self, protocol: Any, message: dict[str, Any]) -> None:
        """Pass an application's message to its connection, through the
        connection's bounded send buffer (see :mod:`.server_limits.slow_clients`)."""
        buffer = send_buffer_of(protocol)
        if buffer is None:
            await super().handle_reply(protocol, message)
        else:
            await buffer.send(protocol, message, self._deliver_reply)

    def _deliver_reply(self, protocol: Any, message: dict[str, Any]) -> None:
        """Daphne's ``handle_reply`` without the coroutine, so a buffer can call it."""
        details = self.connections.get(protocol)
        if details is None or details.get("disconnected"):
            return  # the connection has closed: nothing to send to
        try:
            self.check_headers_type(message)
        except ValueError:
            protocol.basic_error(500, b"Server Error", "Server Error")
            raise
        protocol.handle_reply(message)

    def application_checker(self) -> None:
        """Reap finished applications and stale connections, then run again in 1 s.

        Daphne's own checker stops for good the first time one connection's
        clean-up raises -- e.g. an HTTP consumer that fails after its response
        started, where answering 500 is no longer possible -- and from then on
        crashed consumers stay open and their errors go unlogged.  Here each
        connection is checked on its own and the next run is scheduled
        whatever happens.
        """
        try:
            for protocol, details in list(self.connections.items()):
                try:
                    self._check_connection(protocol, details)
                except Exception:
                    logger.exception("Could not clean up connection %r", protocol)
                    # Forget the application so it is not reported again.
                    details.pop("application_instance", None)
        finally:
            _reactor.callLater(1, self.application_checker)

    def _check_connection(self, protocol: Any, details: dict[str, Any]) -> None:
        """Kill an application that outlived its connection; reap a finished one."""
        disconnected = details.get("disconnected")
        instance = details.get("application_instance")
        overdue = (
            disconnected is not None
            and time.time() - disconnected > self.application_close_timeout
        )
        if overdue and instance is not None and not instance.done():
            logger.warning(
                "Application for %r did not finish within %ss of its connection "
                "closing; cancelled it",
                protocol,
                self.application_close_timeout,
            )
            instance.cancel()
        if instance is not None and instance.done():
            del details["application_instance"]
            error = None if instance.cancelled() else instance.exception()
            if isinstance(error, KeyboardInterrupt):
                self.stop()  # how a protocol asks the server to exit
            elif error is not None and not self._refused_unrouted(
                protocol, error, disconnected is not None
            ):
                logger.error("Exception inside application: %s", error, exc_info=error)
                if disconnected is None:
                    self._answer_crash(protocol, error)
            instance = None
        if instance is None and disconnected is not None:
            self.connections.pop(protocol, None)

    @staticmethod
    def _refused_unrouted(protocol: Any, error: BaseException, gone: bool) -> bool:
        """Refuse a connection no route matched, logging one line; False if
        ``error`` is not that or the connection can no longer be refused.

        An unknown path is the client's mistake, not a crash: a WebSocket
        handshake gets a 403, an HTTP request a 404, and the log the path
        without a traceback.
        """
        if not (
            isinstance(error, ValueError) and str(error).startswith(NO_ROUTE_PREFIX)
        ):
            return False
        if gone:
            refusal = "the client had already gone"
        elif isinstance(protocol, WebSocketProtocol):
            if not hasattr(protocol, "handshake_deferred"):
                return False  # already accepted: a crash, answered as one
            protocol.serverReject()
            refusal = "refused the WebSocket handshake with 403"
        elif isinstance(protocol, WebRequest):
            if protocol._response_started:
                return False
            protocol.basic_error(404, b"Not Found", "No route matches this path.")
            refusal = "answered 404"
        else:
            return False
        logger.warning("%s; %s", str(error).rstrip("."), refusal)
        return True

    @staticmethod
    def _answer_crash(protocol: Any, error: BaseException) -> None:
        """Tell the client its application crashed: a 500, a 1011 close.

        Once an HTTP response has started Daphne's answer raises instead; the
        connection is then aborted, so the client sees a truncated response
        rather than waiting for the rest of it.
        """
        try:
            protocol.handle_exception(error)
        except Exception as exc:
            logger.warning(
                "Aborting the connection of %r: its response had started, so no "
                "error response could be sent (%s)",
                protocol,
                exc,
            )
            channel = getattr(protocol, "channel", protocol)
            transport = getattr(channel, "transport", None)
            if transport is not None:
                transport.abortConnection()

    def listen_success(self, port: Any) -> None:
        self.listening_ports.append(port)
        super().listen_success(port)

    def listen_error(self, failure: Any) -> None:
        self.listen_failure = failure.getErrorMessage()
        super().listen_error(failure)

    def _install_limits(self) -> None:
        self.pending = install(self, self.limits)

    def _start_workers(self) -> None:
        self._worker_tasks = [
            self.loop.create_task(worker.serve()) for worker in self.workers
        ]

    def _before_shutdown(self) -> defer.Deferred[None]:
        return defer.Deferred.fromFuture(self.loop.create_task(self._shut_down()))

    async def _shut_down(self) -> None:
        for worker in self.workers:
            worker.stop()
        for outcome in await asyncio.gather(
            *self._worker_tasks, return_exceptions=True
        ):
            if isinstance(outcome, BaseException):
                logger.error("In-process worker crashed", exc_info=outcome)
            else:
                logger.info("In-process worker stopped: %s", outcome.summary())
        try:
            await self._lifespan.shutdown()
        except LifespanFailed as exc:
            logger.error("Application shutdown failed: %s", exc)
