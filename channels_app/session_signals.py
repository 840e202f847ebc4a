"""Django events that end sessions, announced to the sessions' connections.

Logging out, deleting a database session row and saving a user whose
password was set all end sessions somewhere Django knows about; these
receivers turn each into an announcement of :mod:`channels_app.session_end`.
The app config connects them at start-up, so a process that never imports a
consumer (a WSGI server beside the ASGI one) announces too.
"""

from __future__ import annotations

import threading
from typing import Any

from django.conf import settings
from django.contrib.auth import signals as auth_signals
from django.db import transaction
from django.db.models import signals as model_signals

from .session_end import DELETED, LOGOUT, check_user_sessions, end_session

_announced = threading.local()


def _on_logout(sender: Any, request: Any = None, **kwargs: Any) -> None:
    session = getattr(request, "session", None)
    key = getattr(session, "session_key", None) if session is not None else None
    if key:
        # logout() flushes next; the row's deletion need not be announced too.
        _announced.key = key
        end_session(key, LOGOUT)


def _on_session_row_deleted(
    sender: Any, instance: Any, using: str, **kwargs: Any
) -> None:
    key = instance.session_key
    if getattr(_announced, "key", None) == key:
        _announced.key = None
        return
    transaction.on_commit(lambda: end_session(key, DELETED), using=using)


def _on_user_saved(
    sender: Any,
    instance: Any,
    created: bool,
    update_fields: Any = None,
    using: str | None = None,
    **kw: Any,
) -> None:
    if created:
        return
    # AbstractBaseUser.set_password() keeps the raw password in _password
    # until save() has finished (for the validators' password_changed), so
    # it is still set while post_save runs.
    password_set = getattr(instance, "_password", None) is not None
    if password_set or (update_fields and "password" in update_fields):
        transaction.on_commit(lambda: check_user_sessions(instance), using=using)


def _installed(app: str) -> bool:
    return any(
        entry == app or entry.startswith(app + ".apps.")
        for entry in settings.INSTALLED_APPS
    )


def connect_receivers() -> None:
    """Connect the receivers; idempotent (each has a ``dispatch_uid``)."""
    auth_signals.user_logged_out.connect(
        _on_logout, dispatch_uid="channels_app.session_end.logout"
    )
    # Lazy, by label and for one model each: a post_delete receiver for every
    # model would stop Django's fast deletes everywhere.
    if _installed("django.contrib.sessions"):
        model_signals.post_delete.connect(
            _on_session_row_deleted,
            sender="sessions.Session",
            dispatch_uid="channels_app.session_end.session_deleted",
        )
    user_model = getattr(settings, "AUTH_USER_MODEL", "auth.User")
    if user_model != "auth.User" or _installed("django.contrib.auth"):
        model_signals.post_save.connect(
            _on_user_saved,
            sender=user_model,
            dispatch_uid="channels_app.session_end.user_saved",
        )
