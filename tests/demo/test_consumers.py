"""The chat over WebSocket and Server-Sent Events, with the in-memory layer."""

import asyncio
import logging

import pytest
from asgiref.sync import sync_to_async
from django.test import Client, override_settings

from channels_app.layers import get_channel_layer
from channels_app.testing import ApplicationCommunicator, WebsocketCommunicator
from chat import posting
from chat.models import Message, Presence
from tests.demo.clients import (
    ORIGIN,
    EventStream,
    application,
    open_socket,
    presence_becomes,
    receive_until,
)
from tests.demo.demo_settings import demo_settings

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("demo"),
]


@pytest.fixture
def demo():
    with demo_settings:
        yield


async def test_anonymous_users_unknown_rooms_and_foreign_origins_are_refused(
    lobby, ada
):
    for kwargs in [
        {"user": None},
        {"user": ada, "path": "/ws/rooms/nowhere/"},
        {"user": ada, "origin": (b"origin", b"http://evil.example")},
        {"user": ada, "origin": None},
    ]:
        _, connected, _ = await open_socket(**kwargs)
        assert not connected, kwargs
    assert await sync_to_async(Presence.objects.count)() == 0


async def test_two_users_see_each_other_and_each_others_messages(lobby, ada, bob):
    alice_ws, connected, _ = await open_socket(ada)
    assert connected
    assert await alice_ws.receive_json_from(timeout=10) == {
        "type": "presence",
        "users": ["ada"],
    }
    bob_ws, _, _ = await open_socket(bob)
    both = {"type": "presence", "users": ["ada", "bob"]}
    assert await alice_ws.receive_json_from(timeout=10) == both
    assert await bob_ws.receive_json_from(timeout=10) == both

    await alice_ws.send_json_to({"type": "message", "text": "hello bob"})
    seen_by_alice = await receive_until(alice_ws, "message")
    seen_by_bob = await receive_until(bob_ws, "message")
    assert seen_by_alice == seen_by_bob
    stored = await sync_to_async(Message.objects.select_related("author").get)()
    assert seen_by_bob["message"] == {
        "id": stored.id,
        "author": "ada",
        "text": "hello bob",
        "created_at": stored.created_at.isoformat(),
        "moderated": False,
    }

    await bob_ws.disconnect()
    assert await alice_ws.receive_json_from(timeout=10) == {
        "type": "presence",
        "users": ["ada"],
    }
    assert await sync_to_async(Presence.objects.count)() == 1
    await alice_ws.disconnect()
    assert await sync_to_async(Presence.objects.count)() == 0


async def events_up_to(comm, kind: str) -> list[dict]:
    """The events ``comm`` receives before the next one of ``kind``, presence
    lists left out."""
    events = []
    while (event := await comm.receive_json_from(timeout=10))["type"] != kind:
        if event["type"] != "presence":
            events.append(event)
    return events


async def test_typing_reaches_the_others_but_not_the_typist(lobby, ada, bob):
    alice_ws, _, _ = await open_socket(ada)
    bob_ws, _, _ = await open_socket(bob)
    await receive_until(alice_ws, "presence")
    await alice_ws.receive_json_from(timeout=10)  # presence with bob
    typing = {"type": "typing", "user": "ada"}
    for _ in range(5):
        await alice_ws.send_json_to({"type": "typing"})
    # A message sent after them goes out after every hint they caused, so what
    # comes before it shows how many were relayed, however slow the machine.
    await alice_ws.send_json_to({"type": "message", "text": "done typing"})
    assert await events_up_to(bob_ws, "message") == [typing], "a burst, one hint"
    # After a message, a hint is news again.
    await alice_ws.send_json_to({"type": "typing"})
    await alice_ws.send_json_to({"type": "message", "text": "more"})
    assert await events_up_to(bob_ws, "message") == [typing]
    # The typist gets her messages and none of her own hints.
    assert await events_up_to(alice_ws, "message") == []
    assert await events_up_to(alice_ws, "message") == []
    await alice_ws.disconnect()
    await bob_ws.disconnect()


