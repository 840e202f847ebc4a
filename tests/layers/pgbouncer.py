"""A PgBouncer of the test's own, in transaction mode, in front of the test server.

Transaction pooling hands each transaction to whichever server connection is
free, so anything a client leaves in its session (prepared statements,
``LISTEN``, ``SET``) breaks.  PgBouncer refuses to run as root; as root it
runs as the ``postgres`` user.  Without the binary the test is skipped
(failed under ``CI=true``).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.servers import free_port


class PgBouncer:
    def __init__(self, binary: str, host: str, port: str) -> None:
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="channels_app_pgbouncer_"))
        (self.root / "users.txt").write_text('"postgres" ""\n')
        (self.root / "pgbouncer.ini").write_text(
            f"[databases]\n* = host={host} port={port}\n"
            f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {self.port}\n"
            f"unix_socket_dir =\nauth_type = trust\n"
            f"auth_file = {self.root / 'users.txt'}\npool_mode = transaction\n"
            f"default_pool_size = 2\nmax_client_conn = 50\n"
            f"ignore_startup_parameters = extra_float_digits\n"
        )
        command = [binary, str(self.root / "pgbouncer.ini")]
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            for path in (self.root, *self.root.iterdir()):
                os.chown(path, entry.pw_uid, entry.pw_gid)
            command = ["runuser", "-u", "postgres", "--", *command]
        self.log = open(self.root / "log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(command, stdout=self.log, stderr=self.log)
        self._wait_until_listening()

    def _wait_until_listening(self) -> None:
        import socket

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"PgBouncer did not start: {self.output()}")

    def output(self) -> str:
        self.log.flush()
        return (self.root / "log").read_text(errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
        shutil.rmtree(self.root, ignore_errors=True)


def pgbouncer_fixture():
    import pytest

    from tests.services import IN_CI, PG, require

    require("postgres")
    binary = shutil.which("pgbouncer") or shutil.which("/usr/sbin/pgbouncer")
    if binary is None:
        reason = "pgbouncer not found (apt-get install pgbouncer)"
        if IN_CI:
            pytest.fail(f"CI=true and {reason}")
        pytest.skip(reason)
    bouncer = PgBouncer(binary, PG["HOST"], PG["PORT"])
    yield bouncer
    bouncer.stop()
