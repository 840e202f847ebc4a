"""CookieMiddleware and SessionMiddleware with real session engines."""

import datetime
import logging
import time
from http.cookies import SimpleCookie
from importlib import import_module

import pytest
from django.conf import settings as django_settings

from channels_app.db import database_sync_to_async
from channels_app.sessions import (
    CookieMiddleware,
    InstanceSessionWrapper,
    SessionMiddleware,
    SessionMiddlewareStack,
)
from channels_app.testing import HttpCommunicator, WebsocketCommunicator
from tests.auth_support import all_databases


async def cookies_seen(headers):
    seen = {}

    async def app(scope, receive, send):
        seen.update(scope["cookies"])

    await CookieMiddleware(app)({"type": "http", "headers": headers}, None, None)
    return seen


def set_cookie_headers(headers):
    """The cookies a response sets, as Morsels by name."""
    cookies = {}
    for name, value in headers:
        if name == b"set-cookie":
            parsed = SimpleCookie()
            parsed.load(value.decode("latin-1"))
            cookies.update(parsed)
    return cookies


# --- CookieMiddleware -------------------------------------------------------


async def test_cookie_header_becomes_scope_cookies():
    assert await cookies_seen([(b"cookie", b'a=1; b=two; c="quoted"')]) == {
        "a": "1",
        "b": "two",
        "c": "quoted",
    }


async def test_no_cookie_header_gives_empty_cookies():
    assert await cookies_seen([(b"host", b"example.com")]) == {}


async def test_cookie_headers_split_over_several_lines_are_joined():
    # HTTP/2 lets clients send one cookie header per cookie.
    headers = [(b"cookie", b"a=1"), (b"cookie", b"b=2")]
    assert await cookies_seen(headers) == {"a": "1", "b": "2"}


@pytest.mark.parametrize(
    "header",
    [
        b"=;;;  ; =x; a",
        b'a="unterminated; b=2',
        b"\xff\xfe=\x00\x01; b=2",
        b";" * 1000,
        b"a=1; a=2; b=2",
    ],
)
async def test_malformed_cookie_header_never_raises(header):
    cookies = await cookies_seen([(b"cookie", header)])
    assert isinstance(cookies, dict)
    assert all(isinstance(v, str) for v in cookies.values())


async def test_oversized_cookie_header_is_ignored_and_logged(caplog):
    header = b"sessionid=abcdefgh12345678; junk=" + b"x" * 9000
    with caplog.at_level(logging.WARNING, logger="channels_app.sessions"):
        assert await cookies_seen([(b"cookie", header)]) == {}
    [record] = caplog.records
    assert "Cookie header" in record.getMessage()
    assert record.exc_info is None


async def test_cookie_header_at_the_limit_is_parsed():
    value = b"a=" + b"x" * (CookieMiddleware.max_header_size - 2)
    assert await cookies_seen([(b"cookie", value)]) == {"a": "x" * 8190}


async def test_cookie_middleware_refuses_scope_without_headers():
    with pytest.raises(ValueError, match="headers"):
        await CookieMiddleware(None)({"type": "lifespan"}, None, None)


# --- set_cookie / delete_cookie ---------------------------------------------


def cookie_from(message, key="k"):
    return set_cookie_headers(message["headers"])[key]


def test_set_cookie_adds_a_header_and_keeps_the_others():
    message = {"type": "http.response.start", "headers": [(b"x-a", b"1")]}
    CookieMiddleware.set_cookie(message, "k", "v", httponly=True, secure=True)
    assert message["headers"][0] == (b"x-a", b"1")
    morsel = cookie_from(message)
    assert morsel.value == "v"
    assert morsel["httponly"] is True
    assert morsel["secure"] is True
    assert morsel["samesite"] == "lax"
    assert morsel["path"] == "/"


def test_set_cookie_with_an_aware_datetime_in_another_zone():
    # Channels 4 crashes here (timezone.utc is gone from Django 5).
    zone = datetime.timezone(datetime.timedelta(hours=5, minutes=30))
    expires = datetime.datetime.now(zone) + datetime.timedelta(hours=1)
    message = {"type": "http.response.start"}
    CookieMiddleware.set_cookie(message, "k", "v", expires=expires)
    morsel = cookie_from(message)
    assert 3595 <= int(morsel["max-age"]) <= 3601
    sent = datetime.datetime.strptime(morsel["expires"], "%a, %d %b %Y %H:%M:%S GMT")
    sent = sent.replace(tzinfo=datetime.timezone.utc)
    assert abs((sent - expires).total_seconds()) <= 2


