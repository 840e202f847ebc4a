import asyncio
import functools
from unittest import mock

import pytest

from channels_app.utils import await_many_dispatch, name_that_thing
from tests.support.waiting import eventually


async def test_dispatches_from_every_source_and_cancels_on_exit():
    a, b = asyncio.Queue(), asyncio.Queue()
    seen = []

    async def dispatch(message):
        seen.append(message)
        if message == "stop":
            raise LookupError("done")

    task = asyncio.ensure_future(await_many_dispatch([a.get, b.get], dispatch))
    await a.put("a1")
    await b.put("b1")
    await a.put("a2")
    await eventually(lambda: len(seen) == 3)
    await b.put("stop")
    with pytest.raises(LookupError):
        await task
    assert sorted(seen) == ["a1", "a2", "b1", "stop"]
    # Nothing is left listening: a later message stays in the queue.  (A
    # deliberate pause: no event marks "nobody took it"; a leftover getter
    # would have taken it within a few loop turns.)
    await a.put("late")
    await asyncio.sleep(0.01)
    assert a.qsize() == 1


async def test_dispatches_are_serialised():
    a, b = asyncio.Queue(), asyncio.Queue()
    running, overlaps, handled = 0, 0, 0

    async def dispatch(message):
        nonlocal running, overlaps, handled
        running += 1
        overlaps += running > 1
        await asyncio.sleep(0.001)  # the dispatch takes a while
        running -= 1
        handled += 1

    task = asyncio.ensure_future(await_many_dispatch([a.get, b.get], dispatch))
    for i in range(20):
        a.put_nowait(i)
        b.put_nowait(i)
    await eventually(lambda: handled == 40)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert overlaps == 0


async def test_error_from_the_first_source_stops_the_others():
    a, b = asyncio.Queue(), asyncio.Queue()

    async def dispatch(message):
        if message == "boom":
            raise KeyError("first source failed")

    task = asyncio.ensure_future(await_many_dispatch([a.get, b.get], dispatch))
    await b.put("fine")
    await eventually(b.empty)  # taken: every source is being listened to
    await a.put("boom")
    with pytest.raises(KeyError, match="first source failed"):
        await task
    await b.put("late")
    await asyncio.sleep(0.01)  # deliberate: a leftover getter would take it
    assert b.qsize() == 1


async def test_cancelling_from_outside_is_a_cancellation():
    a, b = asyncio.Queue(), asyncio.Queue()

    seen = []

    async def dispatch(message):
        seen.append(message)

    task = asyncio.ensure_future(await_many_dispatch([a.get, b.get], dispatch))
    await b.put("first")
    await eventually(lambda: seen == ["first"])  # it is running and listening
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await b.put("late")
    await asyncio.sleep(0.01)  # deliberate: a leftover getter would take it
    assert b.qsize() == 1


# --- name_that_thing ----------------------------------------------------------


class Named:
    def method(self):
        pass

    @classmethod
    def factory(cls):
        pass


def named_function():
    pass


@pytest.mark.parametrize(
    ("thing", "name"),
    [
        (named_function, "tests.test_utils.named_function"),
        (Named, "tests.test_utils.Named"),
        (Named(), "tests.test_utils.Named"),
        (Named.method, "tests.test_utils.Named.method"),
        (Named().method, "tests.test_utils.Named.method"),
        (Named.factory, "tests.test_utils.Named.factory"),
        (len, "builtins.len"),
        ([].append, "builtins.list.append"),
        ("text", "builtins.str"),
        (None, "builtins.NoneType"),
        (functools.partial(named_function), "functools.partial"),
        (functools, "functools"),
        (mock.Mock(), "<mock>"),
        (mock.MagicMock(), "<mock>"),
    ],
)
def test_name_that_thing(thing, name):
    assert name_that_thing(thing) == name


def test_name_that_thing_names_a_consumer_application_after_its_class():
    from channels_app.generic.websocket import WebsocketConsumer

    assert name_that_thing(WebsocketConsumer.as_asgi()) == (
        "channels_app.generic.websocket.WebsocketConsumer"
    )
