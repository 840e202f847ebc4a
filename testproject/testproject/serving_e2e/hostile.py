"""What the hostile-client tests (tests/e2e/test_hostile_clients.py) connect to.

``application`` is the guarded route: the origin check and the auth stack
around a consumer that says who it thinks the client is.
"""

from channels_app.auth import AuthMiddlewareStack
from channels_app.generic.websocket import AsyncJsonWebsocketConsumer
from channels_app.security.websocket import AllowedHostsOriginValidator


class WhoAmIConsumer(AsyncJsonWebsocketConsumer):
    """Sends the user's name (None when anonymous) as soon as it accepts."""

    async def connect(self):
        await self.accept()
        user = self.scope["user"]
        await self.send_json(
            {"user": user.get_username() if user.is_authenticated else None}
        )


application = AllowedHostsOriginValidator(AuthMiddlewareStack(WhoAmIConsumer.as_asgi()))
