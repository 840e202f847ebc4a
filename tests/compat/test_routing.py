"""Routing written as Channels 4's documentation writes it, with only the
import prefix changed: in-process through ``WebsocketCommunicator``, and
through Daphne and uvicorn mounted under a ``root_path``.

The application is ``tests/compat/checks_routing/site.py``.
"""

import asyncio
import json
import sys

import pytest
import websockets
from django.core.exceptions import ImproperlyConfigured
from django.urls import include, path, re_path

from channels_app.routing import URLRouter
from channels_app.testing import ApplicationCommunicator, WebsocketCommunicator
from tests.compat.checks_routing import site
from tests.servers import ServerProcess, free_port, project_env, wait_for_port

#: How long a client waits for any one thing from the server.
WAIT = 10


async def routed(communicator):
    connected, _ = await communicator.connect()
    assert connected
    answer = await communicator.receive_json_from()
    await communicator.disconnect()
    return answer


async def test_nested_router_behind_base_middleware_merges_path_kwargs():
    answer = await routed(
        WebsocketCommunicator(site.application, "/ws/user/5/stream/9/?token=abc")
    )
    assert answer["consumer"] == "StreamConsumer"
    assert answer["kwargs"] == {"user_id": 5, "stream_id": 9}
    assert answer["token"] == "abc"  # the middleware between the routers ran
    assert answer["user"] == "AnonymousUser"  # and AuthMiddlewareStack above


async def test_nested_re_path_captures_are_merged_with_the_outer_path_ones():
    answer = await routed(
        WebsocketCommunicator(site.application, "/ws/user/5/upload/photo/")
    )
    assert answer["consumer"] == "UploadConsumer"
    assert answer["kwargs"] == {"user_id": 5, "kind": "photo"}


async def test_plain_class_middleware_declaring_path_routing_nests_a_router():
    answer = await routed(
        WebsocketCommunicator(site.application, "/ws/region/eu/rooms/lobby/")
    )
    assert answer["consumer"] == "RoomConsumer"
    assert answer["kwargs"] == {"region_code": "eu", "room": "lobby"}
    assert answer["region"] == "EU"


async def test_the_tutorials_re_path_route():
    answer = await routed(WebsocketCommunicator(site.application, "/ws/chat/lobby/"))
    assert answer["consumer"] == "ChatConsumer"
    assert answer["kwargs"] == {"room_name": "lobby"}


async def test_a_path_the_nested_router_does_not_know_is_no_route():
    communicator = WebsocketCommunicator(site.application, "/ws/user/5/nothing/")
    with pytest.raises(
        ValueError, match=r"^No route found for path 'ws/user/5/nothing/'\.$"
    ):
        await communicator.connect()


def websocket_scope(path, root_path):
    """The scope a server mounted at ``root_path`` gives a WebSocket."""
    return {
        "type": "websocket",
        "path": path,
        "raw_path": path.encode(),
        "root_path": root_path,
        "query_string": b"",
        "headers": [],
        "subprotocols": [],
    }


async def test_the_root_path_is_not_part_of_the_routes():
    communicator = ApplicationCommunicator(
        site.application, websocket_scope("/chat-app/ws/chat/lobby/", "/chat-app")
    )
    await communicator.send_input({"type": "websocket.connect"})
    assert (await communicator.receive_output())["type"] == "websocket.accept"
    answer = json.loads((await communicator.receive_output())["text"])
    assert answer["kwargs"] == {"room_name": "lobby"}
    assert answer["path"] == "/chat-app/ws/chat/lobby/"


async def test_a_path_outside_the_root_path_is_no_route():
    communicator = ApplicationCommunicator(
        site.application, websocket_scope("/ws/chat/lobby/", "/chat-app")
    )
    await communicator.send_input({"type": "websocket.connect"})
    with pytest.raises(ValueError, match=r"^No route found for path '/ws/chat/lobby/'"):
        await communicator.receive_output()


def test_include_is_refused_as_channels_refuses_it():
    with pytest.raises(ImproperlyConfigured, match="include"):
        URLRouter([path("ws/", include(site.websocket_urlpatterns))])


# -- the same routes under Channels' own URLRouter -------------------------------


