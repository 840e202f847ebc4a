"""Tell a session's open connections that the session has ended.

A WebSocket authenticates once, at the handshake; without help it would go
on acting as its user after that user logged out in another tab.  This
module closes the gap over the channel layer:

* On connect, a WebSocket consumer with a layer that has groups joins (at
  most) two groups: one named from a hash of its session key, one from a
  hash of its user (never the raw key or id).  They are left on disconnect.
* Ending a session announces it to the session's group: Django's
  ``user_logged_out`` signal (every session engine), and the deletion of a
  database session row (``flush()``, ``cycle_key()``, ``clearsessions``,
  the admin) for the ``db`` and ``cached_db`` engines.
* Saving a user whose password was set (``set_password()`` then ``save()``,
  or ``save(update_fields=["password"])``) asks the user's connections to
  re-check their sessions: those whose stored auth hash no longer matches
  end, as Django would treat them on their next request.
* Expiry: each watched connection keeps one timer for its session's expiry
  date and re-checks the session then.
* The consumer reacts in ``session_ended(reason)``, whose default closes the
  connection with :data:`SESSION_ENDED`.  Before it runs, ``scope["user"]``
  becomes ``AnonymousUser`` and ``scope["session"]`` an empty session.

Nothing happens per frame: the cost is the group memberships, one sleeping
timer, and one thread hop at connect to learn the expiry date.  Consumers
without a layer (or whose layer has no groups) keep working; they simply
learn nothing until they next read the session themselves.

Code that ends sessions some other way (a custom engine, a bulk update of
passwords) can announce it with :func:`end_session` and
:func:`check_user_sessions`.

This module has the group names, the announcements and each connection's
:class:`SessionWatch`; the Django receivers that announce are in
:mod:`channels_app.session_signals`, and the questions put to the session
store (does it still hold, when does it expire) in
:mod:`channels_app.session_validity`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import weakref
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from .db import database_sync_to_async
from .session_validity import session_expiry, session_still_holds
from .types import ChannelLayer, Message, Scope

if TYPE_CHECKING:
    pass

__all__ = [
    "DELETED",
    "EXPIRED",
    "LOGOUT",
    "PASSWORD_CHANGED",
    "SESSION_ENDED",
    "check_user_sessions",
    "end_session",
    "session_group",
    "user_group",
    "watch",
]

logger = logging.getLogger("channels_app.session_end")

#: Close code of a WebSocket whose session ended.  4000-4999 are the
#: application's to define (every server sends them as they are); 4401
#: echoes HTTP's 401, "log in again".
SESSION_ENDED = 4401

#: Reasons passed to ``session_ended``.
LOGOUT = "logout"
DELETED = "deleted"
PASSWORD_CHANGED = "password_changed"
EXPIRED = "expired"

#: Message types, prefixed so they cannot collide with a project's own; the
#: WebSocket consumers handle them in ``channels_app_session_ended`` and
#: ``channels_app_session_check``.
ENDED_TYPE = "channels_app.session.ended"
CHECK_TYPE = "channels_app.session.check"

#: How long a sync caller (a logout view) waits for the layer before giving up
#: and logging: a logout must not hang because the layer is down.
SEND_TIMEOUT = 5.0

#: Seconds past the expiry date before the re-check, so a clock a little
#: ahead of the store's does not find the session still alive.
EXPIRY_GRACE = 0.5


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def session_group(session_key: str) -> str:
    """The group of the connections using ``session_key`` (a hash, not the key)."""
    return f"channels_app.session.{_digest(session_key)}"


def _user_ident(user: Any) -> tuple[str, str]:
    return user._meta.label_lower, user._meta.pk.value_to_string(user)


def user_group(user: Any) -> str:
    """The group of the connections logged in as ``user``."""
    label, pk = _user_ident(user)
    return f"channels_app.user.{_digest(f'{label}:{pk}')}"


# --- announcing (sync code: views, signals, commands) -------------------------


def end_session(session_key: str, reason: str = DELETED) -> None:
    """Tell the connections using ``session_key`` that their session ended."""
    if session_key:
        _publish(
            session_group(session_key),
            {"type": ENDED_TYPE, "session": _digest(session_key), "reason": reason},
        )


def check_user_sessions(user: Any, reason: str = PASSWORD_CHANGED) -> None:
    """Make ``user``'s connections re-check their sessions now.

    Those whose session is gone, or no longer valid for the user (its auth
    hash no longer matches), end with ``reason``.
    """
    _publish(user_group(user), {"type": CHECK_TYPE, "reason": reason})


_pending: set[asyncio.Task[Any]] = set()


def _layers() -> list[ChannelLayer]:
    from .layers.registry import channel_layers

    found = []
    for alias in sorted(set(channel_layers.configs) | set(channel_layers.backends)):
        try:
            layer = channel_layers[alias]
        except Exception:
            logger.exception("Channel layer %r could not be built", alias)
            continue
        if hasattr(layer, "group_send"):
            found.append(layer)
    return found


def _publish(group: str, message: Message) -> None:
    """Send to ``group`` on every configured layer; log, never raise."""
    layers = _layers()
    if not layers:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    for layer in layers:
        if loop is not None:
            # A receiver run on an event loop (an async signal send): the
            # send cannot block here, so it becomes a task.
            task = loop.create_task(_send_logged(layer, group, message))
            _pending.add(task)
            task.add_done_callback(_pending.discard)
            continue
        from .sync_send import await_from_sync

        try:
            await_from_sync(_send_logged, layer, group, message, timeout=SEND_TIMEOUT)
        except Exception:
            logger.exception("Could not tell %s that its session ended", group)


async def _send_logged(layer: ChannelLayer, group: str, message: Message) -> None:
    try:
        await layer.group_send(group, message)
    except Exception:
        logger.exception("Could not tell %s that its session ended", group)


# --- the connection's side ---------------------------------------------------


def _current_key(scope: Scope) -> str | None:
    session = scope.get("session")
    if session is None:
        return None
    try:
        key: str | None = session.session_key
        return key
    except Exception:  # a store that cannot even be built: nothing to watch
        return None


def _current_user(scope: Scope) -> Any:
    from .auth import _is_resolved

    user = scope.get("user")
    if user is None or not _is_resolved(user):
        return None
    return user if getattr(user, "is_authenticated", False) else None


#: The watch of each connection, by the id of its scope (the scope outlives
#: neither its consumer nor the watch), so ``login``/``logout`` on a scope can
#: update the connection's memberships.
_watches: weakref.WeakValueDictionary[int, SessionWatch] = weakref.WeakValueDictionary()


class SessionWatch:
    """One connection's memberships and expiry timer."""

    def __init__(self, consumer: Any) -> None:
        self.consumer = consumer
        self.groups: tuple[str, ...] = ()
        self.key: str | None = None
        self.user_id: str | None = None
        self.ended = False
        self.timer: asyncio.Task[Any] | None = None

    @property
    def layer(self) -> ChannelLayer:
        layer: ChannelLayer | None = self.consumer.channel_layer
        assert layer is not None  # watch() follows only consumers with a layer
        return layer

    async def follow(self) -> None:
        """Join the groups of the scope's current session and user, leave others."""
        scope = self.consumer.scope
        key = _current_key(scope)
        user = _current_user(scope)
        wanted = []
        if key:
            wanted.append(session_group(key))
        if user is not None:
            wanted.append(user_group(user))
        channel = self.consumer.channel_name
        for group in wanted:
            if group not in self.groups:
                await self.layer.group_add(group, channel)
        for group in self.groups:
            if group not in wanted:
                await self.layer.group_discard(group, channel)
        self.groups = tuple(wanted)
        self.user_id = _user_ident(user)[1] if user is not None else None
        if key != self.key:
            self.key = key
            self.restart_timer(first=True)

    async def leave(self) -> None:
        groups, self.groups = self.groups, ()
        self.cancel_timer()
        for group in groups:
            await self.layer.group_discard(group, self.consumer.channel_name)

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def restart_timer(self, first: bool = False) -> None:
        self.cancel_timer()
        if self.key:
            self.timer = self.consumer.start_task(
                self._expire(self.key, first), name="channels_app-session-expiry"
            )

    async def _expire(self, key: str, first: bool) -> None:
        expires = await database_sync_to_async(session_expiry)(key)
        if expires is None:
            if first:
                # Gone before we looked (a stale cookie the scope never
                # validated): there was no session to end.
                self.groups = tuple(g for g in self.groups if g != session_group(key))
                await self.layer.group_discard(
                    session_group(key), self.consumer.channel_name
                )
                return
        else:
            delay = (expires - timezone.now()).total_seconds() + EXPIRY_GRACE
            await asyncio.sleep(max(delay, EXPIRY_GRACE))
        # Through the consumer's own channel, so the check runs between its
        # messages like any handler, never beside one.
        await self.layer.send(
            self.consumer.channel_name,
            {"type": CHECK_TYPE, "reason": EXPIRED, "session": _digest(key)},
        )

    async def on_ended(self, message: Message) -> None:
        if self.ended:
            return
        if message.get("session") != (self.key and _digest(self.key)):
            # This connection moved to another key itself (it logged in or
            # out); the old key's end is not its own.
            await self.follow()
            return
        await self.end(message.get("reason", DELETED))

    async def on_check(self, message: Message) -> None:
        if self.ended or not self.key:
            return
        if "session" in message and message["session"] != _digest(self.key):
            return  # the timer of a key this connection has left
        reason = message.get("reason", PASSWORD_CHANGED)
        holds = await database_sync_to_async(session_still_holds)(
            self.key, self.user_id
        )
        if not holds:
            await self.end(reason)
        elif reason == EXPIRED:
            self.restart_timer()

    async def end(self, reason: str) -> None:
        from django.contrib.auth.models import AnonymousUser

        from .sessions import LazySession, session_store_class

        self.ended = True
        self.cancel_timer()
        scope = self.consumer.scope
        if "user" in scope:
            scope["user"] = AnonymousUser()
        session = scope.get("session")
        if isinstance(session, LazySession):
            session._wrapped = session_store_class()(None)
        # Leave the groups of what is no longer this connection's.
        await self.follow()
        await self.consumer.call_hook(self.consumer.session_ended, reason)