async def test_bad_input_is_answered_with_an_error_and_nothing_is_posted(
    lobby, ada, bob
):
    alice_ws, _, _ = await open_socket(ada)
    bob_ws, _, _ = await open_socket(bob)
    await receive_until(alice_ws, "presence")
    await alice_ws.receive_json_from(timeout=10)
    await receive_until(bob_ws, "presence")
    for frame, error in [
        ({"type": "message", "text": "   "}, "A message cannot be empty."),
        ({"type": "message", "text": "x" * 2001}, "at most 2000 characters"),
        ({"type": "message", "text": 42}, "A message must be text."),
        ({"type": "message", "text": "lone \ud800 half"}, "valid Unicode text"),
        ({"type": "message", "text": "nul \x00 inside"}, "cannot contain NUL"),
        ({"type": "message"}, "A message must be text."),
        ({"type": "dance"}, "Unknown event type 'dance'."),
        (["not", "an", "object"], "Unknown event type None."),
    ]:
        await alice_ws.send_json_to(frame)
        reply = await alice_ws.receive_json_from(timeout=10)
        assert reply["type"] == "error"
        assert error in reply["error"]
    assert await bob_ws.receive_nothing(0.2)
    assert not await sync_to_async(Message.objects.exists)()
    # The connection is still usable.
    await alice_ws.send_json_to({"type": "message", "text": "fine now"})
    assert (await receive_until(bob_ws, "message"))["message"]["text"] == "fine now"
    await alice_ws.disconnect()
    await bob_ws.disconnect()


async def test_a_frame_that_is_not_json_closes_the_socket(lobby, ada):
    alice_ws, _, _ = await open_socket(ada)
    await receive_until(alice_ws, "presence")
    await alice_ws.send_to(text_data="{not json")
    closing = await alice_ws.receive_output(timeout=10)
    assert (closing["type"], closing["code"]) == ("websocket.close", 4007)
    await alice_ws.disconnect()
    assert await sync_to_async(Presence.objects.count)() == 0


def heartbeat_tasks():
    return [
        task
        for task in asyncio.all_tasks()
        if task.get_name() == "presence heartbeat" and not task.done()
    ]


async def test_a_crashed_consumer_leaves_no_heartbeat_running(lobby, ada):
    alice_ws, _, _ = await open_socket(ada)
    await receive_until(alice_ws, "presence")
    assert len(heartbeat_tasks()) == 1
    # An event it has no handler for makes the consumer raise.
    layer = get_channel_layer()
    [channel] = layer.groups[lobby.group_name]
    await layer.send(channel, {"type": "no.such.event"})
    with pytest.raises(ValueError, match="No handler for message type"):
        await alice_ws.wait(timeout=10)
    assert heartbeat_tasks() == []


async def test_reconnecting_with_after_replays_what_was_missed(lobby, ada, bob):
    texts = ["one", "two", "three"]
    ids = [
        (await sync_to_async(posting.save_message)(lobby, bob, text)).id
        for text in texts
    ]
    alice_ws, _, _ = await open_socket(ada, path=f"/ws/rooms/lobby/?after={ids[0]}")
    replayed = [(await receive_until(alice_ws, "message"))["message"] for _ in ids[1:]]
    assert [(m["id"], m["text"]) for m in replayed] == list(
        zip(ids[1:], texts[1:], strict=True)
    )
    assert await receive_until(alice_ws, "presence")
    assert await alice_ws.receive_nothing(0.2)
    await alice_ws.disconnect()


