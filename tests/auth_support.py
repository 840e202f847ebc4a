"""Shared pieces of the session, auth and session-sync tests.

The fixtures that use them (``session_engine``, ``alice``, ``site``) are in
``tests/conftest.py``.  ``ENGINES`` are the real session engines a test runs
once each with: db on SQLite, db on PostgreSQL, cache on Redis, signed cookies
and files.  ``Browser`` keeps cookies the way a browser does across in-process
HTTP requests and WebSocket handshakes.
"""

from __future__ import annotations

import json
import uuid
from http.cookies import SimpleCookie
from urllib.parse import urlencode

import pytest
from django.conf import settings as django_settings

from channels_app.testing import HttpCommunicator, WebsocketCommunicator
from tests.services import REDIS_URL, require

ENGINES = {
    "db": "django.contrib.sessions.backends.db",
    "db-postgres": "django.contrib.sessions.backends.db",
    "cache-redis": "django.contrib.sessions.backends.cache",
    "signed_cookies": "django.contrib.sessions.backends.signed_cookies",
    "file": "django.contrib.sessions.backends.file",
}
SERVER_SIDE = [name for name in ENGINES if name != "signed_cookies"]

#: Give a test every database alias, so the PostgreSQL variant can use its own.
all_databases = pytest.mark.django_db(transaction=True, databases="__all__")


class OnPostgres:
    """Router sending every model to the ``postgres`` alias."""

    def db_for_read(self, model, **hints):
        return "postgres"

    db_for_write = db_for_read

    def allow_relation(self, *objects, **hints):
        return True

    def allow_migrate(self, db, app_label, **hints):
        return True


def use_session_engine(settings, name: str, tmp_path) -> None:
    """Point ``settings`` (pytest-django's fixture) at engine ``name``."""
    if name == "db-postgres":
        require("postgres")
        if "postgres" not in django_settings.DATABASES:
            pytest.skip("no 'postgres' database alias configured")
        settings.DATABASE_ROUTERS = ["tests.auth_support.OnPostgres"]
    elif name == "cache-redis":
        require("redis")
        settings.CACHES = {
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": REDIS_URL,
                "KEY_PREFIX": f"channels-app-auth-tests-{uuid.uuid4().hex}",
            }
        }
    elif name == "file":
        settings.SESSION_FILE_PATH = str(tmp_path)
    settings.SESSION_ENGINE = ENGINES[name]
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


class Browser:
    """Cookies kept across requests to one in-process ASGI application."""

    def __init__(self, application, origin: str = "http://testserver") -> None:
        self.application = application
        self.origin = origin
        self.cookies: dict[str, str] = {}

    def cookie_header(self) -> list[tuple[bytes, bytes]]:
        if not self.cookies:
            return []
        value = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        return [(b"cookie", value.encode("latin-1"))]

    def remember(self, headers) -> None:
        for name, value in headers:
            if name.lower() != b"set-cookie":
                continue
            parsed = SimpleCookie()
            parsed.load(value.decode("latin-1"))
            for key, morsel in parsed.items():
                if morsel["max-age"] == "0":
                    self.cookies.pop(key, None)
                else:
                    self.cookies[key] = morsel.value

    async def request(self, method: str, path: str, data=None, headers=()) -> dict:
        body = urlencode(data or {}).encode()
        extra = [(b"content-type", b"application/x-www-form-urlencoded")]
        if "csrftoken" in self.cookies:
            extra.append((b"x-csrftoken", self.cookies["csrftoken"].encode()))
        communicator = HttpCommunicator(
            self.application,
            method,
            path,
            body=body,
            headers=[*self.cookie_header(), *extra, *headers],
        )
        response = await communicator.get_response(timeout=10)
        self.remember(response["headers"])
        content_type = {n.lower(): v for n, v in response["headers"]}.get(
            b"content-type", b""
        )
        if content_type.startswith(b"application/json"):
            response["json"] = json.loads(response["body"])
        return response

    async def whoami(self) -> str | None:
        response = await self.request("GET", "/whoami/")
        assert response["status"] == 200, response
        return response["json"]["user"]

    async def sync(self, ticket: str) -> dict:
        return await self.request("POST", "/session-sync/", {"ticket": ticket})

    def websocket(self, path: str = "/ws/account/", cookies=None):
        cookie_header = self.cookie_header() if cookies is None else cookies
        return WebsocketCommunicator(
            self.application,
            path,
            headers=[(b"origin", self.origin.encode()), *cookie_header],
        )


async def ask(communicator, **content) -> dict:
    await communicator.send_json_to(content)
    return await communicator.receive_json_from(timeout=10)


def session_cookie_name() -> str:
    return django_settings.SESSION_COOKIE_NAME
