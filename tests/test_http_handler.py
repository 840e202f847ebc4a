"""AsgiHandler: Django views over ASGI, with body limits and disconnect handling."""

import asyncio
import os
import subprocess
import sys

import pytest
from django.http import HttpResponse, StreamingHttpResponse
from django.urls import path

from channels_app.http import AsgiHandler
from channels_app.routing import ProtocolTypeRouter
from channels_app.testing import ApplicationCommunicator, HttpCommunicator
from tests.servers import ROOT

#: What the views saw, for the tests to inspect.
EVENTS: list = []
#: Lets a test hold a view or a stream at a known point.
GATES: dict[str, asyncio.Event] = {}


def echo_body(request):
    EVENTS.append(("echo", len(request.body)))
    return HttpResponse(b"got " + request.body, content_type="text/plain")


def upload(request):
    upload = request.FILES["file"]
    on_disk = hasattr(upload, "temporary_file_path")
    EVENTS.append(("upload", upload.size, on_disk))
    return HttpResponse(f"{upload.size} {'disk' if on_disk else 'memory'}")


async def slow(request):
    try:
        await GATES["slow"].wait()
    except asyncio.CancelledError:
        EVENTS.append("slow cancelled")
        raise
    return HttpResponse("finished")


async def stream(request):
    async def parts():
        try:
            yield b"first;"
            await GATES["stream"].wait()
            yield b"second"
        finally:
            EVENTS.append("stream closed")

    return StreamingHttpResponse(parts(), content_type="text/plain")


urlpatterns = [
    path("echo/", echo_body),
    path("upload/", upload),
    path("slow/", slow),
    path("stream/", stream),
]


@pytest.fixture(autouse=True)
def handler_settings(settings):
    settings.ROOT_URLCONF = __name__
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 500
    EVENTS.clear()
    GATES.clear()
    GATES.update(slow=asyncio.Event(), stream=asyncio.Event())


def header(response, name):
    return dict((k.lower(), v) for k, v in response["headers"])[name]


async def test_serves_a_view_through_a_protocol_type_router():
    app = ProtocolTypeRouter({"http": AsgiHandler()})
    comm = HttpCommunicator(app, "POST", "/echo/", body=b"hello")
    response = await comm.get_response()
    assert response["status"] == 200
    assert response["body"] == b"got hello"
    assert header(response, b"content-type") == b"text/plain"


async def test_unknown_path_is_djangos_404():
    response = await HttpCommunicator(AsgiHandler(), "GET", "/nowhere/").get_response()
    assert response["status"] == 404


async def test_body_sent_in_parts_reaches_the_view_whole():
    comm = HttpCommunicator(AsgiHandler(), "POST", "/echo/")
    await comm.send_input({"type": "http.request", "body": b"ab", "more_body": True})
    await comm.send_input({"type": "http.request", "body": b"cd"})
    start = await comm.receive_output(1)
    body = await comm.receive_output(1)
    assert (start["status"], body["body"]) == (200, b"got abcd")


async def test_body_at_the_limit_is_accepted():
    response = await HttpCommunicator(
        AsgiHandler(), "POST", "/echo/", body=b"x" * 1000
    ).get_response()
    assert response["status"] == 200
    assert EVENTS == [("echo", 1000)]


async def test_declared_oversized_body_is_refused_before_the_view_runs():
    comm = HttpCommunicator(
        AsgiHandler(),
        "POST",
        "/echo/",
        headers=[(b"content-length", b"5000"), (b"content-type", b"text/plain")],
    )
    # Nothing of the body is sent: the size alone decides.
    start = await comm.receive_output(1)
    assert start["status"] == 413
    assert b"too large" in (await comm.receive_output(1))["body"]
    assert EVENTS == []


async def test_chunked_oversized_body_is_refused_while_reading():
    comm = HttpCommunicator(AsgiHandler(), "POST", "/echo/")
    for _ in range(3):
        await comm.send_input(
            {"type": "http.request", "body": b"y" * 400, "more_body": True}
        )
    start = await comm.receive_output(1)
    assert start["status"] == 413
    await comm.receive_output(1)
    await comm.wait(1)
    assert EVENTS == []


def multipart(size: int) -> tuple[bytes, bytes]:
    boundary = b"boundary123"
    body = (
        b"--" + boundary + b"\r\n"
        b'Content-Disposition: form-data; name="file"; filename="big.bin"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n"
        + b"z" * size
        + b"\r\n--"
        + boundary
        + b"--\r\n"
    )
    return body, b"multipart/form-data; boundary=" + boundary


async def test_large_file_upload_is_spooled_to_disk_not_refused():
    body, content_type = multipart(20_000)
    comm = HttpCommunicator(
        AsgiHandler(),
        "POST",
        "/upload/",
        body=body,
        headers=[
            (b"content-type", content_type),
            (b"content-length", str(len(body)).encode()),
        ],
    )
    response = await comm.get_response()
    assert (response["status"], response["body"]) == (200, b"20000 disk")


async def test_client_disconnect_cancels_an_async_view():
    comm = HttpCommunicator(AsgiHandler(), "GET", "/slow/")
    await comm.send_input({"type": "http.request", "body": b""})
    await comm.receive_nothing(0.1)
    await comm.send_input({"type": "http.disconnect"})
    await comm.wait(1)
    assert EVENTS == ["slow cancelled"]
    assert await comm.receive_nothing(0.05)


async def test_view_that_finishes_answers_normally():
    comm = HttpCommunicator(AsgiHandler(), "GET", "/slow/")
    GATES["slow"].set()
    response = await comm.get_response()
    assert response["body"] == b"finished"
    assert EVENTS == []


async def test_streaming_response_streams_parts_as_they_are_produced():
    comm = HttpCommunicator(AsgiHandler(), "GET", "/stream/")
    await comm.send_input({"type": "http.request", "body": b""})
    assert (await comm.receive_output(1))["status"] == 200
    first = await comm.receive_output(1)
    # The first part arrived while the iterator is still blocked.
    assert (first["body"], first["more_body"]) == (b"first;", True)
    GATES["stream"].set()
    assert (await comm.receive_output(1))["body"] == b"second"
    assert (await comm.receive_output(1)).get("more_body", False) is False
    await comm.wait(1)
    assert EVENTS == ["stream closed"]


async def test_disconnect_mid_stream_closes_the_iterator():
    comm = ApplicationCommunicator(
        AsgiHandler(),
        {"type": "http", "method": "GET", "path": "/stream/", "headers": []},
    )
    await comm.send_input({"type": "http.request", "body": b""})
    await comm.receive_output(1)
    await comm.receive_output(1)
    await comm.send_input({"type": "http.disconnect"})
    await comm.wait(1)
    assert EVENTS == ["stream closed"]


def test_can_be_built_before_django_is_set_up():
    """A routing module may build the handler before ``django.setup()``."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    code = (
        "from channels_app.http import AsgiHandler\n"
        "from channels_app.routing import ProtocolTypeRouter\n"
        "ProtocolTypeRouter({'http': AsgiHandler()})\n"
        "print('built')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.stdout == "built\n", result.stderr