def routing_tree(routing):
    """One tree of routes built from ``routing`` (Channels' module or ours)."""

    async def endpoint(scope, receive, send):
        return scope["url_route"], scope["path_remaining"]

    return routing.URLRouter(
        [
            path("ws/<int:n>/", endpoint),
            path(
                "nest/<slug:group>/",
                routing.URLRouter(
                    [
                        re_path(r"^(?P<x>\w+)/$", endpoint, {"extra": True}),
                        path("deeper/", routing.URLRouter([path("end/", endpoint)])),
                    ]
                ),
            ),
            re_path(r"^nest/(?P<group>[\w-]+)/fallback/$", endpoint),
        ]
    )


async def outcome(router, scope):
    try:
        return await router(scope, None, None)
    except Exception as exc:  # what a server would report
        return type(exc), str(exc)


@pytest.mark.parametrize(
    "scope_path, root_path",
    [
        ("/ws/3/", ""),
        ("ws/3/", ""),
        ("//ws/3/", ""),
        ("/ws/x/", ""),
        ("/nest/a/b/", ""),
        ("/nest/a/deeper/end/", ""),
        ("/nest/a/fallback/", ""),
        ("/nest/a/deeper/nowhere/", ""),
        ("/app/ws/3/", "/app"),
        ("/app/nest/a/b/", "/app"),
        ("/ws/3/", "/app"),
        ("/application/ws/3/", "/app"),
        ("/app", "/app"),
    ],
)
async def test_routes_resolve_as_under_channels(scope_path, root_path):
    channels_routing = pytest.importorskip("channels.routing")
    from channels_app import routing as our_routing

    scope = {"type": "websocket", "path": scope_path, "root_path": root_path}
    theirs = await outcome(routing_tree(channels_routing), scope)
    ours = await outcome(routing_tree(our_routing), scope)
    assert ours == theirs


# -- mounted under a root_path by a real server ---------------------------------

ROOT_PATH = "/chat-app"

#: Each server with its root path; where a client connects for scope path P.
#: Daphne takes the path as the client sent it; uvicorn is told the prefix
#: was stripped by a proxy, and puts it back in front of the path.
SERVERS = {
    "daphne": (
        ["-m", "daphne", "-b", "127.0.0.1", "-p", "{port}", "--root-path", ROOT_PATH],
        lambda scope_path: scope_path,
    ),
    "uvicorn": (
        [
            "-m",
            "uvicorn",
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
            "--root-path",
            ROOT_PATH,
            "--no-access-log",
        ],
        lambda scope_path: scope_path.removeprefix(ROOT_PATH),
    ),
}


@pytest.fixture(scope="module", params=sorted(SERVERS))
def mounted(request, tmp_path_factory):
    arguments, client_path = SERVERS[request.param]
    tmp_path = tmp_path_factory.mktemp(request.param)
    port = free_port()
    server = ServerProcess(
        [
            sys.executable,
            *(word.format(port=port) for word in arguments),
            "tests.compat.checks_routing.site:application",
        ],
        port,
        tmp_path / "server.log",
        project_env(tmp_path),
    )
    wait_for_port(port, server.process)
    server.kind, server.client_path = request.param, client_path
    yield server
    server.stop()


@pytest.mark.e2e
async def test_a_server_mounted_under_a_root_path_routes_what_follows_it(mounted):
    url = mounted.ws_url + mounted.client_path(f"{ROOT_PATH}/ws/user/7/stream/3/")
    async with websockets.connect(url) as ws:
        answer = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
    assert answer["consumer"] == "StreamConsumer"
    assert answer["kwargs"] == {"user_id": 7, "stream_id": 3}
    assert answer["root_path"] == ROOT_PATH
    assert answer["path"] == f"{ROOT_PATH}/ws/user/7/stream/3/"


@pytest.mark.e2e
async def test_daphne_refuses_a_path_outside_its_root_path(mounted):
    if mounted.kind != "daphne":
        pytest.skip("uvicorn puts its root path in front of every path it gets")
    with pytest.raises(websockets.InvalidStatus):
        await websockets.connect(f"{mounted.ws_url}/ws/chat/lobby/")
    assert "No route found for path '/ws/chat/lobby/'." in mounted.log()
