"""Worker: runs the project's consumers for messages on named channels."""

import asyncio
import io
import logging
import threading

import pytest
from django.core.management import CommandError, call_command

from channels_app.consumer import AsyncConsumer, SyncConsumer
from channels_app.layers import get_channel_layer
from channels_app.middleware import BaseMiddleware
from channels_app.routing import ChannelNameRouter, ProtocolTypeRouter, URLRouter
from channels_app.worker import (
    Worker,
    channel_router,
    routed_channels,
    select_channels,
)
from tests.services import require
from tests.serving import redis_layers
from tests.support import waiting

#: What the consumers did, in order.
journal: list = []


class Recorder(AsyncConsumer):
    """Records each job, taking ``delay`` seconds over it."""

    async def job(self, message):
        journal.append(("start", self.scope["channel"], message["n"]))
        await asyncio.sleep(message.get("delay", 0))
        journal.append(("done", self.scope["channel"], message["n"]))

    async def explode(self, message):
        raise RuntimeError(f"handler broke on {message['n']}")

    async def talk_back(self, message):
        await self.send({"type": "websocket.send", "text": "hi"})


class Counter(SyncConsumer):
    """Keeps state between messages: the worker reuses the instance."""

    seen = 0

    def count(self, message):
        self.seen += 1
        on_main_thread = threading.current_thread() is threading.main_thread()
        journal.append((self.seen, on_main_thread))


application = ProtocolTypeRouter(
    {
        "websocket": URLRouter([]),
        "channel": ChannelNameRouter(
            {
                "jobs": Recorder.as_asgi(),
                "other-jobs": Recorder.as_asgi(),
                "counter": Counter.as_asgi(),
            }
        ),
    }
)


@pytest.fixture
def layer(settings, django_db_blocker):
    settings.CHANNEL_LAYERS = redis_layers()
    journal.clear()
    # Consumers tidy Django's connections between messages, as in production.
    with django_db_blocker.unblock():
        yield get_channel_layer()


def eventually(condition, timeout=5.0):
    """:func:`tests.support.waiting.eventually`, showing the journal on failure."""
    return waiting.eventually(condition, timeout, describe=lambda: journal)


def start(worker):
    return asyncio.ensure_future(worker.serve())


async def test_messages_reach_the_consumer_routed_for_their_channel(layer):
    worker = Worker(application, ["jobs", "other-jobs"], layer)
    running = start(worker)
    await layer.send("jobs", {"type": "job", "n": 1})
    await layer.send("other-jobs", {"type": "job", "n": 2})
    await eventually(lambda: len(journal) == 4)
    worker.stop()
    stats = await asyncio.wait_for(running, 5)
    assert ("done", "jobs", 1) in journal and ("done", "other-jobs", 2) in journal
    assert (stats.handled, stats.failed) == (2, 0)


async def test_one_channel_is_handled_in_order_by_default(layer):
    worker = Worker(application, ["jobs"], layer)
    running = start(worker)
    for n, delay in enumerate([0.05, 0, 0.03, 0, 0.01]):
        await layer.send("jobs", {"type": "job", "n": n, "delay": delay})
    await eventually(lambda: len(journal) == 10)
    worker.stop()
    await running
    # Strictly one at a time: each job ends before the next starts.
    expected = [(s, "jobs", n) for n in range(5) for s in ("start", "done")]
    assert journal == expected


async def test_concurrency_handles_several_messages_of_a_channel_at_once(layer):
    worker = Worker(application, ["jobs"], layer, concurrency=3)
    running = start(worker)
    for n in range(3):
        await layer.send("jobs", {"type": "job", "n": n, "delay": 0.3})
    await eventually(lambda: len(journal) == 6)
    worker.stop()
    await running
    # All three started before any finished.
    assert [event for event, _, _ in journal[:3]] == ["start"] * 3


