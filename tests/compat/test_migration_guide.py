"""docs/migrating.rst, applied as written to the Channels 4 tutorial's chat.

``tutorial_chat/`` holds the tutorial's project with its original ``channels``
imports and ``"daphne"`` first in ``INSTALLED_APPS``.  Each test copies it,
applies the guide's own blocks (see ``migration_guide``), and runs the result:
``check``, ``migrate``, our ``runserver`` and a chat between real WebSocket
clients over channels_redis.
"""

import asyncio
import json
import re
import subprocess
import sys

import pytest
import websockets

from tests.compat.migration_guide import (
    TUTORIAL,
    apply_hunk,
    copy_tutorial,
    edit_settings,
    guide_steps,
    manage,
    migrated_tutorial,
    rewrite_imports,
    start,
    step,
    use_test_redis,
)
from tests.services import require

e2e = pytest.mark.e2e

#: A reference to the Channels package that the rewrite must not leave behind.
CHANNELS_IMPORT = re.compile(
    r"(?<![\w.])channels\.\w|^\s*from\s+channels\s+import\b|^\s*import\s+channels\b(?!_)",
    re.M,
)


# -- the guide itself ----------------------------------------------------------


def test_the_guide_marks_each_step_it_expects_readers_to_apply():
    assert [(s.kind, s.target) for s in guide_steps()] == [
        ("rewrite-imports", None),
        ("edit", "mysite/settings.py"),
        ("commands", None),
    ]


def test_the_fixture_is_the_unmigrated_tutorial():
    settings = (TUTORIAL / "mysite" / "mysite" / "settings.py").read_text()
    installed = settings.split("INSTALLED_APPS = [")[1].split("]")[0].split()
    assert installed[:2] == ["'daphne',", "'chat',"]
    assert "channels_app" not in settings
    for path in (TUTORIAL / "mysite").rglob("*.py"):
        assert "channels_app" not in path.read_text(), path
    assert (
        "def receive(self, text_data):"
        in (TUTORIAL / "mysite" / "chat" / "consumers.py").read_text()
    )