@pytest.mark.parametrize("after", ["%C2%B2", "-1", "1e3", "9" * 40, "%FF"])
async def test_an_after_that_is_not_a_message_id_is_ignored(lobby, ada, bob, after):
    # "²".isdigit() is true but int("²") raises; a huge id overflows the column.
    await sync_to_async(posting.save_message)(lobby, bob, "earlier")
    alice_ws, _, _ = await open_socket(ada, path=f"/ws/rooms/lobby/?after={after}")
    assert (await alice_ws.receive_json_from(timeout=10))["type"] == "presence"
    await alice_ws.send_json_to({"type": "message", "text": "still works"})
    assert (await receive_until(alice_ws, "message"))["message"]["text"] == (
        "still works"
    )
    await alice_ws.disconnect()


FAST_PRESENCE = override_settings(
    CHAT_HEARTBEAT_INTERVAL=0.1, CHAT_PRESENCE_TIMEOUT=0.6
)


async def heartbeat_forever(comm):
    while True:
        await comm.send_json_to({"type": "heartbeat"})
        await asyncio.sleep(0.1)


@FAST_PRESENCE
async def test_a_browser_that_goes_quiet_leaves_the_list_and_comes_back(
    lobby, ada, bob
):
    alice_ws, _, _ = await open_socket(ada)
    bob_ws, _, _ = await open_socket(bob)
    alice_alive = asyncio.create_task(heartbeat_forever(alice_ws))
    bob_alive = asyncio.create_task(heartbeat_forever(bob_ws))

    await presence_becomes(alice_ws, ["ada", "bob"])
    # Bob's browser freezes: no heartbeat, no close, the socket stays open.
    bob_alive.cancel()
    await presence_becomes(alice_ws, ["ada"])
    assert (
        await sync_to_async(Presence.objects.filter(user__username="bob").exists)()
        is False
    )
    # It wakes up: its next heartbeat brings it back for everyone.
    bob_alive = asyncio.create_task(heartbeat_forever(bob_ws))
    await presence_becomes(alice_ws, ["ada", "bob"])

    for task in (alice_alive, bob_alive):
        task.cancel()
    await alice_ws.disconnect()
    await bob_ws.disconnect()


@FAST_PRESENCE
async def test_connections_left_by_a_dead_server_process_are_swept(lobby, ada, bob):
    # A row whose consumer died with its process: nobody will ever delete it.
    await sync_to_async(Presence.objects.create)(
        room=lobby, user=bob, channel_name="specific.dead!1", last_seen=now()
    )
    alice_ws, _, _ = await open_socket(ada)
    alive = asyncio.create_task(heartbeat_forever(alice_ws))
    assert await receive_until(alice_ws, "presence") == {
        "type": "presence",
        "users": ["ada", "bob"],
    }
    assert await receive_until(alice_ws, "presence") == {
        "type": "presence",
        "users": ["ada"],
    }
    assert not await sync_to_async(
        Presence.objects.filter(channel_name="specific.dead!1").exists
    )()
    alive.cancel()
    await alice_ws.disconnect()


def now():
    from django.utils import timezone

    return timezone.now()


async def test_event_stream_follows_the_room(lobby, ada, bob):
    stream = await EventStream.open(ada)
    assert stream.start["status"] == 200
    assert (b"content-type", b"text/event-stream") in stream.start["headers"]
    assert await stream.next_event("presence") == ("presence", None, {"users": ["ada"]})

    bob_ws, _, _ = await open_socket(bob)
    _, _, data = await stream.next_event("presence")
    assert data == {"users": ["ada", "bob"]}
    await bob_ws.send_json_to({"type": "typing"})
    assert await stream.next_event("typing") == ("typing", None, {"user": "bob"})
    await bob_ws.send_json_to({"type": "message", "text": "over the stream"})
    _, event_id, data = await stream.next_event("message")
    assert data["message"]["text"] == "over the stream"
    assert event_id == str(data["message"]["id"])

    await stream.close()
    await presence_becomes(bob_ws, ["bob"])
    await bob_ws.disconnect()


