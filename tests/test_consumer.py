import asyncio
import threading

import pytest

from channels_app.consumer import AsyncConsumer, SyncConsumer, get_handler_name
from channels_app.exceptions import StopConsumer
from channels_app.testing import ApplicationCommunicator


def test_handler_name_rules():
    assert get_handler_name({"type": "chat.message"}) == "chat_message"
    with pytest.raises(ValueError, match="no 'type'"):
        get_handler_name({"text": "x"})
    with pytest.raises(ValueError, match="underscore"):
        get_handler_name({"type": "_private.thing"})
    with pytest.raises(ValueError, match="must be a str"):
        get_handler_name({"type": 3})


class Echo(AsyncConsumer):
    greeting = "hi"

    async def test_ping(self, message):
        await self.send(
            {"type": "test.pong", "greeting": self.greeting, "n": message["n"]}
        )

    async def test_stop(self, message):
        raise StopConsumer()

    async def test_explode(self, message):
        raise RuntimeError("handler blew up")


async def test_async_consumer_dispatches_by_type_in_order():
    comm = ApplicationCommunicator(Echo.as_asgi(), {"type": "test"})
    for n in range(3):
        await comm.send_input({"type": "test.ping", "n": n})
    replies = [await comm.receive_output() for _ in range(3)]
    assert [r["n"] for r in replies] == [0, 1, 2]
    await comm.send_input({"type": "test.stop"})
    await comm.wait()


class Greeter(AsyncConsumer):
    """Takes its configuration in ``__init__``, as Channels consumers may."""

    def __init__(self, greeting="hi", **kwargs):
        super().__init__(**kwargs)
        self.greeting = greeting

    async def test_ping(self, message):
        await self.send({"type": "test.pong", "greeting": self.greeting})


async def test_as_asgi_passes_keywords_to_the_constructor_per_connection():
    app = Greeter.as_asgi(greeting="hello")
    assert app.consumer_class is Greeter
    assert app.consumer_initkwargs == {"greeting": "hello"}
    assert app.__name__ == "Greeter" and app.__doc__ == Greeter.__doc__
    for _ in range(2):
        comm = ApplicationCommunicator(app, {"type": "test"})
        await comm.send_input({"type": "test.ping"})
        assert (await comm.receive_output())["greeting"] == "hello"
        comm.stop(exceptions=False)
    # The route keeps the keywords; no class state was changed to apply them.
    assert not hasattr(Greeter, "greeting")


def test_as_asgi_refuses_keywords_the_constructor_cannot_take():
    # Echo defines no __init__, so (as in Channels) it takes no keywords; the
    # mistake is reported when the routes are built, naming both sides.
    with pytest.raises(TypeError, match=r"Echo\.as_asgi\(\).*'colour'"):
        Echo.as_asgi(colour="blue")
    # A class attribute of that name does not make the keyword acceptable:
    # as_asgi() is not as_view(), it never sets attributes.
    with pytest.raises(TypeError, match="'greeting'"):
        Echo.as_asgi(greeting="hello")

    class Strict(AsyncConsumer):
        def __init__(self, greeting="hi"):
            self.greeting = greeting

    Strict.as_asgi(greeting="hello")
    with pytest.raises(TypeError, match=r"Strict\.as_asgi\(\).*'colour'"):
        Strict.as_asgi(greeting="hello", colour="blue")

    class NeedsSchema(AsyncConsumer):
        def __init__(self, schema):
            self.schema = schema

    # Every connection would fail the same way, so the route already does.
    with pytest.raises(TypeError, match=r"NeedsSchema\.as_asgi\(\).*'schema'"):
        NeedsSchema.as_asgi()


class PassesEverythingOn(AsyncConsumer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)


async def test_keywords_refused_further_up_fail_the_connection_naming_them():
    # The signature takes **kwargs, so as_asgi() cannot know; the connection
    # fails, and the error says which consumer and keywords were involved.
    app = PassesEverythingOn.as_asgi(colour="blue")
    comm = ApplicationCommunicator(app, {"type": "test"})
    with pytest.raises(TypeError) as caught:
        await comm.wait()
    # A note on Python 3.11+, part of the message before.
    told = "\n".join([str(caught.value), *getattr(caught.value, "__notes__", [])])
    assert "PassesEverythingOn" in told and "'colour'" in told


def test_sync_flag_names_the_flavour():
    assert AsyncConsumer._sync is False
    assert SyncConsumer._sync is True
    assert Threaded._sync is True and Echo._sync is False


class RawSyncSender(SyncConsumer):
    """Sends through ``base_send`` itself, as Channels' sync consumers may."""

    def test_ping(self, message):
        result = self.base_send({"type": "test.pong", "n": message["n"]})
        self.send({"type": "test.result", "was": repr(result)})


async def test_sync_consumers_base_send_is_a_blocking_callable():
    comm = ApplicationCommunicator(RawSyncSender.as_asgi(), {"type": "test"})
    await comm.send_input({"type": "test.ping", "n": 7})
    assert await comm.receive_output() == {"type": "test.pong", "n": 7}
    # Not a coroutine left unawaited: the message was sent by the call.
    assert await comm.receive_output() == {"type": "test.result", "was": "None"}
    comm.stop(exceptions=False)


class Remembered(AsyncConsumer):
    async def test_hello(self, message):
        self.scope["instances"].append(self)
        await self.send({"type": "test.hello"})

    async def test_stop(self, message):
        raise StopConsumer()


