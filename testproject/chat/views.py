"""Plain Django views: accounts, the room list, a room page, the HTTP fallback
for posting when the browser has no WebSocket."""

from asgiref.sync import async_to_sync
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import UserCreationForm
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from channels_app.layers import get_channel_layer

from . import posting, presence
from .forms import RoomForm
from .models import Room

HISTORY_LENGTH = 50


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


@login_required
def room(request, slug):
    room = get_object_or_404(Room, slug=slug)
    newest = room.messages.select_related("author").order_by("-id")
    history = list(newest[:HISTORY_LENGTH])[::-1]
    return render(
        request,
        "chat/room.html",
        {
            "room": room,
            "history": history,
            "last_id": history[-1].id if history else 0,
            "heartbeat_ms": int(presence.heartbeat_interval() * 1000),
        },
    )


@login_required
@require_POST
def post_message(request, slug):
    """Post without a WebSocket (the Server-Sent-Events client uses this)."""
    room = get_object_or_404(Room, slug=slug)
    try:
        message = posting.save_message(room, request.user, request.POST.get("text"))
    except posting.InvalidMessage as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    async_to_sync(posting.publish)(get_channel_layer(), room, message)
    return JsonResponse({"message": message.as_event()}, status=201)
