"""Who is in a room right now, kept honest by heartbeats and expiry.

Disconnect events alone are not enough: a browser that loses its network, a
laptop that goes to sleep or a server process that is killed never sends
one.  So every live connection owns a :class:`~chat.models.Presence` row
that it refreshes on each heartbeat, rows older than the timeout count as
gone, and each server process sweeps the stale rows of its rooms so the
others learn about the departure.

What it costs, for a room of N connections:

* a join or a leave is O(1) queries (its own row, and a bump of the room's
  ``presence_version``) and, through :class:`Announcer`, at most one
  broadcast of N messages -- the list is read once, by the process that saw
  the change, and members show it without a query of their own;
* changes in a burst (a thousand people arriving after a link was shared)
  are coalesced: a process sends at most one list per room per
  :func:`broadcast_interval` (longer for rooms of more than a few hundred
  connections), always read after the latest change it saw;
* a sweep runs at most once per room per process per heartbeat interval,
  however many connections that process holds.

Lists carry the room's ``presence_version`` read *before* the list, so with
several server processes announcing at once a member can keep the newest
list and ignore one that arrives late (:meth:`Announcer.snapshot`).

The ORM functions are synchronous; consumers call them through
``database_sync_to_async``.  :class:`Announcer` is the async part.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from channels_app.db import database_sync_to_async

from .models import Presence, Room

logger = logging.getLogger("chat")


def heartbeat_interval() -> float:
    """Seconds between two heartbeats of one connection."""
    return float(getattr(settings, "CHAT_HEARTBEAT_INTERVAL", 10))


def presence_timeout() -> float:
    """Seconds without a heartbeat after which a connection counts as gone."""
    return float(getattr(settings, "CHAT_PRESENCE_TIMEOUT", 30))


def broadcast_interval() -> float:
    """Least seconds between two presence lists one process sends to a room."""
    return float(getattr(settings, "CHAT_PRESENCE_BROADCAST_INTERVAL", 0.25))


#: In a big room the interval grows, so that a burst of changes costs a
#: process at most about this many presence messages a second per room.
PRESENCE_MESSAGES_PER_SECOND = 1000


def interval_for(connections: int) -> float:
    """Seconds before the next list to a room of ``connections`` may go out."""
    return max(broadcast_interval(), connections / PRESENCE_MESSAGES_PER_SECOND)


def _cutoff():
    return timezone.now() - timedelta(seconds=presence_timeout())


def _changed(room_id: int) -> None:
    """Record that the room's presence changed (after the change itself)."""
    Room.objects.filter(pk=room_id).update(presence_version=F("presence_version") + 1)


def join(room: Room, user, channel_name: str) -> None:
    """Record that ``channel_name`` (a connection of ``user``) is in ``room``."""
    with transaction.atomic():
        row = (
            Presence.objects.select_for_update()
            .filter(channel_name=channel_name)
            .first()
        )
        if row is None:
            Presence.objects.create(
                room=room,
                user=user,
                channel_name=channel_name,
                last_seen=timezone.now(),
            )
        else:
            previous = row.room_id
            row.room, row.user, row.last_seen = room, user, timezone.now()
            row.save(update_fields=["room", "user", "last_seen"])
            if previous != room.pk:
                _changed(previous)
        _changed(room.pk)


def touch(channel_name: str) -> bool:
    """Refresh a connection's row; ``False`` if it was already swept away."""
    return bool(
        Presence.objects.filter(channel_name=channel_name).update(
            last_seen=timezone.now()
        )
    )


def leave(channel_name: str) -> bool:
    """Forget a connection that closed; ``False`` if it was already gone."""
    with transaction.atomic():
        room_id = (
            Presence.objects.filter(channel_name=channel_name)
            .values_list("room_id", flat=True)
            .first()
        )
        if room_id is None:
            return False
        Presence.objects.filter(channel_name=channel_name).delete()
        _changed(room_id)
    return True


def sweep(room: Room) -> int:
    """Delete the room's rows that stopped heartbeating; return how many."""
    with transaction.atomic():
        deleted = Presence.objects.filter(room=room, last_seen__lt=_cutoff()).delete()
        if deleted[0]:
            _changed(room.pk)
    return deleted[0]


