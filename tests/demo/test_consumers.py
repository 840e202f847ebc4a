"""The chat over WebSocket and Server-Sent Events, with the in-memory layer.

The WebSocket speaks the stream client's protocol (``streams.js``): the
tests send its frames by hand.
"""

import asyncio
import logging

import pytest
from asgiref.sync import sync_to_async
from django.test import Client, override_settings

from channels_app.layers import get_channel_layer
from channels_app.presence import presence_of
from channels_app.streams import Position, get_streams
from channels_app.testing import ApplicationCommunicator, WebsocketCommunicator
from chat import posting
from chat.models import Message
from tests.demo.clients import (
    ORIGIN,
    EventStream,
    application,
    next_message,
    open_socket,
    presence_becomes,
    receive_until,
    request,
    subscribe,
)
from tests.demo.demo_settings import demo_settings
from tests.support.waiting import eventually

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("demo"),
]


@pytest.fixture
def demo():
    with demo_settings:
        yield


async def in_room(user):
    """A socket of ``user`` in the lobby, subscribed to its stream."""
    comm, connected, _ = await open_socket(user)
    assert connected
    await subscribe(comm)
    return comm


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
    assert await presence_of("chat.lobby") == {}


async def test_two_users_see_each_other_and_each_others_messages(lobby, ada, bob):
    alice_ws, connected, _ = await open_socket(ada)
    assert connected
    assert await alice_ws.receive_json_from(timeout=10) == {
        "type": "presence.state",
        "topic": "chat.lobby",
        "members": {"ada": [{"name": "ada"}]},
    }
    subscribed = await subscribe(alice_ws)
    assert (subscribed["stream"], subscribed["recovery"]) == ("chat.lobby", "none")
    bob_ws = await in_room(bob)
    await presence_becomes(alice_ws, ["ada", "bob"])
    await presence_becomes(bob_ws, ["ada", "bob"])

    reply = await request(alice_ws, {"type": "message", "text": "hello bob"})
    assert reply["ok"] is True
    seen_by_alice = await next_message(alice_ws)
    seen_by_bob = await next_message(bob_ws)
    assert seen_by_alice == seen_by_bob == reply["data"]["message"]
    stored = await sync_to_async(Message.objects.select_related("author").get)()
    assert seen_by_bob == {
        "id": stored.id,
        "author": "ada",
        "text": "hello bob",
        "created_at": stored.created_at.isoformat(),
        "moderated": False,
    }

    await bob_ws.disconnect()
    await presence_becomes(alice_ws, ["ada"])
    assert list(await presence_of("chat.lobby")) == ["ada"]
    await alice_ws.disconnect()
    assert await presence_of("chat.lobby") == {}


async def test_two_tabs_of_one_user_count_once(lobby, ada, bob):
    bob_ws = await in_room(bob)
    tabs = [await in_room(ada), await in_room(ada)]
    await presence_becomes(bob_ws, ["ada", "bob"])
    await tabs[0].disconnect()
    await request(bob_ws, {"type": "message", "text": "still there?"})
    # Her second tab is open: no leave reached Bob before his own message.
    while (event := await bob_ws.receive_json_from(10))["type"] != "stream.message":
        assert event["type"] != "presence.leave", event
    await tabs[1].disconnect()
    await presence_becomes(bob_ws, ["bob"])
    await bob_ws.disconnect()


async def events_up_to(comm, kind: str) -> list[dict]:
    """The frames ``comm`` receives before the next one of ``kind``, presence
    and request replies left out."""
    events = []
    while (event := await comm.receive_json_from(timeout=10))["type"] != kind:
        if not event["type"].startswith("presence.") and event["type"] != (
            "stream.reply"
        ):
            events.append(event)
    return events


