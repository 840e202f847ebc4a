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