async def test_event_stream_resumes_from_last_event_id(lobby, ada, bob):
    first = await sync_to_async(posting.save_message)(lobby, bob, "seen")
    missed = await sync_to_async(posting.save_message)(lobby, bob, "missed")
    stream = await EventStream.open(
        ada, headers=[(b"last-event-id", str(first.id).encode())]
    )
    kind, event_id, data = await stream.next_event()
    assert (kind, event_id, data["message"]["text"]) == (
        "message",
        str(missed.id),
        "missed",
    )
    await stream.close()


@pytest.mark.parametrize(
    "headers, path",
    [
        ([(b"last-event-id", b"\xff\xfe")], "/rooms/lobby/events/"),
        ([(b"last-event-id", "²".encode())], "/rooms/lobby/events/"),
        ([], "/rooms/lobby/events/?after=%C2%B2"),
    ],
)
async def test_event_stream_ignores_a_position_that_is_not_an_id(
    lobby, ada, bob, headers, path
):
    await sync_to_async(posting.save_message)(lobby, bob, "earlier")
    stream = await EventStream.open(ada, path=path, headers=headers)
    assert stream.start["status"] == 200
    assert await stream.next_event() == ("presence", None, {"users": ["ada"]})
    await stream.close()


async def test_event_stream_needs_a_login_and_a_room(lobby, ada):
    anonymous = await EventStream.open()
    assert anonymous.start["status"] == 403
    assert await anonymous.body() == b"Log in first.\n"
    lost = await EventStream.open(ada, path="/rooms/nowhere/events/")
    assert lost.start["status"] == 404
    assert await sync_to_async(Presence.objects.count)() == 0


@FAST_PRESENCE
async def test_event_stream_sends_keepalives_and_stays_present(lobby, ada):
    stream = await EventStream.open(ada)
    await stream.next_event("presence")
    for _ in range(8):  # well past the presence timeout
        assert await stream.next_block() == ": ping"
    assert await sync_to_async(Presence.objects.count)() == 1
    await stream.close()
    assert await sync_to_async(Presence.objects.count)() == 0


def moderation_worker():
    from testproject.asgi import application

    return ApplicationCommunicator(
        application, {"type": "channel", "channel": posting.MODERATION_CHANNEL}
    )


async def listen(room):
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(room.group_name, channel)
    return layer, channel


async def test_moderation_worker_edits_the_message_and_tells_the_room(lobby, ada):
    message = await sync_to_async(posting.save_message)(lobby, ada, "oh darn it")
    layer, channel = await listen(lobby)
    worker = moderation_worker()
    await worker.send_input({"type": "moderate.message", "message_id": message.id})
    update = await asyncio.wait_for(layer.receive(channel), 10)
    await sync_to_async(message.refresh_from_db)()
    assert (message.text, message.moderated) == ("oh d*** it", True)
    assert update == {
        "type": "chat.message.updated",
        "message": await sync_to_async(message.as_event)(),
    }
    worker.stop()


async def test_moderation_leaves_clean_and_deleted_messages_alone(lobby, ada):
    clean = await sync_to_async(posting.save_message)(lobby, ada, "all good")
    # Moderated last: its update shows the worker got past the other two.
    marker = await sync_to_async(posting.save_message)(lobby, ada, "oh darn it")
    layer, channel = await listen(lobby)
    worker = moderation_worker()
    for message_id in (clean.id, marker.id + 1000, marker.id):
        await worker.send_input({"type": "moderate.message", "message_id": message_id})
    # The first (and only) update the room hears is the marker's.
    update = await asyncio.wait_for(layer.receive(channel), 10)
    assert update["message"]["id"] == marker.id
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(layer.receive(channel), 0.2)
    await sync_to_async(clean.refresh_from_db)()
    assert (clean.text, clean.moderated) == ("all good", False)
    worker.stop()


