from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote, urlsplit

from ..types import Scope
from .application import ApplicationCommunicator


class WebsocketCommunicator(ApplicationCommunicator):
    """Play the client side of a WebSocket against an ASGI application."""

    def __init__(
        self,
        application: Any,
        path: str,
        headers: list[tuple[bytes, bytes]] | None = None,
        subprotocols: list[str] | None = None,
        spec_version: str | None = None,
    ) -> None:
        if not isinstance(path, str):
            raise TypeError(f"path must be a str, not {type(path).__name__}")
        parts = urlsplit(path)
        scope: Scope = {
            "type": "websocket",
            "asgi": {"version": "3.0"},
            "scheme": "ws",
            "path": unquote(parts.path),
            # UTF-8, as Channels encodes them: a test may write non-ASCII text
            # where a browser would send it percent-encoded.
            "raw_path": parts.path.encode("utf-8"),
            "query_string": parts.query.encode("utf-8"),
            "root_path": "",
            "headers": list(headers or []),
            "subprotocols": list(subprotocols or []),
            "client": ("127.0.0.1", 0),
            "server": ("testserver", 80),
        }
        if spec_version:
            scope["spec_version"] = spec_version
        self.response_headers: list[tuple[bytes, bytes]] | None = None
        super().__init__(application, scope)

    async def connect(self, timeout: float = 1) -> tuple[bool, Any]:
        """Open the socket: ``(True, subprotocol)`` or ``(False, close_code)``."""
        await self.send_input({"type": "websocket.connect"})
        response = await self.receive_output(timeout)
        if response["type"] == "websocket.accept":
            self.response_headers = list(response.get("headers", []))
            return True, response.get("subprotocol")
        if response["type"] == "websocket.close":
            return False, response.get("code", 1000)
        if response["type"] == "websocket.http.response.start":
            # Denial response extension: the handshake got an HTTP answer.
            return False, response.get("status")
        raise AssertionError(f"Unexpected reply to websocket.connect: {response!r}")

    async def send_to(
        self, text_data: str | None = None, bytes_data: bytes | None = None
    ) -> None:
        """Send one frame: exactly one of ``text_data`` or ``bytes_data``."""
        if (text_data is None) == (bytes_data is None):
            raise ValueError("send_to() needs exactly one of text_data or bytes_data")
        if text_data is not None:
            if not isinstance(text_data, str):
                raise TypeError("text_data must be a str")
            await self.send_input({"type": "websocket.receive", "text": text_data})
        else:
            if not isinstance(bytes_data, bytes):
                raise TypeError("bytes_data must be bytes")
            await self.send_input({"type": "websocket.receive", "bytes": bytes_data})

    async def send_json_to(self, data: Any) -> None:
        await self.send_to(text_data=json.dumps(data))

    async def receive_from(self, timeout: float = 1) -> str | bytes:
        """The next frame the application sent (text or bytes)."""
        response = await self.receive_output(timeout)
        if response["type"] != "websocket.send":
            raise AssertionError(f"Expected a websocket.send, got {response!r}")
        text: str | None = response.get("text")
        if text is not None:
            return text
        data: bytes | None = response.get("bytes")
        if data is not None:
            return data
        raise AssertionError(
            f"websocket.send carries neither text nor bytes: {response}"
        )

    async def receive_json_from(self, timeout: float = 1) -> Any:
        payload = await self.receive_from(timeout)
        if not isinstance(payload, str):
            raise AssertionError(f"Expected a JSON text frame, got bytes {payload!r}")
        return json.loads(payload)

    async def disconnect(self, code: int = 1000, timeout: float = 1) -> None:
        """Close from the client side and wait for the application to finish."""
        await self.send_input({"type": "websocket.disconnect", "code": code})
        await self.wait(timeout)
