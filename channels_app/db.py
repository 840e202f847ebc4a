"""Keeping Django's database connections healthy from async code.

Django tidies connections at the start and end of each request.  A consumer
lives much longer than a request, so the tidying has to happen around the
work it does instead.  Threaded calls made through
:func:`database_sync_to_async` tidy before and after themselves.  Async
consumers tidy before a handler only when a query has run since the last
tidy or a connection has outlived ``CONN_MAX_AGE``; a consumer that never
touches the database never pays the thread hop.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import math
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import SyncToAsync, sync_to_async
from django.db import close_old_connections, connections
from django.db.backends.signals import connection_created

__all__ = [
    "aclose_old_connections",
    "close_old_connections",
    "connection_activity",
    "database_sync_to_async",
]

# Set inside test communicators: closing a connection would end the
# transaction a Django TestCase wraps around each test.
closing_disabled: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "channels_app_connection_closing_disabled", default=False
)


class ConnectionActivity:
    """Remembers whether any connection may need tidying, without a thread hop.

    A query marks the state dirty (it may have broken the connection); an
    idle connection only needs attention once its ``CONN_MAX_AGE`` deadline
    passes.  Both are cheap to check from the event loop.
    """

    def __init__(self) -> None:
        self.dirty = False
        self.deadline = math.inf

    def needs_tidying(self) -> bool:
        return self.dirty or time.monotonic() >= self.deadline

    def query_ran(
        self,
        execute: Callable[..., Any],
        sql: Any,
        params: Any,
        many: bool,
        context: dict[str, Any],
    ) -> Any:
        self.dirty = True
        return execute(sql, params, many, context)

    def tidied(self) -> None:
        """Record the state left in this thread after closing old connections."""
        self.dirty = False
        deadlines = [
            conn.close_at
            for conn in connections.all(initialized_only=True)
            if conn.connection is not None and conn.close_at is not None
        ]
        self.deadline = min(deadlines, default=math.inf)


connection_activity = ConnectionActivity()


def _watch_connection(sender: Any, connection: Any, **kwargs: Any) -> None:
    if connection_activity.query_ran not in connection.execute_wrappers:
        # At the front: execute_wrapper() context managers pop from the end.
        connection.execute_wrappers.insert(0, connection_activity.query_ran)
    connection_activity.dirty = True


connection_created.connect(_watch_connection, dispatch_uid="channels_app.db.watch")


def _close_old_connections() -> None:
    if not closing_disabled.get():
        close_old_connections()
        connection_activity.tidied()


class DatabaseSyncToAsync(SyncToAsync[Any, Any]):
    """``sync_to_async`` that closes stale connections before and after the call."""

    def __init__(
        self,
        func: Callable[..., Any],
        thread_sensitive: bool = True,
        executor: ThreadPoolExecutor | None = None,
        context: contextvars.Context | None = None,
    ) -> None:
        @functools.wraps(func)
        def tidy_around(*args: Any, **kwargs: Any) -> Any:
            # Runs in the worker thread, inside the caller's copied context.
            _close_old_connections()
            try:
                return func(*args, **kwargs)
            finally:
                _close_old_connections()

        # ``context`` (run the call in that context, not a copy of the
        # caller's) is only passed on when given: older asgiref releases lack it.
        options: dict[str, Any] = {} if context is None else {"context": context}
        super().__init__(
            tidy_around, thread_sensitive=thread_sensitive, executor=executor, **options
        )


#: Decorator/wrapper: run ORM code from async code with healthy connections.
database_sync_to_async = DatabaseSyncToAsync


async def aclose_old_connections() -> None:
    """Close stale connections in the thread where sync ORM calls run."""
    await sync_to_async(_close_old_connections)()


#: The tidy-up in flight on each event loop, shared by :func:`tidy_connections`.
_tidies: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[None]] = (
    weakref.WeakKeyDictionary()
)


async def tidy_connections() -> None:
    """:func:`aclose_old_connections`, shared by the consumers that ask at once.

    After one query every consumer's next message finds the connections in
    need of tidying; when a broadcast reaches a thousand of them in the same
    instant, each would queue its own hop to the ORM thread, one behind the
    other.  Those that find a tidy-up still in flight wait for that one: the
    connections it closes are the same (they belong to that one thread).
    ``benchmarks/consumer_fanout.py``: a group message to 1,000 consumers
    after a query reached all of them in 350-600 ms with one hop each,
    100-160 ms shared (Channels 4: about 1,000 ms).
    """
    loop = asyncio.get_running_loop()
    task = _tidies.get(loop)
    if task is None or task.done():
        task = loop.create_task(aclose_old_connections())
        _tidies[loop] = task
    # Shielded: one consumer cancelled while waiting must not cancel the
    # tidy-up the others wait for.
    await asyncio.shield(task)
