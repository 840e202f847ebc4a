import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from django.urls import path, re_path

from channels_app.consumer import AsyncConsumer
from channels_app.middleware import BaseMiddleware
from channels_app.routing import (
    ChannelNameRouter,
    ProtocolTypeRouter,
    URLRouter,
    get_default_application,
)


class Recorder:
    """An ASGI app that records the scope it was called with."""

    def __init__(self, name="app"):
        self.name = name
        self.scopes = []

    async def __call__(self, scope, receive, send):
        self.scopes.append(scope)
        return self.name


def ws_scope(path, **extra):
    return {"type": "websocket", "path": path, **extra}


async def test_protocol_type_router_dispatches_on_type():
    http, ws = Recorder("http"), Recorder("ws")
    router = ProtocolTypeRouter({"http": http, "websocket": ws})
    assert await router({"type": "websocket", "path": "/"}, None, None) == "ws"
    assert await router({"type": "http", "path": "/"}, None, None) == "http"


async def test_protocol_type_router_unknown_type_names_it():
    router = ProtocolTypeRouter({"http": Recorder()})
    with pytest.raises(ValueError, match="'websocket'.*knows \\['http'\\]"):
        await router({"type": "websocket"}, None, None)


async def test_url_router_path_kwargs_and_converters():
    app = Recorder()
    router = URLRouter([path("rooms/<int:room>/<slug:name>/", app)])
    await router(ws_scope("/rooms/42/lobby/"), None, None)
    assert app.scopes[0]["url_route"] == {
        "args": (),
        "kwargs": {"room": 42, "name": "lobby"},
    }


async def test_url_router_first_match_wins_and_re_path_args():
    first, second = Recorder("first"), Recorder("second")
    router = URLRouter([re_path(r"^a/(\d+)/$", first), path("a/<int:n>/", second)])
    assert await router(ws_scope("/a/7/"), None, None) == "first"
    assert first.scopes[0]["url_route"] == {"args": ("7",), "kwargs": {}}


async def test_url_router_no_match_names_path():
    router = URLRouter([path("a/", Recorder())])
    with pytest.raises(ValueError, match="No route found for path '/nowhere/'"):
        await router(ws_scope("/nowhere/"), None, None)


async def test_url_router_converter_rejection_is_a_miss():
    router = URLRouter([path("n/<int:n>/", Recorder())])
    with pytest.raises(ValueError, match="No route found"):
        await router(ws_scope("/n/abc/"), None, None)


async def test_nested_routers_merge_kwargs_and_defaults():
    app = Recorder()
    inner = URLRouter([path("<str:room>/", app, {"kind": "chat"})])
    outer = URLRouter([path("org/<int:org>/", inner)])
    await outer(ws_scope("/org/3/general/"), None, None)
    assert app.scopes[0]["url_route"]["kwargs"] == {
        "org": 3,
        "room": "general",
        "kind": "chat",
    }
    assert app.scopes[0]["path_remaining"] == ""


async def test_inner_miss_lets_outer_keep_trying():
    fallback = Recorder("fallback")
    inner = URLRouter([path("only/", Recorder("inner"))])
    outer = URLRouter([path("x/", inner), re_path(r"^x/other/$", fallback)])
    assert await outer(ws_scope("/x/other/"), None, None) == "fallback"


async def test_nested_router_behind_middleware_matches_prefix():
    app = Recorder()
    outer = URLRouter([path("api/", BaseMiddleware(URLRouter([path("v1/", app)])))])
    await outer(ws_scope("/api/v1/"), None, None)
    assert app.scopes[0]["path_remaining"] == ""


async def test_root_path_is_stripped():
    app = Recorder()
    router = URLRouter([path("ws/", app)])
    await router(ws_scope("/prefix/ws/", root_path="/prefix"), None, None)
    assert len(app.scopes) == 1


def test_include_is_refused():
    from django.urls import include

    with pytest.raises(ImproperlyConfigured, match="include"):
        URLRouter([path("x/", include([]))])


def test_consumer_class_without_as_asgi_is_refused():
    with pytest.raises(ImproperlyConfigured, match=r"as_asgi\(\)"):
        URLRouter([path("x/", AsyncConsumer)])


async def test_channel_name_router():
    a = Recorder("a")
    router = ChannelNameRouter({"thumbnails": a})
    assert await router({"type": "channel", "channel": "thumbnails"}, None, None) == "a"
    with pytest.raises(ValueError, match="'other'"):
        await router({"type": "channel", "channel": "other"}, None, None)
    with pytest.raises(ValueError, match="without a 'channel' key"):
        await router({"type": "channel"}, None, None)


def test_get_default_application():
    with override_settings(ASGI_APPLICATION="tests.test_routing.Recorder"):
        assert get_default_application() is Recorder
    with override_settings(ASGI_APPLICATION=None):
        with pytest.raises(ImproperlyConfigured, match="ASGI_APPLICATION is not set"):
            get_default_application()
    with override_settings(ASGI_APPLICATION="tests.nonexistent.application"):
        with pytest.raises(ImproperlyConfigured, match="Cannot import"):
            get_default_application()