async def test_consumer_instance_lives_on_between_messages(layer):
    worker = Worker(application, ["counter"], layer)
    running = start(worker)
    for _ in range(3):
        await layer.send("counter", {"type": "count"})
    await eventually(lambda: len(journal) == 3)
    worker.stop()
    await running
    # Sync handlers run in a thread, not on the event loop.
    assert journal == [(1, False), (2, False), (3, False)]


async def test_a_failing_handler_is_logged_and_the_worker_goes_on(layer, caplog):
    worker = Worker(application, ["jobs"], layer)
    running = start(worker)
    await layer.send("jobs", {"type": "explode", "n": 7})
    await layer.send("jobs", {"type": "job", "n": 8})
    await eventually(lambda: ("done", "jobs", 8) in journal)
    worker.stop()
    stats = await running
    assert (stats.handled, stats.failed) == (1, 1)
    failure = next(r for r in caplog.records if r.levelno == logging.ERROR)
    assert "jobs: explode failed" in failure.getMessage()
    assert "handler broke on 7" in caplog.text
    assert "Traceback" in caplog.text


async def test_message_for_an_unrouted_channel_fails_without_stopping(layer, caplog):
    worker = Worker(application, ["nobody-listens", "jobs"], layer)
    running = start(worker)
    await layer.send("nobody-listens", {"type": "job", "n": 1})
    await layer.send("jobs", {"type": "job", "n": 2})
    await eventually(lambda: ("done", "jobs", 2) in journal)
    worker.stop()
    stats = await running
    assert stats.failed == 1
    assert "No application configured for channel 'nobody-listens'" in caplog.text


async def test_consumers_cannot_send_to_a_client_that_does_not_exist(layer, caplog):
    worker = Worker(application, ["jobs"], layer)
    running = start(worker)
    await layer.send("jobs", {"type": "talk.back"})
    await eventually(lambda: worker.stats.failed == 1)
    worker.stop()
    await running
    assert "send replies through the channel layer" in caplog.text


async def test_stop_lets_the_in_flight_message_finish_and_takes_no_more(layer):
    worker = Worker(application, ["jobs"], layer, drain_timeout=5)
    running = start(worker)
    await layer.send("jobs", {"type": "job", "n": 1, "delay": 0.4})
    await eventually(lambda: journal == [("start", "jobs", 1)])
    worker.stop()
    await layer.send("jobs", {"type": "job", "n": 2})
    stats = await asyncio.wait_for(running, 5)
    assert journal == [("start", "jobs", 1), ("done", "jobs", 1)]
    assert stats.handled == 1
    # The later message stays queued for the next worker.
    assert (await layer.receive("jobs"))["n"] == 2


async def test_drain_timeout_cancels_handlers_that_take_too_long(layer, caplog):
    worker = Worker(application, ["jobs"], layer, drain_timeout=0.2)
    running = start(worker)
    await layer.send("jobs", {"type": "job", "n": 1, "delay": 30})
    await eventually(lambda: journal == [("start", "jobs", 1)])
    worker.stop()
    stats = await asyncio.wait_for(running, 5)
    assert journal == [("start", "jobs", 1)]
    assert stats.handled == 0
    assert "did not finish within the 0.2s drain timeout" in caplog.text


async def test_second_stop_cancels_in_flight_handlers_at_once(layer):
    worker = Worker(application, ["jobs"], layer, drain_timeout=60)
    running = start(worker)
    await layer.send("jobs", {"type": "job", "n": 1, "delay": 30})
    await eventually(lambda: journal == [("start", "jobs", 1)])
    worker.stop()
    worker.stop()
    await asyncio.wait_for(running, 2)


async def test_stop_before_any_message_returns_promptly(layer):
    worker = Worker(application, ["jobs", "other-jobs"], layer, concurrency=2)
    running = start(worker)
    # Its slots are receiving: stopping has something to interrupt.
    await eventually(lambda: getattr(worker, "_slots", None))
    worker.stop()
    stats = await asyncio.wait_for(running, 2)
    assert (stats.handled, stats.failed) == (0, 0)
    assert "0 handled, 0 failed" in stats.summary()


