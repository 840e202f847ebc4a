"""Tests written the way Channels 4's testing page writes them, prefix changed.

The communicators (``HttpCommunicator``, ``WebsocketCommunicator``,
``ApplicationCommunicator``) with their documented calls and return values,
routing through ``URLRouter`` in a communicator, channel layers reached from
a test, and ``ChannelsLiveServerTestCase`` used with a client outside the
process (the docs drive Selenium; a plain HTTP and WebSocket client stands
in for the browser here).
"""

import asyncio
import urllib.request

import pytest
import websockets
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.test import modify_settings, override_settings
from django.urls import path

from channels_app.consumer import AsyncConsumer
from channels_app.exceptions import StopConsumer
from channels_app.generic.http import AsyncHttpConsumer
from channels_app.generic.websocket import (
    AsyncJsonWebsocketConsumer,
    WebsocketConsumer,
)
from channels_app.layers import get_channel_layer
from channels_app.routing import URLRouter
from channels_app.testing import (
    ApplicationCommunicator,
    ChannelsLiveServerTestCase,
    HttpCommunicator,
    WebsocketCommunicator,
)

# --- HttpCommunicator -----------------------------------------------------------


class MyHttpConsumer(AsyncHttpConsumer):
    async def handle(self, body):
        await self.send_response(
            200,
            b"test response " + body,
            headers=[(b"Content-Type", b"text/plain")],
        )


async def test_http_communicator():
    communicator = HttpCommunicator(
        MyHttpConsumer.as_asgi(), "POST", "/test/", body=b"hello"
    )
    response = await communicator.get_response()
    assert response["body"] == b"test response hello"
    assert response["status"] == 200
    assert response["headers"] == [(b"Content-Type", b"text/plain")]
    assert communicator.scope["method"] == "POST"
    assert communicator.scope["path"] == "/test/"


# --- ApplicationCommunicator -----------------------------------------------------


class ChunkedConsumer(AsyncConsumer):
    """Answers an HTTP request in two parts, raw ASGI style."""

    async def http_request(self, message):
        await self.send({"type": "http.response.start", "status": 200, "headers": []})
        for part in message["body"].split(b" \x01 "):
            await self.send(
                {"type": "http.response.body", "body": part, "more_body": True}
            )
        await self.send({"type": "http.response.body", "body": b""})

    async def http_disconnect(self, message):
        raise StopConsumer()


async def test_application_communicator():
    communicator = ApplicationCommunicator(
        ChunkedConsumer.as_asgi(),
        {"type": "http", "method": "GET", "path": "/", "headers": []},
    )
    await communicator.send_input(
        {"type": "http.request", "body": b"chunk one \x01 chunk two"}
    )
    event = await communicator.receive_output(timeout=1)
    assert event["type"] == "http.response.start"
    assert event["status"] == 200
    bodies = [(await communicator.receive_output(timeout=1))["body"] for _ in range(3)]
    assert bodies == [b"chunk one", b"chunk two", b""]
    assert await communicator.receive_nothing(timeout=0.1, interval=0.01) is True
    await communicator.send_input({"type": "http.disconnect"})
    await communicator.wait(timeout=1)


# --- WebsocketCommunicator -------------------------------------------------------


class EchoConsumer(WebsocketConsumer):
    def connect(self):
        if self.scope["subprotocols"]:
            self.accept(self.scope["subprotocols"][0])
        else:
            self.accept()

    def receive(self, text_data=None, bytes_data=None):
        if text_data == "close":
            self.close(code=4123)
        elif text_data is not None:
            self.send(text_data=text_data)
        else:
            self.send(bytes_data=bytes_data)


class JsonEchoConsumer(AsyncJsonWebsocketConsumer):
    async def receive_json(self, content):
        await self.send_json({"echo": content})


class RefusingConsumer(WebsocketConsumer):
    def connect(self):
        self.close(code=4001)


async def test_websocket_communicator():
    communicator = WebsocketCommunicator(EchoConsumer.as_asgi(), "/testws/")
    connected, subprotocol = await communicator.connect()
    assert connected
    assert subprotocol is None
    await communicator.send_to(text_data="hello")
    response = await communicator.receive_from()
    assert response == "hello"
    await communicator.send_to(bytes_data=b"\x00\x01")
    assert await communicator.receive_from() == b"\x00\x01"
    await communicator.disconnect()


async def test_websocket_communicator_subprotocols_and_close_codes():
    communicator = WebsocketCommunicator(
        EchoConsumer.as_asgi(), "/testws/", subprotocols=["chat.v2", "chat.v1"]
    )
    connected, subprotocol = await communicator.connect()
    assert (connected, subprotocol) == (True, "chat.v2")
    await communicator.send_to(text_data="close")
    assert await communicator.receive_output() == {
        "type": "websocket.close",
        "code": 4123,
    }
    await communicator.disconnect()

    refused = WebsocketCommunicator(RefusingConsumer.as_asgi(), "/testws/")
    connected, code = await refused.connect()
    assert (connected, code) == (False, 4001)


async def test_websocket_communicator_json():
    communicator = WebsocketCommunicator(JsonEchoConsumer.as_asgi(), "/testws/")
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_json_to({"hello": "world"})
    assert await communicator.receive_json_from() == {"echo": {"hello": "world"}}
    assert await communicator.receive_nothing() is True
    await communicator.disconnect()


