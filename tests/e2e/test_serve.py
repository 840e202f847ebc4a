"""``manage.py serve`` as real processes: several servers, crashes, restarts, stops."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import urllib.error
import urllib.request

import pytest
import websockets

from tests.servers import free_port, wait_for_port
from tests.serving import E2EProject
from tests.support.waiting import eventually, eventually_sync

pytestmark = pytest.mark.e2e

SERVICE_RESTART = 1012


@pytest.fixture
def project(tmp_path):
    project = E2EProject(tmp_path, "redis")
    yield project
    project.stop_all()


def serve(project: E2EProject, *args: str):
    port = free_port()
    process = project.manage("serve", f"127.0.0.1:{port}", *args, port=port)
    wait_for_port(port, process.process)
    process.wait_for_log("Serving with")
    return process


def whoami(server, timeout: float = 10) -> int:
    """The pid of the server process that answered a fresh connection."""
    request = urllib.request.Request(
        f"{server.url}/e2e/whoami/", headers={"Connection": "close"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        assert response.status == 200
        pid: int = json.loads(response.read())["pid"]
        return pid


def pids_answering(server, wanted: int, limit: int = 400) -> set[int]:
    """Ask until ``wanted`` different processes have answered (or ``limit`` asks)."""
    seen: set[int] = set()
    for _ in range(limit):
        seen.add(whoami(server))
        if len(seen) >= wanted:
            break
    return seen


async def echo_once(url: str) -> str:
    async with websockets.connect(url) as ws:
        await ws.send("ping")
        return str(await asyncio.wait_for(ws.recv(), 10))


def test_two_processes_answer_http_and_websocket(project):
    server = serve(project, "--processes", "2")
    pids = pids_answering(server, 2)
    assert len(pids) == 2, f"only {pids} answered"
    assert os.getpid() not in pids and server.process.pid not in pids
    assert asyncio.run(echo_once(f"{server.ws_url}/ws/echo/")) == "ping"
    log = server.log()
    assert "Started server 1" in log and "Started server 2" in log


def test_a_killed_process_is_replaced_and_the_service_keeps_answering(project):
    server = serve(project, "--processes", "2")
    victim = whoami(server)
    os.kill(victim, signal.SIGKILL)
    # The socket belongs to the parent: while the victim is gone, the other
    # process takes every connection, and none is refused.
    answers = [whoami(server) for _ in range(20)]
    assert victim not in answers
    server.wait_for_log(
        f"(pid {victim}) exited unexpectedly with signal SIGKILL", timeout=10
    )
    server.wait_for_log("Started server", timeout=10)
    replaced = eventually_sync(
        lambda: len(pids := pids_answering(server, 2)) == 2 and pids, 30
    )
    assert victim not in replaced


def test_an_ipv6_address_is_served_by_every_process(project):
    port = free_port()
    server = project.manage("serve", f"[::1]:{port}", "--processes", "2", port=port)
    server.wait_for_log("Serving with", timeout=30)
    assert f"http://[::1]:{port}/" in server.log()
    url = f"http://[::1]:{port}/e2e/whoami/"

    def ask() -> int:
        request = urllib.request.Request(url, headers={"Connection": "close"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(json.loads(response.read())["pid"])

    seen: set[int] = set()
    for _ in range(400):
        seen.add(ask())
        if len(seen) == 2:
            break
    assert len(seen) == 2, f"only {seen} answered on [::1]"
    echoed = asyncio.run(echo_once(f"ws://[::1]:{port}/ws/echo/"))
    assert echoed == "ping"


def probe(port: int, path: str) -> tuple[int, dict]:
    """Status and JSON body of a health probe to the supervisor."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def by_name(report: dict) -> dict[str, dict]:
    return {process["name"]: process for process in report["processes"]}


