"""The auth site (tests/authsite) under a real server, and a cookie-keeping client."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.error
import urllib.request
from http.cookiejar import CookieJar
from urllib.parse import urlencode

import websockets

from tests.servers import TESTPROJECT, ServerProcess, project_env, start_server

SETTINGS = "tests.authsite.settings"


def start_authsite(
    tmp_path, session_engine: str, kind: str = "daphne"
) -> ServerProcess:
    """``kind`` (Daphne, uvicorn) serving the auth site, with user ``alice``
    (password ``alice-pw``)."""
    engine = f"django.contrib.sessions.backends.{session_engine}"
    extra = {"DJANGO_SETTINGS_MODULE": SETTINGS, "AUTHSITE_SESSION_ENGINE": engine}
    server = start_server(
        kind, tmp_path, application="tests.authsite.asgi:application", **extra
    )
    subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "from django.contrib.auth.models import User; "
            "User.objects.create_user('alice', password='alice-pw')",
        ],
        cwd=TESTPROJECT,
        env=project_env(tmp_path, **extra),
        check=True,
    )
    return server


class Client:
    """A browser stand-in: urllib with a cookie jar, plus WebSocket handshakes."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.jar = CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar)
        )

    @property
    def origin(self) -> str:
        return self.server.url

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.jar if c.name == name), None)

    def cookie_header(self) -> str:
        return "; ".join(f"{c.name}={c.value}" for c in self.jar)

    def _request(self, path: str, data: dict | None = None) -> tuple[int, dict]:
        request = urllib.request.Request(self.server.url + path)
        if data is not None:
            request.data = urlencode(data).encode()
            request.add_header("X-CSRFToken", self.cookie("csrftoken") or "")
            request.add_header("Origin", self.origin)
        try:
            with self.opener.open(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    async def whoami(self) -> str | None:
        status, body = await asyncio.to_thread(self._request, "/whoami/")
        assert status == 200, body
        return body["user"]

    async def sync(self, ticket: str) -> tuple[int, dict]:
        return await asyncio.to_thread(
            self._request, "/session-sync/", {"ticket": ticket}
        )

    def websocket(self, path="/ws/account/", cookie: str | None = None, **kwargs):
        cookie = self.cookie_header() if cookie is None else cookie
        kwargs.setdefault("origin", self.origin)
        headers = [("Cookie", cookie)] if cookie else []
        return websockets.connect(
            self.server.ws_url + path, additional_headers=headers, **kwargs
        )


async def ask(ws, **content) -> dict:
    await ws.send(json.dumps(content))
    return json.loads(await asyncio.wait_for(ws.recv(), 10))
