"""The project's streams, built from ``CHANNELS_APP_STREAMS``, and the
module-level ``publish``/``subscribe`` that use them.

The store is built once (an in-memory store must be one object for the
whole process) and rebuilt when a test changes the setting.
"""

from __future__ import annotations

import asyncio
from typing import Any

from asgiref.sync import SyncToAsync, async_to_sync
from django.core.signals import setting_changed

from . import config
from .hub import Streams
from .positions import Position, StreamMessage, Subscription

_streams: Streams | None = None


def get_streams() -> Streams:
    """The :class:`~channels_app.streams.hub.Streams` the settings describe."""
    global _streams
    if _streams is None:
        settings = config.current()
        _streams = Streams(settings.make_store(), settings.layer, settings.limits_for)
    return _streams


def _reset(setting: str, **kwargs: Any) -> None:
    global _streams
    if setting == config.SETTING:
        _streams = None


setting_changed.connect(_reset)


async def publish(stream: str, message: dict[str, Any]) -> StreamMessage:
    """Append ``message`` to ``stream`` and send it to its subscribers.

    Returns the message with its position.  ``TypeError`` for a message that
    is not a JSON-serialisable dict, ``InvalidStreamName`` for a bad name.
    """
    return await get_streams().publish(stream, message)


def _outer_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop that ``async_to_sync`` will run on from this thread, if
    it is a server's (a sync consumer or view under ASGI); None when it will
    make a temporary one."""
    loop = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    return loop if loop is not None and loop.is_running() else None


def publish_sync(stream: str, message: dict[str, Any]) -> StreamMessage:
    """:func:`publish` for synchronous code: a view, a task, a management
    command, a sync consumer.

    Outside a server's event loop each call runs on a temporary loop, whose
    store connections are closed before it ends, so nothing leaks.
    """
    temporary = _outer_loop() is None

    async def run() -> StreamMessage:
        streams = get_streams()
        try:
            return await streams.publish(stream, message)
        finally:
            if temporary:
                await streams.store.close()

    return async_to_sync(run)()


async def subscribe(
    stream: str,
    channel_name: str,
    since: Position | dict[str, Any] | None = None,
) -> Subscription:
    """Join ``stream`` live on ``channel_name``, then read what it missed
    after ``since``; see :meth:`Streams.subscribe`."""
    return await get_streams().subscribe(stream, channel_name, since)


async def unsubscribe(stream: str, channel_name: str) -> None:
    await get_streams().unsubscribe(stream, channel_name)
