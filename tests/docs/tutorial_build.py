"""Build the tutorial's project from its pages, the way a reader does.

The pages (docs/tutorial/part*.rst) follow the conventions their index
explains:

* a ``code-block`` whose ``:caption:`` is a path holds that whole file
  (written, or replacing what was there);
* a caption ``<path> (changes)`` holds settings: each assignment replaces
  the one of the same name in the file, or is appended if there is none;
* ``console`` blocks hold commands (``$ ...``), run in order;
* a comment ``.. tutorial-check: <what>`` marks a point where the project
  must work; ``<what>`` names the checks the test makes there.

:func:`assemble` replays the steps up to a checkpoint in a directory:
``django-admin`` and ``manage.py`` commands run for real with the test's
Python (whose environment has channels_app installed, so the ``pip``
and ``venv`` commands are skipped); ``runserver`` and ``runworker`` are
recorded, for the test to start once the checkpoint is reached.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.servers import free_port, wait_for_port

TUTORIAL = Path(__file__).resolve().parent.parent.parent / "docs" / "tutorial"
PARTS = sorted(TUTORIAL.glob("part*.rst"))

DIRECTIVE = re.compile(r"^(\s*)\.\. code-block:: (\S+)\s*$")
OPTION = re.compile(r"^\s+:([\w-]+):\s*(.*)$")
CHECKPOINT = re.compile(r"^\.\. tutorial-check: (.+)$")
CAPTION = re.compile(r"^(?P<path>[\w./-]+)(?P<changes> \(changes\))?$")

#: Commands that set up the reader's environment, which the test already
#: has (the .venv with channels_app installed in editable mode).
ENVIRONMENT_COMMANDS = [
    ["python", "-m", "venv", ".venv"],
    ["source", ".venv/bin/activate"],
]


@dataclass
class Listing:
    page: str
    line: int
    language: str
    options: dict
    body: str

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


@dataclass
class Step:
    kind: str  # "command", "file", "settings" or "check"
    where: str
    words: list[str] = field(default_factory=list)  # command; check names
    path: str = ""
    body: str = ""


def listings(page: Path) -> list[Listing | tuple[int, str]]:
    """The page's code blocks, and its checkpoints as ``(line, what)``."""
    lines = page.read_text().splitlines()
    found: list[Listing | tuple[int, str]] = []
    number = 0
    while number < len(lines):
        line = lines[number]
        checkpoint = CHECKPOINT.match(line)
        if checkpoint:
            found.append((number + 1, checkpoint.group(1).strip()))
        match = DIRECTIVE.match(line)
        if not match:
            number += 1
            continue
        indent = len(match.group(1))
        start = number + 1
        number += 1
        options = {}
        while number < len(lines) and OPTION.match(lines[number]):
            key, value = OPTION.match(lines[number]).groups()
            options[key] = value
            number += 1
        body = []
        while number < len(lines):
            following = lines[number]
            if following.strip() and len(following) - len(following.lstrip()) <= indent:
                break
            body.append(following)
            number += 1
        text = textwrap.dedent("\n".join(body)).strip("\n") + "\n"
        found.append(Listing(page.name, start, match.group(2), options, text))
    return found


def steps() -> list[Step]:
    """Every step of every part, in reading order."""
    result = []
    for page in PARTS:
        for item in listings(page):
            if isinstance(item, tuple):
                _, what = item
                result.append(Step("check", f"{page.stem}:{what}", words=what.split()))
                continue
            if item.language == "console":
                for row in item.body.splitlines():
                    if row.startswith("$ "):
                        result.append(
                            Step("command", item.where, words=shlex.split(row[2:]))
                        )
                continue
            caption = CAPTION.match(item.options.get("caption", ""))
            assert caption, f"{item.where}: a listing needs a file path as caption"
            kind = "settings" if caption.group("changes") else "file"
            result.append(Step(kind, item.where, path=caption["path"], body=item.body))
    return result


def checkpoints() -> list[str]:
    return [step.where for step in steps() if step.kind == "check"]


# -- replaying the steps ----------------------------------------------------------


