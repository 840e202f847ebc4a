"""``manage.py serve``: the production server, on every core, restartable.

One parent (:mod:`channels_app.supervisor`) binds the address and starts
``--processes`` server processes sharing that socket, plus ``--workers``
``runworker`` processes; SIGHUP replaces them all without refusing a
connection, SIGTERM drains them and exits.  Each server process is this
command again, re-executed with the inherited socket (the hidden
``--serve-child`` option), so that a restart runs the code now on disk.
It serves the way ``runserver`` does (same options, same limits) without
the autoreloader, static files or in-process workers, and without
``runserver``'s development-server warning.

Defaults come from the ``CHANNELS_APP_SERVE`` setting (a dict whose keys are
the long options' names with underscores), and the command line wins.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from typing import Any

from django.conf import settings
from django.core.management import CommandError
from django.core.management.base import CommandParser

from ... import DEFAULT_CHANNEL_LAYER
from ...layers import get_channel_layer
from ...lifespan import LifespanFailed
from ...process_slots import Slot
from ...server_drain import DrainTimes, GracefulDrain
from ...supervised import SupervisorLink
from ...supervisor import Supervisor, configure_logging, listening_socket
from ...worker import routed_channels
from .runserver import Command as RunserverCommand
from .runworker import is_process_local

#: Options the parent reads; CHANNELS_APP_SERVE may set each of them.
SERVE_DEFAULTS: dict[str, Any] = {
    "processes": None,  # one per core
    "workers": 0,
    "only_channels": [],
    "exclude_channels": [],
    "drain_window": 5.0,
    "drain_timeout": 30.0,
    "backlog": 2048,
    "health_port": None,  # no health endpoint
    "health_address": None,  # the served address's host
}


class Command(RunserverCommand):
    use_ipv6: bool  # set by Django's runserver in handle()

    help = (
        "Serves ASGI_APPLICATION over HTTP and WebSocket in several supervised "
        "Daphne processes (and optional workers); SIGHUP restarts them without "
        "dropping connections, SIGTERM drains them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--processes",
            type=int,
            help="Server processes sharing the address (default: one per core).",
        )
        parser.add_argument(
            "--workers",
            type=int,
            help="runworker processes for the ChannelNameRouter's channels "
            "(default: 0).",
        )
        parser.add_argument(
            "--only-channels",
            action="append",
            metavar="PATTERN",
            help="Workers only listen on channels matching this glob (repeatable).",
        )
        parser.add_argument(
            "--exclude-channels",
            action="append",
            metavar="PATTERN",
            help="Workers do not listen on channels matching this glob (repeatable).",
        )
        parser.add_argument(
            "--drain-window",
            type=float,
            help="On restart or stop, seconds over which each process closes its "
            "WebSockets with code 1012, so clients reconnect spread out "
            "(default: 5).",
        )
        parser.add_argument(
            "--drain-timeout",
            type=float,
            help="Seconds a stopping process waits for its requests, WebSockets "
            "and workers before it cuts them off (default: 30).",
        )
        parser.add_argument(
            "--health-port",
            type=int,
            help="Answer liveness (/live) and readiness (/ready, per process) "
            "probes on this port, from the supervisor.",
        )
        parser.add_argument(
            "--health-address",
            help="Address for --health-port (default: the served address's host).",
        )
        parser.add_argument("--backlog", type=int, help=argparse.SUPPRESS)
        parser.add_argument("--serve-child", type=int, help=argparse.SUPPRESS)

    def serve_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """The parent's options: the command line over ``CHANNELS_APP_SERVE``."""
        configured = getattr(settings, "CHANNELS_APP_SERVE", {}) or {}
        unknown = set(configured) - set(SERVE_DEFAULTS)
        if unknown:
            raise CommandError(
                f"CHANNELS_APP_SERVE has unknown keys {sorted(unknown)}; it takes "
                f"{sorted(SERVE_DEFAULTS)}"
            )
        chosen = {**SERVE_DEFAULTS, **configured}
        for key in SERVE_DEFAULTS:
            if options.get(key) is not None:
                chosen[key] = options[key]
        chosen["processes"] = chosen["processes"] or os.cpu_count() or 1
        if chosen["processes"] < 1 or chosen["workers"] < 0:
            raise CommandError("--processes must be at least 1 and --workers >= 0")
        return chosen

    def run(self, **options: Any) -> None:
        if not options["use_asgi"]:
            raise CommandError("serve only serves ASGI; drop --noasgi")
        if options["serve_child"] is not None:
            self.serve_child(options["serve_child"], options)
        else:
            sys.exit(self.supervise(options))

    # -- the parent ------------------------------------------------------------

    def supervise(self, options: dict[str, Any]) -> int:
        chosen = self.serve_options(options)
        configure_logging()
        root = self.load_root_application(options)
        if not options["skip_checks"]:
            self.check(display_num_errors=True)
        self.check_migrations()
        self.report_unreachable_layers()
        self.warn_about_layer(root, chosen)
        try:
            sock = listening_socket(
                self.addr, int(self.port), self.use_ipv6, chosen["backlog"]
            )
        except OSError as exc:
            raise CommandError(f"Cannot listen on {self.addr}:{self.port}: {exc}")
        slots = [
            Slot(f"server {n}", self.child_command(sock.fileno()), (sock.fileno(),))
            for n in range(1, chosen["processes"] + 1)
        ]
        slots += [
            Slot(f"worker {n}", self.worker_command(chosen), waits_for_ready=False)
            for n in range(1, chosen["workers"] + 1)
        ]
        addr = f"[{self.addr}]" if self._raw_ipv6 else self.addr
        self.stdout.write(
            f"Serving {settings.ASGI_APPLICATION} at http://{addr}:{self.port}/ with "
            f"{chosen['processes']} process(es) and {chosen['workers']} worker(s). "
            f"SIGHUP restarts them gracefully; SIGTERM or CONTROL-C stops."
        )
        health = None
        if chosen["health_port"] is not None:
            health = (chosen["health_address"] or self.addr, chosen["health_port"])
        supervisor = Supervisor(
            slots,
            stop_timeout=chosen["drain_timeout"] + 15,
            ready_timeout=60,
            health_address=health,
        )
        return asyncio.run(supervisor.run())

    @staticmethod
    def manage_py() -> list[str]:
        """How to run a management command again, as this one was run."""
        return [sys.executable, os.path.abspath(sys.argv[0])]

    def child_command(self, fd: int) -> list[str]:
        return [*self.manage_py(), *sys.argv[1:], "--serve-child", str(fd)]

    def worker_command(self, chosen: dict[str, Any]) -> list[str]:
        argv = [*self.manage_py(), "runworker"]
        for pattern in chosen["only_channels"]:
            argv += ["--only-channels", pattern]
        for pattern in chosen["exclude_channels"]:
            argv += ["--exclude-channels", pattern]
        return [*argv, "--drain-timeout", str(chosen["drain_timeout"])]

    def warn_about_layer(self, root: Any, chosen: dict[str, Any]) -> None:
        layer = get_channel_layer(DEFAULT_CHANNEL_LAYER)
        if layer is not None and is_process_local(layer) and chosen["processes"] > 1:
            self.stderr.write(
                self.style.WARNING(
                    f"{type(layer).__name__} keeps messages inside one process: "
                    f"with {chosen['processes']} processes, groups and channels do "
                    f"not span them. Use Redis or the database layer."
                )
            )
        if routed_channels(root) and not chosen["workers"]:
            self.stderr.write(
                "The ChannelNameRouter routes channels, and no --workers run "
                "them here; run manage.py runworker elsewhere, or pass --workers."
            )

    # -- a server process --------------------------------------------------------

    def serve_child(self, fd: int, options: dict[str, Any]) -> None:
        """Serve on the inherited socket ``fd`` until drained."""
        link = SupervisorLink.from_environment()
        chosen = self.serve_options(options)
        root = self.load_root_application(options)
        link.tag_logs()  # after the import: asgi.py's django.setup() redoes LOGGING
        server = self.build_server(
            options,
            root,
            limits=self.connection_limits(options),
            endpoints=[],
            inherited_sockets=[fd],
            signal_handlers=False,
            ready_callable=link.ready,
        )
        drain = GracefulDrain(
            server, DrainTimes(chosen["drain_window"], chosen["drain_timeout"])
        )

        def install_signals() -> None:
            for signum in (signal.SIGTERM, signal.SIGINT):
                server.loop.add_signal_handler(signum, drain.begin)
            link.watch(server.loop, drain.begin)

        from twisted.internet import reactor

        reactor.callWhenRunning(install_signals)
        try:
            server.run()
        except LifespanFailed as exc:
            self.stderr.write(f"Error: application startup failed: {exc}")
            sys.exit(1)
        if server.listen_failure:
            self.stderr.write(f"Error: {server.listen_failure}")
            sys.exit(1)
