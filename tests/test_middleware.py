from channels_app.middleware import BaseMiddleware


class AddsUser(BaseMiddleware):
    async def __call__(self, scope, receive, send):
        scope = dict(scope, user="alice")
        return await super().__call__(scope, receive, send)


async def test_middleware_adds_to_a_copy_of_the_scope():
    seen = []

    async def app(scope, receive, send):
        seen.append(scope)

    original = {"type": "websocket", "path": "/"}
    await AddsUser(app)(original, None, None)
    assert seen[0]["user"] == "alice"
    assert "user" not in original
    assert seen[0] is not original


class Router:
    _path_routing = True

    async def __call__(self, scope, receive, send):
        pass


async def consumer(scope, receive, send):
    pass


def test_middleware_says_it_routes_paths_when_what_it_wraps_does():
    # URLRouter makes a route to such an application match only a prefix,
    # so path("chat/", AuthMiddlewareStack(URLRouter(...))) routes the rest.
    assert BaseMiddleware(Router())._path_routing is True
    assert BaseMiddleware(BaseMiddleware(Router()))._path_routing is True
    assert BaseMiddleware(consumer)._path_routing is False


def test_a_subclass_may_set_path_routing_itself():
    class OnInstance(BaseMiddleware):
        def __init__(self, inner):
            super().__init__(inner)
            self._path_routing = True

    class OnClass(BaseMiddleware):
        _path_routing = True

    assert OnInstance(consumer)._path_routing is True
    assert OnClass(consumer)._path_routing is True
