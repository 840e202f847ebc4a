"""The tutorial, typed in: its project is built from its pages and must work.

For each checkpoint of docs/tutorial/part*.rst the project is assembled in
a temporary directory exactly as a reader builds it (real ``startproject``
and ``startapp``, every listing written out, the commands the pages show),
checked with ``manage.py check``, and served with the ``runserver`` (and
``runworker``) the pages last told the reader to start.  Then clients do
what the page says should work there: the pages render, a message echoes,
reaches everyone in its room and no one else, the bot answers — from a
separate worker process on the database layer at the end — and two
Chromium windows chat through the room page's own JavaScript.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from tests.docs.tutorial_build import (
    CHECKPOINT,
    PARTS,
    Running,
    assemble,
    checkpoints,
    listings,
    manage,
    steps,
)

#: What each checkpoint name promises; the pages may only use these.
CHECKS = {"pages", "echo", "chat", "bot", "browser"}
TIMEOUT = 10
#: The last checkpoint, with the browser check; the others are socket checks.
FINAL = [point for point in checkpoints() if "browser" in point]
EARLIER = [point for point in checkpoints() if "browser" not in point]


# -- the pages follow the conventions the test relies on --------------------------


def test_the_tutorial_has_three_parts_each_ending_in_a_working_project():
    assert [page.name for page in PARTS] == ["part1.rst", "part2.rst", "part3.rst"]
    for page in PARTS:
        found = listings(page)
        assert isinstance(found[-1], tuple), f"{page.name} must end in a checkpoint"
    named = {name for point in checkpoints() for name in point.split(":")[1].split()}
    assert named <= CHECKS
    assert len(FINAL) == 1


def test_every_listing_names_its_file_and_there_are_no_bare_literal_blocks():
    for page in PARTS:
        text = page.read_text()
        for number, line in enumerate(text.splitlines(), 1):
            stripped = line.strip()
            assert not (stripped.endswith("::") and not stripped.startswith(".. ")), (
                f"{page.name}:{number}: a literal block the test cannot see; "
                f"use a code-block with a caption"
            )
            if stripped.startswith(".. ") and "tutorial-check" in stripped:
                assert CHECKPOINT.match(line), f"{page.name}:{number}: {line!r}"
    kinds = [step.kind for step in steps()]  # asserts each caption is a path
    assert kinds.count("file") >= 10 and kinds.count("settings") >= 3


def test_settings_listings_replace_or_add_assignments():
    from tests.docs.tutorial_build import merge_settings

    source = 'DEBUG = True\nINSTALLED_APPS = [\n    "a",\n]\nUSE_TZ = True\n'
    changes = 'INSTALLED_APPS = [\n    "b",\n    "a",\n]\n\nNEW = 1\n'
    assert merge_settings(source, changes) == (
        'DEBUG = True\nINSTALLED_APPS = [\n    "b",\n    "a",\n]\nUSE_TZ = True\n'
        "\nNEW = 1\n"
    )


# -- each checkpoint's project, running -------------------------------------------


@pytest.fixture
def running(request, tmp_path):
    """The project assembled up to ``request.param`` and its processes."""
    assembled = assemble(tmp_path, request.param)
    checked = manage(assembled.directory, "check").stdout
    assert "System check identified no issues" in checked
    # The migrate commands the pages show were enough.
    manage(assembled.directory, "migrate", "--check")
    logs = tmp_path / "logs"
    logs.mkdir()
    project = Running(assembled, logs)
    yield project
    project.stop()


def get(url: str) -> tuple[int, str, str]:
    """Status, body and Location of a GET, without following redirects."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(url, timeout=TIMEOUT) as response:
            return response.status, response.read().decode(), ""
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), error.headers.get("Location", "")


def connect(project: Running, room: str):
    return websockets.connect(
        f"{project.ws_url}/ws/chat/{room}/", origin=project.url, open_timeout=TIMEOUT
    )


async def say(socket, text: str) -> None:
    await socket.send(json.dumps({"text": text}))


async def heard(socket) -> dict:
    return json.loads(await asyncio.wait_for(socket.recv(), TIMEOUT))


async def silent(socket, seconds: float = 0.5) -> bool:
    try:
        await asyncio.wait_for(socket.recv(), seconds)
    except TimeoutError:
        return True
    return False


@pytest.mark.e2e
@pytest.mark.parametrize("running", EARLIER, indirect=True)
async def test_the_project_works_at_each_checkpoint(running):
    try:
        for check in running.checks:
            await CHECK_FUNCTIONS[check](running)
    except BaseException:
        print(running.logs())
        raise


@pytest.mark.e2e
@pytest.mark.parametrize("running", FINAL, indirect=True)
async def test_the_finished_project_over_websocket(running):
    """The last checkpoint's socket checks (its browser check is the next test)."""
    try:
        for check in running.checks:
            if check != "browser":
                await CHECK_FUNCTIONS[check](running)
        assert len(running.workers) == 1, "the bot runs in a worker process of its own"
        assert "--noworker" in running.server.arguments
        assert "in-process workers" not in running.server.log()
        # The page says a command waits in the table while the worker is down.
        [worker] = running.workers
        assert worker.stop() == 0
        async with connect(running, "lobby") as alice:
            await say(alice, "/shout hello")
            assert (await heard(alice))["text"] == "/shout hello"
            assert await silent(alice)
            running.start_worker(worker.arguments)
            assert await heard(alice) == {"author": "bot", "text": "HELLO!"}
    except BaseException:
        print(running.logs())
        raise


