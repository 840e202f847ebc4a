from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import unquote, urlsplit

from ..types import Scope
from .application import ApplicationCommunicator


class HttpCommunicator(ApplicationCommunicator):
    """Make one HTTP request to an ASGI application and collect the response."""

    def __init__(
        self,
        application: Any,
        method: str,
        path: str,
        body: bytes = b"",
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        parts = urlsplit(path)
        scope: Scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method.upper(),
            "scheme": "http",
            "path": unquote(parts.path),
            # UTF-8, as Channels encodes them: a test may write non-ASCII text
            # where a browser would send it percent-encoded.
            "raw_path": parts.path.encode("utf-8"),
            "query_string": parts.query.encode("utf-8"),
            "root_path": "",
            "headers": list(headers or []),
            "client": ("127.0.0.1", 0),
            "server": ("testserver", 80),
        }
        if not isinstance(body, bytes):
            raise TypeError(f"body must be bytes, not {type(body).__name__}")
        self.body = body
        #: Whether ``get_response`` sent the request (it sends it only once).
        self.sent_request = False
        super().__init__(application, scope)

    async def get_response(self, timeout: float = 1) -> dict[str, Any]:
        """Send the request and return ``{"status", "headers", "body"}``.

        Streamed bodies are joined; each wait is bounded by ``timeout``.  It
        then gives the application ``timeout`` to finish, so an exception it
        raises after responding fails the test instead of going unnoticed.
        """
        if not self.sent_request:
            self.sent_request = True
            await self.send_input({"type": "http.request", "body": self.body})
        start = await self.receive_output(timeout)
        if start["type"] != "http.response.start":
            raise AssertionError(f"Expected http.response.start, got {start!r}")
        chunks = []
        while True:
            part = await self.receive_output(timeout)
            if part["type"] != "http.response.body":
                raise AssertionError(f"Expected http.response.body, got {part!r}")
            chunks.append(part.get("body", b""))
            if not part.get("more_body", False):
                break
        try:
            await self.wait(timeout)
        except asyncio.TimeoutError:
            # Still running after a complete response (waiting for the
            # client to go away, say): Channels returns the response then,
            # and so do we; the application has been cancelled.
            pass
        # Any other keys of the start message (``trailers``, an extension's)
        # stay in the answer, as Channels' communicator leaves them.
        response = {key: value for key, value in start.items() if key != "type"}
        response["headers"] = list(start.get("headers", []))
        response["body"] = b"".join(chunks)
        return response