def online_usernames(room: Room) -> list[str]:
    """Sorted names of users with at least one live connection to ``room``."""
    return _live(room)[1]


def _live(room: Room) -> tuple[int, list[str]]:
    """``(connections, sorted user names)`` of the room's live rows, one query."""
    username = f"user__{get_user_model().USERNAME_FIELD}"
    names = Presence.objects.filter(room=room, last_seen__gte=_cutoff()).values_list(
        username, flat=True
    )
    names = list(names)
    return len(names), sorted(set(names))


def snapshot(room: Room) -> tuple[int, int, list[str]]:
    """``(version, connections, users)``; the list is at least as new as the
    version.

    The version is read first, in its own statement: every change up to it
    has committed (changes bump it after making themselves), so the list
    read next includes them, and perhaps later ones too.
    """
    version = (
        Room.objects.filter(pk=room.pk)
        .values_list("presence_version", flat=True)
        .first()
    )
    return (version or 0, *_live(room))


# -- announcing changes, once per process -------------------------------------


@dataclass(eq=False)
class _RoomState:
    layer: object
    room: Room
    dirty: bool = False
    task: asyncio.Task | None = None
    #: When the last list went out, and when the next one may.
    last_broadcast: float = -float("inf")
    next_allowed: float = -float("inf")
    last_sweep: float = -float("inf")
    sweeping: bool = False


class Announcer:
    """The presence broadcasts and sweeps of the rooms served by one event loop.

    :meth:`changed` asks for the room's list to be sent to its group.  The
    first request in a quiet room is sent at once; requests arriving within
    :func:`broadcast_interval` of a broadcast (longer in a big room, see
    :func:`interval_for`) are folded into one more, sent when the interval
    is over and read from the database then, so it carries the latest
    state.  The broadcast is independent of the
    connection that asked: one that leaves still has its departure told.
    """

    def __init__(self) -> None:
        self._rooms: dict[tuple[int, int], _RoomState] = {}

    def _state(self, layer, room: Room) -> _RoomState:
        key = (id(layer), room.pk)
        state = self._rooms.get(key)
        if state is None or state.layer is not layer:
            state = self._rooms[key] = _RoomState(layer=layer, room=room)
        return state

    def changed(self, layer, room: Room) -> None:
        state = self._state(layer, room)
        state.dirty = True
        if state.task is None:
            state.task = asyncio.get_running_loop().create_task(
                self._broadcast(state), name=f"presence of {room.slug}"
            )

    async def _broadcast(self, state: _RoomState) -> None:
        try:
            while state.dirty:
                wait = state.next_allowed - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                state.dirty = False
                state.last_broadcast = time.monotonic()
                state.next_allowed = state.last_broadcast + broadcast_interval()
                try:
                    snap = await database_sync_to_async(snapshot)(state.room)
                    version, connections, users = snap
                    state.next_allowed = state.last_broadcast + interval_for(
                        connections
                    )
                    await state.layer.group_send(
                        state.room.group_name,
                        {
                            "type": "presence.changed",
                            "version": version,
                            # Encoded once here rather than by every member.
                            "users": json.dumps(users),
                        },
                    )
                except Exception:
                    logger.exception("Presence broadcast failed in %s", state.room)
        finally:
            state.task = None

    async def sweep(self, layer, room: Room) -> None:
        """Sweep the room's stale rows, unless this loop did so within a
        heartbeat interval; announce the departures if there were any."""
        state = self._state(layer, room)
        now = time.monotonic()
        if state.sweeping or now - state.last_sweep < heartbeat_interval():
            return
        state.sweeping = True
        state.last_sweep = now
        try:
            if await database_sync_to_async(sweep)(room):
                self.changed(layer, room)
        finally:
            state.sweeping = False


_announcers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def announcer() -> Announcer:
    """The :class:`Announcer` of the running event loop."""
    loop = asyncio.get_running_loop()
    found = _announcers.get(loop)
    if found is None:
        found = _announcers[loop] = Announcer()
    return found