def test_the_rewrite_script_changes_channels_module_paths_only(tmp_path):
    before = """\
import channels
import channels.layers
import channels_redis
from channels import DEFAULT_CHANNEL_LAYER
from channels.generic.websocket import AsyncWebsocketConsumer
from channels_redis.core import RedisChannelLayer
from myapp.channels import helpers

BACKEND = "channels.layers.InMemoryChannelLayer"
REDIS = "channels_redis.core.RedisChannelLayer"
INSTALLED_APPS = ["channels", "mychannels"]
patched = mock.patch("channels.layers.get_channel_layer")
layer = channels.layers.get_channel_layer()
self.channels.add(name)
"""
    after = """\
import channels_app
import channels_app.layers
import channels_redis
from channels_app import DEFAULT_CHANNEL_LAYER
from channels_app.generic.websocket import AsyncWebsocketConsumer
from channels_redis.core import RedisChannelLayer
from myapp.channels import helpers

BACKEND = "channels_app.layers.InMemoryChannelLayer"
REDIS = "channels_redis.core.RedisChannelLayer"
INSTALLED_APPS = ["channels", "mychannels"]
patched = mock.patch("channels_app.layers.get_channel_layer")
layer = channels_app.layers.get_channel_layer()
self.channels.add(name)
"""
    project = tmp_path / "project"
    (project / "app").mkdir(parents=True)
    (project / "app" / "code.py").write_text(before)
    # Other people's code is left alone: virtual environments, hidden
    # directories, node_modules.
    for ignored in (".venv", "env", ".tox", "node_modules"):
        (project / ignored).mkdir()
        (project / ignored / "lib.py").write_text(before)
    (project / "env" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    script = tmp_path / "rewrite_channels_imports.py"
    script.write_text(step("rewrite-imports").body)

    result = subprocess.run(
        [sys.executable, str(script), str(project)],
        capture_output=True,
        text=True,
        check=True,
    )

    assert (project / "app" / "code.py").read_text() == after
    assert result.stdout.splitlines() == [f"rewrote {project / 'app' / 'code.py'}"]
    for ignored in (".venv", "env", ".tox", "node_modules"):
        assert (project / ignored / "lib.py").read_text() == before


def test_the_settings_hunk_replaces_daphne_by_channels_app_at_the_top():
    settings = (TUTORIAL / "mysite" / "mysite" / "settings.py").read_text()
    edited = apply_hunk(settings, step("edit").body)
    installed = edited.split("INSTALLED_APPS = [")[1].split("]")[0].split()
    assert installed[0] == "'channels_app',"
    assert "'daphne'," not in installed
    assert installed.index("'channels_app',") < installed.index(
        "'django.contrib.staticfiles',"
    )


# -- the migrated tutorial, run ------------------------------------------------


@pytest.fixture(
    scope="module",
    params=[("sync", "redis"), ("async", "redis"), ("sync", "memory")],
    ids=lambda param: "-".join(param),
)
def migrated(request, tmp_path_factory):
    """The tutorial migrated by the guide: part 2's synchronous consumer or
    part 3's asynchronous one; on channels_redis as in the tutorial, or on
    the in-memory layer (its BACKEND is one of the paths the script rewrites)."""
    consumer, layer = request.param
    if layer == "redis":
        require("redis")
    return migrated_tutorial(
        tmp_path_factory.mktemp(f"tutorial-{consumer}-{layer}"), consumer, layer
    )


@pytest.fixture(scope="module")
def server(migrated):
    server = start(migrated.project, migrated.env, "runserver")
    yield server
    server.stop()


@e2e
def test_the_guide_leaves_no_channels_import_and_no_daphne(migrated):
    assert sorted(migrated.rewritten.splitlines()) == [
        "rewrote chat/consumers.py",
        "rewrote chat/tests.py",
        "rewrote mysite/asgi.py",
        *(["rewrote mysite/settings.py"] if migrated.layer == "memory" else []),
    ]
    for path in migrated.project.rglob("*.py"):
        assert not CHANNELS_IMPORT.search(path.read_text()), path
    code = (
        "from django.conf import settings; "
        "from django.core.management import get_commands; "
        "print(settings.INSTALLED_APPS[0], 'daphne' in settings.INSTALLED_APPS, "
        "get_commands()['runserver'], settings.CHANNEL_LAYERS['default']['BACKEND'])"
    )
    result = manage(migrated.project, migrated.env, "shell", "-c", code)
    backend = {
        "redis": "channels_redis.core.RedisChannelLayer",
        "memory": "channels_app.layers.InMemoryChannelLayer",
    }
    # The last line: Django 5.2's shell first says what it imported.
    assert result.stdout.splitlines()[-1].split() == [
        "channels_app",
        "False",
        "channels_app",
        backend[migrated.layer],
    ]


@e2e
def test_migrate_creates_channels_app_tables_and_check_finds_nothing(migrated):
    migrate, check = migrated.commands
    assert "Applying channels_app.0001_initial... OK" in migrate.stdout
    assert "System check identified no issues" in check.stdout
    assert check.stderr == ""


async def receive_json(client, timeout: float = 5) -> dict:
    return json.loads(await asyncio.wait_for(client.recv(), timeout))


@e2e
async def test_a_message_reaches_everyone_in_the_room_and_no_one_else(server):
    def room(name: str):
        return websockets.connect(
            f"{server.ws_url}/ws/chat/{name}/", origin=server.origin
        )

    async with room("lobby") as alice, room("lobby") as bob, room("other") as carol:
        await alice.send(json.dumps({"message": "hello from alice"}))
        assert await receive_json(alice) == {"message": "hello from alice"}
        assert await receive_json(bob) == {"message": "hello from alice"}

        await bob.send(json.dumps({"message": "hi alice"}))
        assert await receive_json(alice) == {"message": "hi alice"}
        assert await receive_json(bob) == {"message": "hi alice"}

        await carol.send(json.dumps({"message": "anyone?"}))
        assert await receive_json(carol) == {"message": "anyone?"}
        # Nothing of the other room arrived before carol's own message.
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(alice.recv(), 0.5)


@e2e
async def test_a_websocket_from_another_site_is_refused(server):
    # The tutorial wraps its routes in AllowedHostsOriginValidator.
    url = f"{server.ws_url}/ws/chat/lobby/"
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(url, origin="http://evil.example"):
            pass
    assert refused.value.response.status_code == 403


@e2e
def test_the_pages_are_served(server):
    import urllib.request

    with urllib.request.urlopen(f"{server.url}/chat/", timeout=10) as response:
        assert b"What chat room would you like to enter?" in response.read()
    with urllib.request.urlopen(f"{server.url}/chat/lobby/", timeout=10) as response:
        assert b'<script id="room-name" type="application/json">"lobby"' in (
            response.read()
        )


# -- half-migrated projects ----------------------------------------------------


@e2e
def test_keeping_daphne_above_channels_app_fails_the_check(tmp_path):
    """The old advice, "replace "channels" with "channels_app" in
    INSTALLED_APPS", applied to a project that lists both "daphne" (first, as
    the tutorial says) and "channels" (as Channels' installation page allows):
    Daphne's runserver would shadow ours, and the check says so."""
    project = copy_tutorial(tmp_path)
    settings = project / "mysite" / "settings.py"
    settings.write_text(
        settings.read_text().replace("    'chat',\n", "    'channels',\n    'chat',\n")
    )
    rewrite_imports(project)
    settings.write_text(settings.read_text().replace("'channels',", "'channels_app',"))
    env = use_test_redis(project)

    result = manage(project, env, "check")

    assert result.returncode == 1, result.stdout + result.stderr
    assert "ERRORS:" in result.stderr
    assert "'daphne'" in result.stderr and "runserver" in result.stderr
    # The guide's edit is the fix.
    settings.write_text(settings.read_text().replace("    'daphne',\n", ""))
    fixed = manage(project, env, "check")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr


@e2e
def test_changing_only_the_imports_is_reported(tmp_path):
    """With 'daphne' still listed and no 'channels_app', Daphne's runserver
    serves the project; building our root router says what is missing."""
    project = copy_tutorial(tmp_path)
    rewrite_imports(project)
    env = use_test_redis(project)
    check = manage(project, env, "check")
    assert check.returncode == 0, check.stdout + check.stderr
    server = start(project, env, "runserver")
    try:
        log = server.log()
    finally:
        server.stop()
    assert "channels_app is not in INSTALLED_APPS" in log, log
    assert "Add 'channels_app' at the top of INSTALLED_APPS" in log


@e2e
def test_the_edit_applies_to_the_tutorial_settings_once(tmp_path):
    project = copy_tutorial(tmp_path)
    edit_settings(project)
    with pytest.raises(AssertionError, match="does not match once"):
        edit_settings(project)
