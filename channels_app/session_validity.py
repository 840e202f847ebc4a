"""Whether a session still stands, asked of the session store itself.

A connection authenticated once, at its handshake; these answer, later and
without the side effects of Django's own ``get_user`` (which would flush or
rotate the browser's session), whether that session still logs its user in
and when it expires.  :mod:`channels_app.session_end` asks them.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from django.conf import settings
from django.utils import timezone
from django.utils.crypto import constant_time_compare

if TYPE_CHECKING:
    from django.contrib.sessions.backends.base import SessionBase


def _session_store_class() -> type[SessionBase]:
    # On first use, so that importing session_end (every consumer module
    # does) does not load the session middleware too.
    from .sessions import session_store_class

    return session_store_class()


def session_still_holds(session_key: str, user_id: str | None) -> bool:
    """Whether ``session_key`` still exists and (if ``user_id``) still logs
    that user in, by the checks of Django's ``get_user`` -- without its side
    effects (it would flush or rotate the browser's session)."""
    from django.contrib import auth as django_auth

    store = _session_store_class()(session_key)
    data = store.load()
    if not data:
        return False
    if user_id is None:
        return True
    if str(data.get(django_auth.SESSION_KEY)) != user_id:
        return False
    backend_path = data.get(django_auth.BACKEND_SESSION_KEY)
    if (
        not isinstance(backend_path, str)
        or backend_path not in settings.AUTHENTICATION_BACKENDS
    ):
        return False
    user_model = django_auth.get_user_model()
    try:
        pk = user_model._meta.pk.to_python(data[django_auth.SESSION_KEY])
    except Exception:
        return False
    user = django_auth.load_backend(backend_path).get_user(pk)
    if user is None:
        return False
    if not hasattr(user, "get_session_auth_hash"):
        return True
    stored = data.get(django_auth.HASH_SESSION_KEY)
    if not stored:
        return False
    if constant_time_compare(stored, user.get_session_auth_hash()):
        return True
    fallbacks = getattr(user, "get_session_auth_fallback_hash", None)
    if not fallbacks:
        return False
    return any(constant_time_compare(stored, fallback) for fallback in fallbacks())


def session_expiry(session_key: str) -> datetime | None:
    """When ``session_key`` expires, or None if it does not exist (any more).

    Exact for the database engines (the row's ``expire_date``) and for
    sessions given a date with ``set_expiry``; otherwise the latest it can
    be (``SESSION_COOKIE_AGE`` from now), and the re-check then looks again.
    """
    store = _session_store_class()(session_key)
    get_model_class = getattr(store, "get_model_class", None)
    if get_model_class is not None:
        expiry: datetime | None = (
            get_model_class()
            .objects.filter(session_key=session_key, expire_date__gt=timezone.now())
            .values_list("expire_date", flat=True)
            .first()
        )
        return expiry
    if not store.load():
        return None
    expires: datetime = store.get_expiry_date()
    return expires
