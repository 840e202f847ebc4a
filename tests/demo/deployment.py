"""The demo run as real processes, and a browser-like client for it.

Each :class:`DemoDeployment` is the testproject with one set of the
environment variables the README documents, started with the very commands
the tutorial shows (:data:`MIGRATE`, :data:`RUNSERVER`, :data:`RUNWORKER`).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import urllib.parse
import urllib.request
import uuid
from http.cookiejar import CookieJar
from pathlib import Path

import websockets

from tests.servers import TESTPROJECT, free_port, project_env, wait_for_port
from tests.serving import ProjectProcess

#: The commands the tutorial's deployment step tells readers to run.
MIGRATE = ["manage.py", "migrate"]
RUNSERVER = ["manage.py", "runserver", "--noworker"]
RUNWORKER = ["manage.py", "runworker", "chat-moderation"]
#: ``make demo``: one process, the moderation worker inside the server.
RUNSERVER_WITH_WORKER = ["manage.py", "runserver"]
#: The environment of each multi-process set-up the README and tutorial show.
SHARED_LAYER_SETUPS = {
    "database": {"DEMO_DATABASE": "postgres", "DEMO_CHANNEL_LAYER": "database"},
    "redis": {"DEMO_CHANNEL_LAYER": "redis"},
}

PASSWORD = "a-long-pass-42"


def own_redis_prefix(tmp_path: Path, pythonpath: str) -> dict[str, str]:
    """Environment for the demo's settings plus a channels_redis key prefix of
    this deployment's own.

    The demo's settings leave channels_redis at its default prefix ("asgi"),
    so two test runs on one machine would share each other's messages and
    groups.  A settings module in ``tmp_path`` imports the demo's and changes
    only the prefix; the processes are still started with the tutorial's
    commands and the documented variables.
    """
    prefix = f"demo{uuid.uuid4().hex[:10]}"
    (tmp_path / "demo_run_settings.py").write_text(
        "from testproject.settings import *  # noqa: F403\n\n"
        f'CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = {prefix!r}  # noqa: F405\n'
    )
    return {
        # The streams' and presence's keys (a documented variable).
        "DEMO_REDIS_PREFIX": f"{prefix}:",
        "DJANGO_SETTINGS_MODULE": "demo_run_settings",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), pythonpath]),
    }


class DemoDeployment:
    """The demo project with the given environment, started process by process."""

    def __init__(self, tmp_path: Path, **env: str) -> None:
        self.tmp_path = tmp_path
        self.env = project_env(
            tmp_path,
            DEMO_PRESENCE_LEASE="1.5",
            **env,
        )
        if self.env.get("DEMO_CHANNEL_LAYER") == "redis":
            self.env.update(own_redis_prefix(tmp_path, self.env["PYTHONPATH"]))
        self.processes: list[ProjectProcess] = []
        subprocess.run(
            [sys.executable, *MIGRATE, "--noinput", "-v0"],
            cwd=TESTPROJECT,
            env=self.env,
            check=True,
        )

    def _start(self, args: list[str], port: int = 0) -> ProjectProcess:
        name = f"{args[1]}-{len(self.processes)}"
        process = ProjectProcess(
            [sys.executable, *args], port, self.tmp_path / f"{name}.log", self.env
        )
        self.processes.append(process)
        return process

    def runserver(self, command: list[str] = RUNSERVER) -> ProjectProcess:
        port = free_port()
        server = self._start([*command, "--noreload", f"127.0.0.1:{port}"], port)
        wait_for_port(port, server.process)
        return server

    def runworker(self) -> ProjectProcess:
        worker = self._start(RUNWORKER)
        worker.wait_for_log("Running worker for channels")
        return worker

    def logs(self) -> str:
        return "\n".join(f"--- {p.log_path.name}\n{p.log()}" for p in self.processes)

    def stop(self) -> None:
        for process in self.processes:
            if not process._log.closed:
                process.stop()


class Visitor:
    """One person with a cookie jar: signs up over HTTP, chats over WebSocket."""

    def __init__(self, server: ProjectProcess) -> None:
        self.server = server
        self.cookies = CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.cookies)
        )

    def _csrf_from(self, path: str) -> str:
        with self.opener.open(f"{self.server.url}{path}", timeout=10) as response:
            page = response.read().decode()
        return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1]

    def post_form(self, path: str, fields: dict) -> str:
        """Submit the form on ``path``; return the final URL's path."""
        data = {"csrfmiddlewaretoken": self._csrf_from(path), **fields}
        request = urllib.request.Request(
            f"{self.server.url}{path}",
            data=urllib.parse.urlencode(data).encode(),
        )
        with self.opener.open(request, timeout=10) as response:
            return urllib.parse.urlsplit(response.url).path

    def sign_up(self, username: str) -> None:
        landed = self.post_form(
            "/accounts/signup/",
            {"username": username, "password1": PASSWORD, "password2": PASSWORD},
        )
        assert landed == "/", f"sign-up of {username} ended on {landed}"

    def create_room(self, title: str) -> str:
        return self.post_form("/", {"title": title})

    def page(self, path: str) -> str:
        with self.opener.open(f"{self.server.url}{path}", timeout=10) as response:
            return response.read().decode()

    def connect(self, path: str):
        cookie = "; ".join(f"{c.name}={c.value}" for c in self.cookies)
        return websockets.connect(
            f"{self.server.ws_url}{path}",
            origin=self.server.url,
            additional_headers={"Cookie": cookie},
        )


class RoomSocket:
    """A room's WebSocket read as the page's stream client reads it.

    Every frame goes through :meth:`frame`, which keeps who is present (from
    the ``presence.*`` frames) and the last stream position, so waiting for
    one kind of frame never loses track of the others.
    """

    def __init__(self, ws) -> None:
        self.ws = ws
        self.present: set[str] = set()
        self.position: dict | None = None

    async def frame(self, timeout: float = 10) -> dict:
        event = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        kind = event["type"]
        if kind == "presence.state":
            self.present = set(event["members"])
        elif kind == "presence.join":
            self.present.add(event["user"])
        elif kind == "presence.leave":
            self.present.discard(event["user"])
        elif kind == "stream.message":
            self.position = {"epoch": event["epoch"], "offset": event["offset"]}
        elif kind == "ping":  # the server asks if the page is there; it is
            await self.ws.send(json.dumps({"type": "pong"}))
        return event

    async def next_event(self, kind: str, timeout: float = 10) -> dict:
        """The next frame of type ``kind``, the others followed and skipped."""

        async def wait():
            while (event := await self.frame(timeout))["type"] != kind:
                pass
            return event

        return await asyncio.wait_for(wait(), timeout)

    async def next_message(self, timeout: float = 10) -> dict:
        return (await self.next_event("stream.message", timeout))["data"]

    async def presence_becomes(self, users: list[str], timeout: float = 10) -> None:
        async def wait():
            while sorted(self.present) != users:
                await self.frame(timeout)

        await asyncio.wait_for(wait(), timeout)

    async def subscribe(self, slug: str, since: dict | None = None) -> dict:
        frame = {"type": "stream.subscribe", "stream": f"chat.{slug}"}
        if since is not None:
            frame["since"] = since
        await self.ws.send(json.dumps(frame))
        return await self.next_event("stream.subscribed")

    async def post(self, text: str) -> None:
        await self.ws.send(json.dumps({"type": "message", "text": text}))
