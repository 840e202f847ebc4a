"""A test case with a real server: HTTP and WebSocket on a loopback port.

Daphne runs in a child process forked from the test process, so it starts
with exactly the test's settings, including the test database names and any
class-level ``override_settings``.  The listening socket is opened here,
before the fork, so the port is known at once and a client that connects
early simply waits for the server to accept.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import socket
import sys
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.apps import apps
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.test import TransactionTestCase
from django.test.utils import modify_settings
from django.utils.functional import classproperty


def make_application(*, static_wrapper: Any = None) -> Any:
    """The project's ``ASGI_APPLICATION``, wrapped to serve static files if
    a wrapper is given and ``django.contrib.staticfiles`` is installed."""
    from ..layers import channel_layers
    from ..routing import get_default_application

    # Layer instances copied from the parent belong to its event loops.
    channel_layers.backends = {}
    application = get_default_application()
    if static_wrapper is not None and apps.is_installed("django.contrib.staticfiles"):
        application = static_wrapper(application)
    return application


def _use_fresh_twisted_reactor() -> None:
    """Make sure this (forked) process gets a reactor of its own.

    A reactor installed in the parent shares its selector with it and every
    other child; importing Daphne's server afterwards installs a new one.
    """
    if "twisted.internet.reactor" not in sys.modules:
        return
    import twisted.internet

    del sys.modules["twisted.internet.reactor"]
    with contextlib.suppress(AttributeError):
        del twisted.internet.reactor
    for name in [n for n in sys.modules if n == "daphne" or n.startswith("daphne.")]:
        del sys.modules[name]


def _forget_parent_threads() -> None:
    """Drop executors whose threads stayed behind in the parent.

    A fork copies asgiref's thread pools but not their threads: work handed
    to them would wait forever.
    """
    from asgiref.sync import AsyncToSync, SyncToAsync

    SyncToAsync.single_thread_executor = ThreadPoolExecutor(max_workers=1)
    SyncToAsync.context_to_thread_executor.clear()
    AsyncToSync.context_to_thread_executor.clear()


def _serve(listening_fd: int, static_wrapper: Any, report) -> None:
    """Body of the server process: run Daphne on the inherited socket."""
    try:
        _forget_parent_threads()
        _use_fresh_twisted_reactor()
        from daphne.server import Server

        server = Server(
            make_application(static_wrapper=static_wrapper),
            endpoints=[f"fd:fileno={listening_fd}"],
            signal_handlers=False,
            verbosity=0,
            ready_callable=lambda: report.send(None),
        )
        server.run()
    except BaseException:
        with contextlib.suppress(OSError):
            report.send(traceback.format_exc())
        raise


class LiveServerProcess:
    """Daphne in a forked child, listening on ``host`` at a free port."""

    def __init__(
        self, host: str, *, static_wrapper: Any = None, timeout: float = 20
    ) -> None:
        self.host = host
        listener = socket.create_server((host, 0), backlog=128)
        self.port = listener.getsockname()[1]
        context = multiprocessing.get_context("fork")
        receiving, sending = context.Pipe(duplex=False)
        # The child must not inherit open database connections: closing one
        # there would end the parent's session on the server.
        connections.close_all()
        self.process = context.Process(
            target=_serve,
            args=(listener.fileno(), static_wrapper, sending),
            name=f"live-server-{self.port}",
            daemon=True,
        )
        self.process.start()
        listener.close()
        sending.close()
        self._wait_until_ready(receiving, timeout)

    def _wait_until_ready(self, report, timeout: float) -> None:
        with report:
            if not report.poll(timeout):
                self.stop()
                raise RuntimeError(f"The live server did not start within {timeout}s")
            try:
                error = report.recv()
            except EOFError:
                error = "the server process died without saying why"
        if error is not None:
            self.stop()
            raise RuntimeError(f"The live server failed to start:\n{error}")

    def stop(self, timeout: float = 5) -> None:
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout)
            if self.process.is_alive():
                self.process.kill()
                self.process.join()


class ChannelsLiveServerTestCase(TransactionTestCase):
    """Run the project's ASGI application on a real Daphne server for a class
    of tests: browsers and network clients reach it at :attr:`live_server_url`
    (HTTP) and :attr:`live_server_ws_url` (WebSocket).

    The server is another process, so it sees the test database only through
    real commits: this is a ``TransactionTestCase``, and an in-memory SQLite
    database, which another process cannot open, is refused.  Settings the
    server should see must be in place when the class starts (settings files
    or a class-level ``override_settings``); changes made inside a test stay
    in the test process.
    """

    host = "127.0.0.1"
    #: Serve ``STATIC_URL`` through staticfiles' finders, as runserver does.
    serve_static = True
    #: The ASGI wrapper that serves them.
    static_wrapper = ASGIStaticFilesHandler
    server_start_timeout = 20.0

    @classproperty
    def live_server_url(cls) -> str:
        return f"http://{cls.host}:{cls._live_server.port}"

    @classproperty
    def live_server_ws_url(cls) -> str:
        return f"ws://{cls.host}:{cls._live_server.port}"

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls._refuse_in_memory_databases()
        allowed_hosts = modify_settings(ALLOWED_HOSTS={"append": cls.host})
        allowed_hosts.enable()
        cls.addClassCleanup(allowed_hosts.disable)
        cls._live_server = LiveServerProcess(
            cls.host,
            static_wrapper=cls.static_wrapper if cls.serve_static else None,
            timeout=cls.server_start_timeout,
        )
        cls.addClassCleanup(cls._live_server.stop)

    @classmethod
    def _refuse_in_memory_databases(cls) -> None:
        for alias in connections:
            if alias not in cls.databases and cls.databases != "__all__":
                continue
            connection = connections[alias]
            if connection.vendor == "sqlite" and connection.is_in_memory_db():
                raise ImproperlyConfigured(
                    f"{cls.__name__} cannot use the in-memory SQLite database "
                    f"{alias!r}: the live server runs in another process, which "
                    f"cannot open it. Give DATABASES[{alias!r}]['TEST']['NAME'] "
                    f"a file path."
                )


__all__ = ["ChannelsLiveServerTestCase", "LiveServerProcess", "make_application"]