async def pages(project: Running) -> None:
    status, body, _ = get(f"{project.url}/chat/")
    assert status == 200 and 'name="room"' in body
    status, _, location = get(f"{project.url}/chat/?room=Tea+Room!")
    assert (status, location) == (302, "/chat/tea-room/")
    status, body, _ = get(f"{project.url}/chat/tea-room/")
    assert status == 200
    assert 'data-room="tea-room"' in body and "new WebSocket(" in body
    assert get(f"{project.url}/chat/no%20spaces/")[0] == 404
    # Nothing routes WebSockets yet: the handshake is refused.
    with pytest.raises(InvalidStatus):
        async with connect(project, "tea-room"):
            pass
    project.server.wait_for_log("No application configured for scope type 'websocket'")


async def echo(project: Running) -> None:
    async with connect(project, "lobby") as socket:
        await say(socket, "anyone there?")
        assert await heard(socket) == {"author": "echo", "text": "anyone there?"}


async def chat(project: Running) -> None:
    async with (
        connect(project, "lobby") as alice,
        connect(project, "lobby") as bob,
        connect(project, "kitchen") as carol,
    ):
        # Frames the consumer cannot read change nothing and break nothing.
        await alice.send("not json")
        await alice.send(json.dumps({"text": "   "}))
        await say(alice, "hello, lobby")
        expected = {"author": "anonymous", "text": "hello, lobby"}
        assert await heard(alice) == expected
        assert await heard(bob) == expected
        await say(bob, "hi alice")
        for socket in (alice, bob):
            assert (await heard(socket))["text"] == "hi alice"
        assert await silent(carol), "a message reached another room"
    # A socket from another site's page is refused.
    with pytest.raises(InvalidStatus):
        async with websockets.connect(
            f"{project.ws_url}/ws/chat/lobby/",
            origin="http://evil.example",
            open_timeout=TIMEOUT,
        ):
            pass


async def bot(project: Running) -> None:
    if not project.workers:
        # The page says runserver runs the bot itself.
        project.server.wait_for_log("in-process workers for channels: chat-bot")
    async with connect(project, "lobby") as alice, connect(project, "lobby") as bob:
        await say(alice, "/reverse stressed")
        for socket in (alice, bob):
            assert (await heard(socket))["text"] == "/reverse stressed"
            assert await heard(socket) == {"author": "bot", "text": "desserts"}
        await say(bob, "/dance")
        for socket in (alice, bob):
            assert (await heard(socket))["text"] == "/dance"
            reply = await heard(socket)
            assert reply["author"] == "bot" and "/reverse, /shout" in reply["text"]


CHECK_FUNCTIONS = {"pages": pages, "echo": echo, "chat": chat, "bot": bot}


# -- the finished chat in two browsers --------------------------------------------


@pytest.mark.e2e
@pytest.mark.browser
@pytest.mark.parametrize("running", FINAL, indirect=True)
async def test_the_finished_chat_in_two_chromium_windows(running):
    from tests.browser.harness import CHROMIUM, CHROMIUM_ARGS, chromium_available
    from tests.services import IN_CI

    if not chromium_available():
        reason = f"no Chromium at {CHROMIUM} (apt-get install -y chromium)"
        if IN_CI:
            pytest.fail(f"CI=true and the browser test cannot run: {reason}")
        pytest.skip(reason)
    from playwright.async_api import async_playwright, expect

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            pages = []
            for _ in range(2):
                context = await browser.new_context(base_url=running.url)
                context.set_default_timeout(TIMEOUT * 1000)
                pages.append(await context.new_page())
            first, second = pages
            # One picks the room on the index page, the other types its address.
            await first.goto("/chat/")
            await first.fill("#room", "Garden")
            await first.press("#room", "Enter")
            await first.wait_for_url("**/chat/garden/")
            await second.goto("/chat/garden/")
            for page in pages:
                await expect(page.locator("#status")).to_have_text("Connected.")

            await first.fill("#message", "Is anyone in the garden?")
            await first.press("#message", "Enter")
            lines = ["anonymousIs anyone in the garden?"]
            for page in pages:
                await expect(page.locator("#log li")).to_have_text(lines)
            await expect(first.locator("#message")).to_have_value("")

            await second.fill("#message", "/shout yes")
            await second.click("button[type=submit]")
            lines += ["anonymous/shout yes", "botYES!"]
            for page in pages:
                await expect(page.locator("#log li")).to_have_text(lines)
                await expect(page.locator("#log li .author")).to_have_text(
                    ["anonymous", "anonymous", "bot"]
                )
        except BaseException:
            print(running.logs())
            raise
        finally:
            await browser.close()