def reader_env() -> dict:
    """The environment of a reader's shell: no settings of the test suite."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DJANGO_SETTINGS_MODULE", "PYTHONPATH"}
    }
    env["PYTHONUNBUFFERED"] = "1"
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "")])
    return env


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(
        args, cwd=cwd, env=reader_env(), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, (
        f"{' '.join(args)} failed in {cwd}:\n{done.stdout}\n{done.stderr}"
    )
    return done


def manage(project: Path, *words: str) -> subprocess.CompletedProcess:
    return run([sys.executable, "manage.py", *words], project)


def django_admin() -> list[str]:
    script = Path(sys.executable).parent / "django-admin"
    return [str(script)] if script.exists() else [sys.executable, "-m", "django"]


@dataclass
class Assembled:
    """The project as the reader has it at a checkpoint."""

    directory: Path
    checks: list[str]
    #: The processes the tutorial last told the reader to start (manage.py
    #: arguments): the latest runserver and the runworkers shown after it.
    processes: list[list[str]]


def assemble(root: Path, checkpoint: str) -> Assembled:
    cwd = root
    processes: list[list[str]] = []
    for step in steps():
        if step.kind == "check":
            if step.where == checkpoint:
                return Assembled(cwd, step.words, processes)
            continue
        if step.kind == "file":
            target = cwd / step.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(step.body)
        elif step.kind == "settings":
            target = cwd / step.path
            assert target.exists(), f"{step.where}: {step.path} does not exist yet"
            target.write_text(merge_settings(target.read_text(), step.body))
        else:
            cwd = run_command(step, cwd, processes)
    raise AssertionError(f"no checkpoint {checkpoint!r}")


def run_command(step: Step, cwd: Path, processes: list[list[str]]) -> Path:
    words = step.words
    where = f"{step.where}: $ {shlex.join(words)}"
    if words in ENVIRONMENT_COMMANDS or words[:2] == ["pip", "install"]:
        return cwd
    if words[0] == "cd":
        assert len(words) == 2, where
        cwd = cwd / words[1]
        assert cwd.is_dir(), f"{where}: no such directory"
        return cwd
    if words[0] == "django-admin":
        run([*django_admin(), *words[1:]], cwd)
        return cwd
    assert words[:2] == ["python", "manage.py"], f"{where}: unknown to the test"
    command = words[2]
    if command == "runserver":
        processes[:] = [words[2:]]
    elif command == "runworker":
        assert processes, f"{where}: a worker before any server"
        processes.append(words[2:])
    else:
        assert command in {"startapp", "migrate"}, f"{where}: unknown command"
        run([sys.executable, *words[1:]], cwd)
    return cwd


def merge_settings(source: str, changes: str) -> str:
    """``source`` with each assignment of ``changes`` replacing its namesake
    (or appended, if the module has none)."""
    for node in ast.parse(changes).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1, (
            "a settings listing holds only assignments"
        )
        name = node.targets[0].id
        new = ast.get_source_segment(changes, node) + "\n"
        lines = source.splitlines(keepends=True)
        existing = [
            old
            for old in ast.parse(source).body
            if isinstance(old, ast.Assign)
            and any(getattr(target, "id", None) == name for target in old.targets)
        ]
        if existing:
            old = existing[-1]
            lines[old.lineno - 1 : old.end_lineno] = [new]
        else:
            lines.append("\n" + new)
        source = "".join(lines)
    return source


# -- the processes the reader starts ----------------------------------------------


class ProjectProcess:
    """``manage.py <arguments>`` of the assembled project, logging to a file."""

    def __init__(self, project: Path, arguments: list[str], log_path: Path) -> None:
        self.arguments = arguments
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", *arguments],
            cwd=project,
            env=reader_env(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if self.process.poll() is not None:
                raise AssertionError(f"{self.arguments} exited:\n{self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} within {timeout}s:\n{self.log()}")
            time.sleep(0.05)

    def stop(self, timeout: float = 15) -> int | None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()
        return self.process.returncode


class Running:
    """The server, and any workers, the tutorial last told the reader to run;
    the server on a free loopback port without the autoreloader."""

    def __init__(self, assembled: Assembled, logs: Path) -> None:
        self.checks = assembled.checks
        self.directory = assembled.directory
        self.log_dir = logs
        self.port = free_port()
        self.processes: list[ProjectProcess] = []
        server_arguments, *workers = assembled.processes
        try:
            self.server = self.start(
                [*server_arguments, f"127.0.0.1:{self.port}", "--noreload"],
                "runserver.log",
            )
            wait_for_port(self.port, self.server.process, timeout=30)
            self.workers: list[ProjectProcess] = []
            for arguments in workers:
                self.start_worker(arguments)
        except BaseException:
            self.stop()
            raise

    def start(self, arguments: list[str], log_name: str) -> ProjectProcess:
        process = ProjectProcess(self.directory, arguments, self.log_dir / log_name)
        self.processes.append(process)
        return process

    def start_worker(self, arguments: list[str]) -> ProjectProcess:
        worker = self.start(arguments, f"worker{len(self.processes)}.log")
        worker.wait_for_log("Running worker for channels")
        self.workers.append(worker)
        return worker

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def logs(self) -> str:
        return "\n".join(
            f"--- manage.py {shlex.join(process.arguments)}\n{process.log()}"
            for process in self.processes
        )

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