def test_bad_arguments_are_refused_with_reasons():
    with pytest.raises(ValueError, match="at least one channel"):
        Worker(application, [], None)
    with pytest.raises(ValueError, match="process-specific"):
        Worker(application, ["specific.abc!def"], None)
    with pytest.raises(ValueError, match="concurrency must be at least 1"):
        Worker(application, ["jobs"], None, concurrency=0)


def test_routed_channels_are_found_through_middleware():
    wrapped = BaseMiddleware(
        ProtocolTypeRouter({"channel": BaseMiddleware(application_channels())})
    )
    assert routed_channels(wrapped) == ["a", "b"]
    assert routed_channels(application) == ["jobs", "other-jobs", "counter"]
    assert channel_router(ProtocolTypeRouter({"http": None})) is None
    assert routed_channels(ProtocolTypeRouter({"http": None})) == []


def application_channels():
    return ChannelNameRouter({"a": Recorder.as_asgi(), "b": Recorder.as_asgi()})


def test_select_channels_by_glob():
    names = ["http.request", "websocket.receive", "thumbnail", "thumbnail.big"]
    assert select_channels(names, only=["http.*", "websocket.*"]) == names[:2]
    assert select_channels(names, exclude=["thumbnail"]) == names[:2] + names[3:]
    assert select_channels(names, only=["thumbnail*"], exclude=["*.big"]) == [
        "thumbnail"
    ]
    assert select_channels(names) == names


# -- runworker's refusals, before any process or layer work starts ----------------


@pytest.fixture
def project_settings(settings):
    settings.ASGI_APPLICATION = "tests.test_worker.application"
    settings.CHANNEL_LAYERS = redis_layers()
    return settings


def test_runworker_refuses_an_unknown_layer_alias(project_settings):
    with pytest.raises(CommandError, match="CHANNEL_LAYERS has no 'jobs' layer"):
        call_command("runworker", "--layer", "jobs")


def test_runworker_refuses_the_in_memory_layer(project_settings):
    project_settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_app.layers.InMemoryChannelLayer"}
    }
    with pytest.raises(CommandError, match="keeps messages inside one process"):
        call_command("runworker")


def test_runworker_refuses_filters_that_leave_nothing(project_settings):
    with pytest.raises(CommandError, match="left none of jobs, other-jobs"):
        call_command("runworker", "--only-channels", "*jobs", "--exclude-channels", "*")


def test_runworker_refuses_zero_concurrency(project_settings):
    with pytest.raises(CommandError, match="at least 1"):
        call_command("runworker", "--concurrency", "0")


def test_runworker_needs_channels_when_nothing_is_routed(project_settings):
    project_settings.ASGI_APPLICATION = "tests.test_worker.websocket_only"
    with pytest.raises(CommandError, match="No channels to listen on"):
        call_command("runworker")


websocket_only = ProtocolTypeRouter({"websocket": URLRouter([])})


def test_runworker_runs_the_commands_worker_class(project_settings):
    """``Command.worker_class`` swaps in a project's Worker, as in Channels."""
    from channels_app.management.commands.runworker import Command

    require("redis")
    started = []

    class StopsAtOnce(Worker):
        async def serve(self):
            started.append(sorted(self.channels))
            self.stop()
            return await super().serve()

    class MyCommand(Command):
        worker_class = StopsAtOnce

    output = io.StringIO()
    call_command(MyCommand(), "jobs", stdout=output)
    assert started == [["jobs"]]
    assert "Worker stopped" in output.getvalue()


def test_runserver_without_asgi_application_says_how_to_fix_it(settings):
    del settings.ASGI_APPLICATION
    with pytest.raises(CommandError, match="or run the WSGI server with --noasgi"):
        call_command("runserver", "--noreload")
