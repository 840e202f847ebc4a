"""Another port of the same host, through real Daphne and uvicorn servers.

A page served by some other service on the site's host (``:8080``, say) is
a different origin, yet ``AllowedHostsOriginValidator`` compares hosts only
and lets it open a socket with the user's cookies.  ``CsrfOriginValidator``,
which the demo's chat routes use, refuses it with HTTP 403.
"""

import asyncio
import json

import pytest
from websockets.exceptions import InvalidStatus

from tests.e2e.authsite_server import Client, ask, start_authsite
from tests.servers import free_port, start_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", params=["daphne", "uvicorn"])
def kind(request):
    return request.param


@pytest.fixture(scope="module")
def authsite(kind, tmp_path_factory):
    """``/ws/account/`` behind ``AllowedHostsOriginValidator``."""
    server = start_authsite(tmp_path_factory.mktemp(f"hosts-{kind}"), "db", kind)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def demo(kind, tmp_path_factory):
    """The demo project: ``/ws/account/`` behind ``CsrfOriginValidator``."""
    server = start_server(kind, tmp_path_factory.mktemp(f"csrf-{kind}"))
    yield server
    server.stop()


def other_port(server):
    port = free_port()
    assert port != server.port
    return port


async def refused_status(client, **kwargs):
    with pytest.raises(InvalidStatus) as refused:
        async with client.websocket(**kwargs):
            pass
    return refused.value.response.status_code


async def test_allowed_hosts_validator_gives_another_port_the_users_socket(authsite):
    client = Client(authsite)
    await client.whoami()  # A session cookie, as a visitor would have.
    async with client.websocket() as ws:
        reply = await ask(ws, action="login", username="alice", password="alice-pw")
    assert (await client.sync(reply["ticket"]))[0] == 200
    # A page of another service on the same host opens the socket ...
    elsewhere = f"http://127.0.0.1:{other_port(authsite)}"
    async with client.websocket(origin=elsewhere) as ws:
        # ... and acts as the signed-in user.
        assert await ask(ws, action="whoami") == {"user": "alice"}


async def test_csrf_validator_refuses_another_port_with_403(demo):
    client = Client(demo)
    elsewhere = f"http://127.0.0.1:{other_port(demo)}"
    assert await refused_status(client, origin=elsewhere) == 403
    log = demo.log()
    assert f"from origin '{elsewhere}'" in log
    assert f"own origin is http://127.0.0.1:{demo.port}" in log


@pytest.mark.parametrize(
    "origin",
    [
        "https://127.0.0.1:{port}",  # Same host and port, another scheme.
        "http://localhost:{port}",  # In ALLOWED_HOSTS, but not this page's host.
        "null",
        None,
    ],
)
async def test_csrf_validator_refuses_other_origins(demo, origin):
    origin = origin and origin.format(port=demo.port)
    assert await refused_status(Client(demo), origin=origin) == 403


async def test_csrf_validator_admits_the_sites_own_pages(demo):
    client = Client(demo)
    assert client.origin == f"http://127.0.0.1:{demo.port}"
    async with client.websocket() as ws:
        await ws.send(json.dumps({"type": "hello"}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10)) == {
            "type": "error",
            "error": "Expected a login.",
        }