def test_health_probes_report_every_process(project):
    health = free_port()
    server = serve(
        project, "--processes", "2", "--workers", "1", "--health-port", str(health)
    )
    status, report = probe(health, "/ready")
    assert status == 200, report
    assert report["ready"] and not report["degraded"] and not report["stopping"]
    processes = by_name(report)
    assert sorted(processes) == ["server 1", "server 2", "worker 1"]
    assert {p["state"] for p in processes.values()} == {"ready"}
    servers = {processes[f"server {n}"]["pid"] for n in (1, 2)}
    assert pids_answering(server, 2) == servers
    assert probe(health, "/live") == (
        200,
        {"alive": True, "supervisor_pid": server.process.pid},
    )
    assert probe(health, "/metrics")[0] == 404

    # One server killed: the tree still takes traffic, reported as degraded,
    # until the slot's new process is ready.
    victim = processes["server 1"]["pid"]
    os.kill(victim, signal.SIGKILL)
    degraded = eventually_sync(
        lambda: (r := probe(health, "/ready"))[1]["degraded"] and r, 10
    )
    assert degraded[0] == 200
    assert by_name(degraded[1])["server 1"]["state"] in ("down", "starting")
    healed = eventually_sync(
        lambda: (r := probe(health, "/ready")[1])["degraded"] is False and r, 30
    )
    replaced = by_name(healed)["server 1"]
    assert replaced["restarts"] == 1 and replaced["pid"] != victim

    # Stopping: not ready any more while the processes drain.
    slow = threading.Thread(
        target=urllib.request.urlopen,
        args=(f"{server.url}/e2e/slow/?seconds=1.5&mark=slow.log",),
        kwargs={"timeout": 20},
    )
    slow.start()
    project.wait_for_lines("slow.log", 1)
    os.kill(server.process.pid, signal.SIGTERM)
    stopping = eventually_sync(lambda: (r := probe(health, "/ready"))[0] == 503 and r)
    assert stopping[1]["stopping"] is True
    slow.join(20)
    assert server.process.wait(30) == 0


class HttpLoad(threading.Thread):
    """Requests on fresh connections, one after another, counting failures."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.done = threading.Event()
        self.answered = 0
        self.failures: list[str] = []

    def run(self) -> None:
        while not self.done.is_set():
            try:
                whoami_url = urllib.request.Request(
                    self.url, headers={"Connection": "close"}
                )
                with urllib.request.urlopen(whoami_url, timeout=10) as response:
                    response.read()
                self.answered += 1
            except (OSError, urllib.error.URLError) as exc:
                self.failures.append(repr(exc))


async def steady_client(url: str, restarted: asyncio.Event, report: dict) -> None:
    """Echo forever; on a close, note its code, reconnect, echo once more."""
    async with websockets.connect(url, open_timeout=20) as ws:
        report["connected"] = True
        try:
            while True:
                await ws.send("tick")
                assert await ws.recv() == "tick"
                await asyncio.sleep(0.05)  # a steady sender, not a flood
        except websockets.ConnectionClosed as closed:
            report["code"] = closed.rcvd.code if closed.rcvd else None
    await restarted.wait()
    report["echo_after"] = await echo_once(url)


def test_graceful_restart_under_load_fails_nothing(project):
    server = serve(project, "--processes", "2", "--drain-window", "2")
    before = pids_answering(server, 2)
    http = HttpLoad(f"{server.url}/e2e/whoami/")
    clients = 200

    async def scenario() -> list[dict]:
        restarted = asyncio.Event()
        reports: list[dict] = [{} for _ in range(clients)]
        tasks = [
            asyncio.create_task(
                steady_client(f"{server.ws_url}/ws/echo/", restarted, report)
            )
            for report in reports
        ]
        await eventually(lambda: all(r.get("connected") for r in reports), 60)
        http.start()
        await eventually(lambda: http.answered >= 20, 30)
        os.kill(server.process.pid, signal.SIGHUP)
        await eventually(lambda: all("code" in r for r in reports), 60)
        restarted.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
        return reports

    reports = asyncio.run(scenario())
    http.done.set()
    http.join(15)
    server.wait_for_log("Restarted: every slot has a new process")
    assert http.failures == [], http.failures[:5]
    assert http.answered > 20
    assert {r["code"] for r in reports} == {SERVICE_RESTART}
    assert all(r["echo_after"] == "ping" for r in reports)
    assert not pids_answering(server, 2) & before


def test_sigterm_finishes_in_flight_work_and_exits_0(project):
    server = serve(project, "--processes", "2", "--workers", "1")
    result: dict = {}

    def slow_request() -> None:
        url = f"{server.url}/e2e/slow/?seconds=1.5&mark=slow.log"
        with urllib.request.urlopen(url, timeout=20) as response:
            result["status"], result["body"] = response.status, response.read()

    # A task the worker is running, and a request a server process is running.
    urllib.request.urlopen(f"{server.url}/e2e/send/e2e-tasks/?n=3&seconds=1.5")
    project.wait_for_lines("e2e-tasks.log", 1)
    requester = threading.Thread(target=slow_request)
    requester.start()
    project.wait_for_lines("slow.log", 1)
    os.kill(server.process.pid, signal.SIGTERM)
    requester.join(20)
    assert result == {"status": 200, "body": b"too late\n"}
    assert server.process.wait(30) == 0
    assert project.lines("e2e-tasks.log") == ["start 3", "done 3"]
    log = server.log()
    assert "Stopping: draining 3 process(es)" in log
    assert log.count("stopped: code 0") == 3
