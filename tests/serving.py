"""Helpers shared by the serving tests (worker, sync send, runserver/runworker)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from tests.servers import (
    ServerProcess,
    free_port,
    migrate,
    project_env,
    wait_for_port,
)
from tests.services import PG, REDIS_URL, require


def redis_layers(prefix: str | None = None, **config) -> dict:
    """A ``CHANNEL_LAYERS`` value using channels_redis on the test Redis.

    Each call gets its own key prefix unless one is given, so tests sharing
    the Redis database cannot see each other's messages.
    """
    require("redis")
    return {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [REDIS_URL],
                "prefix": prefix or f"t{uuid.uuid4().hex[:10]}",
                **config,
            },
        }
    }


# -- end-to-end: manage.py runserver / runworker as real processes -------------

E2E_SETTINGS = "testproject.serving_e2e.settings"


class ProjectProcess(ServerProcess):
    """A ``manage.py`` command in its own process group.

    The group matters for ``runserver`` with the autoreloader, which runs the
    server in a child process: signalling the group reaches both.
    """

    def __init__(self, args: list[str], port: int, log_path: Path, env: dict):
        super().__init__(args, port, log_path, env, process_group=True)

    def send_signal(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)

    def wait(self, timeout: float = 15) -> int:
        return self.process.wait(timeout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        self.send_signal(sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.send_signal(signal.SIGKILL)
            self.process.wait()
        self._log.close()
        return self.process.returncode

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"exited with {self.process.returncode}:\n{self.log()}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{text!r} not logged within {timeout}s:\n{self.log()}"
                )
            time.sleep(0.05)


class E2EProject:
    """The serving test project in a temporary directory, with one layer setup.

    Every process it starts shares the database, the layer (a fresh Redis key
    prefix per project) and the output directory consumers write to.
    """

    def __init__(self, tmp_path: Path, layer: str, **env: str) -> None:
        if layer == "redis":
            require("redis")
        self.database: str | None = None
        if layer == "postgres":
            self.database = create_postgres_database()
            env = {**postgres_env(self.database), **env}
        self.tmp_path = tmp_path
        self.output = tmp_path / "output"
        self.output.mkdir(exist_ok=True)
        self.env = project_env(
            tmp_path,
            DJANGO_SETTINGS_MODULE=E2E_SETTINGS,
            E2E_LAYER=layer,
            E2E_PREFIX=f"e2e{uuid.uuid4().hex[:10]}",
            E2E_OUTPUT_DIR=str(self.output),
            **{"REDIS_URL": REDIS_URL, **env},
        )
        self.processes: list[ProjectProcess] = []
        migrate(self.env)

    def manage(self, *args: str, port: int = 0, **env: str) -> ProjectProcess:
        name = f"{args[0]}-{len(self.processes)}"
        process = ProjectProcess(
            [sys.executable, "manage.py", *args],
            port,
            self.tmp_path / f"{name}.log",
            {**self.env, **env},
        )
        self.processes.append(process)
        return process

    def runserver(self, *args: str, reload: bool = False, **env: str) -> ProjectProcess:
        port = free_port()
        options = [] if reload else ["--noreload"]
        server = self.manage(
            "runserver", f"127.0.0.1:{port}", *options, *args, port=port, **env
        )
        wait_for_port(port, server.process)
        return server

    def runworker(self, *args: str, **env: str) -> ProjectProcess:
        worker = self.manage("runworker", *args, **env)
        worker.wait_for_log("Running worker for channels")
        return worker

    def lines(self, name: str) -> list[str]:
        path = self.output / name
        return path.read_text().splitlines() if path.exists() else []

    def wait_for_lines(self, name: str, count: int, timeout: float = 20) -> list[str]:
        deadline = time.monotonic() + timeout
        while len(lines := self.lines(name)) < count:
            if time.monotonic() > deadline:
                logs = "\n".join(p.log() for p in self.processes)
                raise TimeoutError(f"{name} has {lines} after {timeout}s\n{logs}")
            time.sleep(0.05)
        return lines

    def stop_all(self) -> None:
        for process in self.processes:
            if not process._log.closed:
                process.stop()
        if self.database:
            drop_postgres_database(self.database)


def _postgres_admin():
    import psycopg

    return psycopg.connect(
        host=PG["HOST"],
        port=PG["PORT"],
        user=PG["USER"],
        password=PG["PASSWORD"] or None,
        dbname="postgres",
        autocommit=True,
    )


def create_postgres_database() -> str:
    """A fresh PostgreSQL database for one project's processes to share."""
    require("postgres")
    base = os.environ["CHANNELS_APP_PG_TEST_DB"]
    name = f"{base}_e2e_{uuid.uuid4().hex[:8]}"
    with _postgres_admin() as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_postgres_database(name: str) -> None:
    with _postgres_admin() as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def postgres_env(name: str) -> dict[str, str]:
    """Settings for the demo project to use database ``name`` on the test server."""
    return {
        "DEMO_DATABASE": "postgres",
        "PGHOST": PG["HOST"],
        "PGPORT": str(PG["PORT"]),
        "PGUSER": PG["USER"],
        "PGPASSWORD": PG["PASSWORD"],
        "PGDATABASE": name,
    }
