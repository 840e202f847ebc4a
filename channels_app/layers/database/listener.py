"""The one ``LISTEN`` connection of a database layer on PostgreSQL.

Senders ``NOTIFY`` a key derived from the receiving inbox in the same
transaction as their ``INSERT``; the notification names the row, and carries
it only for a ``!`` channel, whose key has a single listener.  One
connection listens for every inbox of the layer instance, however many
consumers wait.  When it reconnects after an outage, every inbox is told to
look again, since notifications sent meanwhile are gone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("channels_app.layers.database")

#: First and longest pause between attempts to reconnect, in seconds.
RECONNECT_DELAYS = (0.05, 2.0)


class Listener:
    """Keeps one connection listening on a growing set of keys."""

    def __init__(
        self,
        connect_kwargs: dict[str, Any],
        on_notify: Callable[[str, str], None],
        on_reconnect: Callable[[], None],
        health_interval: float,
    ) -> None:
        # LISTEN must reach the server itself, and several LISTENs go in one
        # simple-protocol query: no prepared statements on this connection.
        self.connect_kwargs = {
            **connect_kwargs,
            "prepare_threshold": None,
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
        }
        self.on_notify = on_notify
        self.on_reconnect = on_reconnect
        self.health_interval = health_interval
        self.connected = False
        self._active: set[str] = set()
        self._requested: dict[str, asyncio.Future[None]] = {}
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._connection: Any = None

    async def listen(self, key: str) -> None:
        """Return once notifications for ``key`` are being delivered."""
        if key in self._active and self.connected:
            return
        future = self._requested.get(key)
        if future is None:
            future = self._requested[key] = asyncio.get_running_loop().create_future()
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())
        self._changed.set()
        await asyncio.shield(future)

    async def _run(self) -> None:
        import psycopg

        delay = RECONNECT_DELAYS[0]
        ever_connected = False
        while True:
            connection = None
            try:
                connection = self._connection = await psycopg.AsyncConnection.connect(
                    autocommit=True, **self.connect_kwargs
                )
                connection.add_notify_handler(self._dispatch)
                await self._subscribe(connection, self._active | set(self._requested))
                self.connected = True
                if ever_connected:
                    logger.info("Channel layer listener reconnected to PostgreSQL")
                    self.on_reconnect()
                ever_connected = True
                delay = RECONNECT_DELAYS[0]
                await self._serve(connection)
            except (psycopg.OperationalError, OSError) as exc:
                if self.connected or not ever_connected:
                    logger.warning(
                        "Channel layer listener lost PostgreSQL (%s); receivers keep "
                        "waiting and resume after it reconnects",
                        str(exc).strip(),
                    )
                self.connected = False
            except Exception:
                logger.exception("Channel layer listener failed; reconnecting")
                self.connected = False
            finally:
                if connection is not None:
                    await _close_quietly(connection)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_DELAYS[1])

    async def _serve(self, connection: Any) -> None:
        """Deliver notifications; pause only to add keys or to check health."""
        while True:
            if self._requested:
                await self._subscribe(connection, set(self._requested))
            self._changed.clear()
            reader = asyncio.ensure_future(self._read(connection))
            changed = asyncio.ensure_future(self._changed.wait())
            try:
                done, _ = await asyncio.wait(
                    {reader, changed},
                    timeout=self.health_interval,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                changed.cancel()
                if not reader.done():
                    reader.cancel()
                    await asyncio.gather(reader, return_exceptions=True)
            if reader in done:
                reader.result()  # the connection failed: raise
            if not done:
                await connection.execute("SELECT 1")  # a silent network dies here

    async def _read(self, connection: Any) -> None:
        """Dispatch notifications straight from the socket until it fails.

        A reader callback that drains libpq costs far less per notification
        than psycopg's ``notifies()`` generator, which re-arms the event loop
        for each one; ones that arrive while psycopg itself runs a command
        on this connection reach the same callback through its notify handler.
        """
        import psycopg

        pgconn = connection.pgconn
        loop = asyncio.get_running_loop()
        failed = loop.create_future()

        def readable() -> None:
            try:
                pgconn.consume_input()
            except psycopg.Error as exc:
                if not failed.done():
                    failed.set_exception(psycopg.OperationalError(str(exc)))
                return
            while (notify := pgconn.notifies()) is not None:
                self.on_notify(notify.relname.decode(), notify.extra.decode())

        socket = pgconn.socket
        loop.add_reader(socket, readable)
        try:
            readable()  # anything that arrived before the reader was in place
            await failed
        finally:
            loop.remove_reader(socket)

    def _dispatch(self, notify: Any) -> None:
        self.on_notify(notify.channel, notify.payload)

    async def _subscribe(self, connection: Any, keys: set[str]) -> None:
        if keys:
            await connection.execute("; ".join(f'LISTEN "{key}"' for key in keys))
        self._active |= keys
        for key in keys:
            future = self._requested.pop(key, None)
            if future is not None and not future.done():
                future.set_result(None)

    def abandon(self) -> None:
        """The event loop is closed: drop the socket without awaiting."""
        connection, self._connection = self._connection, None
        if connection is not None and not connection.closed:
            connection.pgconn.finish()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self.connected = False
        for future in self._requested.values():
            future.cancel()
        self._requested.clear()


async def _close_quietly(connection: Any) -> None:
    try:
        await connection.close()
    except Exception:  # already broken: nothing left to release
        pass
