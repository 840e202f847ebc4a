"""``manage.py serve``'s parent process: start, watch and replace the children.

The parent holds the listening socket and every server child inherits it,
so the kernel hands each new connection to whichever child accepts first,
and a child that stops accepting leaves its share to the others -- nothing
queued on the socket is lost while processes come and go.  The parent runs
no application code; it only:

* starts the children (server processes, then worker processes) and waits
  until every server reports ready (:mod:`channels_app.supervised`);
* restarts a child that exits on its own, after a back-off that grows while
  it keeps failing, with a log line saying how it ended;
* on SIGHUP, starts a whole new generation and waits for it to be ready
  before it asks the old one to drain (a deploy: the new processes run the
  new code);
* on SIGTERM or SIGINT, asks every child to drain and exits 0 once all have
  exited 0, 1 otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
from collections.abc import Sequence

from .process_slots import Child, Slot
from .supervised import LINK_ENV, NAME_ENV, READY
from .supervisor_health import serve_health

logger = logging.getLogger("channels_app.serve")

#: A child that exits within this many seconds of starting counts as failing
#: again, and waits twice as long before the next start.
STABLE_AFTER = 10.0
FIRST_BACKOFF = 0.5
MAX_BACKOFF = 30.0


def listening_socket(host: str, port: int, ipv6: bool, backlog: int) -> socket.socket:
    """The socket every server child serves on, inheritable by them."""
    family = socket.AF_INET6 if ipv6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def configure_logging() -> None:
    """Show the supervisor's log lines, dated as Django's server dates its own,
    unless the project's ``LOGGING`` already handles them."""
    if logger.hasHandlers():
        return
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter(
            f"[%(asctime)s] [supervisor pid {os.getpid()}] %(message)s",
            "%d/%b/%Y %H:%M:%S",
        )
    )
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def describe_exit(code: int) -> str:
    return f"signal {signal.Signals(-code).name}" if code < 0 else f"code {code}"


