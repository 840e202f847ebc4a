"""Send to channels and groups from synchronous code: views, commands, Celery tasks.

::

    from channels_app.sync_send import group_send, send

    def publish(request, room):
        group_send(f"chat_{room}", {"type": "chat.message", "text": "hello"})
        send("thumbnails", {"type": "thumbnail.make", "id": 42})
        ...

Why not ``async_to_sync(channel_layer.send)(...)``?  Outside an event loop
it creates a new event loop and a new thread for every call, and a layer
that keeps connections (Redis, PostgreSQL) opens fresh ones each time.  These
helpers never build a loop per call.  Each call runs on one of two loops:

* In a thread that asgiref started from a running event loop -- a sync view
  or a sync consumer under ``runserver`` or Daphne -- it runs on that loop,
  where the server's consumers and layer connections already live (this is
  also what lets the in-memory layer reach consumers in the same process).
* Anywhere else, on one long-lived event loop in a background thread,
  started on first use and restarted in a forked child (Celery's prefork
  pool), so connections are reused across calls.

The helpers are thread-safe and cost a cross-thread hand-off per call, so
thousands of calls per second are fine.  Calling them from a coroutine is a
mistake (it would block the loop) and raises ``RuntimeError``: there,
``await channel_layer.send(...)``.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from asgiref.sync import AsyncToSync, SyncToAsync

from . import DEFAULT_CHANNEL_LAYER
from .exceptions import InvalidChannelLayerError
from .layers import get_channel_layer
from .types import ChannelLayer, Message

__all__ = ["await_from_sync", "group_send", "send"]

T = TypeVar("T")


def send(
    channel: str,
    message: Message,
    *,
    alias: str = DEFAULT_CHANNEL_LAYER,
    timeout: float | None = None,
) -> None:
    """Send ``message`` to ``channel`` on the layer ``alias``; block until queued."""
    await_from_sync(_layer(alias).send, channel, message, timeout=timeout)


def group_send(
    group: str,
    message: Message,
    *,
    alias: str = DEFAULT_CHANNEL_LAYER,
    timeout: float | None = None,
) -> None:
    """Send ``message`` to every channel in ``group`` on the layer ``alias``."""
    await_from_sync(_layer(alias).group_send, group, message, timeout=timeout)


def await_from_sync(
    async_function: Callable[..., Awaitable[T]],
    *args: Any,
    timeout: float | None = None,
    **kwargs: Any,
) -> T:
    """Run ``async_function(*args, **kwargs)`` from sync code and return its result.

    For any layer call the helpers above do not cover, such as
    ``await_from_sync(layer.group_add, "room", channel_name)``.  With a
    ``timeout`` (seconds), the call is cancelled and ``TimeoutError`` raised
    when it takes longer.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError(
            "channels_app.sync_send is for synchronous code; this thread runs an "
            "event loop, so await the channel layer method directly instead"
        )
    coroutine = async_function(*args, **kwargs)
    if _calling_loop() is not None:
        return AsyncToSync(_await)(coroutine, timeout)
    return background_loop.run(coroutine, timeout)


def _calling_loop() -> asyncio.AbstractEventLoop | None:
    """The running loop this thread was started from by ``sync_to_async``, if any.

    asgiref records it in ``SyncToAsync.threadlocal`` (it is how
    ``async_to_sync`` finds its way back); None when it is absent, belongs to
    the parent of a forked process, or no longer runs.
    """
    local = SyncToAsync.threadlocal
    loop = getattr(local, "main_event_loop", None)
    if loop is None or getattr(local, "main_event_loop_pid", None) != os.getpid():
        return None
    return loop if loop.is_running() else None


def _layer(alias: str) -> ChannelLayer:
    layer = get_channel_layer(alias)
    if layer is None:
        raise InvalidChannelLayerError(
            f"No channel layer is configured under the alias {alias!r}; add it to "
            f"the CHANNEL_LAYERS setting"
        )
    return layer


class BackgroundLoop:
    """One event loop, running in a daemon thread, shared by all sync callers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid: int | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop, started now if needed (or anew in a forked child)."""
        loop = self._loop
        if loop is not None and self._pid == os.getpid():
            return loop
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                self._start()
            assert self._loop is not None
            return self._loop

    def run(self, awaitable: Awaitable[T], timeout: float | None = None) -> T:
        """Run ``awaitable`` on the loop and wait for its result."""
        future = asyncio.run_coroutine_threadsafe(_await(awaitable, timeout), self.loop)
        return future.result()

    def stop(self) -> None:
        """Stop the loop and its thread (they are restarted on the next call)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = self._pid = None
        if loop is None or thread is None or not thread.is_alive():
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)

    def _start(self) -> None:
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            try:
                loop.run_forever()
            finally:
                loop.close()

        thread = threading.Thread(
            target=serve, name="channels_app-sync-send", daemon=True
        )
        thread.start()
        ready.wait()
        self._loop, self._thread, self._pid = loop, thread, os.getpid()


async def _await(awaitable: Awaitable[T], timeout: float | None) -> T:
    if timeout is None:
        return await awaitable
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except asyncio.TimeoutError:
        # A distinct class before Python 3.11; callers should only need one.
        raise TimeoutError(f"channel layer call took longer than {timeout}s")


background_loop = BackgroundLoop()
atexit.register(background_loop.stop)
