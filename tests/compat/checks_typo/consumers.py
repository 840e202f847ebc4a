from channels_app.generic.websocket import AsyncWebsocketConsumer


class ChatConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        self.room_name = self.scope["url_route"]["kwargs"]["room_name"]
        await self.accept()

    async def receive(self, text_data=None, bytes_data=None):
        await self.send(text_data=f"{self.room_name}: {text_data}")