def test_set_cookie_with_a_naive_utc_datetime_and_a_timedelta():
    naive_utc = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    message = {"type": "http.response.start"}
    CookieMiddleware.set_cookie(
        message, "k", expires=naive_utc + datetime.timedelta(minutes=10)
    )
    assert 595 <= int(cookie_from(message)["max-age"]) <= 601
    CookieMiddleware.set_cookie(
        message, "t", max_age=datetime.timedelta(seconds=90), samesite=None
    )
    morsel = cookie_from(message, "t")
    assert morsel["max-age"] == "90"
    assert morsel["samesite"] == ""


def test_set_cookie_passes_an_expires_string_through():
    message = {"type": "http.response.start"}
    when = "Wed, 21 Oct 2037 07:28:00 GMT"
    CookieMiddleware.set_cookie(message, "k", expires=when, domain=".example.com")
    morsel = cookie_from(message)
    assert morsel["expires"] == when
    assert morsel["domain"] == ".example.com"


def test_set_cookie_refuses_an_unknown_samesite():
    with pytest.raises(ValueError, match="samesite"):
        CookieMiddleware.set_cookie({}, "k", samesite="sometimes")


def test_delete_cookie_expires_it_in_the_past():
    message = {"type": "http.response.start"}
    CookieMiddleware.delete_cookie(message, "k", path="/app/", domain="example.com")
    morsel = cookie_from(message)
    assert morsel["max-age"] == "0"
    assert "1970" in morsel["expires"]
    assert morsel["path"] == "/app/"
    assert morsel.value == ""


# --- SessionMiddleware over HTTP --------------------------------------------


def session_action_app(action, status=200, headers=()):
    """A tiny HTTP app answering with the result of ``action(session)``."""

    async def app(scope, receive, send):
        await receive()
        result = await database_sync_to_async(action)(scope["session"])
        await send(
            {"type": "http.response.start", "status": status, "headers": list(headers)}
        )
        await send({"type": "http.response.body", "body": repr(result).encode()})

    return app


def http_app(action, status=200, headers=()):
    """SessionMiddlewareStack around ``session_action_app``."""
    return SessionMiddlewareStack(session_action_app(action, status, headers))


async def http_request(application, cookie=None):
    headers = [(b"cookie", cookie.encode())] if cookie else []
    return await HttpCommunicator(
        application, "GET", "/", headers=headers
    ).get_response(timeout=10)


def set_value(session):
    session["n"] = session.get("n", 0) + 1
    return session["n"]


def read_value(session):
    return session.get("n")


def flush(session):
    session.flush()


def untouched(session):
    return None


def load_session(key):
    store = import_module(django_settings.SESSION_ENGINE).SessionStore(key)
    return dict(store.items())


@all_databases
async def test_http_session_round_trip_on_every_engine(session_engine):
    first = await http_request(http_app(set_value))
    morsel = set_cookie_headers(first["headers"])["sessionid"]
    assert morsel["httponly"] is True
    assert (b"vary", b"Cookie") in first["headers"]
    key = morsel.value
    assert (await database_sync_to_async(load_session)(key))["n"] == 1

    second = await http_request(http_app(set_value), cookie=f"sessionid={key}")
    assert second["body"] == b"2"
    if session_engine != "signed_cookies":
        # The key stays; the data behind it changes.
        assert set_cookie_headers(second["headers"])["sessionid"].value == key

    read = await http_request(
        http_app(read_value),
        cookie=f"sessionid={set_cookie_headers(second['headers'])['sessionid'].value}",
    )
    assert read["body"] == b"2"
    assert "sessionid" not in set_cookie_headers(read["headers"])


@pytest.mark.django_db(transaction=True)
async def test_session_cookie_follows_the_settings(settings):
    settings.SESSION_COOKIE_NAME = "sid"
    settings.SESSION_COOKIE_PATH = "/app/"
    settings.SESSION_COOKIE_DOMAIN = ".example.com"
    settings.SESSION_COOKIE_SECURE = True
    settings.SESSION_COOKIE_HTTPONLY = False
    settings.SESSION_COOKIE_SAMESITE = "Strict"
    settings.SESSION_COOKIE_AGE = 120
    response = await http_request(http_app(set_value))
    morsel = set_cookie_headers(response["headers"])["sid"]
    assert morsel["path"] == "/app/"
    assert morsel["domain"] == ".example.com"
    assert morsel["secure"] is True
    assert morsel["httponly"] == ""
    assert morsel["samesite"] == "Strict"
    assert morsel["max-age"] == "120"