async def test_moderation_update_reaches_browsers(lobby, ada):
    alice_ws, _, _ = await open_socket(ada)
    await alice_ws.send_json_to({"type": "message", "text": "heck yes"})
    posted = (await receive_until(alice_ws, "message"))["message"]
    layer = get_channel_layer()
    job = await layer.receive(posting.MODERATION_CHANNEL)
    assert job == {"type": "moderate.message", "message_id": posted["id"]}
    worker = moderation_worker()
    await worker.send_input(job)
    updated = (await receive_until(alice_ws, "message_updated"))["message"]
    assert (updated["id"], updated["text"], updated["moderated"]) == (
        posted["id"],
        "h*** yes",
        True,
    )
    worker.stop()
    await alice_ws.disconnect()


async def test_a_full_moderation_queue_does_not_lose_the_message(lobby, ada, caplog):
    layer_config = {
        "default": {
            "BACKEND": "channels_app.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": 1},
        }
    }
    with override_settings(CHANNEL_LAYERS=layer_config):
        layer, channel = await listen(lobby)
        for text in ("first", "second"):
            message = await sync_to_async(posting.save_message)(lobby, ada, text)
            with caplog.at_level(logging.WARNING, logger="chat"):
                await posting.publish(layer, lobby, message)
            event = await asyncio.wait_for(layer.receive(channel), 10)
            assert event["message"]["text"] == text
    assert "Moderation channel 'chat-moderation' is full" in caplog.text
    assert await sync_to_async(Message.objects.count)() == 2


async def login_over_socket(frames, cookies=None):
    """Send ``frames`` to the account socket, opened with ``cookies`` (a Client's)."""
    headers = [ORIGIN]
    if cookies:
        value = "; ".join(f"{m.key}={m.value}" for m in cookies.values())
        headers.append((b"cookie", value.encode()))
    comm = WebsocketCommunicator(application(), "/ws/account/", headers=headers)
    connected, _ = await comm.connect()
    assert connected
    replies = []
    for frame in frames:
        await comm.send_json_to(frame)
        replies.append(await comm.receive_json_from(timeout=10))
    await comm.disconnect()
    return replies


async def test_a_wrong_login_over_the_socket_is_refused(ada):
    await sync_to_async(ada.set_password)("right-password")
    await sync_to_async(ada.save)()
    refused = {"type": "error", "error": "Your username and password did not match."}
    assert (
        await login_over_socket(
            [
                {"type": "login", "username": "ada", "password": "wrong"},
                {"type": "login", "username": "nobody", "password": "right-password"},
                {"type": "login", "username": ["ada"], "password": {}},
            ]
        )
        == [refused] * 3
    )
    assert await login_over_socket([{"type": "hello"}]) == [
        {"type": "error", "error": "Expected a login."}
    ]


def browser_on_the_login_page():
    """A browser (Django's test client) that loaded the login page: no session."""
    browser = Client()
    assert browser.get("/accounts/login/").status_code == 200
    assert "sessionid" not in browser.cookies
    return browser


async def test_login_over_the_socket_gives_a_ticket_for_the_cookie(ada):
    await sync_to_async(ada.set_password)("right-password")
    await sync_to_async(ada.save)()
    browser = await sync_to_async(browser_on_the_login_page)()
    [reply] = await login_over_socket(
        [{"type": "login", "username": "ada", "password": "right-password"}],
        cookies=browser.cookies,
    )
    assert (reply["type"], reply["username"]) == ("logged_in", "ada")

    def redeem(ticket):
        # Another browser that loaded the login page cannot use the ticket.
        thief = browser_on_the_login_page()
        stolen = thief.post("/accounts/session-sync/", {"ticket": ticket})
        first = browser.post("/accounts/session-sync/", {"ticket": ticket})
        again = browser.post("/accounts/session-sync/", {"ticket": ticket})
        rooms = browser.get("/")
        return stolen, first, again, rooms

    stolen, first, again, rooms = await sync_to_async(redeem)(reply["ticket"])
    assert stolen.status_code == 400, "a ticket works only in its browser"
    assert first.status_code == 200 and first.json()["authenticated"] is True
    assert again.status_code == 400, "a ticket works once"
    assert rooms.status_code == 200 and rooms.context["user"].username == "ada"
