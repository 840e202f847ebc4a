"""``manage.py runworker``: run the consumers for named channels in their own process.

With no channel names, the worker serves every channel the root
``ChannelNameRouter`` routes; ``--only-channels`` and ``--exclude-channels``
narrow that down by glob.  SIGTERM or SIGINT make it stop taking messages,
finish the ones in flight (for up to ``--drain-timeout`` seconds) and exit 0;
a second signal cancels what is still running.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import Any

from django.core.management import BaseCommand, CommandError
from django.core.management.base import CommandParser

from ... import DEFAULT_CHANNEL_LAYER, metrics
from ...checks import layer_unreachable_reason
from ...concurrency import logger as concurrency_logger
from ...exceptions import InvalidChannelLayerError
from ...layers import InMemoryChannelLayer, channel_layers, get_channel_layer
from ...layers.registry import close_layer
from ...routing import get_default_application
from ...supervised import SupervisorLink
from ...types import ChannelLayer
from ...worker import Worker, channel_router, routed_channels, select_channels
from ...worker import logger as worker_logger

__all__ = ["Command", "get_channel_layer"]  # the latter as Channels' module has it


class Command(BaseCommand):
    help = "Runs the consumers for named channels, taking messages from a layer."

    #: The class that runs the consumers; a project may put its own subclass
    #: of :class:`~channels_app.worker.Worker` here, as with Channels.
    worker_class = Worker

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "channels",
            nargs="*",
            metavar="CHANNEL",
            help="Channels to listen on (default: every channel the root "
            "ChannelNameRouter routes).",
        )
        parser.add_argument(
            "--only-channels",
            action="append",
            default=[],
            metavar="PATTERN",
            help="Only listen on channels matching this glob (repeatable).",
        )
        parser.add_argument(
            "--exclude-channels",
            action="append",
            default=[],
            metavar="PATTERN",
            help="Do not listen on channels matching this glob (repeatable).",
        )
        parser.add_argument(
            "--layer",
            default=DEFAULT_CHANNEL_LAYER,
            help=f"Channel layer alias to use (default: {DEFAULT_CHANNEL_LAYER!r}).",
        )
        parser.add_argument(
            "--concurrency",
            type=int,
            default=1,
            help="Messages of one channel handled at once (default: 1, which "
            "handles each channel's messages in order).",
        )
        parser.add_argument(
            "--drain-timeout",
            type=float,
            default=30.0,
            help="On SIGTERM/SIGINT, seconds to let in-flight messages finish "
            "(default: 30).",
        )
        parser.add_argument(
            "--metrics-port",
            type=int,
            default=None,
            metavar="PORT",
            help="Serve Prometheus metrics on this port (needs prometheus_client).",
        )
        parser.add_argument(
            "--metrics-address",
            default="127.0.0.1",
            help="Address the metrics port binds to (default: 127.0.0.1).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        application = get_default_application()
        layer = self.get_layer(options["layer"])
        channels = self.choose_channels(application, options)
        if options["concurrency"] < 1:
            raise CommandError("--concurrency must be at least 1")
        problem = layer_unreachable_reason(options["layer"])
        if problem:
            raise CommandError(
                f"Channel layer {options['layer']!r} cannot be reached: {problem}"
            )
        self.configure_logging(options["verbosity"])
        self.supervisor = SupervisorLink.from_environment()  # under manage.py serve
        self.supervisor.tag_logs()
        if options["metrics_port"] is not None:
            self.serve_metrics(layer, channels, options)
        worker = self.worker_class(
            application,
            channels,
            layer,
            concurrency=options["concurrency"],
            drain_timeout=options["drain_timeout"],
        )
        if options["verbosity"] >= 1:
            self.stdout.write(
                f"Running worker for channels: {', '.join(channels)} "
                f"(layer {options['layer']!r}, concurrency "
                f"{options['concurrency']}). Stop with SIGTERM or CONTROL-C."
            )
        asyncio.run(self.serve(worker, options["verbosity"]))

    async def serve(self, worker: Worker, verbosity: int) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.on_signal, worker, signum)
        link = getattr(self, "supervisor", None) or SupervisorLink(None, "")
        link.watch(loop, lambda: self.on_signal(worker, signal.SIGTERM))
        try:
            stats = await worker.serve()
        finally:
            await close_layer(worker.channel_layer)
        if verbosity >= 1:
            self.stdout.write(f"Worker stopped: {stats.summary()}")
        if stats.cancelled:
            # Sync handlers cut off at the drain timeout may still be running
            # in threads, which the event loop and the interpreter would both
            # wait for on the way out.
            self.stdout.flush()
            self.stderr.flush()
            os._exit(0)

    def on_signal(self, worker: Worker, signum: int) -> None:
        name = signal.Signals(signum).name
        if worker.stopping:
            self.stdout.write(f"{name} again: cancelling in-flight messages")
        else:
            self.stdout.write(
                f"{name} received: finishing in-flight messages (up to "
                f"{worker.drain_timeout:g}s), taking no new ones"
            )
        worker.stop()

    def serve_metrics(
        self, layer: ChannelLayer, channels: list[str], options: dict[str, Any]
    ) -> None:
        """Expose the registry, with these channels' queue depths, over HTTP."""
        port, address = options["metrics_port"], options["metrics_address"]
        try:
            metrics.start_metrics_server(port, address)
        except metrics.MetricsUnavailable as exc:
            raise CommandError(f"--metrics-port: {exc}")
        except OSError as exc:
            raise CommandError(f"--metrics-port {port}: cannot listen: {exc}")
        metrics.watch_queue_depth(layer, channels)
        if options["verbosity"] >= 1:
            self.stdout.write(f"Serving metrics on http://{address}:{port}/metrics")

    def get_layer(self, alias: str) -> ChannelLayer:
        if alias not in channel_layers:
            raise CommandError(
                f"CHANNEL_LAYERS has no {alias!r} layer; configure one that "
                f"crosses processes (Redis or the database layer)"
            )
        try:
            layer = channel_layers[alias]
        except InvalidChannelLayerError as exc:
            raise CommandError(str(exc))
        if is_process_local(layer):
            raise CommandError(
                f"Channel layer {alias!r} is {type(layer).__name__}, which keeps "
                f"messages inside one process: a separate worker process would "
                f"never see what the server sends. Use a layer that crosses "
                f"processes (Redis or the database layer), or let runserver run "
                f"the workers in-process."
            )
        return layer

    def choose_channels(self, application: Any, options: dict[str, Any]) -> list[str]:
        names = options["channels"]
        routed = routed_channels(application)
        if names and channel_router(application) is not None:
            unknown = [name for name in names if name not in routed]
            if unknown:
                raise CommandError(
                    f"The root ChannelNameRouter does not route "
                    f"{', '.join(unknown)}; it routes: {', '.join(routed) or 'none'}"
                )
        if not names:
            names = routed
            if not names:
                raise CommandError(
                    "No channels to listen on: name them, or route them with a "
                    "ChannelNameRouter under the 'channel' key of the root "
                    "ProtocolTypeRouter"
                )
        chosen = select_channels(
            names, options["only_channels"], options["exclude_channels"]
        )
        if not chosen:
            raise CommandError(
                f"--only-channels/--exclude-channels left none of "
                f"{', '.join(names)} to listen on"
            )
        return chosen

    def configure_logging(self, verbosity: int) -> None:
        """Show worker logs on stderr unless the project's LOGGING handles them.

        The pools of consumers with ``concurrency`` above 1 log their failures
        and waits on a logger of their own, shown the same way.
        """
        level = logging.DEBUG if verbosity >= 2 else logging.INFO
        handler = logging.StreamHandler(self.stderr)
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
        )
        for logger in (worker_logger, concurrency_logger):
            logger.setLevel(level)
            if verbosity >= 1 and not logger.hasHandlers():
                logger.addHandler(handler)


def is_process_local(layer: Any) -> bool:
    """Whether ``layer`` only carries messages within the current process.

    Ours, or Django Channels' layer of the same name if a project still uses it.
    """
    return isinstance(layer, InMemoryChannelLayer) or (
        type(layer).__name__ == "InMemoryChannelLayer"
    )
