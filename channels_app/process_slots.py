"""The supervisor's picture of its process tree: slots and the children in them.

Shared by the supervisor, which fills it in, and its health endpoint, which
reports it; neither needs the other to know what a slot is.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(eq=False)
class Slot:
    """One place in the process tree: "server 1", "worker 2", ...

    The command is fixed; the process in the slot changes as it is restarted.
    """

    name: str
    argv: Sequence[str]
    pass_fds: tuple[int, ...] = ()
    waits_for_ready: bool = True
    failures: int = 0
    #: Times a process in this slot was replaced after exiting on its own.
    restarts: int = 0
    child: Child | None = None


@dataclass(eq=False)
class Child:
    """One started process and what the supervisor knows about it."""

    slot: Slot
    process: asyncio.subprocess.Process
    ready: asyncio.Future[bool]
    started: float = field(default_factory=time.monotonic)
    retiring: bool = False
    #: The task waiting for it to be ready and to exit (kept: tasks are
    #: weakly referenced by the loop).
    watcher: asyncio.Task[None] | None = None