async def test_typing_reaches_the_others_but_not_the_typist(lobby, ada, bob):
    alice_ws = await in_room(ada)
    bob_ws = await in_room(bob)
    await presence_becomes(alice_ws, ["ada", "bob"])
    typing = {"type": "typing", "user": "ada"}
    for _ in range(5):
        await alice_ws.send_json_to({"type": "typing"})
    # A message sent after them goes out after every hint they caused, so what
    # comes before it shows how many were relayed, however slow the machine.
    await alice_ws.send_json_to({"type": "message", "text": "done typing"})
    assert await events_up_to(bob_ws, "stream.message") == [typing], "one hint"
    # After a message, a hint is news again.
    await alice_ws.send_json_to({"type": "typing"})
    await request(alice_ws, {"type": "message", "text": "more"})
    assert await events_up_to(bob_ws, "stream.message") == [typing]
    # The typist gets her messages and none of her own hints.
    assert await events_up_to(alice_ws, "stream.message") == []
    await alice_ws.disconnect()
    await bob_ws.disconnect()


INVALID = [
    ({"type": "message", "text": "   "}, "A message cannot be empty."),
    ({"type": "message", "text": "x" * 2001}, "at most 2000 characters"),
    ({"type": "message", "text": 42}, "A message must be text."),
    ({"type": "message", "text": "lone \ud800 half"}, "valid Unicode text"),
    ({"type": "message", "text": "nul \x00 inside"}, "cannot contain NUL"),
    ({"type": "message"}, "A message must be text."),
]


