"""Sending to the channel layer from synchronous code."""

import asyncio
import multiprocessing
import threading

import pytest
from asgiref.sync import sync_to_async

from channels_app.exceptions import InvalidChannelLayerError
from channels_app.layers import get_channel_layer
from channels_app.sync_send import await_from_sync, background_loop, group_send, send
from tests.serving import redis_layers


@pytest.fixture
def redis_layer(settings):
    settings.CHANNEL_LAYERS = redis_layers(capacity=5000)
    layer = get_channel_layer()
    yield layer
    await_from_sync(layer.flush)


def receive_all(layer, channel, count):
    async def collect():
        return [await layer.receive(channel) for _ in range(count)]

    return await_from_sync(collect, timeout=30)


def test_thousands_of_sends_reuse_one_loop_and_thread(redis_layer, monkeypatch):
    send("warmup", {"type": "noop"})
    loop = background_loop.loop
    threads = threading.active_count()
    policy = asyncio.get_event_loop_policy()
    loops_made = []

    def counting_new_event_loop():
        loops_made.append(1)
        return type(policy).new_event_loop(policy)

    monkeypatch.setattr(policy, "new_event_loop", counting_new_event_loop)
    for number in range(2000):
        send("jobs", {"type": "job", "n": number})
    assert loops_made == []
    assert background_loop.loop is loop
    assert threading.active_count() == threads
    received = receive_all(redis_layer, "jobs", 2000)
    assert [message["n"] for message in received] == list(range(2000))


def test_many_threads_may_send_at_once(redis_layer):
    def sender(offset):
        for number in range(100):
            send("shared", {"type": "job", "n": offset + number})

    threads = [threading.Thread(target=sender, args=(i * 100,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    received = receive_all(redis_layer, "shared", 800)
    assert sorted(message["n"] for message in received) == list(range(800))


def test_group_send_reaches_every_member(redis_layer):
    async def join():
        channels = [await redis_layer.new_channel() for _ in range(3)]
        for channel in channels:
            await redis_layer.group_add("room", channel)
        return channels

    channels = await_from_sync(join)
    group_send("room", {"type": "chat.message", "text": "hi"})

    async def each_receives():
        return [await redis_layer.receive(channel) for channel in channels]

    received = await_from_sync(each_receives, timeout=5)
    assert [m["text"] for m in received] == ["hi", "hi", "hi"]


async def test_sync_code_under_a_running_loop_sends_on_that_loop(redis_layer):
    """A sync view under the server runs its sends on the server's own loop."""
    server_loop = asyncio.get_running_loop()

    async def which_loop():
        return asyncio.get_running_loop()

    def view():
        send("from-view", {"type": "hello"})
        return await_from_sync(which_loop)

    assert await sync_to_async(view)() is server_loop
    assert (await redis_layer.receive("from-view"))["type"] == "hello"


async def test_calling_from_a_coroutine_is_refused():
    async def noop():
        pass

    with pytest.raises(RuntimeError, match="await the channel layer method"):
        await_from_sync(noop)


def test_timeout_cancels_a_slow_call():
    cancelled = []

    async def slow():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    with pytest.raises(TimeoutError, match="longer than 0.05s"):
        await_from_sync(slow, timeout=0.05)
    assert cancelled == [True]


def test_errors_from_the_layer_reach_the_caller(redis_layer):
    with pytest.raises(TypeError, match="Channel name"):
        send("not a valid name", {"type": "x"})


def test_missing_layer_alias_is_a_clear_error(settings):
    settings.CHANNEL_LAYERS = {}
    with pytest.raises(InvalidChannelLayerError, match="'default'"):
        send("jobs", {"type": "job"})


def _send_in_child(channel, result):
    try:
        send(channel, {"type": "from.child"})
        result.put("sent")
    except Exception as exc:  # reported to the parent, which asserts on it
        result.put(repr(exc))


def test_works_in_a_forked_child_after_use_in_the_parent(redis_layer):
    """Celery's prefork pool forks after the parent may have used the loop."""
    send("warmup", {"type": "noop"})
    context = multiprocessing.get_context("fork")
    result = context.Queue()
    child = context.Process(target=_send_in_child, args=("forked", result))
    child.start()
    child.join(30)
    assert result.get(timeout=5) == "sent"
    assert receive_all(redis_layer, "forked", 1)[0]["type"] == "from.child"
