"""A test case with a real server: HTTP and WebSocket on a loopback port.

Daphne runs in a child process forked from the test process, so it starts
with exactly the test's settings, including the test database names and any
class-level ``override_settings``.  The listening socket is opened here,
before the fork, so the port is known at once and a client that connects
early simply waits for the server to accept.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import pickle
import socket
import sys
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.conf import settings
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.db.backends.base.creation import TEST_DATABASE_PREFIX
from django.test import TransactionTestCase
from django.test.utils import modify_settings
from django.utils.functional import classproperty

from ..routing import get_default_application


def make_application(*, static_wrapper: Any = None) -> Any:
    """The project's ``ASGI_APPLICATION``, wrapped to serve static files if
    a wrapper is given and ``django.contrib.staticfiles`` is installed."""
    from ..layers import channel_layers

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


#: Forking gives the server the test process's settings and test databases.
_FORK = multiprocessing.get_context("fork")
if TYPE_CHECKING:
    from multiprocessing.context import ForkProcess as _ForkProcess
else:
    _ForkProcess = _FORK.Process


class LiveServerProcess(_ForkProcess):
    """Daphne in a forked child, serving ``get_application()`` on ``host``.

    It speaks the protocol of ``daphne.testing.DaphneProcess``, which
    Channels' live test case drives and projects replace (the same
    constructor, ``start()``, ``ready``, ``port.value``, ``errors``,
    ``terminate()``/``join()``), so a process class written for Channels
    can take its place as ``ChannelsLiveServerTestCase.ProtocolServerProcess``
    and this one can serve code written against Daphne's.  ``kwargs`` go to
    Daphne's ``Server``; ``setup`` and ``teardown`` run in the child before
    and after serving.

    The listening socket is opened by ``start()`` in this process, before the
    fork, so ``port.value`` is known at once and a client that connects
    early simply waits.  :meth:`wait_until_ready` returns as soon as Daphne
    listens, or raises with the child's traceback as soon as it fails.
    """

    def __init__(
        self,
        host: str,
        get_application: Callable[[], Any],
        kwargs: dict[str, Any] | None = None,
        setup: Callable[[], Any] | None = None,
        teardown: Callable[[], Any] | None = None,
        port: int | None = None,
    ) -> None:
        super().__init__(daemon=True)
        self.host = host
        self.get_application = get_application
        self.kwargs = dict(kwargs or {})
        self.setup = setup
        self.teardown = teardown
        self.port = _FORK.Value("i", port or 0)
        self.ready = _FORK.Event()
        self.errors = _FORK.Queue()
        self._reports, self._reporter = _FORK.Pipe(duplex=False)

    def start(self) -> None:
        listener = socket.create_server((self.host, self.port.value), backlog=128)
        self.port.value = listener.getsockname()[1]
        self.name = f"live-server-{self.port.value}"
        self._listening_fd = listener.fileno()
        # The child must not inherit open database connections: closing one
        # there would end the parent's session on the server.
        connections.close_all()
        try:
            super().start()
        finally:
            listener.close()
            self._reporter.close()

    def run(self) -> None:
        """The child: run Daphne on the inherited socket until terminated."""
        try:
            _forget_parent_threads()
            _use_fresh_twisted_reactor()
            if self.setup is not None:
                self.setup()
            from daphne.server import Server

            server = Server(
                self.get_application(),
                endpoints=[f"fd:fileno={self._listening_fd}"],
                signal_handlers=False,
                ready_callable=self._report_ready,
                **{"verbosity": 0, **self.kwargs},
            )
            try:
                server.run()
            finally:
                if self.teardown is not None:
                    self.teardown()
        except BaseException as exc:
            report = traceback.format_exc()
            self.errors.put((_picklable(exc), report))
            with contextlib.suppress(OSError):
                self._reporter.send(report)
            raise

    def _report_ready(self) -> None:
        self.ready.set()
        self._reporter.send(None)

    def wait_until_ready(self, timeout: float = 20) -> None:
        """Return once the server listens; raise ``RuntimeError`` (stopping
        the child) if it fails to start or takes longer than ``timeout``."""
        with self._reports:
            if not self._reports.poll(timeout):
                self.stop()
                raise RuntimeError(f"The live server did not start within {timeout}s")
            try:
                error = self._reports.recv()
            except EOFError:
                error = "the server process died without saying why"
        if error is not None:
            self.stop()
            raise RuntimeError(f"The live server failed to start:\n{error}")

    def stop(self, timeout: float = 5) -> None:
        """Terminate the child, killing it if it ignores that; idempotent."""
        if self.is_alive():
            self.terminate()
            self.join(timeout)
            if self.is_alive():
                self.kill()
        if self._popen is not None:  # type: ignore[attr-defined]  # started
            self.join()


def _picklable(exc: BaseException) -> BaseException:
    """``exc`` if it can cross to the parent process, else a stand-in."""
    try:
        pickle.dumps(exc)
    except Exception:
        return RuntimeError(repr(exc))
    return exc


def set_database_connection(names: dict[str, str] | None = None) -> None:
    """Point this process's databases at the test databases.

    A server process started by ``fork`` (as ours is) already uses them; one
    started afresh reads the settings file and needs this as its ``setup``.
    ``names`` maps aliases to database names, as the test process sees them
    (what ``ChannelsLiveServerTestCase`` passes).  Without it, each alias
    gets its ``TEST["NAME"]``, or its name with Django's test prefix unless
    it already has it.
    """
    if names is None:
        names = {}
        for alias, settings_dict in settings.DATABASES.items():
            name = settings_dict.get("NAME") or ""
            test_name = settings_dict.get("TEST", {}).get("NAME")
            if test_name:
                names[alias] = test_name
            elif name and not str(name).startswith(TEST_DATABASE_PREFIX):
                names[alias] = TEST_DATABASE_PREFIX + str(name)
    for alias, name in names.items():
        settings.DATABASES[alias]["NAME"] = name
        connections[alias].settings_dict["NAME"] = name


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

    ``ProtocolServerProcess`` is the class that runs the server, driven the
    way Channels drives it; set it to another class with the interface of
    ``daphne.testing.DaphneProcess`` (one that runs another server, say) and
    that one is used.
    """

    #: Channels and Django serve live tests on "localhost" too; it is what the
    #: URLs say and what ALLOWED_HOSTS gets for the duration of the class.
    host = "localhost"
    #: Runs the server; see :class:`LiveServerProcess` for what it must offer.
    ProtocolServerProcess: type = LiveServerProcess
    #: Serve ``STATIC_URL`` through staticfiles' finders, as runserver does.
    serve_static = True
    #: The ASGI wrapper that serves them.
    static_wrapper = ASGIStaticFilesHandler
    server_start_timeout = 20.0
    # Set by setUpClass.
    _port: int
    _server_process: Any
    _live_server_modified_settings: modify_settings

    @classproperty
    def live_server_url(cls) -> str:
        return f"http://{cls.host}:{cls._port}"

    @classproperty
    def live_server_ws_url(cls) -> str:
        return f"ws://{cls.host}:{cls._port}"

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls._refuse_in_memory_databases()
        cls._live_server_modified_settings = modify_settings(
            ALLOWED_HOSTS={"append": cls.host}
        )
        cls._live_server_modified_settings.enable()
        cls.addClassCleanup(cls._live_server_modified_settings.disable)
        get_application = functools.partial(
            make_application,
            static_wrapper=cls.static_wrapper if cls.serve_static else None,
        )
        names = {
            alias: connections[alias].settings_dict["NAME"] for alias in connections
        }
        connections.close_all()  # Nothing open may be shared with the child.
        cls._server_process = cls.ProtocolServerProcess(
            cls.host,
            get_application,
            setup=functools.partial(set_database_connection, names),
        )
        cls._server_process.start()
        cls.addClassCleanup(cls._stop_server_process)
        cls._wait_for_server_process()
        cls._port = cls._server_process.port.value

    @classmethod
    def _wait_for_server_process(cls) -> None:
        process = cls._server_process
        if isinstance(process, LiveServerProcess):
            process.wait_until_ready(cls.server_start_timeout)
            return
        # Another server's process only offers Daphne's ``ready`` event.
        deadline = time.monotonic() + cls.server_start_timeout
        while not process.ready.wait(timeout=1):
            if not process.is_alive():
                raise RuntimeError(
                    f"The live server ({cls.ProtocolServerProcess.__qualname__}) "
                    f"stopped before it was ready{_reported_error(process)}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"The live server did not start within {cls.server_start_timeout}s"
                )

    @classmethod
    def _stop_server_process(cls) -> None:
        process = cls._server_process
        if isinstance(process, LiveServerProcess):
            process.stop()
        elif process.is_alive():
            process.terminate()
            process.join()

    @classmethod
    def _refuse_in_memory_databases(cls) -> None:
        for alias in connections:
            if alias not in cls.databases and cls.databases != "__all__":
                continue
            if cls._is_in_memory_db(connections[alias]):
                raise ImproperlyConfigured(
                    f"{cls.__name__} cannot use the in-memory SQLite database "
                    f"{alias!r}: the live server runs in another process, which "
                    f"cannot open it. Give DATABASES[{alias!r}]['TEST']['NAME'] "
                    f"a file path."
                )

    @classmethod
    def _is_in_memory_db(cls, connection: Any) -> bool:
        """Whether ``connection`` is to a database only this process can see."""
        in_memory: bool = connection.vendor == "sqlite" and connection.is_in_memory_db()
        return in_memory


def _reported_error(process: Any) -> str:
    errors: Any = getattr(process, "errors", None)
    with contextlib.suppress(Exception):
        _, report = errors.get(timeout=1)
        return f":\n{report}"
    return ""


__all__ = [
    "ChannelsLiveServerTestCase",
    "LiveServerProcess",
    "make_application",
    "set_database_connection",
]