@pytest.mark.django_db(transaction=True)
async def test_expire_at_browser_close_sets_a_session_cookie(settings):
    settings.SESSION_EXPIRE_AT_BROWSER_CLOSE = True
    response = await http_request(http_app(set_value))
    morsel = set_cookie_headers(response["headers"])["sessionid"]
    assert morsel["max-age"] == ""
    assert morsel["expires"] == ""


@pytest.mark.django_db(transaction=True)
async def test_server_error_response_saves_nothing():
    from django.contrib.sessions.models import Session

    response = await http_request(http_app(set_value, status=500))
    assert response["status"] == 500
    assert "sessionid" not in set_cookie_headers(response["headers"])
    assert await database_sync_to_async(Session.objects.count)() == 0


@pytest.mark.django_db(transaction=True)
async def test_untouched_session_leaves_the_response_alone():
    first = await http_request(http_app(set_value))
    key = set_cookie_headers(first["headers"])["sessionid"].value
    response = await http_request(http_app(untouched), cookie=f"sessionid={key}")
    assert response["headers"] == []  # No Set-Cookie, no Vary: caches stay shared.


@pytest.mark.django_db(transaction=True)
async def test_save_every_request_refreshes_the_cookie(settings):
    first = await http_request(http_app(set_value))
    key = set_cookie_headers(first["headers"])["sessionid"].value
    settings.SESSION_SAVE_EVERY_REQUEST = True
    response = await http_request(http_app(read_value), cookie=f"sessionid={key}")
    assert set_cookie_headers(response["headers"])["sessionid"].value == key


@pytest.mark.django_db(transaction=True)
async def test_flushed_session_deletes_the_cookie():
    first = await http_request(http_app(set_value))
    key = set_cookie_headers(first["headers"])["sessionid"].value
    response = await http_request(http_app(flush), cookie=f"sessionid={key}")
    morsel = set_cookie_headers(response["headers"])["sessionid"]
    assert morsel["max-age"] == "0"
    assert await database_sync_to_async(load_session)(key) == {}


@pytest.mark.django_db(transaction=True)
async def test_vary_cookie_is_merged_into_an_existing_vary():
    response = await http_request(
        http_app(set_value, headers=[(b"vary", b"Accept-Encoding")])
    )
    assert (b"vary", b"Accept-Encoding, Cookie") in response["headers"]
    assert [n for n, _ in response["headers"]].count(b"vary") == 1


@all_databases
@pytest.mark.filterwarnings("ignore::django.core.cache.backends.base.CacheKeyWarning")
@pytest.mark.parametrize(
    "cookie",
    [
        "sessionid=short",
        "sessionid=" + "z" * 500,
        "sessionid=../../etc/passwd",
        "sessionid=nul\x00inside-the-key",
        "sessionid=ünïcode-key-value",
    ],
)
async def test_unusable_session_keys_give_an_empty_session(
    session_engine,
    cookie,
    caplog,
):
    response = await http_request(http_app(read_value), cookie=cookie)
    assert response["status"] == 200
    assert response["body"] == b"None"
    assert not [r for r in caplog.records if r.exc_info]


async def test_outer_session_middleware_wins():
    seen = []

    async def app(scope, receive, send):
        seen.append(scope["session"])

    inner = SessionMiddlewareStack(app)
    outer = SessionMiddlewareStack(inner)
    scope = {"type": "websocket", "headers": [(b"cookie", b"sessionid=abcdefgh1234")]}
    await outer(scope, None, None)
    [session] = seen
    assert session.session_key == "abcdefgh1234"
    marker = object()
    await SessionMiddlewareStack(app)({**scope, "session": marker}, None, None)
    assert seen[-1] is marker


async def test_session_middleware_needs_cookie_middleware():
    with pytest.raises(ValueError, match="CookieMiddleware"):
        await SessionMiddleware(None)({"type": "http", "headers": []}, None, None)


# --- InstanceSessionWrapper -------------------------------------------------


