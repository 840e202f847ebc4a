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


async def test_as_asgi_initkwargs_set_attributes_per_instance():
    app = Echo.as_asgi(greeting="hello")
    assert app.consumer_class is Echo
    assert app.consumer_initkwargs == {"greeting": "hello"}
    comm = ApplicationCommunicator(app, {"type": "test"})
    await comm.send_input({"type": "test.ping", "n": 1})
    assert (await comm.receive_output())["greeting"] == "hello"
    assert Echo.greeting == "hi"
    comm.stop(exceptions=False)


def test_as_asgi_refuses_unknown_initkwargs():
    with pytest.raises(TypeError, match="'colour'"):
        Echo.as_asgi(colour="blue")


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
