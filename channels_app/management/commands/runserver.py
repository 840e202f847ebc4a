"""``manage.py runserver``: Daphne for HTTP and WebSocket, with in-process workers.

Django's own command supplies the address parsing, the autoreloader and the
migration check; this one swaps the WSGI server for Daphne running
``ASGI_APPLICATION``, serves static files under ``DEBUG`` as staticfiles'
runserver would, and runs workers for the project's ``ChannelNameRouter``
on the server's event loop so background consumers work with one command.
Its options are defined in :mod:`channels_app.management.runserver_options`
and its request log in :mod:`channels_app.management.request_log`.
"""

from __future__ import annotations

import os
import sys
import traceback
from datetime import datetime
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError
from django.core.management.base import CommandParser
from django.core.management.commands.runserver import Command as RunserverCommand
from django.db import connections
from django.utils import autoreload

from ... import DEFAULT_CHANNEL_LAYER
from ...checks import layer_unreachable_reason
from ...layers import get_channel_layer
from ...lifespan import LifespanFailed
from ...routing import get_default_application
from ...server import DevelopmentServer
from ...server_limits import ConnectionLimits
from ...worker import Worker, routed_channels
from ..request_log import log_server_action
from ..runserver_options import DEFAULT_WEBSOCKET_LIMIT, add_server_options

#: The send-buffer limits' fields, and their keys in the
#: ``CHANNELS_APP_SERVER_LIMITS`` setting (a command-line option wins).
SERVER_LIMITS_SETTINGS = {
    "send_buffer_bytes": "SEND_BUFFER_BYTES",
    "send_buffer_messages": "SEND_BUFFER_MESSAGES",
    "send_timeout": "SEND_TIMEOUT",
}


