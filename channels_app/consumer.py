"""Consumers: one instance per connection, a handler per message type."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from typing import Any

from asgiref.sync import async_to_sync

from . import DEFAULT_CHANNEL_LAYER, metrics
from .concurrency import HandlerPool
from .db import (  # noqa: F401 - aclose_old_connections reachable here, as in Channels
    aclose_old_connections,
    connection_activity,
    database_sync_to_async,
    tidy_connections,
)
from .exceptions import StopConsumer
from .layers import get_channel_layer
from .multiplex import (  # noqa: F401 - await_many_dispatch reachable here, as in Channels
    Source,
    await_many_dispatch,
    dispatch_many,
)
from .types import ASGIApp, ChannelLayer, Message, Receive, Scope, Send

logger = logging.getLogger("channels_app.consumer")


def get_handler_name(message: Message) -> str:
    """The method name for ``message``: its ``type`` with dots as underscores."""
    if not isinstance(message, dict) or "type" not in message:
        raise ValueError(f"Message has no 'type' key: {message!r}")
    message_type = message["type"]
    if not isinstance(message_type, str):
        raise ValueError(f"Message 'type' must be a str, not {message_type!r}")
    if message_type.startswith("_"):
        raise ValueError(
            f"Message type {message_type!r} starts with an underscore; such names "
            f"are private and cannot be dispatched to"
        )
    return message_type.replace(".", "_")


def _refused_initkwargs(cls: type, initkwargs: dict[str, Any]) -> str | None:
    """Why ``cls(**initkwargs)`` is certain to fail, or None if it may work.

    Only a signature that rejects the keywords counts: a constructor taking
    ``**kwargs`` may consume them in ways no inspection can predict, so it is
    given the benefit of the doubt rather than refused by mistake.
    """
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):  # no introspectable signature
        return None
    try:
        signature.bind(**initkwargs)
    except TypeError as exc:
        return str(exc)
    return None


def blocking_form(
    coroutine_function: Callable[[Any, Message], Awaitable[None]],
) -> Callable[[Any, Message], None]:
    """The plain-function form of a coroutine handler, for sync consumers.

    In Channels a ``SyncConsumer``'s protocol handlers are plain methods, so
    an override written for it calls ``super().websocket_receive(message)``
    without awaiting, from its worker thread.  This form lets such code work
    while the handler keeps a single, coroutine, implementation: called from
    a worker thread, it runs the coroutine on the event loop and waits.
    When the handler is not overridden, :meth:`SyncConsumer.dispatch` runs
    the coroutine itself (``coroutine_form``), without the thread hop.
    """

    def handler(self: Any, message: Message) -> None:
        return async_to_sync(coroutine_function)(self, message)

    handler.__name__ = coroutine_function.__name__
    handler.__qualname__ = coroutine_function.__qualname__
    handler.__doc__ = coroutine_function.__doc__
    handler.coroutine_form = coroutine_function  # type: ignore[attr-defined]
    return handler


class _ChannelReceive:
    """``consumer.channel_receive``: the layer's ``receive`` for the consumer's
    channel, as in Channels, where code that overrides ``__call__`` or waits
    for one layer message reads it.  Made when read rather than stored on
    every connection (a partial is 192 bytes); assigning it still works, as
    the instance's own attribute shadows this class-level one."""

    def __get__(self, consumer: AsyncConsumer | None, owner: type | None = None) -> Any:
        if consumer is None:
            return self
        layer = consumer.__dict__.get("channel_layer")
        if layer is None:
            raise AttributeError("channel_receive: the consumer has no channel layer")
        return functools.partial(layer.receive, consumer.channel_name)


