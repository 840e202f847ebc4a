"""``pytest --fast`` (``make test-fast``): the tests that start no process.

The rule has two halves, neither a list of tests:

* at collection, :func:`starts_processes` marks ``spawns`` every test that
  is known to start one (everything in ``tests/e2e`` and ``tests/browser``,
  anything marked ``e2e`` or ``browser``, every ``ChannelsLiveServerTestCase``),
  and ``--fast`` deselects those;
* while a test selected by ``--fast`` sets up and runs, :class:`SpawnGuard`
  (a :func:`sys.addaudithook` hook on ``subprocess.Popen``, ``os.fork``,
  ``os.posix_spawn`` ...) skips it at the moment it starts a process, with a
  reason naming the command.  So a test that starts a server through a
  fixture, or forks, never makes the fast run slow or depend on scheduling,
  and needs no marker to be left out.

The full run (``make test``, ``.ci/run``) arms nothing: every test runs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parent.parent

#: Directories whose every test starts servers or a browser.
PROCESS_DIRECTORIES = {"e2e", "browser"}
#: Markers that say a test starts processes.
PROCESS_MARKERS = ("e2e", "browser")
#: Audit events (see the ``sys.audit`` table) that start another process.
SPAWN_EVENTS = {
    "subprocess.Popen",
    "os.fork",
    "os.forkpty",
    "os.posix_spawn",
    "os.spawn",
    "os.system",
    "os.exec",
    "pty.spawn",
}


def starts_processes(item: pytest.Item) -> bool:
    """Whether ``item`` is known, before it runs, to start other processes."""
    if any(item.get_closest_marker(name) for name in PROCESS_MARKERS):
        return True
    try:
        relative = Path(item.path).resolve().relative_to(TESTS)
    except ValueError:
        relative = None
    if relative is not None and relative.parts[0] in PROCESS_DIRECTORIES:
        return True
    from channels_app.testing import ChannelsLiveServerTestCase

    cls = getattr(item, "cls", None)
    return isinstance(cls, type) and issubclass(cls, ChannelsLiveServerTestCase)


def _command(event: str, args: tuple[Any, ...]) -> str:
    if event == "subprocess.Popen" and len(args) > 1:
        command = args[1]
        if isinstance(command, list | tuple):
            return " ".join(str(word) for word in command)
        return str(command)
    if event in ("os.exec", "os.posix_spawn", "os.spawn") and args:
        return str(args[0])
    return event


class SpawnGuard:
    """Skips the running test when it starts a process, while armed.

    Audit hooks cannot be removed, so one hook is added once and consults
    ``armed``; it is armed only around a selected test's setup and call (not
    its teardown, which may stop what it started).
    """

    def __init__(self) -> None:
        self.armed = False
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if self.armed and event in SPAWN_EVENTS:
            self.armed = False
            pytest.skip(
                f"starts a process ({_command(event, args)}): "
                "make test runs it, make test-fast does not"
            )
