"""ChannelsLiveServerTestCase: a real Daphne on the test database."""

import asyncio
import functools
import importlib
import socket
import unittest
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import websockets
from asgiref.sync import sync_to_async
from daphne.testing import DaphneProcess
from django.contrib.auth.models import User
from django.db import connections
from django.test import modify_settings, override_settings

from channels_app.testing import ChannelsLiveServerTestCase
from channels_app.testing.live import LiveServerProcess, make_application

STATIC_DIR = Path(__file__).resolve().parent / "live_static"


def live_project(test_case):
    """Serve tests/live_project.py, with static files from STATIC_DIR."""
    test_case = override_settings(
        ROOT_URLCONF="tests.live_project",
        ASGI_APPLICATION="tests.live_project.application",
        STATIC_URL="/static/",
        STATICFILES_DIRS=[STATIC_DIR],
    )(test_case)
    return modify_settings(INSTALLED_APPS={"append": "django.contrib.staticfiles"})(
        test_case
    )


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


@live_project
class LiveServerTests(ChannelsLiveServerTestCase):
    def test_urls_point_at_one_loopback_port(self):
        # "localhost", as in Channels and Django's live server test cases.
        assert self.live_server_url.startswith("http://localhost:")
        port = self.live_server_url.rsplit(":", 1)[1]
        assert self.live_server_ws_url == f"ws://localhost:{port}"

    def test_django_view_sees_rows_the_test_wrote(self):
        User.objects.create_user("ada")
        User.objects.create_user("grace")
        assert fetch(f"{self.live_server_url}/users/") == b"ada,grace"

    async def test_websocket_consumer_sees_the_test_database(self):
        await sync_to_async(User.objects.create_user)("linus")
        async with websockets.connect(f"{self.live_server_ws_url}/ws/users/") as ws:
            assert await ws.recv() == "linus"

    def test_each_test_starts_with_an_empty_database(self):
        # The other tests committed users; TransactionTestCase flushed them.
        assert fetch(f"{self.live_server_url}/users/") == b""

    def test_static_files_are_served(self):
        body = fetch(f"{self.live_server_url}/static/live/probe.txt")
        assert body == b"served by the live server\n"

    def test_test_client_and_live_server_share_the_database(self):
        User.objects.create_user("margaret", password="pw")
        assert self.client.login(username="margaret", password="pw")
        assert fetch(f"{self.live_server_url}/users/") == b"margaret"


@live_project
class LiveServerWithoutStaticFiles(ChannelsLiveServerTestCase):
    serve_static = False

    def test_static_urls_reach_the_application_instead(self):
        with pytest.raises(urllib.error.HTTPError) as caught:
            fetch(f"{self.live_server_url}/static/live/probe.txt")
        assert caught.value.code == 404


def test_in_memory_sqlite_is_refused_with_a_clear_message():
    class InMemory(ChannelsLiveServerTestCase):
        def test_nothing(self):
            raise AssertionError("must not run")

    connection = connections["default"]
    real_name = connection.settings_dict["NAME"]
    connection.settings_dict["NAME"] = ":memory:"
    try:
        result = unittest.TestResult()
        unittest.defaultTestLoader.loadTestsFromTestCase(InMemory).run(result)
    finally:
        connection.settings_dict["NAME"] = real_name
    [(_, error)] = result.errors
    assert "ImproperlyConfigured" in error
    assert "in-memory SQLite database 'default'" in error
    assert "TEST']['NAME'] a file path" in error


def started_server(**kwargs):
    """A LiveServerProcess for the current settings, started and ready."""
    server = LiveServerProcess(
        "127.0.0.1", functools.partial(make_application, static_wrapper=None), **kwargs
    )
    server.start()
    server.wait_until_ready(20)
    return server


@override_settings(ASGI_APPLICATION="tests.no_such_module.application")
def test_a_server_that_cannot_start_reports_why():
    with pytest.raises(RuntimeError) as caught:
        started_server()
    message = str(caught.value)
    assert "failed to start" in message
    assert "tests.no_such_module" in message  # The child's traceback.


@override_settings(ASGI_APPLICATION="tests.live_project.application")
def test_stopped_server_refuses_connections():
    server = started_server()
    assert server.ready.is_set()
    port = server.port.value
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    server.stop()
    assert not server.is_alive()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)
    server.stop()  # A second stop (a subclass's tearDownClass, say) is harmless.


@override_settings(ASGI_APPLICATION="tests.live_project.application")
def test_daphne_options_and_setup_reach_the_child(tmp_path):
    # Daphne's option (kwargs) shows in a response header; setup and
    # teardown run in the child, where they can only leave traces on disk.
    marker = tmp_path / "ran"
    server = started_server(
        kwargs={"server_name": "live-test"},
        setup=functools.partial(marker.write_text, "setup"),
    )
    try:
        # Any response carries the header; this one is a 404.
        with pytest.raises(urllib.error.HTTPError) as caught:
            fetch(f"http://127.0.0.1:{server.port.value}/no-such-page/")
        assert caught.value.headers["Server"] == "live-test"
    finally:
        server.stop()
    assert marker.read_text() == "setup"


@override_settings(
    ROOT_URLCONF="tests.live_project", ASGI_APPLICATION="tests.live_project.application"
)
@pytest.mark.django_db(transaction=True)
def test_servers_work_side_by_side_after_the_test_process_loaded_twisted():
    importlib.import_module("daphne.server")  # installs a Twisted reactor here

    User.objects.create_user("side")
    servers = [started_server() for _ in range(2)]
    ports = [server.port.value for server in servers]

    async def chat(port: int) -> list[str]:
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws/users/") as ws:
            return [await ws.recv()]

    async def both_at_once() -> list:
        return await asyncio.gather(*(chat(port) for port in ports for _ in range(20)))

    try:
        for port in ports:
            assert fetch(f"http://127.0.0.1:{port}/users/") == b"side"
        assert asyncio.run(both_at_once()) == [["side"]] * 40
    finally:
        for server in servers:
            server.stop()


@live_project
class LiveServerOnDaphnesTestingProcess(ChannelsLiveServerTestCase):
    """``ProtocolServerProcess`` replaced, as Channels allows, by another
    class with DaphneProcess's interface: here, Daphne's own."""

    ProtocolServerProcess = DaphneProcess

    def test_the_replacement_serves_the_test_database(self):
        assert isinstance(self._server_process, self.ProtocolServerProcess)
        User.objects.create_user("ada")
        assert fetch(f"{self.live_server_url}/users/") == b"ada"


def test_a_replacement_process_that_dies_is_reported_not_waited_for():
    @override_settings(ASGI_APPLICATION="tests.no_such_module.application")
    class Broken(ChannelsLiveServerTestCase):
        ProtocolServerProcess = DaphneProcess

        def test_nothing(self):
            raise AssertionError("must not run")

    result = unittest.TestResult()
    unittest.defaultTestLoader.loadTestsFromTestCase(Broken).run(result)
    [(_, error)] = result.errors
    assert "DaphneProcess) stopped before it was ready" in error