class KwargsWebSocketApp(WebsocketConsumer):
    def connect(self):
        self.accept()
        self.send(text_data=self.scope["url_route"]["kwargs"]["message"])


async def test_websocket_communicator_through_a_router():
    application = URLRouter([path("testws/<message>/", KwargsWebSocketApp.as_asgi())])
    communicator = WebsocketCommunicator(application, "/testws/test/")
    connected, _ = await communicator.connect()
    assert connected
    message = await communicator.receive_from()
    assert message == "test"
    await communicator.disconnect()


class GroupMember(AsyncJsonWebsocketConsumer):
    groups = ["news"]

    async def news_item(self, event):
        await self.send_json({"news": event["text"]})


@override_settings(
    CHANNEL_LAYERS={"default": {"BACKEND": "channels_app.layers.InMemoryChannelLayer"}}
)
async def test_a_test_sends_to_a_group_through_the_layer():
    communicator = WebsocketCommunicator(GroupMember.as_asgi(), "/news/")
    connected, _ = await communicator.connect()
    assert connected
    channel_layer = get_channel_layer()
    await channel_layer.group_send("news", {"type": "news.item", "text": "extra!"})
    assert await communicator.receive_json_from() == {"news": "extra!"}
    await communicator.disconnect()


# --- ChannelsLiveServerTestCase -------------------------------------------------


def fetch(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


@override_settings(
    ROOT_URLCONF="tests.live_project", ASGI_APPLICATION="tests.live_project.application"
)
@modify_settings(INSTALLED_APPS={"append": "django.contrib.staticfiles"})
class UsersLiveTests(ChannelsLiveServerTestCase):
    """Shaped like the docs' Selenium test case: its own set-up and
    tear-down around the server's, the client opened once per class."""

    serve_static = True

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.opener = urllib.request.build_opener()
        except BaseException:
            super().tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.opener.close()
        super().tearDownClass()

    def test_http_reaches_the_live_server(self):
        User.objects.create_user("ada")
        with self.opener.open(f"{self.live_server_url}/users/", timeout=10) as page:
            assert page.read() == b"ada"

    async def test_websocket_reaches_the_live_server(self):
        await sync_to_async(User.objects.create_user)("grace")
        async with websockets.connect(f"{self.live_server_ws_url}/ws/users/") as ws:
            assert await ws.recv() == "grace"

    def test_the_server_is_at_the_case_host(self):
        assert self.live_server_url.startswith(f"http://{self.host}:")
        assert self.live_server_ws_url.startswith(f"ws://{self.host}:")


class ScopeEcho(WebsocketConsumer):
    def connect(self):
        self.accept()
        self.send(text_data=self.scope["path"])
        self.send(bytes_data=self.scope["query_string"])


async def test_non_ascii_paths_and_queries_are_utf8():
    communicator = WebsocketCommunicator(ScopeEcho.as_asgi(), "/café/?q=€&n=%C3%A9")
    assert (await communicator.connect())[0]
    assert await communicator.receive_from() == "/café/"
    assert await communicator.receive_from() == "q=€&n=%C3%A9".encode()
    await communicator.disconnect()
    http = HttpCommunicator(MyHttpConsumer.as_asgi(), "GET", "/test/?q=€")
    assert http.scope["query_string"] == "q=€".encode()
    assert (await http.get_response())["status"] == 200


async def test_get_response_returns_while_the_application_still_runs():
    # Raw ASGI apps often wait for http.disconnect after responding.
    async def app(scope, receive, send):
        await receive()
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        await receive()  # Nothing more comes: the communicator sends nothing.

    response = await HttpCommunicator(app, "GET", "/").get_response(timeout=0.2)
    assert response["status"] == 204


async def settled_within(call, seconds):
    """``call`` as a finished task; fails the test if it is still waiting."""
    task = asyncio.ensure_future(call)
    await asyncio.wait({task}, timeout=seconds)
    if not task.done():
        task.cancel()
        pytest.fail(f"still waiting after {seconds} s for an application that ended")
    return task


class FailingOnConnect(WebsocketConsumer):
    def connect(self):
        raise LookupError("no such room")


async def test_an_application_that_fails_raises_its_error_before_the_timeout():
    # asgiref waits out the whole timeout before looking; ours stops when the
    # application ends.
    communicator = WebsocketCommunicator(FailingOnConnect.as_asgi(), "/")
    connecting = await settled_within(communicator.connect(timeout=3600), 30)
    with pytest.raises(LookupError, match="no such room"):
        connecting.result()


async def test_what_an_application_sent_before_it_ended_is_still_received():
    async def app(scope, receive, send):
        await send({"type": "first"})
        await send({"type": "second"})

    communicator = ApplicationCommunicator(app, {"type": "custom"})
    await communicator.wait(timeout=5)
    assert (await communicator.receive_output(timeout=1))["type"] == "first"
    assert (await communicator.receive_output(timeout=1))["type"] == "second"
    # It has ended: nothing more can come, and saying so need not take an hour.
    receiving = await settled_within(communicator.receive_output(timeout=3600), 30)
    with pytest.raises(asyncio.TimeoutError):
        receiving.result()


async def test_an_application_that_sends_nothing_still_times_out_and_is_cancelled():
    cancelled = asyncio.Event()

    async def app(scope, receive, send):
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    communicator = ApplicationCommunicator(app, {"type": "custom"})
    with pytest.raises(asyncio.TimeoutError):
        await communicator.receive_output(timeout=0.05)
    assert cancelled.is_set()
