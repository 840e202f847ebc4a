"""The chat's pages: accounts, rooms, history and the HTTP posting fallback."""

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import User

from channels_app.layers import get_channel_layer
from channels_app.streams import Position, get_streams
from chat.models import Message, Room
from tests.demo.demo_settings import demo_settings

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("demo")]


@pytest.fixture
def demo():
    with demo_settings:
        yield


@pytest.fixture
def ada(client):
    user = User.objects.create_user("ada", password="secret-pass-1")
    client.force_login(user)
    return user


@pytest.fixture
def room():
    return Room.objects.create(slug="lobby", title="Lobby")


def test_pages_need_a_login(client, room):
    for url in ["/", "/rooms/lobby/"]:
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"] == f"/accounts/login/?next={url}"


def test_sign_up_creates_the_account_and_logs_in(client):
    response = client.post(
        "/accounts/signup/",
        {
            "username": "grace",
            "password1": "a-long-pass-42",
            "password2": "a-long-pass-42",
        },
    )
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.get("/").context["user"].username == "grace"


def test_sign_up_with_mismatched_passwords_creates_nothing(client):
    response = client.post(
        "/accounts/signup/",
        {"username": "grace", "password1": "a-long-pass-42", "password2": "other-1"},
    )
    assert response.status_code == 200
    assert response.context["form"].errors["password2"]
    assert not User.objects.filter(username="grace").exists()


def test_log_in_with_the_form(client):
    User.objects.create_user("ada", password="secret-pass-1")
    response = client.post(
        "/accounts/login/", {"username": "ada", "password": "secret-pass-1"}
    )
    assert response.status_code == 302
    assert client.get("/").status_code == 200


def test_creating_a_room_derives_its_slug(client, ada):
    response = client.post("/", {"title": "Tea & Biscuits"})
    assert response.status_code == 302
    assert response["Location"] == "/rooms/tea-biscuits/"
    assert Room.objects.get().title == "Tea & Biscuits"


def test_a_duplicate_or_unsluggable_room_name_is_refused(client, ada, room):
    for title, error in [("lobby", "already exists"), ("!!!", "letter or digit")]:
        response = client.post("/", {"title": title})
        assert response.status_code == 200
        assert error in response.context["form"].errors["title"][0]
    assert Room.objects.count() == 1


def test_room_page_shows_the_latest_history_in_order(client, ada, room):
    for n in range(55):
        Message.objects.create(room=room, author=ada, text=f"line {n}")
    response = client.get("/rooms/lobby/")
    history = response.context["history"]
    assert [m.text for m in history] == [f"line {n}" for n in range(5, 55)]
    assert b"line 54" in response.content and b"line 4<" not in response.content
    # The page's script subscribes to the room's stream and loads the client.
    assert b'data-stream="chat.lobby"' in response.content
    assert b'<script type="module"' in response.content


def test_recent_messages_as_json_for_the_page_to_reload(client, ada, room):
    for n in range(55):
        Message.objects.create(room=room, author=ada, text=f"line {n}")
    response = client.get("/rooms/lobby/recent/")
    assert response.status_code == 200
    messages = response.json()["messages"]
    assert [m["text"] for m in messages] == [f"line {n}" for n in range(5, 55)]
    newest = Message.objects.select_related("author").order_by("id").last()
    assert messages[-1] == newest.as_event()
    assert client.get("/rooms/nowhere/recent/").status_code == 404
    client.logout()
    assert client.get("/rooms/lobby/recent/").status_code == 302


def test_unknown_room_is_404(client, ada):
    assert client.get("/rooms/nowhere/").status_code == 404


def stream_history() -> list[dict]:
    """The data of every message in the lobby's stream."""
    read = async_to_sync(get_streams().read_after)("chat.lobby", Position("any", 0))
    return [m.data for m in read.replay]


def test_posting_over_http_stores_and_publishes_to_the_stream(client, ada, room):
    response = client.post("/rooms/lobby/messages/", {"text": "  hi there  "})
    assert response.status_code == 201
    message = Message.objects.get()
    assert (message.text, message.author, message.room) == ("hi there", ada, room)
    assert response.json()["message"] == message.as_event()
    assert stream_history() == [message.as_event()]


def test_posting_queues_the_message_for_moderation(client, ada, room):
    layer = get_channel_layer()
    client.post("/rooms/lobby/messages/", {"text": "hello"})
    job = async_to_sync(layer.receive)("chat-moderation")
    assert job == {"type": "moderate.message", "message_id": Message.objects.get().id}


def test_posting_bad_text_stores_nothing_and_says_why(client, ada, room):
    for text, error in [("   ", "cannot be empty"), ("x" * 2001, "at most 2000")]:
        response = client.post("/rooms/lobby/messages/", {"text": text})
        assert response.status_code == 400
        assert error in response.json()["error"]
    assert not Message.objects.exists()
    assert stream_history() == []


def test_posting_needs_post_a_login_and_a_room(client, room):
    assert client.post("/rooms/lobby/messages/", {"text": "x"}).status_code == 302
    User.objects.create_user("ada")
    client.force_login(User.objects.get())
    assert client.get("/rooms/lobby/messages/").status_code == 405
    assert client.post("/rooms/none/messages/", {"text": "x"}).status_code == 404
    assert not Message.objects.exists()


def test_posting_needs_the_csrf_token(ada, room):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(ada)
    assert strict.post("/rooms/lobby/messages/", {"text": "x"}).status_code == 403
    assert not Message.objects.exists()
