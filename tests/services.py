"""Where the real PostgreSQL and Redis are, and what to do when they are missing.

Connection settings come from the usual environment variables (libpq's
``PG*`` and ``REDIS_URL``) with the machine's defaults.  Under ``CI=true`` a
missing service fails the test; elsewhere the test is skipped with a reason
that says how to start the service.
"""

from __future__ import annotations

import functools
import os
import socket
from urllib.parse import urlsplit

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

PG = {
    "HOST": os.environ.get("PGHOST", "127.0.0.1"),
    "PORT": os.environ.get("PGPORT", "5432"),
    "USER": os.environ.get("PGUSER", "postgres"),
    "PASSWORD": os.environ.get("PGPASSWORD", ""),
    "NAME": os.environ.get("PGDATABASE", "test"),
}
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

HOW_TO_START = {
    "postgres": (
        "PostgreSQL is not reachable at {PGHOST}:{PGPORT}; start it with "
        "'pg_ctlcluster --skip-systemctl-redirect 15 main start' or set PGHOST/PGPORT"
    ),
    "redis": (
        "Redis is not reachable at {REDIS_URL}; start it with "
        "'redis-server --daemonize yes --port 6379' or set REDIS_URL"
    ),
}


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@functools.cache
def postgres_available() -> bool:
    return _port_open(PG["HOST"], int(PG["PORT"]))


@functools.cache
def redis_available() -> bool:
    url = urlsplit(REDIS_URL)
    return _port_open(url.hostname or "127.0.0.1", url.port or 6379)


def require(service: str) -> None:
    """Fail (in CI) or skip (elsewhere) unless ``service`` is reachable."""
    available = {"postgres": postgres_available, "redis": redis_available}[service]
    if available():
        return
    reason = HOW_TO_START[service].format(
        PGHOST=PG["HOST"], PGPORT=PG["PORT"], REDIS_URL=REDIS_URL
    )
    if IN_CI:
        pytest.fail(f"CI=true and a required service is missing: {reason}")
    pytest.skip(reason)