class AsyncConsumer:
    """Base consumer whose handlers are coroutines run on the event loop.

    Messages from the client and from the consumer's channel on the layer are
    dispatched to ``self.<type_with_underscores>(message)`` one at a time,
    or up to ``concurrency`` at a time when a subclass raises it.

    There is deliberately no ``__init__``: as in Channels, the keywords given
    to :meth:`as_asgi` reach the constructor of the subclass, and a class
    that does not define one accepts none.
    """

    #: True for consumers whose handlers run in a worker thread.  Read by
    #: ``__call__`` to make ``base_send`` a blocking callable for them, and
    #: by code that serves both kinds of consumer (the same flag as Channels).
    _sync = False
    channel_layer_alias = DEFAULT_CHANNEL_LAYER
    #: Handlers run at once for one connection; 1 handles messages one at a
    #: time, in arrival order (see :mod:`channels_app.concurrency`).
    concurrency = 1
    #: Seconds in-flight handlers get at a disconnect or shutdown before
    #: they are cancelled (with ``concurrency`` above 1).
    handler_grace_period = 5.0
    _loop: asyncio.AbstractEventLoop | None = None
    # Set per connection by __call__.
    scope: Scope
    base_send: Callable[[Message], Any]
    channel_layer: ChannelLayer | None
    channel_name: str
    channel_receive = _ChannelReceive()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope
        self._loop = asyncio.get_running_loop()
        # Made by the first start_task(): most connections never start one.
        self._tasks: set[asyncio.Task[Any]] | None = None
        receive, send, connection_ended = metrics.open_connection(
            self, scope, receive, send
        )
        # Sync handlers run in a thread and cannot await; they get a send
        # that blocks until the event loop has passed the message on.
        self.base_send = async_to_sync(send) if self._sync else send
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        channel_source: Source | None = None
        if self.channel_layer is not None:
            self.channel_name = await self.channel_layer.new_channel()
            channel_source = self._channel_source()
        sources = (receive,) if channel_source is None else (receive, channel_source)
        try:
            timed = metrics.timed_dispatch(self, self.dispatch)
            if self.concurrency == 1:
                await dispatch_many(sources, timed)
            else:
                pool = HandlerPool(
                    self, self.concurrency, self.handler_grace_period, timed
                )
                await pool.run(dispatch_many(sources, pool.dispatch))
        except StopConsumer:
            pass
        finally:
            connection_ended()
            close_source = getattr(channel_source, "close", None)
            if close_source is not None:
                close_source()
            await self._cancel_tasks()

    def _channel_source(self) -> Source:
        """The consumer's channel as a message source: a task-free one where
        the layer offers it (see :mod:`channels_app.multiplex`; ours also
        brings out-of-band news of lost groups), else its ``receive``."""
        push_source = getattr(self.channel_layer, "push_source", None)
        source: Source = (
            self.channel_receive
            if push_source is None
            else push_source(self.channel_name)
        )
        return source

    def start_task(
        self, coroutine: Coroutine[Any, Any, Any], *, name: str | None = None
    ) -> asyncio.Task[Any]:
        """Run ``coroutine`` beside the consumer, until the consumer ends.

        The task is cancelled (and awaited) when the consumer finishes for any
        reason -- a disconnect, ``StopConsumer``, an exception in a handler, the
        server cancelling it -- so a heartbeat or a poller cannot outlive its
        connection.  An exception in the task is logged, not raised.  Callable
        from the event loop and from a sync consumer's handler thread.
        """
        loop = self._loop
        if loop is None:
            coroutine.close()
            raise RuntimeError(
                "start_task() needs a running consumer: call it from connect() "
                "or a handler, not from __init__"
            )
        if _running_loop() is loop:
            return self._track(loop.create_task(coroutine, name=name))
        # A sync handler's thread: create it on the consumer's loop.
        return async_to_sync(self._start_on_loop)(coroutine, name)

    async def _start_on_loop(
        self, coroutine: Coroutine[Any, Any, Any], name: str | None
    ) -> asyncio.Task[Any]:
        return self._track(asyncio.get_running_loop().create_task(coroutine, name=name))

    def _track(self, task: asyncio.Task[Any]) -> asyncio.Task[Any]:
        if self._tasks is None:
            self._tasks = set()
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        if self._tasks is not None:
            self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "Background task %s of %s failed",
                task.get_name(),
                type(self).__qualname__,
                exc_info=task.exception(),
            )

    async def _cancel_tasks(self) -> None:
        tasks = list(self._tasks or ())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def _handler_for(self, message: Message) -> Callable[[Message], Any]:
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(
                f"No handler for message type {message['type']!r} on "
                f"{type(self).__qualname__}; define a method named "
                f"{get_handler_name(message)!r}"
            )
        handler_: Callable[[Message], Any] = handler
        return handler_

    async def dispatch(self, message: Message) -> None:
        """Run the handler for ``message``, tidying DB connections only if needed."""
        handler = self._handler_for(message)
        if connection_activity.needs_tidying():
            await tidy_connections()
        await handler(message)

    async def send(self, message: Message) -> None:
        """Send an ASGI message to the client."""
        await self.base_send(message)

    def ordering_key(self, message: Message) -> Hashable | None:
        """Messages with the same key run in arrival order; None runs freely.

        Only read with ``concurrency`` above 1.  The client's frames keep
        their order by default; layer messages run side by side.
        """
        if message["type"] in ("websocket.receive", "http.request"):
            return "client"
        return None

    async def handler_failed(self, message: Message, error: Exception) -> None:
        """A pooled handler raised ``error`` (already logged); the consumer
        goes on.  Only called with ``concurrency`` above 1."""

    async def channels_app_groups_lost(self, message: Message) -> None:
        """The layer dropped this consumer's channel from ``message["groups"]``.

        Sent (as :data:`~channels_app.layers.base.GROUPS_LOST`) when the layer
        took the channel out of its groups while the consumer may be alive --
        its messages expired unread, or its membership expired -- so that the
        connection learns it instead of staying open and deaf.
        """
        groups = [g for g in message.get("groups", ()) if isinstance(g, str)]
        await self.call_hook(self.groups_lost, groups)

    async def call_hook(
        self, hook: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any:
        """Run a hook a subclass may have written either way: coroutine or
        plain function (the latter in a thread, where the ORM may be used)."""
        if inspect.iscoroutinefunction(hook):
            return await hook(*args, **kwargs)
        # Side by side (concurrency > 1) means a thread per call, not the one
        # thread sync code shares by default.
        threaded = database_sync_to_async(hook, thread_sensitive=self.concurrency == 1)
        return await threaded(*args, **kwargs)

    async def groups_lost(self, groups: list[str]) -> None:
        """React to losing ``groups``: re-join them (override to, say, close).

        Messages sent to those groups in between were missed, as with any
        at-most-once delivery; a consumer that must not miss any can close
        instead, so that its client reconnects and catches up.
        """
        assert self.channel_layer is not None  # the message came through it
        for group in groups:
            await self.channel_layer.group_add(group, self.channel_name)

    @classmethod
    def as_asgi(cls, **initkwargs: Any) -> ASGIApp:
        """An ASGI application that runs ``cls(**initkwargs)`` for every connection.

        The keywords are passed to the constructor unchanged, each connection
        getting a fresh instance, so consumers that take arguments in
        ``__init__`` (a GraphQL schema, say) can be configured per route.
        Keywords the constructor's signature cannot take (or required ones
        left out) are refused here, when the routes are built, rather than
        on every connection.
        """
        refused = _refused_initkwargs(cls, initkwargs)
        if refused is not None:
            name = cls.__qualname__
            given = (
                f"with keyword(s) {', '.join(map(repr, initkwargs))}"
                if initkwargs
                else "without keywords"
            )
            raise TypeError(
                f"{name}.as_asgi() cannot create {name}() {given}: {refused}; "
                f"as_asgi() passes its keywords to the consumer's constructor "
                f"for every connection, so they must match its __init__"
            )

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            try:
                consumer = cls(**initkwargs)
            except TypeError as exc:
                if not initkwargs:
                    raise
                # The signature looked fine, so a constructor further up the
                # chain refused them; say where the keywords came from.
                note = (
                    f"while creating {cls.__qualname__}(**initkwargs) with the "
                    f"keywords given to as_asgi(): "
                    f"{', '.join(map(repr, initkwargs))}"
                )
                if not hasattr(exc, "add_note"):  # Python 3.10
                    raise TypeError(f"{exc}; {note}") from exc
                exc.add_note(note)
                raise
            return await consumer(scope, receive, send)

        app.consumer_class = cls  # type: ignore[attr-defined]
        app.consumer_initkwargs = initkwargs  # type: ignore[attr-defined]
        functools.update_wrapper(app, cls, updated=())
        return app


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class SyncConsumer(AsyncConsumer):
    """Consumer whose handlers are plain functions run in a worker thread.

    Handlers run through :func:`~channels_app.db.database_sync_to_async`, so
    they may use the ORM freely; ``send`` and ``base_send`` are synchronous.
    Coroutine handlers (such as the generic consumers' protocol handlers)
    run on the loop.
    """

    _sync = True

    async def dispatch(self, message: Message) -> None:
        handler = self._handler_for(message)
        coroutine_form = getattr(handler, "coroutine_form", None)
        if coroutine_form is not None:
            await coroutine_form(self, message)
        elif inspect.iscoroutinefunction(handler):
            await handler(message)
        else:
            threaded = database_sync_to_async(
                handler, thread_sensitive=self.concurrency == 1
            )
            await threaded(message)

    # Blocking, as in Channels: sync handlers call it from their thread.
    def send(self, message: Message) -> None:  # type: ignore[override]
        """Send an ASGI message to the client (call from the handler's thread)."""
        self.base_send(message)
