import asyncio

import pytest

from channels_app.generic.http import AsyncHttpConsumer
from channels_app.testing import HttpCommunicator


class Hello(AsyncHttpConsumer):
    async def handle(self, body):
        await self.send_response(
            201, b"got " + body, headers={"Content-Type": "text/plain"}
        )


async def test_send_response():
    comm = HttpCommunicator(Hello.as_asgi(), "POST", "/hello/?q=1", body=b"data")
    response = await comm.get_response()
    assert response == {
        "status": 201,
        "headers": [(b"Content-Type", b"text/plain")],
        "body": b"got data",
    }


async def test_request_body_in_several_parts():
    comm = HttpCommunicator(Hello.as_asgi(), "POST", "/")
    await comm.send_input({"type": "http.request", "body": b"ab", "more_body": True})
    await comm.send_input({"type": "http.request", "body": b"cd"})
    assert (await comm.receive_output())["status"] == 201
    assert (await comm.receive_output())["body"] == b"got abcd"


class Streamer(AsyncHttpConsumer):
    async def handle(self, body):
        await self.send_headers(headers=[(b"content-type", b"text/event-stream")])
        await self.send_event("first", event="greeting", id="1")
        await self.send_event("two\nlines")
        await self.send_body(b"", more_body=False)

    async def disconnect(self):
        self.scope["events"].append("disconnect")


async def test_server_sent_events_are_formatted_and_stream():
    comm = HttpCommunicator(Streamer.as_asgi(), "GET", "/")
    comm.scope["events"] = []
    response = await comm.get_response()
    assert response["body"] == (
        b"event: greeting\nid: 1\ndata: first\n\ndata: two\ndata: lines\n\n"
    )
    assert comm.scope["events"] == ["disconnect"]


class LongPoll(AsyncHttpConsumer):
    """Opens the response and completes it when a later message arrives."""

    async def handle(self, body):
        await self.send_headers(headers=[(b"content-type", b"application/json")])
        await self.send_body(b"", more_body=True)

    async def poll_result(self, message):
        await self.send_body(message["payload"])

    async def disconnect(self):
        self.scope["events"].append("disconnect")


async def test_long_poll_response_completed_by_a_later_message():
    comm = HttpCommunicator(LongPoll.as_asgi(), "GET", "/")
    comm.scope["events"] = []
    await comm.send_input({"type": "http.request", "body": b""})
    assert (await comm.receive_output())["type"] == "http.response.start"
    assert (await comm.receive_output())["more_body"] is True
    assert await comm.receive_nothing()
    # Delivered to the consumer as a channel-layer message would be.
    await comm.send_input({"type": "poll.result", "payload": b'{"ok": true}'})
    final = await comm.receive_output()
    assert final == {
        "type": "http.response.body",
        "body": b'{"ok": true}',
        "more_body": False,
    }
    await comm.wait()
    assert comm.scope["events"] == ["disconnect"]


async def test_client_disconnect_runs_disconnect_once_and_stops():
    comm = HttpCommunicator(LongPoll.as_asgi(), "GET", "/")
    comm.scope["events"] = []
    await comm.send_input({"type": "http.request", "body": b""})
    await comm.receive_output()
    await comm.receive_output()
    await comm.send_input({"type": "http.disconnect"})
    await comm.wait()
    assert comm.scope["events"] == ["disconnect"]


class Broken(AsyncHttpConsumer):
    async def handle(self, body):
        raise RuntimeError("view failed")

    async def disconnect(self):
        self.scope["events"].append("disconnect")


async def test_handle_exception_still_runs_disconnect_and_propagates():
    comm = HttpCommunicator(Broken.as_asgi(), "GET", "/")
    comm.scope["events"] = []
    await comm.send_input({"type": "http.request", "body": b""})
    with pytest.raises(RuntimeError, match="view failed"):
        await comm.wait()
    assert comm.scope["events"] == ["disconnect"]


async def test_body_must_be_bytes():
    class Wrong(AsyncHttpConsumer):
        async def handle(self, body):
            await self.send_headers()
            await self.send_body("text")

    comm = HttpCommunicator(Wrong.as_asgi(), "GET", "/")
    await comm.send_input({"type": "http.request", "body": b""})
    await comm.receive_output()
    with pytest.raises(TypeError, match="must be bytes"):
        await comm.wait()


async def test_missing_handle_says_so():
    comm = HttpCommunicator(AsyncHttpConsumer.as_asgi(), "GET", "/")
    with pytest.raises(NotImplementedError, match="handle"):
        await comm.get_response()


async def test_get_response_times_out():
    class Silent(AsyncHttpConsumer):
        async def handle(self, body):
            await asyncio.sleep(10)

    comm = HttpCommunicator(Silent.as_asgi(), "GET", "/")
    with pytest.raises(asyncio.TimeoutError):
        await comm.get_response(timeout=0.1)
