"""Channel layers written the way third-party packages write them for Channels 4.

Only the import prefix differs from code written against ``channels.layers``:
they subclass ``BaseChannelLayer``, call its ``__init__`` and then treat
``channel_capacity`` the way Channels' base class leaves it to them.  They
keep their queues in a plain dict, like a small custom layer would.
"""

from __future__ import annotations

from channels_app.layers import BaseChannelLayer, ChannelFull


class _QueueingLayer(BaseChannelLayer):
    """Send/receive on per-channel lists; what varies is the constructor."""

    extensions: list[str] = []

    def _start(self) -> None:
        self.queues: dict[str, list[dict]] = {}

    async def send(self, channel, message):
        assert self.require_valid_channel_name(channel), "Channel name not valid"
        queue = self.queues.setdefault(channel, [])
        if len(queue) >= self.get_capacity(channel):
            raise ChannelFull(channel)
        queue.append(message)

    async def receive(self, channel):
        assert self.require_valid_channel_name(channel, receive=True)
        return self.queues[channel].pop(0)

    async def new_channel(self, prefix="specific."):
        return f"{prefix}thirdparty!"


class CompilingLayer(_QueueingLayer):
    """As channels_redis does: compile the argument after the base ``__init__``."""

    def __init__(self, expiry=60, capacity=100, channel_capacity=None, prefix="x"):
        super().__init__(
            expiry=expiry, capacity=capacity, channel_capacity=channel_capacity
        )
        self.channel_capacity = self.compile_capacities(channel_capacity or {})
        self.prefix = prefix
        self._start()


class RecompilingLayer(_QueueingLayer):
    """Compiles what the base class stored, which Channels leaves as the dict."""

    def __init__(self, expiry=60, capacity=100, channel_capacity=None):
        super().__init__(
            expiry=expiry, capacity=capacity, channel_capacity=channel_capacity
        )
        #: The configuration as given, e.g. to describe the layer in logs.
        self.configured_capacities = dict(self.channel_capacity)
        self.channel_capacity = BaseChannelLayer.compile_capacities(
            self, self.channel_capacity
        )
        self._start()


class PlainLayer(_QueueingLayer):
    """Never compiles: relies on the base class for ``get_capacity``."""

    def __init__(self, expiry=60, capacity=100, channel_capacity=None):
        super().__init__(
            expiry=expiry, capacity=capacity, channel_capacity=channel_capacity
        )
        self._start()