class Supervisor:
    """Runs ``slots`` until told to stop; see the module docstring."""

    def __init__(
        self,
        slots: Sequence[Slot],
        *,
        stop_timeout: float,
        ready_timeout: float,
        health_address: tuple[str, int] | None = None,
    ) -> None:
        self.slots = list(slots)
        #: Where to answer liveness and readiness probes, if anywhere.
        self.health_address = health_address
        self.stop_timeout = stop_timeout
        self.ready_timeout = ready_timeout
        self.children: set[Child] = set()
        self.stopping = False
        self.restarts: set[asyncio.Future[None]] = set()
        self._health: asyncio.AbstractServer | None = None
        self.requests: asyncio.Queue[str] = asyncio.Queue()

    async def run(self) -> int:
        """Serve until SIGTERM/SIGINT; the exit status for the parent."""
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self.requests.put_nowait, "restart")
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.requests.put_nowait, "stop")
        if self.health_address is not None:
            # Before the first start: a probe meanwhile hears "not ready".
            host, port = self.health_address
            try:
                self._health = await serve_health(self, host, port)
            except OSError as exc:
                logger.error("Cannot serve health probes at %s:%d: %s", host, port, exc)
                return 1
            logger.info("Answering health probes at http://%s:%d/ready", host, port)
        try:
            return await self._serve()
        finally:
            if self._health is not None:
                self._health.close()

    async def _serve(self) -> int:
        generation = await self._start_generation()
        if generation is None:
            logger.error("Could not start; stopping")
            await self._stop_all()
            return 1
        for slot, child in generation.items():
            slot.child = child
        logger.info("Serving with %d process(es); pid %d", len(generation), os.getpid())
        while await self.requests.get() != "stop":
            await self._rolling_restart()
        return await self._stop_all()

    # -- starting ------------------------------------------------------------

    async def _spawn(self, slot: Slot) -> Child:
        parent_end, child_end = socket.socketpair()
        env = dict(os.environ)
        env[LINK_ENV] = str(child_end.fileno())
        env[NAME_ENV] = slot.name
        process = await asyncio.create_subprocess_exec(
            *slot.argv,
            pass_fds=(*slot.pass_fds, child_end.fileno()),
            env=env,
            start_new_session=True,
        )
        child_end.close()
        ready: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if not slot.waits_for_ready:
            ready.set_result(True)
        child = Child(slot, process, ready)
        self.children.add(child)
        child.watcher = asyncio.create_task(self._watch(child, parent_end))
        logger.info("Started %s (pid %d)", slot.name, process.pid)
        return child

    async def _start_generation(self) -> dict[Slot, Child] | None:
        """A new child in every slot, once all are ready; None if one fails."""
        fresh = {slot: await self._spawn(slot) for slot in self.slots}
        try:
            outcomes = await asyncio.wait_for(
                asyncio.gather(*(child.ready for child in fresh.values())),
                self.ready_timeout,
            )
        except asyncio.TimeoutError:
            logger.error(
                "Not every new process was ready within %gs", self.ready_timeout
            )
            outcomes = [False]
        if all(outcomes):
            return fresh
        for child in fresh.values():
            self._retire(child)
        return None

    # -- watching ------------------------------------------------------------

    async def _watch(self, child: Child, link: socket.socket) -> None:
        """Wait for the child's ready byte and its exit; restart if unexpected.

        The parent's end of the link stays open for the child's whole life:
        closing it is how the child learns its supervisor is gone.
        """
        loop = asyncio.get_running_loop()
        link.setblocking(False)
        try:
            if not child.ready.done():
                reading = asyncio.ensure_future(loop.sock_recv(link, 1))
                done, _ = await asyncio.wait(
                    {reading, asyncio.ensure_future(child.process.wait())},
                    return_when=asyncio.FIRST_COMPLETED,
                )
                said_ready = reading in done and reading.result() == READY
                if not said_ready:
                    reading.cancel()
                if not child.ready.done():
                    child.ready.set_result(said_ready)
            code = await child.process.wait()
        finally:
            link.close()
            self.children.discard(child)
        self._after_exit(child, code)

    def _after_exit(self, child: Child, code: int) -> None:
        slot, pid, how = child.slot, child.process.pid, describe_exit(code)
        if not child.ready.result():
            logger.error(
                "%s (pid %d) exited with %s before it was ready", slot.name, pid, how
            )
        elif child.retiring or self.stopping:
            logger.info("%s (pid %d) stopped: %s", slot.name, pid, how)
        if child.retiring or self.stopping or slot.child is not child:
            return  # asked to stop, or a generation still starting
        ran = time.monotonic() - child.started
        slot.failures = slot.failures + 1 if ran < STABLE_AFTER else 1
        delay = min(FIRST_BACKOFF * 2 ** (slot.failures - 1), MAX_BACKOFF)
        logger.error(
            "%s (pid %d) exited unexpectedly with %s after %.1fs; restarting in %gs",
            slot.name,
            pid,
            how,
            ran,
            delay,
        )
        restart = asyncio.ensure_future(self._restart(slot, child, delay))
        self.restarts.add(restart)
        restart.add_done_callback(self.restarts.discard)

    async def _restart(self, slot: Slot, dead: Child, delay: float) -> None:
        await asyncio.sleep(delay)  # the back-off
        if self.stopping or slot.child is not dead:
            return
        slot.restarts += 1
        slot.child = await self._spawn(slot)

    # -- restarting and stopping ---------------------------------------------

    def _retire(self, child: Child) -> None:
        """Ask ``child`` to drain and exit (SIGTERM); it is not restarted."""
        child.retiring = True
        if child.process.returncode is None:
            child.process.send_signal(signal.SIGTERM)

    async def _rolling_restart(self) -> None:
        logger.info(
            "SIGHUP: starting new processes; the old ones drain once they are ready"
        )
        generation = await self._start_generation()
        if generation is None:
            logger.error("A new process failed to start; the old ones keep serving")
            return
        for slot, child in generation.items():
            old, slot.child = slot.child, child
            slot.failures = 0
            if old is not None:
                self._retire(old)
        logger.info("Restarted: every slot has a new process")

    async def _stop_all(self) -> int:
        """Drain every child; 0 if all of them exited 0."""
        self.stopping = True
        logger.info("Stopping: draining %d process(es)", len(self.children))
        children = list(self.children)
        for child in children:
            self._retire(child)
        waits = [asyncio.ensure_future(child.process.wait()) for child in children]
        if waits:
            _, late = await asyncio.wait(waits, timeout=self.stop_timeout)
            for child in children:
                if child.process.returncode is None:
                    logger.error(
                        "%s (pid %d) did not stop within %gs; killing it",
                        child.slot.name,
                        child.process.pid,
                        self.stop_timeout,
                    )
                    child.process.kill()
            if late:
                await asyncio.wait(late)
        codes = [child.process.returncode for child in children]
        return 0 if all(code == 0 for code in codes) else 1
