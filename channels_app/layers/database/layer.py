"""``DatabaseChannelLayer``: channels and groups kept in the project's database."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Mapping
from typing import Any

from django.db import connections
from django.utils.connection import ConnectionDoesNotExist

from ...exceptions import ChannelFull, InvalidChannelLayerError, MessageTooLarge
from ...logging_limits import RateLimitedLog
from ...types import Message
from ..base import BaseChannelLayer, warn_members_skipped
from .backend import Backend, Settings, backend_for
from .receiver import Receivers

logger = logging.getLogger("channels_app.layers.database")


class DatabaseChannelLayer(BaseChannelLayer):
    """A channel layer stored in ``DATABASES[database]`` (PostgreSQL or SQLite).

    For teams that would rather not run Redis: messages are rows, delivered at
    most once through an atomic claim.  On PostgreSQL receivers are woken by
    ``NOTIFY``; on SQLite they poll with a short back-off.  The options
    (``database``, ``send_database``, ``expiry``, ``group_expiry``,
    ``capacity``, ``channel_capacity``, ``poll_interval``, ``batch_size``,
    ``cleanup_interval``, ``vacuum_interval``, ``max_message_size``,
    ``sqlite_wal``) are described in :doc:`/topics/channel_layers`.
    """

    extensions = ["groups", "flush"]
    #: Seconds between two warnings about full members of the same group.
    full_warning_interval: float = 10.0

    def __init__(
        self,
        database: str = "default",
        send_database: str | None = None,
        expiry: float = 60,
        group_expiry: float = 86400,
        capacity: int = 100,
        channel_capacity: Mapping[Any, int] | None = None,
        poll_interval: float | None = None,
        batch_size: int = 1000,
        cleanup_interval: float = 1.0,
        vacuum_interval: float | None = 1.0,
        max_message_size: int = 4 * 1024 * 1024,
        sqlite_wal: bool = True,
    ) -> None:
        super().__init__(
            expiry=expiry, capacity=capacity, channel_capacity=channel_capacity
        )
        self.database = database
        self.send_database = send_database or database
        self.group_expiry = group_expiry
        self.batch_size = batch_size
        self.cleanup_interval = cleanup_interval
        self.vacuum_interval = vacuum_interval
        self.max_message_size = max_message_size
        self.sqlite_wal = sqlite_wal
        vendor = _vendor(self.database)
        if _vendor(self.send_database) != vendor:
            raise InvalidChannelLayerError(
                f"send_database {self.send_database!r} must be the same kind of "
                f"database as {self.database!r}"
            )
        self.backend_class = backend_for(vendor)
        if poll_interval is None:
            poll_interval = 5.0 if self.backend_class.pushes else 0.1
        self.poll_interval = poll_interval
        self.settings = Settings(
            self.database,
            self.send_database,
            poll_interval,
            vacuum_interval,
            sqlite_wal,
        )
        self.dropped_messages = 0
        self.full_channel_warnings = RateLimitedLog(logger, self.full_warning_interval)
        self._receivers: dict[asyncio.AbstractEventLoop, Receivers] = {}

    async def send(self, channel: str, message: Message) -> None:
        self.require_valid_channel_name(channel)
        body = self._encode(message)
        now = time.time()
        capacity = self.get_capacity(channel)
        backend = self._backend()
        if not await backend.send(channel, now + self.expiry, body, capacity, now):
            raise ChannelFull(f"Channel {channel!r} already holds {capacity} messages")

    async def receive(self, channel: str) -> Message:
        """The oldest live message on ``channel``, delivered once across processes."""
        self.require_valid_channel_name(channel)
        row = await self._loop_receivers().receive(channel)
        return self._decode(row.body)

    async def new_channel(self, prefix: str = "specific.") -> str:
        """A fresh ``!`` channel, to be read on this event loop of this process."""
        client = self._loop_receivers().client_prefix
        name = f"{prefix.rstrip('.')}.{client}!{secrets.token_hex(8)}"
        self.require_valid_channel_name(name)
        return name

    async def group_add(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        expires = time.time() + self.group_expiry
        capacity = self.get_capacity(channel)
        await self._backend().group_add(group, channel, expires, capacity)

    async def group_discard(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        await self._backend().group_discard(group, channel)

    async def group_send(self, group: str, message: Message) -> int:
        """Queue ``message`` for every member in one statement; the number of
        members missed because their channels were full (logged, counted in
        ``dropped_messages``)."""
        self.require_valid_group_name(group)
        body = self._encode(message)
        now = time.time()
        backend = self._backend()
        size, full = await backend.group_send(group, now + self.expiry, body, now)
        if full:
            self.dropped_messages += len(full)
            named = [member.channel for member in full[:3]]
            capacities = {member.capacity for member in full}
            log = self.full_channel_warnings
            warn_members_skipped(log, group, len(full), size, named, capacities)
        return len(full)

    async def flush(self) -> None:
        receivers = self._loop_receivers()
        await receivers.backend.flush()
        receivers.forget_rows()

    async def close(self) -> None:
        """Close this event loop's connections; the layer stays usable."""
        self._forget_closed_loops()
        receivers = self._receivers.pop(asyncio.get_running_loop(), None)
        if receivers is not None:
            await receivers.close()

    def _loop_receivers(self) -> Receivers:
        loop = asyncio.get_running_loop()
        receivers = self._receivers.get(loop)
        if receivers is None:
            self._forget_closed_loops()
            receivers = self._receivers[loop] = Receivers(self)
        return receivers

    def _backend(self) -> Backend:
        receivers = self._loop_receivers()
        receivers.maybe_clean_up()
        return receivers.backend

    def _forget_closed_loops(self) -> None:
        """Receivers of loops that were closed (``async_to_sync`` calls) are dead."""
        for loop in [loop for loop in self._receivers if loop.is_closed()]:
            self._receivers.pop(loop).abandon()

    def _encode(self, message: Message) -> bytes:
        import msgpack

        self.require_valid_message(message)
        try:
            body: bytes = msgpack.packb(message, use_bin_type=True)
        except (TypeError, ValueError, OverflowError):
            self.require_portable_message(message)  # names the offending key
            raise
        if len(body) > self.max_message_size:
            raise MessageTooLarge(
                f"Message is {len(body)} bytes once serialised; this layer's limit "
                f"is {self.max_message_size} bytes (max_message_size)"
            )
        return body

    @staticmethod
    def _decode(body: bytes) -> Message:
        import msgpack

        message: Message = msgpack.unpackb(body, raw=False)
        return message


def _vendor(alias: str) -> str:
    try:
        return connections[alias].vendor
    except ConnectionDoesNotExist:
        raise InvalidChannelLayerError(
            f"The database channel layer's database {alias!r} is not in DATABASES"
        )
