"""Who is in a room right now, kept honest by heartbeats and expiry.

Disconnect events alone are not enough: a browser that loses its network, a
laptop that goes to sleep or a server process that is killed never sends
one.  So every live connection owns a :class:`~chat.models.Presence` row
that it refreshes on each heartbeat, rows older than the timeout count as
gone, and each connection sweeps the stale rows of its room on its own
heartbeat so the others learn about the departure.

Everything here is synchronous ORM code; consumers call it through
``database_sync_to_async``.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from .models import Presence, Room


def heartbeat_interval() -> float:
    """Seconds between two heartbeats of one connection."""
    return float(getattr(settings, "CHAT_HEARTBEAT_INTERVAL", 10))


def presence_timeout() -> float:
    """Seconds without a heartbeat after which a connection counts as gone."""
    return float(getattr(settings, "CHAT_PRESENCE_TIMEOUT", 30))


def _cutoff():
    return timezone.now() - timedelta(seconds=presence_timeout())


def join(room: Room, user, channel_name: str) -> None:
    """Record that ``channel_name`` (a connection of ``user``) is in ``room``."""
    Presence.objects.update_or_create(
        channel_name=channel_name,
        defaults={"room": room, "user": user, "last_seen": timezone.now()},
    )


def touch(channel_name: str) -> bool:
    """Refresh a connection's row; ``False`` if it was already swept away."""
    return bool(
        Presence.objects.filter(channel_name=channel_name).update(
            last_seen=timezone.now()
        )
    )


def leave(channel_name: str) -> None:
    """Forget a connection that closed."""
    Presence.objects.filter(channel_name=channel_name).delete()


def sweep(room: Room) -> int:
    """Delete the room's rows that stopped heartbeating; return how many."""
    deleted, _ = Presence.objects.filter(room=room, last_seen__lt=_cutoff()).delete()
    return deleted


def online_usernames(room: Room) -> list[str]:
    """Sorted names of users with at least one live connection to ``room``."""
    rows = (
        Presence.objects.filter(room=room, last_seen__gte=_cutoff())
        .select_related("user")
        .only("user__username")
    )
    return sorted({row.user.get_username() for row in rows})