class Command(RunserverCommand):
    # Set by Django's runserver in handle(); its stubs do not declare them.
    addr: str
    port: str
    _raw_ipv6: bool

    help = (
        "Starts a development server for HTTP and WebSocket (Daphne running "
        "ASGI_APPLICATION), with workers for the project's channels."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        add_server_options(
            parser, staticfiles=apps.is_installed("django.contrib.staticfiles")
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["use_asgi"] and not getattr(settings, "ASGI_APPLICATION", None):
            raise CommandError(
                "ASGI_APPLICATION is not set, so there is nothing to serve over "
                "ASGI. Set it to your root router (e.g. 'myproject.asgi."
                "application'), or run the WSGI server with --noasgi."
            )
        super().handle(*args, **options)

    # -- static files (both servers) ---------------------------------------------

    def serves_static(self, options: dict[str, Any]) -> bool:
        return (
            apps.is_installed("django.contrib.staticfiles")
            and options.get("use_static_handler", True)
            and (settings.DEBUG or options.get("insecure_serving", False))
        )

    def get_handler(self, *args: Any, **options: Any) -> Any:
        """The WSGI handler for ``--noasgi``, serving static files like staticfiles."""
        handler = super().get_handler(*args, **options)
        if self.serves_static(options):
            from django.contrib.staticfiles.handlers import StaticFilesHandler

            return StaticFilesHandler(handler)
        return handler

    def get_application(self, options: dict[str, Any], root: Any = None) -> Any:
        """The ASGI application to serve: ``ASGI_APPLICATION``, plus static files."""
        application = get_default_application() if root is None else root
        if self.serves_static(options):
            from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

            return ASGIStaticFilesHandler(application)
        return application

    # -- serving -----------------------------------------------------------------

    def inner_run(self, *args: Any, **options: Any) -> None:
        if not options["use_asgi"]:
            return super().inner_run(*args, **options)
        autoreload.raise_last_exception()
        root = self.load_root_application(options)
        if not options["skip_checks"]:
            self.stdout.write("Performing system checks...\n\n")
            self.check(display_num_errors=True)
        self.check_migrations()
        for connection in connections.all(initialized_only=True):
            connection.close()

        self.report_unreachable_layers()
        limits = self.connection_limits(options)
        workers = self.in_process_workers(root, options)
        server = self.build_server(
            options,
            root,
            workers=workers,
            limits=limits,
            endpoints=[self.endpoint()],
            signal_handlers=not options["use_reloader"],
        )
        self.print_banner(workers)
        try:
            server.run()
        except LifespanFailed as exc:
            self.stderr.write(f"Error: application startup failed: {exc}")
            os._exit(1)
        except KeyboardInterrupt:
            pass
        if server.listen_failure:
            self.stderr.write(f"Error: {server.listen_failure}")
            # sys.exit would only end this thread under the autoreloader.
            os._exit(1)
        shutdown_message = options.get("shutdown_message", "")
        if shutdown_message:
            self.stdout.write(shutdown_message)

    def build_server(
        self, options: dict[str, Any], root: Any, **kwargs: Any
    ) -> DevelopmentServer:
        """Daphne with the command line's timeouts and sizes, serving ``root``."""
        return DevelopmentServer(
            self.get_application(options, root),
            action_logger=self.log_action,
            http_timeout=options["http_timeout"],
            root_path=getattr(settings, "FORCE_SCRIPT_NAME", "") or "",
            websocket_handshake_timeout=options["websocket_handshake_timeout"],
            websocket_max_message_size=self.websocket_limit(
                options, "message", "DAPHNE_WEBSOCKET_MAX_MESSAGE_SIZE"
            ),
            websocket_max_frame_size=self.websocket_limit(
                options, "frame", "DAPHNE_WEBSOCKET_MAX_FRAME_SIZE"
            ),
            **kwargs,
        )

    def run(self, **options: Any) -> None:
        """Import ``ASGI_APPLICATION`` in the process that serves, then serve.

        The import happens here, before the autoreloader's thread starts,
        because a failed import takes modules out of ``sys.modules`` again,
        and a reloader scanning ``sys.modules`` at that moment dies with a
        ``KeyError`` (Django guards its URLconf the same way, by importing
        it before the reloader's first scan).  Under the reloader only the
        child process serves; the parent just restarts it.
        """
        self.root_application = self.root_error = None
        serves_here = not options["use_reloader"] or (
            os.environ.get(autoreload.DJANGO_AUTORELOAD_ENV) == "true"
        )
        if options["use_asgi"] and serves_here:
            try:
                self.root_application = get_default_application()
            except ImproperlyConfigured as exc:
                self.root_error = exc
        super().run(**options)

    def load_root_application(self, options: dict[str, Any]) -> Any:
        """``ASGI_APPLICATION``, or the real reason it cannot be imported.

        Asked before the system checks, so that a broken ``asgi.py`` (or a
        module it imports) is reported as its real error, the way Django's
        runserver reports a broken URLconf.  Without the autoreloader that
        is a ``CommandError`` (exit status 1).  Under the autoreloader the
        real exception is raised again, so that, as for a broken URLconf,
        its traceback is printed and the server waits, restarting as soon as
        a fix is saved (see ``watch_files_of`` for which files are watched).
        """
        root = getattr(self, "root_application", None)
        error = getattr(self, "root_error", None)
        if root is None and error is None:  # inner_run called without run()
            try:
                return get_default_application()
            except ImproperlyConfigured as exc:
                error = exc
        if error is None:
            return root
        cause = error.__cause__
        if cause is None or not options["use_reloader"]:
            raise CommandError(str(error)) from cause
        self.stderr.write(
            self.style.ERROR(
                f"Error: {str(error).splitlines()[0].rstrip(':')}. The "
                f"traceback follows; the server starts when a fix is saved."
            )
        )
        watch_files_of(cause)
        raise cause

    def endpoint(self) -> str:
        host = self.addr.strip("[]").replace(":", r"\:")
        return f"tcp:port={int(self.port)}:interface={host}"

    @staticmethod
    def websocket_limit(options: dict[str, Any], kind: str, setting: str) -> int:
        value = options[f"websocket_max_{kind}_size"]
        if value is None:
            value = getattr(settings, setting, DEFAULT_WEBSOCKET_LIMIT)
        if value < 0:
            raise CommandError(f"--websocket-max-{kind}-size cannot be negative")
        limit: int = value
        return limit

    @staticmethod
    def connection_limits(options: dict[str, Any]) -> ConnectionLimits:
        configured = getattr(settings, "CHANNELS_APP_SERVER_LIMITS", None) or {}
        if not isinstance(configured, dict):
            raise CommandError("CHANNELS_APP_SERVER_LIMITS must be a dict")
        unknown = set(configured) - set(SERVER_LIMITS_SETTINGS.values())
        if unknown:
            raise CommandError(
                f"CHANNELS_APP_SERVER_LIMITS has unknown keys: {sorted(unknown)}"
            )
        sending = {
            field: configured[key]
            for field, key in SERVER_LIMITS_SETTINGS.items()
            if key in configured
        }
        sending.update(
            (field, options[field])
            for field in SERVER_LIMITS_SETTINGS
            if options.get(field) is not None
        )
        try:
            return ConnectionLimits(
                header_timeout=options["header_timeout"],
                max_pending=options["max_pending_connections"],
                max_request_line=options["max_request_line"],
                max_header_size=options["max_header_size"],
                max_headers=options["max_headers"],
                **sending,
            )
        except (TypeError, ValueError) as exc:
            raise CommandError(str(exc)) from None

    def in_process_workers(
        self, application: Any, options: dict[str, Any]
    ) -> list[Worker]:
        """One worker for every channel the root ChannelNameRouter routes."""
        channels = routed_channels(application)
        if not channels or not options["use_worker"]:
            return []
        layer = get_channel_layer(DEFAULT_CHANNEL_LAYER)
        if layer is None:
            self.stderr.write(
                self.style.WARNING(
                    f"The ChannelNameRouter routes {', '.join(channels)}, but "
                    f"CHANNEL_LAYERS has no {DEFAULT_CHANNEL_LAYER!r} layer to "
                    f"receive them from; no in-process workers are running."
                )
            )
            return []
        return [Worker(application, channels, layer)]

    def report_unreachable_layers(self) -> None:
        for alias in getattr(settings, "CHANNEL_LAYERS", None) or {}:
            problem = layer_unreachable_reason(alias)
            if problem:
                self.stderr.write(
                    self.style.ERROR(
                        f"Channel layer {alias!r} cannot be reached: {problem}. "
                        f"Consumers and workers using it will fail until it is."
                    )
                )

    def print_banner(self, workers: list[Worker]) -> None:
        from daphne import __version__ as daphne_version

        quit_command = "CTRL-BREAK" if sys.platform == "win32" else "CONTROL-C"
        addr = f"[{self.addr}]" if self._raw_ipv6 else self.addr
        lines = [
            datetime.now().strftime("%B %d, %Y - %X"),
            f"Django version {self.get_version()}, using settings "
            f"{settings.SETTINGS_MODULE!r}",
            f"Starting ASGI/Daphne version {daphne_version} development server "
            f"at {self.protocol}://{addr}:{self.port}/",
        ]
        for worker in workers:
            lines.append(
                f"Running in-process workers for channels: "
                f"{', '.join(worker.channels)} (--noworker turns them off)"
            )
        lines.append(f"Quit the server with {quit_command}.")
        self.stdout.write("\n".join(lines))
        self.stdout.write(
            self.style.WARNING(
                "WARNING: This is a development server. Do not use it in a "
                "production setting; run Daphne (or another ASGI server) and "
                "'manage.py runworker' instead."
            )
        )

    def log_action(self, protocol: str, action: str, details: dict[str, Any]) -> None:
        """Log each request and WebSocket event, as Django's runserver does."""
        log_server_action(protocol, action, details)


def watch_files_of(error: BaseException) -> None:
    """Have Django's autoreloader watch every file ``error`` was raised through.

    Django keeps such a list itself (``autoreload._error_files``), but adds
    only the file of the innermost frame.  When a library raised the error
    (Django's ``path()`` refusing its arguments, ``URLRouter`` refusing a
    consumer class), that is the library's file, and the user's module that
    called it is not watched either, since a module whose import failed is
    not in ``sys.modules``: saving the fix would restart nothing.
    """
    watched = getattr(autoreload, "_error_files", None)
    if not isinstance(watched, list):
        return  # Django's innermost-file rule still applies.
    files = [frame.filename for frame in traceback.extract_tb(error.__traceback__)]
    if isinstance(error, SyntaxError) and error.filename:
        files.append(error.filename)
    for filename in files:
        if os.path.isfile(filename) and filename not in watched:
            watched.append(filename)