class KeyFromHeader(InstanceSessionWrapper):
    """Picks the session from an ``x-session`` header, as projects built on
    Channels do by overriding ``resolve_session``."""

    async def resolve_session(self):
        headers = dict(self.scope["headers"])
        key = headers.get(b"x-session", b"").decode() or None
        self.scope["session"]._wrapped = await database_sync_to_async(
            self.session_store
        )(key)


class HeaderSessionMiddleware(SessionMiddleware):
    async def __call__(self, scope, receive, send):
        wrapper = KeyFromHeader(scope, send)
        await wrapper.resolve_session()
        return await self.inner(wrapper.scope, receive, wrapper.send)


@pytest.mark.django_db(transaction=True)
async def test_a_wrapper_subclass_chooses_the_session_and_still_saves_it():
    first = await http_request(http_app(set_value))
    key = set_cookie_headers(first["headers"])["sessionid"].value

    application = CookieMiddleware(
        HeaderSessionMiddleware(session_action_app(set_value))
    )
    response = await HttpCommunicator(
        application, "GET", "/", headers=[(b"x-session", key.encode())]
    ).get_response(timeout=10)
    assert response["body"] == b"2"
    assert set_cookie_headers(response["headers"])["sessionid"].value == key
    assert (await database_sync_to_async(load_session)(key))["n"] == 2


async def test_wrapper_passes_an_existing_session_through():
    sent = []

    async def send(message):
        sent.append(message)

    marker = object()
    wrapper = InstanceSessionWrapper({"type": "http", "session": marker}, send)
    assert wrapper.activated is False
    assert wrapper.scope["session"] is marker
    await wrapper.send({"type": "http.response.start", "status": 200})
    assert sent == [{"type": "http.response.start", "status": 200}]


def test_wrapper_needs_cookies():
    with pytest.raises(ValueError, match="CookieMiddleware"):
        InstanceSessionWrapper({"type": "http", "headers": []}, None)


# --- SessionMiddleware over WebSocket ---------------------------------------


class SessionSocket:
    """Raw WebSocket app: 'get' reads, 'bump' changes, 'save' saves the session."""

    def __init__(self):
        self.application = SessionMiddlewareStack(self)

    async def __call__(self, scope, receive, send):
        session = scope["session"]
        while True:
            message = await receive()
            if message["type"] == "websocket.connect":
                await send({"type": "websocket.accept"})
            elif message["type"] == "websocket.receive":
                if message["text"] == "get":
                    reply = await session.aget("n")  # First read: loads in a thread.
                elif message["text"] == "bump":
                    reply = await database_sync_to_async(set_value)(session)
                else:
                    await session.asave()
                    reply = session.session_key
                await send({"type": "websocket.send", "text": str(reply)})
            else:
                return


@all_databases
async def test_websocket_session_is_saved_only_when_asked(session_engine):
    first = await http_request(http_app(set_value))
    key = set_cookie_headers(first["headers"])["sessionid"].value
    communicator = WebsocketCommunicator(
        SessionSocket().application,
        "/",
        headers=[(b"cookie", f"sessionid={key}".encode())],
    )
    assert (await communicator.connect(timeout=10))[0]
    await communicator.send_to("get")
    assert await communicator.receive_from(timeout=10) == "1"
    await communicator.send_to("bump")
    assert await communicator.receive_from(timeout=10) == "2"
    # Not saved yet: HTTP still sees the old value.
    stale = await http_request(http_app(read_value), cookie=f"sessionid={key}")
    assert stale["body"] == b"1"

    await communicator.send_to("save")
    saved_key = await communicator.receive_from(timeout=10)
    await communicator.disconnect()
    if session_engine == "signed_cookies":
        assert saved_key != key  # The data is the key; the browser needs a sync.
    else:
        assert saved_key == key
    fresh = await http_request(http_app(read_value), cookie=f"sessionid={saved_key}")
    assert fresh["body"] == b"2"


def test_session_cookie_age_is_used_for_expiry(settings):
    from channels_app.sessions import session_cookie_options

    settings.SESSION_COOKIE_AGE = 300
    store = import_module(django_settings.SESSION_ENGINE).SessionStore()
    options = session_cookie_options(store)
    assert options["max_age"] == 300
    assert (
        abs(
            datetime.datetime.strptime(options["expires"], "%a, %d %b %Y %H:%M:%S GMT")
            .replace(tzinfo=datetime.timezone.utc)
            .timestamp()
            - (time.time() + 300)
        )
        <= 2
    )
