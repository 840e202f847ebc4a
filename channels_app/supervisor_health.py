"""``manage.py serve --health-port``: liveness and readiness of every process.

A container platform asks two questions: is the thing alive (else restart
it), and should it get traffic (else route around it).  The application's
own ``health`` view cannot answer for the whole tree -- it answers from
whichever server process took the connection, and says nothing of workers
or of a process stuck restarting -- so the supervisor answers, on a port of
its own, from what it knows of each child:

* ``GET /live``: 200 whenever the supervisor's event loop answers (a stuck
  supervisor times the probe out).
* ``GET /ready``: 200 while at least one server process is ready and the
  tree is not stopping; 503 otherwise.  The JSON body lists every process:
  its name, pid, state (``starting``, ``ready``, ``draining``, ``down``) and
  restarts, with ``"degraded": true`` while any slot is not ready.

The answer is served by asyncio streams with a deliberately tiny reading of
HTTP/1.x (request line, headers skipped): probes send nothing else, and the
supervisor must stay free of application code and heavy dependencies.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Collection, Sequence
from http import HTTPStatus
from typing import Any, Protocol

from .process_slots import Child, Slot


class Supervisor(Protocol):
    """What the probes read of :class:`~channels_app.supervisor.Supervisor`."""

    @property
    def slots(self) -> Sequence[Slot]: ...

    @property
    def children(self) -> Collection[Child]: ...

    @property
    def stopping(self) -> bool: ...


#: Bytes a probe's request may take before it is answered 400.
MAX_REQUEST_BYTES = 8192
#: Seconds a probe gets to send its request.
READ_TIMEOUT = 5.0


def child_state(child: Child | None) -> str:
    """What a child is doing, as the readiness report names it."""
    if child is None or child.process.returncode is not None:
        return "down"
    if child.retiring:
        return "draining"
    if not child.ready.done():
        return "starting"
    return "ready" if child.ready.result() else "down"


def describe(slot: Slot, child: Child | None) -> dict[str, Any]:
    return {
        "name": slot.name,
        "pid": child.process.pid if child is not None else None,
        "state": child_state(child),
        "restarts": slot.restarts,
        "uptime": round(time.monotonic() - child.started, 1) if child else None,
    }


def readiness(supervisor: Supervisor) -> tuple[bool, dict[str, Any]]:
    """Whether the tree should get traffic, and the per-process report."""
    processes = [describe(slot, slot.child) for slot in supervisor.slots]
    current = {slot.child for slot in supervisor.slots}
    # Processes of an older generation still draining after a restart.
    processes += [
        describe(child.slot, child)
        for child in sorted(supervisor.children, key=lambda c: c.process.pid)
        if child not in current
    ]
    servers_ready = any(
        child_state(slot.child) == "ready"
        for slot in supervisor.slots
        if slot.waits_for_ready
    )
    ready = servers_ready and not supervisor.stopping
    report = {
        "ready": ready,
        "stopping": supervisor.stopping,
        "degraded": any(
            p["state"] != "ready" for p in processes[: len(supervisor.slots)]
        ),
        "supervisor_pid": os.getpid(),
        "processes": processes,
    }
    return ready, report


def answer(supervisor: Supervisor, method: str, path: str) -> tuple[int, Any]:
    """Status and JSON body for one probe."""
    if method not in ("GET", "HEAD"):
        return 405, {"error": "only GET and HEAD are answered"}
    path = path.split("?", 1)[0].rstrip("/")
    if path == "/live":
        return 200, {"alive": True, "supervisor_pid": os.getpid()}
    if path == "/ready":
        ready, report = readiness(supervisor)
        return (200 if ready else 503), report
    return 404, {"error": f"no {path or '/'} here: ask /live or /ready"}


async def serve_health(
    supervisor: Supervisor, host: str, port: int
) -> asyncio.AbstractServer:
    """Start answering probes on ``host:port``."""

    async def respond(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            method, status, body = await _read_and_answer(supervisor, reader)
            payload = json.dumps(body).encode()
            writer.write(
                f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
                f"Content-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\n"
                f"Connection: close\r\n\r\n".encode()
                + (b"" if method == "HEAD" else payload)
            )
            await writer.drain()
        except (ConnectionError, asyncio.TimeoutError):
            pass  # the probe gave up; nothing to answer
        finally:
            writer.close()

    return await asyncio.start_server(respond, host, port, limit=MAX_REQUEST_BYTES)


async def _read_and_answer(
    supervisor: Supervisor, reader: asyncio.StreamReader
) -> tuple[str, int, Any]:
    """The probe's method, and the status and body to answer it with."""
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
    except asyncio.IncompleteReadError:
        return "", 400, {"error": "not an HTTP request"}
    except asyncio.LimitOverrunError:
        return "", 400, {"error": f"request over {MAX_REQUEST_BYTES} bytes"}
    words = head.split(b"\r\n", 1)[0].decode("latin-1").split()
    if len(words) != 3 or not words[2].startswith("HTTP/1."):
        return "", 400, {"error": "not an HTTP/1.x request line"}
    status, body = answer(supervisor, words[0], words[1])
    return words[0], status, body