class FollowsSession:
    """The handlers for this module's messages, for every consumer it watches
    (WebSocket consumers from connect, HTTP consumers once they stream)."""

    async def channels_app_session_ended(self, message: Message) -> None:
        """The connection's session ended elsewhere (a logout, a flush)."""
        session_watch = watch_of(self)
        if session_watch is not None:
            await session_watch.on_ended(message)

    async def channels_app_session_check(self, message: Message) -> None:
        """Re-check the session (the user's password changed, or it expired)."""
        session_watch = watch_of(self)
        if session_watch is not None:
            await session_watch.on_check(message)


async def watch(consumer: Any) -> SessionWatch | None:
    """Start following ``consumer``'s session (done by the WebSocket consumers
    on connect); None when there is nothing to follow or no layer to hear on."""
    scope = consumer.scope
    layer = getattr(consumer, "channel_layer", None)
    if "session" not in scope or layer is None or not hasattr(layer, "group_add"):
        return None
    session_watch = SessionWatch(consumer)
    consumer._channels_app_session_watch = session_watch
    _watches[id(scope)] = session_watch
    await session_watch.follow()
    return session_watch


def watch_of(consumer: Any) -> SessionWatch | None:
    return getattr(consumer, "_channels_app_session_watch", None)


async def unwatch(consumer: Any) -> None:
    """Leave the session's groups (done by the WebSocket consumers on disconnect)."""
    session_watch = watch_of(consumer)
    if session_watch is not None:
        _watches.pop(id(consumer.scope), None)
        await session_watch.leave()


async def scope_changed(scope: Scope) -> None:
    """The scope's session or user changed (``login``/``logout`` on it): follow."""
    session_watch = _watches.get(id(scope))
    if session_watch is not None and session_watch.consumer.scope is scope:
        session_watch.ended = False
        await session_watch.follow()
