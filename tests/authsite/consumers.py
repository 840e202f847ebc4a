"""A consumer that reports, logs in and logs out the connection's user."""

from django.contrib.auth import authenticate

from channels_app.auth import login, logout
from channels_app.db import database_sync_to_async
from channels_app.generic.websocket import AsyncJsonWebsocketConsumer
from channels_app.session_sync import create_sync_ticket


class AccountConsumer(AsyncJsonWebsocketConsumer):
    """Actions: ``whoami``, ``login`` (username, password), ``logout``."""

    async def receive_json(self, content):
        action = content.get("action")
        if action == "whoami":
            await self.send_json({"user": self.username()})
        elif action == "login":
            user = await database_sync_to_async(authenticate)(
                username=content.get("username"), password=content.get("password")
            )
            if user is None:
                await self.send_json({"error": "invalid credentials"})
                return
            await login(self.scope, user)
            ticket = await create_sync_ticket(self.scope)
            await self.send_json({"user": self.username(), "ticket": ticket})
        elif action == "logout":
            await logout(self.scope)
            ticket = await create_sync_ticket(self.scope)
            await self.send_json({"user": self.username(), "ticket": ticket})
        else:
            await self.send_json({"error": f"unknown action {action!r}"})

    def username(self):
        user = self.scope["user"]
        return user.get_username() if user.is_authenticated else None
