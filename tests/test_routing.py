import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from django.urls import Resolver404, path, re_path

from channels_app.consumer import AsyncConsumer
from channels_app.middleware import BaseMiddleware
from channels_app.routing import (
    ChannelNameRouter,
    ProtocolTypeRouter,
    URLRouter,
    get_default_application,
)
from tests.compat import checks_typo


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
    # Channels' wording: the path as matched (root_path and "/" removed).
    router = URLRouter([path("a/", Recorder())])
    with pytest.raises(ValueError, match=r"^No route found for path 'nowhere/'\.$"):
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


async def test_a_path_outside_the_root_path_matches_nothing():
    # Channels' rule: the server mounts the site at root_path, so a path
    # outside it is not routed, even if a route would match it as it stands.
    router = URLRouter([path("other/ws/", Recorder())])
    with pytest.raises(ValueError, match=r"^No route found for path '/other/ws/'\.$"):
        await router(ws_scope("/other/ws/", root_path="/prefix"), None, None)


async def test_only_the_outermost_router_strips_the_root_path():
    app = Recorder()
    inner = URLRouter([path("prefix/", app)])
    outer = URLRouter([path("prefix/", inner)])
    await outer(ws_scope("/prefix/prefix/prefix/", root_path="/prefix"), None, None)
    assert app.scopes[0]["path_remaining"] == ""


async def test_a_scope_without_a_path_cannot_be_routed():
    router = URLRouter([path("a/", Recorder())])
    with pytest.raises(ValueError, match="No 'path' key"):
        await router({"type": "websocket"}, None, None)


class PathRoutingMiddleware:
    """Middleware written as Channels' docs write it, around a nested router."""

    _path_routing = True

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        scope["seen_by"] = "PathRoutingMiddleware"
        return await self.app(scope, receive, send)


async def test_an_app_declaring_path_routing_is_a_nested_router():
    app = Recorder()
    outer = URLRouter(
        [
            path(
                "org/<int:org>/",
                PathRoutingMiddleware(URLRouter([path("<str:room>/", app)])),
            )
        ]
    )
    await outer(ws_scope("/org/3/general/"), None, None)
    assert app.scopes[0]["url_route"]["kwargs"] == {"org": 3, "room": "general"}
    assert app.scopes[0]["seen_by"] == "PathRoutingMiddleware"


async def test_a_miss_behind_middleware_lets_outer_keep_trying():
    fallback = Recorder("fallback")
    inner = BaseMiddleware(URLRouter([path("only/", Recorder("inner"))]))
    outer = URLRouter([path("x/", inner), path("x/other/", fallback)])
    assert await outer(ws_scope("/x/other/"), None, None) == "fallback"


async def test_a_third_party_router_saying_resolver404_is_a_miss():
    class PrefixRouter:
        """Routes on path_remaining and raises Resolver404, as Channels' do."""

        _path_routing = True

        async def __call__(self, scope, receive, send):
            raise Resolver404(f"nothing for {scope['path_remaining']!r}")

    fallback = Recorder("fallback")
    outer = URLRouter([path("a/", PrefixRouter()), path("a/b/", fallback)])
    assert await outer(ws_scope("/a/b/"), None, None) == "fallback"


async def test_a_consumers_own_resolver404_is_not_taken_for_a_miss():
    async def consumer(scope, receive, send):
        raise Resolver404("the consumer's own lookup failed")

    fallback = Recorder("fallback")
    inner = URLRouter([path("b/", consumer)])
    outer = URLRouter([path("a/", BaseMiddleware(inner)), path("a/b/", fallback)])
    with pytest.raises(Resolver404, match="the consumer's own lookup failed"):
        await outer(ws_scope("/a/b/"), None, None)
    assert fallback.scopes == []


async def test_nested_miss_at_the_top_is_a_value_error_naming_the_path():
    outer = URLRouter([path("a/", URLRouter([path("b/", Recorder())]))])
    with pytest.raises(ValueError, match=r"^No route found for path 'a/c/'\.$"):
        await outer(ws_scope("/a/c/"), None, None)


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
        with pytest.raises(
            ImproperlyConfigured, match="No module named 'tests.nonexistent'"
        ):
            get_default_application()


TYPO_ROUTING = checks_typo.HERE / "routing.py"


@override_settings(ASGI_APPLICATION="tests.compat.checks_typo.asgi.application")
def test_a_typo_while_importing_the_application_is_shown_as_itself():
    # Django's import_string would have said the module "does not define" the
    # application; the user needs the misspelt name, where it is, and the fix.
    with pytest.raises(ImproperlyConfigured) as caught:
        get_default_application()
    message = str(caught.value)
    assert "'tests.compat.checks_typo.asgi.application' cannot be imported" in message
    assert f'File "{TYPO_ROUTING}", line {checks_typo.typo_line()}' in message
    assert "consumers.ChatConsumr.as_asgi()" in message  # the source line
    assert "has no attribute 'ChatConsumr'. Did you mean: 'ChatConsumer'?" in message
    assert "importlib" not in message  # the import machinery is left out
    assert isinstance(caught.value.__cause__, AttributeError)


@override_settings(ASGI_APPLICATION="tests.test_routing.Recordr")
def test_a_missing_application_attribute_names_the_module_and_a_suggestion():
    with pytest.raises(ImproperlyConfigured) as caught:
        get_default_application()
    message = str(caught.value)
    assert "module 'tests.test_routing' has no attribute 'Recordr'" in message
    assert "Did you mean: 'Recorder'?" in message
    assert __file__ in message


@override_settings(ASGI_APPLICATION="application")
def test_an_application_path_without_a_module_says_what_is_expected():
    with pytest.raises(ImproperlyConfigured, match="'package.module.attribute'"):
        get_default_application()


def test_building_the_root_router_without_the_app_installed_warns():
    from django.test import override_settings

    apps_without_ours = ["django.contrib.auth", "django.contrib.contenttypes"]
    with override_settings(INSTALLED_APPS=apps_without_ours):
        with pytest.warns(
            RuntimeWarning, match="channels_app is not in INSTALLED_APPS"
        ):
            ProtocolTypeRouter({})


def test_building_the_root_router_with_the_app_installed_is_quiet(recwarn):
    ProtocolTypeRouter({})
    assert not [w for w in recwarn if "INSTALLED_APPS" in str(w.message)]
