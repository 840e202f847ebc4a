"""A PostgreSQL server of the test's own, on a free port, to stop and start at will.

Tests that take a server down must never touch the shared one.  The cluster
is created with ``initdb`` in a temporary directory and run with ``pg_ctl``;
both refuse to run as root, so as root they run as the ``postgres`` user.
Without the binaries the test is skipped (failed under ``CI=true``).  The
benchmarks use :class:`PrivatePostgres` too, so heavy runs spare the shared
server.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.servers import free_port

BIN_DIRS = [Path(f"/usr/lib/postgresql/{v}/bin") for v in (17, 16, 15, 14)]


def bin_dir() -> Path | None:
    """Where ``initdb`` and ``pg_ctl`` are, if this machine has them."""
    for directory in BIN_DIRS:
        if (directory / "initdb").exists() and (directory / "pg_ctl").exists():
            return directory
    found = shutil.which("pg_ctl")
    return Path(found).parent if found else None


class PrivatePostgres:
    """One throw-away cluster: ``start()``, ``stop()``, ``port``."""

    def __init__(self, bin_dir: Path, settings: str = "") -> None:
        self.bin_dir = bin_dir
        self.settings = settings
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="channels_app_pg_"))
        self.data = self.root / "data"
        self.user: str | None = None
        if os.geteuid() == 0:
            self.user = "postgres"
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust")

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin_dir / tool), *args]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        options += f" {self.settings}".rstrip()
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l",
            str(self.root / "log"), "-w", "start",
        )  # fmt: skip

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def crash(self) -> None:
        """Stop without a checkpoint, as a crash would: the next start recovers."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def destroy(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass  # already stopped
        shutil.rmtree(self.root, ignore_errors=True)


def private_postgres_fixture():
    import pytest

    from tests.services import IN_CI

    found = bin_dir()
    if found is None:
        reason = "initdb/pg_ctl not found (apt-get install postgresql)"
        if IN_CI:
            pytest.fail(f"CI=true and {reason}")
        pytest.skip(reason)
    server = PrivatePostgres(found)
    server.start()
    yield server
    server.destroy()