async def test_bad_input_is_answered_with_an_error_and_nothing_is_posted(
    lobby, ada, bob
):
    alice_ws = await in_room(ada)
    bob_ws = await in_room(bob)
    await presence_becomes(alice_ws, ["ada", "bob"])
    # Through client.request(): a refusal that says why.
    for data, error in [
        *INVALID,
        ({"type": "dance"}, "Expected {'type': 'message'"),
        ("hello", "Expected {'type': 'message'"),
    ]:
        reply = await request(alice_ws, data)
        assert reply["ok"] is False, data
        assert error in reply["error"]
    # Through plain frames: an error frame.
    for frame, error in [
        *INVALID,
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
    assert (await request(alice_ws, {"type": "message", "text": "fine now"}))["ok"]
    assert (await next_message(bob_ws))["text"] == "fine now"
    await alice_ws.disconnect()
    await bob_ws.disconnect()


async def test_a_room_socket_may_subscribe_to_its_own_room_only(lobby, ada):
    alice_ws = await in_room(ada)
    await alice_ws.send_json_to({"type": "stream.subscribe", "stream": "chat.other"})
    refused = await receive_until(alice_ws, "stream.refused")
    assert (refused["stream"], refused["reason"]) == ("chat.other", "forbidden")
    await alice_ws.disconnect()


async def test_a_frame_that_is_not_json_closes_the_socket(lobby, ada):
    alice_ws = await in_room(ada)
    await alice_ws.send_to(text_data="{not json")
    closing = await alice_ws.receive_output(timeout=10)
    assert (closing["type"], closing["code"]) == ("websocket.close", 4007)
    await alice_ws.disconnect()
    assert await presence_of("chat.lobby") == {}


@override_settings(CHAT_PING_SECONDS=0.3)
async def test_a_browser_gone_silent_is_closed_and_leaves(lobby, ada, bob):
    """Its network went away without a close: the server asks (``ping``), a
    live page answers (``pong``), a silent one is closed and leaves."""
    alice_ws, _, _ = await open_socket(ada)
    leaves = []

    async def answer_pings():
        while True:
            event = await alice_ws.receive_json_from(10)
            if event["type"] == "ping":
                await alice_ws.send_json_to({"type": "pong"})
            elif event["type"] == "presence.leave":
                leaves.append(event["user"])

    alive = asyncio.create_task(answer_pings())
    # Bob's page says nothing at all.
    bob_ws, _, _ = await open_socket(bob)
    closing = await bob_ws.receive_output(timeout=10)
    while closing["type"] != "websocket.close":
        closing = await bob_ws.receive_output(timeout=10)
    assert closing["code"] == 4000
    # What a server does once the application closed the socket.
    await bob_ws.send_input({"type": "websocket.disconnect", "code": 4000})
    await eventually(lambda: leaves == ["bob"])
    assert list(await presence_of("chat.lobby")) == ["ada"]
    assert not alive.done(), "Ada, who answers, stays connected"
    alive.cancel()
    await alice_ws.disconnect()


async def test_a_browser_back_from_offline_gets_what_it_missed(lobby, ada, bob):
    alice_ws = await in_room(ada)
    bob_ws = await in_room(bob)
    for text in ("one", "two"):
        await request(bob_ws, {"type": "message", "text": text})
    seen = [await next_message(alice_ws) for _ in range(2)]
    # Ada's last position is the one of "two"; she goes away.
    await alice_ws.disconnect()
    missed = [
        (await request(bob_ws, {"type": "message", "text": t}))["data"]["message"]
        for t in ("three", "four", "five")
    ]
    position = await get_streams().read_after("chat.lobby", Position("any", 0))
    two = next(m for m in position.replay if m.data == seen[1])
    alice_ws, _, _ = await open_socket(ada)
    subscribed = await subscribe(
        alice_ws, since={"epoch": two.epoch, "offset": two.offset}
    )
    assert subscribed["recovery"] == "recovered"
    replayed = [await next_message(alice_ws) for _ in missed]
    assert replayed == missed
    assert await alice_ws.receive_nothing(0.2)
    await alice_ws.disconnect()
    await bob_ws.disconnect()


async def test_a_position_the_stream_cannot_recover_is_reported(lobby, ada):
    alice_ws, _, _ = await open_socket(ada)
    subscribed = await subscribe(alice_ws, since={"epoch": "gone", "offset": 7})
    assert subscribed["recovery"] == "epoch_changed"
    # Still subscribed: live messages follow.
    await request(alice_ws, {"type": "message", "text": "after the gap"})
    assert (await next_message(alice_ws))["text"] == "after the gap"
    await alice_ws.disconnect()


async def test_event_stream_follows_the_room(lobby, ada, bob):
    stream = await EventStream.open(ada)
    assert stream.start["status"] == 200
    assert (b"content-type", b"text/event-stream") in stream.start["headers"]
    assert await stream.next_event("presence") == ("presence", None, {"users": ["ada"]})

    bob_ws = await in_room(bob)
    _, _, data = await stream.next_event("presence")
    assert data == {"users": ["ada", "bob"]}
    await bob_ws.send_json_to({"type": "typing"})
    assert await stream.next_event("typing") == ("typing", None, {"user": "bob"})
    await bob_ws.send_json_to({"type": "message", "text": "over the stream"})
    _, event_id, data = await stream.next_event("message")
    assert data["message"]["text"] == "over the stream"
    sent = await next_message(bob_ws)
    assert data["message"] == sent
    epoch, offset = event_id.split(":")
    assert (epoch, int(offset)) == (
        (await get_streams().read_after("chat.lobby", None)).position.epoch,
        1,
    )

    await stream.close()
    await presence_becomes(bob_ws, ["bob"])
    await bob_ws.disconnect()


async def test_event_stream_resumes_from_last_event_id(lobby, ada, bob):
    for text in ("seen", "missed"):
        message = await sync_to_async(posting.save_message)(lobby, bob, text)
        await posting.publish(get_channel_layer(), lobby, message)
    epoch = (await get_streams().read_after("chat.lobby", None)).position.epoch
    # EventSource reconnects with the id of the last event it got: "seen"'s.
    headers = [(b"last-event-id", f"{epoch}:1".encode())]
    stream = await EventStream.open(ada, headers=headers)
    kind, event_id, data = await stream.next_event("message")
    assert (kind, event_id, data["message"]["text"]) == (
        "message",
        f"{epoch}:2",
        "missed",
    )
    await stream.close()


@pytest.mark.parametrize(
    "headers",
    [
        [(b"last-event-id", b"\xff\xfe")],
        [(b"last-event-id", "²:1".encode())],
        [(b"last-event-id", b"12")],
        [(b"last-event-id", b"abc:-1")],
    ],
)
async def test_event_stream_ignores_a_position_that_is_not_one(lobby, ada, headers):
    stream = await EventStream.open(ada, headers=headers)
    assert stream.start["status"] == 200
    assert await stream.next_event() == ("presence", None, {"users": ["ada"]})
    await stream.close()


async def test_event_stream_needs_a_login_and_a_room(lobby, ada):
    anonymous = await EventStream.open()
    assert anonymous.start["status"] == 403
    assert await anonymous.body() == b"Log in first.\n"
    lost = await EventStream.open(ada, path="/rooms/nowhere/events/")
    assert lost.start["status"] == 404
    assert await presence_of("chat.lobby") == {}


@override_settings(CHAT_KEEPALIVE_SECONDS=0.1, CHANNELS_APP_PRESENCE={"LEASE": 0.3})
async def test_event_stream_sends_keepalives_and_stays_present(lobby, ada):
    stream = await EventStream.open(ada)
    await stream.next_event("presence")
    for _ in range(8):  # well past the presence lease
        assert await stream.next_block() == ": ping"
    assert list(await presence_of("chat.lobby")) == ["ada"]
    await stream.close()
    assert await presence_of("chat.lobby") == {}


def moderation_worker():
    from testproject.asgi import application

    return ApplicationCommunicator(
        application, {"type": "channel", "channel": posting.MODERATION_CHANNEL}
    )


async def history():
    """The data of every message in the lobby's stream."""
    read = await get_streams().read_after("chat.lobby", Position("any", 0))
    return [m.data for m in read.replay]


async def test_moderation_worker_edits_the_message_and_tells_the_room(lobby, ada):
    message = await sync_to_async(posting.save_message)(lobby, ada, "oh darn it")
    worker = moderation_worker()
    await worker.send_input({"type": "moderate.message", "message_id": message.id})

    async def published():
        while not await history():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(published(), 10)
    await sync_to_async(message.refresh_from_db)()
    assert (message.text, message.moderated) == ("oh d*** it", True)
    assert await history() == [await sync_to_async(message.as_event)()]
    worker.stop()


async def test_moderation_leaves_clean_and_deleted_messages_alone(lobby, ada):
    clean = await sync_to_async(posting.save_message)(lobby, ada, "all good")
    # Moderated last: its update shows the worker got past the other two.
    marker = await sync_to_async(posting.save_message)(lobby, ada, "oh darn it")
    alice_ws = await in_room(ada)
    worker = moderation_worker()
    for message_id in (clean.id, marker.id + 1000, marker.id):
        await worker.send_input({"type": "moderate.message", "message_id": message_id})
    # The first (and only) update the room hears is the marker's.
    assert (await next_message(alice_ws))["id"] == marker.id
    assert await alice_ws.receive_nothing(0.2)
    await sync_to_async(clean.refresh_from_db)()
    assert (clean.text, clean.moderated) == ("all good", False)
    assert len(await history()) == 1
    worker.stop()
    await alice_ws.disconnect()


async def test_moderation_update_reaches_browsers(lobby, ada):
    alice_ws = await in_room(ada)
    posted = (await request(alice_ws, {"type": "message", "text": "heck yes"}))["data"][
        "message"
    ]
    assert await next_message(alice_ws) == posted
    layer = get_channel_layer()
    job = await layer.receive(posting.MODERATION_CHANNEL)
    assert job == {"type": "moderate.message", "message_id": posted["id"]}
    worker = moderation_worker()
    await worker.send_input(job)
    # The same message (same id) again, edited: the page redraws it in place.
    updated = await next_message(alice_ws)
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
        layer = get_channel_layer()
        for text in ("first", "second"):
            message = await sync_to_async(posting.save_message)(lobby, ada, text)
            with caplog.at_level(logging.WARNING, logger="chat"):
                await posting.publish(layer, lobby, message)
        assert [m["text"] for m in await history()] == ["first", "second"]
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
