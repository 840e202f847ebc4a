"""The migration guide's steps, read from docs/migrating.rst and applied to a
copy of the Channels 4 tutorial's chat project (``tutorial_chat/``).

The guide marks each machine-applicable block with an RST comment just before
it (invisible in the rendered page)::

    .. migration-step: rewrite-imports      a Python script, run in the project
    .. migration-step: edit <path>          a diff hunk, applied to <path>
    .. migration-step: commands             console commands, run in the project

so what the tests apply is what a reader copies.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests.servers import ROOT, ServerProcess, free_port, wait_for_port
from tests.services import REDIS_URL

GUIDE = ROOT / "docs" / "migrating.rst"
TUTORIAL = Path(__file__).resolve().parent / "tutorial_chat"
#: The settings module the tests add to a copy: the project's own settings
#: plus this run's Redis URL and key prefix (nothing else).
RUN_SETTINGS = "mysite.test_run_settings"

MARKER = re.compile(r"^\.\. migration-step: (\S+)(?: (\S+))?\s*$")
BLOCK_START = re.compile(r"^\.\. code-block:: \S+\s*$")


@dataclass
class Step:
    kind: str
    target: str | None
    body: str


def guide_steps(path: Path = GUIDE) -> list[Step]:
    """The marked blocks of the guide, in order."""
    lines = path.read_text().splitlines()
    steps = []
    for number, line in enumerate(lines):
        marker = MARKER.match(line)
        if not marker:
            continue
        start = next(
            n for n in range(number + 1, len(lines)) if BLOCK_START.match(lines[n])
        )
        body = []
        for following in lines[start + 1 :]:
            if following.strip() and not following.startswith(" "):
                break
            body.append(following)
        code = textwrap.dedent("\n".join(body)).strip("\n") + "\n"
        steps.append(Step(marker.group(1), marker.group(2), code))
    return steps


def step(kind: str) -> Step:
    (found,) = [s for s in guide_steps() if s.kind == kind]
    return found


# -- applying the steps --------------------------------------------------------


def copy_tutorial(destination: Path, consumer: str = "sync") -> Path:
    """The tutorial's project, unmigrated, at ``destination/mysite``.

    ``consumer`` is ``"sync"`` (part 2's ``WebsocketConsumer``) or ``"async"``
    (part 3's ``AsyncWebsocketConsumer``).
    """
    project = destination / "mysite"
    shutil.copytree(TUTORIAL / "mysite", project)
    if consumer == "async":
        shutil.copy(
            TUTORIAL / "part_3" / "chat" / "consumers.py",
            project / "chat" / "consumers.py",
        )
    return project


def rewrite_imports(project: Path) -> str:
    """Run the guide's script on ``project``; its output."""
    script = project.parent / "rewrite_channels_imports.py"
    script.write_text(step("rewrite-imports").body)
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def apply_hunk(text: str, hunk: str) -> str:
    """``text`` with the diff ``hunk`` (context, ``-`` and ``+`` lines) applied."""
    old, new = [], []
    for line in hunk.splitlines():
        sign, content = line[:1], line[1:]
        if sign in (" ", "", "-"):
            old.append(content)
        if sign in (" ", "", "+"):
            new.append(content)
    old_text, new_text = "\n".join(old) + "\n", "\n".join(new) + "\n"
    if text.count(old_text) != 1:
        raise AssertionError(f"the guide's hunk does not match once:\n{old_text}")
    return text.replace(old_text, new_text)


def edit_settings(project: Path) -> None:
    """Apply every ``edit`` hunk of the guide to the file it names."""
    for edit in (s for s in guide_steps() if s.kind == "edit"):
        path = project / edit.target
        path.write_text(apply_hunk(path.read_text(), edit.body))


def guide_commands() -> list[list[str]]:
    """The ``$ python manage.py ...`` lines of the guide's commands step."""
    commands = []
    for line in step("commands").body.splitlines():
        if line.startswith("$ "):
            words = shlex.split(line[2:])
            assert words[0] == "python", line
            commands.append([sys.executable, *words[1:]])
    return commands


def use_run_settings(project: Path, additions: str = "") -> dict:
    """Add ``mysite/test_run_settings.py`` (the project's settings plus
    ``additions``) and return the environment that selects it, so the guide's
    edits to ``settings.py`` are all that is tested there."""
    (project / "mysite" / "test_run_settings.py").write_text(
        "from mysite.settings import *  # noqa: F403\n\n" + additions
    )
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE=RUN_SETTINGS,
        # channels_app from this checkout; nothing of the demo project's.
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
    )
    return env


def use_test_redis(project: Path, prefix: str | None = None) -> dict:
    """Point the copy's channels_redis layer at the test Redis, under a key
    prefix of its own (concurrent runs share the database)."""
    prefix = prefix or f"tut{uuid.uuid4().hex[:10]}"
    return use_run_settings(
        project,
        'CHANNEL_LAYERS["default"]["CONFIG"] = {\n'
        f'    "hosts": [{REDIS_URL!r}],\n'
        f'    "prefix": {prefix!r},\n'
        "}\n",
    )


#: The tutorial's layer setting, and the in-memory one as Channels documents it.
REDIS_LAYERS = """CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": [("127.0.0.1", 6379)],
        },
    },
}
"""
IN_MEMORY_LAYERS = """CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels.layers.InMemoryChannelLayer"
    }
}
"""


def use_in_memory_layer(project: Path) -> None:
    """Before migrating: the project on Channels' in-memory layer instead."""
    settings = project / "mysite" / "settings.py"
    text = settings.read_text()
    assert text.count(REDIS_LAYERS) == 1
    settings.write_text(text.replace(REDIS_LAYERS, IN_MEMORY_LAYERS))


def manage(project: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def run_guide_commands(project: Path, env: dict) -> list[subprocess.CompletedProcess]:
    results = []
    for command in guide_commands():
        result = subprocess.run(
            command, cwd=project, env=env, capture_output=True, text=True, timeout=120
        )
        if result.returncode:
            raise AssertionError(
                f"{shlex.join(command[1:])} failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}"
            )
        results.append(result)
    return results


@dataclass
class Migrated:
    project: Path
    env: dict
    layer: str
    #: What the guide's script printed.
    rewritten: str
    #: The guide's commands (``migrate``, ``check``) as they ran.
    commands: list[subprocess.CompletedProcess]


def migrated_tutorial(
    destination: Path, consumer: str = "sync", layer: str = "redis"
) -> Migrated:
    """The tutorial copied to ``destination`` and migrated by the guide's steps:
    the import rewrite, the settings edit, then ``migrate`` and ``check``.

    ``layer`` is ``"redis"`` (the tutorial's channels_redis, on the test Redis)
    or ``"memory"`` (``channels.layers.InMemoryChannelLayer`` before the
    rewrite).
    """
    project = copy_tutorial(destination, consumer)
    if layer == "memory":
        use_in_memory_layer(project)
    rewritten = rewrite_imports(project)
    edit_settings(project)
    env = use_test_redis(project) if layer == "redis" else use_run_settings(project)
    commands = run_guide_commands(project, env)
    return Migrated(project, env, layer, rewritten, commands)


# -- serving the copy ----------------------------------------------------------


class ProjectServer(ServerProcess):
    """A server process run in the copied project's directory."""

    def __init__(self, args: list[str], port: int, log_path: Path, env: dict, cwd):
        self.port = port
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            args, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    @property
    def origin(self) -> str:
        """The ``Origin`` a browser on one of this server's pages sends."""
        return self.url


def start(project: Path, env: dict, kind: str = "runserver") -> ProjectServer:
    """Serve the copy with our ``manage.py runserver`` (Daphne) or uvicorn."""
    port = free_port()
    if kind == "runserver":
        args = ["manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"]
    elif kind == "uvicorn":
        args = ["-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port)]
        args += ["--lifespan", "on", "--no-access-log", "mysite.asgi:application"]
    else:
        raise ValueError(kind)
    server = ProjectServer(
        [sys.executable, *args],
        port,
        project.parent / f"{kind}-{port}.log",
        env,
        cwd=project,
    )
    try:
        wait_for_port(port, server.process)
    except Exception as exc:
        server.stop()
        raise RuntimeError(f"{kind} did not start:\n{server.log()}") from exc
    return server
