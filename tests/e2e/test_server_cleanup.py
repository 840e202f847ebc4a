"""The server keeps cleaning up after applications, whatever one of them raised.

Daphne's periodic checker stops for good when one crashed HTTP response can
no longer be answered with a 500; crashed consumers then stay open as zombie
sockets.  Our runserver's server must not inherit that.
"""

import asyncio
import http.client

import pytest
import websockets

from tests.serving import E2EProject

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    project = E2EProject(tmp_path_factory.mktemp("cleanup"), "memory")
    yield project.runserver()
    project.stop_all()


def read_failing_stream(port: int) -> bytes:
    """What a client gets from a response whose application raised mid-way."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/fail-mid-response/")
        response = connection.getresponse()
        assert response.status == 200
        with pytest.raises((http.client.IncompleteRead, ConnectionError)) as caught:
            response.read()
    finally:
        connection.close()
    error = caught.value
    return error.partial if isinstance(error, http.client.IncompleteRead) else b""


async def test_a_response_that_fails_after_starting_is_aborted(server):
    # The client is not left waiting for the rest: the connection is cut.
    partial = await asyncio.to_thread(read_failing_stream, server.port)
    assert partial in (b"", b"first part\n")
    server.wait_for_log("no error response could be sent")


async def test_crashed_consumers_are_still_closed_after_such_a_failure(server):
    for _ in range(2):
        await asyncio.to_thread(read_failing_stream, server.port)
    # Each crash below is noticed by the periodic checker, which must still run.
    for attempt in range(3):
        async with websockets.connect(f"{server.ws_url}/ws/crash/") as ws:
            await ws.send(f"frame {attempt}")
            with pytest.raises(websockets.ConnectionClosedError):
                await asyncio.wait_for(ws.recv(), 10)
            assert ws.close_code == 1011
    log = server.log()
    assert log.count("RuntimeError: crashed on 'frame") == 3
    assert "Could not clean up connection" not in log
