"""runserver: its server pieces (the per-connection event queue, the lifespan client)
and, through real ``manage.py runserver`` processes, what it does when
``ASGI_APPLICATION`` cannot be imported."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from channels_app.lifespan import LifespanClient, LifespanFailed
from channels_app.routing import ProtocolTypeRouter
from channels_app.server import ConnectionEvents
from tests.compat import checks_typo
from tests.servers import free_port, wait_for_port


async def test_connection_events_hands_over_events_in_order():
    events = ConnectionEvents()
    events.put_nowait({"n": 1})
    events.put_nowait({"n": 2})
    assert [await events.get(), await events.get()] == [{"n": 1}, {"n": 2}]


async def test_connection_events_wakes_a_waiting_reader():
    events = ConnectionEvents()
    reader = asyncio.ensure_future(events.get())
    await asyncio.sleep(0)
    events.put_nowait({"type": "websocket.connect"})
    assert await asyncio.wait_for(reader, 1) == {"type": "websocket.connect"}


async def test_cancelled_reader_loses_nothing():
    events = ConnectionEvents()
    reader = asyncio.ensure_future(events.get())
    await asyncio.sleep(0)
    events.put_nowait({"n": 1})
    reader.cancel()  # before it ran to take the event
    with pytest.raises(asyncio.CancelledError):
        await reader
    assert await asyncio.wait_for(events.get(), 1) == {"n": 1}


def test_connection_events_is_truthy_even_when_empty():
    # Daphne tests "if self.application_queue:" before using it.
    assert ConnectionEvents()


async def test_lifespan_client_runs_the_routers_hooks():
    calls = []
    router = ProtocolTypeRouter(
        {}, on_startup=[lambda: calls.append("up")], on_shutdown=[calls.clear]
    )
    client = LifespanClient(router)
    await client.startup()
    assert calls == ["up"]
    await client.shutdown()
    assert calls == []


async def test_lifespan_client_reports_a_failing_hook():
    def broken():
        raise RuntimeError("no database")

    client = LifespanClient(ProtocolTypeRouter({}, on_startup=[broken]))
    with pytest.raises(LifespanFailed, match="no database"):
        await client.startup()


async def test_application_without_lifespan_support_is_served_anyway():
    async def http_only(scope, receive, send):
        if scope["type"] != "http":
            raise ValueError("only http here")

    client = LifespanClient(http_only)
    await client.startup()
    assert not client.supported
    await client.shutdown()  # nothing to do, no error


async def test_lifespan_client_gives_up_on_a_silent_application():
    async def silent(scope, receive, send):
        await asyncio.sleep(10)

    client = LifespanClient(silent, timeout=0.1)
    with pytest.raises(LifespanFailed, match="no answer"):
        await client.startup()


def wait_for_output(
    log: Path, process: subprocess.Popen, text: str, timeout: float = 60
) -> str:
    """The process's output once it contains ``text``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        output = log.read_text(errors="replace")
        if text in output:
            return output
        if process.poll() is not None:
            raise AssertionError(
                f"runserver exited without printing {text!r}:\n{output}"
            )
        time.sleep(0.05)
    raise AssertionError(f"runserver did not print {text!r} within {timeout}s")


@pytest.mark.e2e
def test_runserver_without_the_reloader_shows_the_real_import_error_and_fails(
    tmp_path,
):
    project = checks_typo.copy_to(tmp_path)
    routing = project / "checks_typo" / "routing.py"
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "runserver",
            "--noreload",
            f"127.0.0.1:{free_port()}",
        ],
        cwd=project,
        env=checks_typo.manage_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert (
        "CommandError: ASGI_APPLICATION 'checks_typo.asgi.application' cannot be "
        "imported" in result.stderr
    )
    assert f'File "{routing}", line {checks_typo.typo_line(routing)}' in result.stderr
    assert (
        "has no attribute 'ChatConsumr'. Did you mean: 'ChatConsumer'?" in result.stderr
    )


def start_runserver(project: Path, port: int, log: Path) -> subprocess.Popen:
    """``manage.py runserver`` with its autoreloader, in its own process group
    (so the reloader's child is stopped with it)."""
    with open(log, "wb") as output:
        return subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}"],
            cwd=project,
            # The reloader's debug log says when it watches a file.
            env=checks_typo.manage_env(CHECKS_TYPO_AUTORELOAD_LOG="1"),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_group(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.mark.e2e
def test_runserver_under_the_reloader_shows_the_error_then_starts_once_fixed(
    tmp_path,
):
    # As Django's runserver does for a broken URLconf: the real traceback is
    # printed and the server waits; saving the fix starts it.
    project = checks_typo.copy_to(tmp_path)
    routing = project / "checks_typo" / "routing.py"
    port = free_port()
    log = tmp_path / "runserver.log"
    process = start_runserver(project, port, log)
    try:
        printed = wait_for_output(
            log,
            process,
            "has no attribute 'ChatConsumr'. Did you mean: 'ChatConsumer'?",
        )
        assert f'File "{routing}", line {checks_typo.typo_line(routing)}' in printed
        assert "cannot be imported" in printed
        wait_for_output(log, process, f"File {routing.resolve()} first seen")
        assert process.poll() is None  # waiting for a fix, not gone
        routing.write_text(routing.read_text().replace("ChatConsumr", "ChatConsumer"))
        wait_for_port(port, process, timeout=60)
    finally:
        stop_group(process)


@pytest.mark.e2e
def test_runserver_under_the_reloader_restarts_when_a_library_raised_the_error(
    tmp_path,
):
    # A route name passed where path() takes its kwargs: Django raises the
    # TypeError in django/urls/conf.py, the file Django's own rule would
    # watch (the innermost frame's), and routing.py is not in sys.modules
    # since its import failed.  Saving the fix must restart the server all
    # the same.
    project = checks_typo.copy_to(tmp_path)
    routing = project / "checks_typo" / "routing.py"
    good = "consumers.ChatConsumr.as_asgi())"
    bad = 'consumers.ChatConsumer.as_asgi(), "chat")'
    line = checks_typo.typo_line(routing)
    routing.write_text(routing.read_text().replace(good, bad))
    port = free_port()
    log = tmp_path / "runserver.log"
    process = start_runserver(project, port, log)
    try:
        printed = wait_for_output(log, process, "kwargs argument must be a dict")
        assert f'File "{routing}", line {line}' in printed
        wait_for_output(log, process, f"File {routing.resolve()} first seen")
        fixed = 'consumers.ChatConsumer.as_asgi(), name="chat")'
        routing.write_text(routing.read_text().replace(bad, fixed))
        wait_for_port(port, process, timeout=60)
    finally:
        stop_group(process)