async def test_channel_receive_reads_the_consumers_own_channel(settings):
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_app.layers.InMemoryChannelLayer"}
    }
    instances = []
    comm = ApplicationCommunicator(
        Remembered.as_asgi(), {"type": "test", "instances": instances}
    )
    await comm.send_input({"type": "test.hello"})
    await comm.receive_output()
    await comm.send_input({"type": "test.stop"})
    await comm.wait()
    (consumer,) = instances
    # With the consumer finished nothing else reads its channel, so the
    # callable's meaning can be checked directly.
    await consumer.channel_layer.send(consumer.channel_name, {"type": "x.y", "n": 1})
    assert await consumer.channel_receive() == {"type": "x.y", "n": 1}


async def test_no_channel_receive_without_a_layer():
    instances = []
    comm = ApplicationCommunicator(
        Remembered.as_asgi(), {"type": "test", "instances": instances}
    )
    await comm.send_input({"type": "test.hello"})
    await comm.receive_output()
    await comm.send_input({"type": "test.stop"})
    await comm.wait()
    assert instances[0].channel_layer is None
    assert not hasattr(instances[0], "channel_receive")


async def test_unknown_message_type_raises_clear_error():
    comm = ApplicationCommunicator(Echo.as_asgi(), {"type": "test"})
    await comm.send_input({"type": "test.unknown"})
    with pytest.raises(ValueError, match="No handler for message type 'test.unknown'"):
        await comm.wait()


async def test_handler_exception_propagates():
    comm = ApplicationCommunicator(Echo.as_asgi(), {"type": "test"})
    await comm.send_input({"type": "test.explode"})
    with pytest.raises(RuntimeError, match="handler blew up"):
        await comm.wait()


class Threaded(SyncConsumer):
    def test_where(self, message):
        self.send({"type": "test.thread", "name": threading.current_thread().name})


async def test_sync_consumer_runs_handlers_off_the_loop():
    comm = ApplicationCommunicator(Threaded.as_asgi(), {"type": "test"})
    await comm.send_input({"type": "test.where"})
    reply = await comm.receive_output()
    assert reply["name"] != threading.current_thread().name
    comm.stop(exceptions=False)


async def test_communicator_timeout_raises_instead_of_hanging():
    comm = ApplicationCommunicator(Echo.as_asgi(), {"type": "test"})
    with pytest.raises(asyncio.TimeoutError):
        await comm.receive_output(timeout=0.05)


# -- background tasks that end with their consumer ---------------------------------


class Ticker(AsyncConsumer):
    """Starts a never-ending task, as a heartbeat does; records its fate."""

    fates: list  # set per test

    async def test_start(self, message):
        self.start_task(self.tick(), name="ticker")
        await self.send({"type": "test.started"})

    async def tick(self):
        try:
            while True:
                await asyncio.sleep(0.01)
                await self.send({"type": "test.tick"})
        except asyncio.CancelledError:
            self.fates.append("cancelled")
            raise

    async def test_stop(self, message):
        raise StopConsumer()

    async def test_explode(self, message):
        raise RuntimeError("handler blew up")


class SyncTicker(SyncConsumer):
    fates: list

    def test_start(self, message):
        assert threading.current_thread() is not threading.main_thread()
        self.start_task(self.tick())
        self.send({"type": "test.started"})

    async def tick(self):
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.fates.append("cancelled")
            raise

    def test_explode(self, message):
        raise RuntimeError("handler blew up")


@pytest.mark.parametrize(
    "consumer_class, ending",
    [(Ticker, "test.stop"), (Ticker, "test.explode"), (SyncTicker, "test.explode")],
)
async def test_tasks_a_consumer_started_end_with_it(consumer_class, ending):
    fates = []
    consumer_class.fates = fates
    comm = ApplicationCommunicator(consumer_class.as_asgi(), {"type": "test"})
    await comm.send_input({"type": "test.start"})
    assert (await comm.receive_output())["type"] == "test.started"
    await comm.send_input({"type": ending})
    if ending == "test.explode":
        with pytest.raises(RuntimeError, match="handler blew up"):
            await comm.wait(timeout=2)
    else:
        await comm.wait(timeout=2)
    # However the consumer ended, its task was cancelled before it returned.
    assert fates == ["cancelled"]


async def test_a_failing_task_is_logged_and_the_consumer_goes_on(caplog):
    class Flaky(AsyncConsumer):
        async def test_start(self, message):
            self.start_task(self.fail(), name="flaky")

        async def fail(self):
            await self.send({"type": "test.failing"})
            raise ValueError("task broke")

        async def test_ping(self, message):
            await self.send({"type": "test.pong"})

    comm = ApplicationCommunicator(Flaky.as_asgi(), {"type": "test"})
    await comm.send_input({"type": "test.start"})
    assert (await comm.receive_output())["type"] == "test.failing"
    await comm.send_input({"type": "test.ping"})
    assert (await comm.receive_output())["type"] == "test.pong"
    await comm.send_input({"type": "test.stop"})
    with pytest.raises(ValueError, match="No handler"):
        await comm.wait(timeout=2)
    assert "Background task flaky of " in caplog.text
    assert "task broke" in caplog.text


def test_start_task_outside_a_running_consumer_says_why():
    async def nothing():
        pass

    with pytest.raises(RuntimeError, match="needs a running consumer"):
        Ticker().start_task(nothing())
