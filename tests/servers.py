"""Start real servers in subprocesses for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTPROJECT = ROOT / "testproject"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early with code {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listened on port {port} within {timeout}s")


class ServerProcess:
    """A subprocess serving on a loopback port; its output goes to a log file."""

    def __init__(
        self,
        args: list[str],
        port: int,
        log_path: Path,
        env: dict,
        *,
        process_group: bool = False,
    ) -> None:
        self.port = port
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            args,
            cwd=TESTPROJECT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            # Its own group, so a signal to the group reaches its children too.
            start_new_session=process_group,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


def project_env(tmp_path: Path, **extra: str) -> dict:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="testproject.settings",
        DEMO_SQLITE_PATH=str(tmp_path / "demo.sqlite3"),
        PYTHONPATH=os.pathsep.join([str(TESTPROJECT), str(ROOT)]),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def migrate(env: dict) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=TESTPROJECT,
        env=env,
        check=True,
    )


def start_daphne(
    tmp_path: Path, application: str = "testproject.asgi:application", **env_extra: str
) -> ServerProcess:
    return start_server("daphne", tmp_path, application, **env_extra)


def start_uvicorn(
    tmp_path: Path, application: str = "testproject.asgi:application", **env_extra: str
) -> ServerProcess:
    return start_server("uvicorn", tmp_path, application, **env_extra)


#: How each ASGI server is started on a loopback port, application last.
SERVER_COMMANDS = {
    "daphne": ["-m", "daphne", "-b", "127.0.0.1", "-p", "{port}"],
    # The lifespan protocol on, as users deploy it; no access log (noise).
    "uvicorn": [
        "-m",
        "uvicorn",
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--lifespan",
        "on",
        "--no-access-log",
    ],
    # Two uvicorn worker processes under gunicorn's arbiter, as the uvicorn
    # docs deploy it (the worker class now lives in uvicorn-worker).
    "gunicorn": [
        "-m",
        "gunicorn",
        "--bind",
        "127.0.0.1:{port}",
        "--workers",
        "2",
        "--worker-class",
        "uvicorn_worker.UvicornWorker",
        "--graceful-timeout",
        "10",
    ],
}


def start_server(
    kind: str,
    tmp_path: Path,
    application: str = "testproject.asgi:application",
    **env_extra: str,
) -> ServerProcess:
    """Migrate the project's database, then serve ``application`` with ``kind``."""
    env = project_env(tmp_path, **env_extra)
    migrate(env)
    port = free_port()
    arguments = [word.format(port=port) for word in SERVER_COMMANDS[kind]]
    server = ServerProcess(
        [sys.executable, *arguments, application],
        port,
        tmp_path / f"{kind}-{port}.log",
        env,
    )
    wait_for_port(port, server.process)
    return server
