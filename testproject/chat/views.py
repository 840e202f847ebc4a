"""Plain Django views: accounts, the room list, a room page, its recent
messages as JSON (what the page reloads after a gap in the stream), and the
HTTP fallback for posting when the browser has no WebSocket."""

from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import UserCreationForm
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from channels_app.layers import get_channel_layer

from . import posting
from .forms import RoomForm
from .models import Room

HISTORY_LENGTH = 50

#: The page's ``StreamClient`` options (streams.js): a chat wants a dead link
#: found within seconds, not the client's default 25.
DEFAULT_CLIENT_OPTIONS = {"heartbeatInterval": 5000, "heartbeatTimeout": 3000}


def client_options() -> dict:
    return {**DEFAULT_CLIENT_OPTIONS, **getattr(settings, "CHAT_CLIENT_OPTIONS", {})}


def signup(request):
    form = UserCreationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user)
        return redirect("chat:rooms")
    return render(request, "registration/signup.html", {"form": form})


@login_required
def rooms(request):
    form = RoomForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        room = form.save()
        return redirect(room)
    return render(
        request, "chat/rooms.html", {"rooms": Room.objects.all(), "form": form}
    )


def recent_messages(room: Room) -> list:
    """The room's newest messages, oldest first."""
    newest = room.messages.select_related("author").order_by("-id")
    return list(newest[:HISTORY_LENGTH])[::-1]


@login_required
def room(request, slug):
    room = get_object_or_404(Room, slug=slug)
    return render(
        request,
        "chat/room.html",
        {
            "room": room,
            "history": recent_messages(room),
            "stream": posting.stream_for(room),
            "client_options": client_options(),
        },
    )


@login_required
def recent(request, slug):
    """The room's recent history as JSON: the page reloads it when the stream
    says it cannot replay what the browser missed (a ``gap``)."""
    room = get_object_or_404(Room, slug=slug)
    return JsonResponse({"messages": [m.as_event() for m in recent_messages(room)]})


@login_required
@require_POST
def post_message(request, slug):
    """Post without a WebSocket (the Server-Sent-Events client uses this)."""
    room = get_object_or_404(Room, slug=slug)
    try:
        message = posting.save_message(room, request.user, request.POST.get("text"))
    except posting.InvalidMessage as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    event = posting.publish_from_sync(get_channel_layer(), room, message)
    return JsonResponse({"message": event}, status=201)
