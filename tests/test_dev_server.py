"""runserver's server pieces: the per-connection inbox and the lifespan client."""

import asyncio

import pytest

from channels_app.routing import ProtocolTypeRouter
from channels_app.server import Inbox, LifespanClient, LifespanFailed


async def test_inbox_hands_over_events_in_order():
    inbox = Inbox()
    inbox.put_nowait({"n": 1})
    inbox.put_nowait({"n": 2})
    assert [await inbox.get(), await inbox.get()] == [{"n": 1}, {"n": 2}]


async def test_inbox_wakes_a_waiting_reader():
    inbox = Inbox()
    reader = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    inbox.put_nowait({"type": "websocket.connect"})
    assert await asyncio.wait_for(reader, 1) == {"type": "websocket.connect"}


async def test_cancelled_reader_loses_nothing():
    inbox = Inbox()
    reader = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    inbox.put_nowait({"n": 1})
    reader.cancel()  # before it ran to take the event
    with pytest.raises(asyncio.CancelledError):
        await reader
    assert await asyncio.wait_for(inbox.get(), 1) == {"n": 1}


def test_inbox_is_truthy_even_when_empty():
    # Daphne tests "if self.application_queue:" before using it.
    assert Inbox()


async def test_lifespan_client_runs_the_routers_hooks():
    calls = []
    router = ProtocolTypeRouter(
        {}, on_startup=[lambda: calls.append("up")], on_shutdown=[calls.clear]
    )
    client = LifespanClient(router)
    await client.startup()
    assert calls == ["up"]
    await client.shutdown()
    assert calls == []


async def test_lifespan_client_reports_a_failing_hook():
    def broken():
        raise RuntimeError("no database")

    client = LifespanClient(ProtocolTypeRouter({}, on_startup=[broken]))
    with pytest.raises(LifespanFailed, match="no database"):
        await client.startup()


async def test_application_without_lifespan_support_is_served_anyway():
    async def http_only(scope, receive, send):
        if scope["type"] != "http":
            raise ValueError("only http here")

    client = LifespanClient(http_only)
    await client.startup()
    assert not client.supported
    await client.shutdown()  # nothing to do, no error


async def test_lifespan_client_gives_up_on_a_silent_application():
    async def silent(scope, receive, send):
        await asyncio.sleep(10)

    client = LifespanClient(silent, timeout=0.1)
    with pytest.raises(LifespanFailed, match="no answer"):
        await client.startup()
