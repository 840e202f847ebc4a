"""A subscriber as the docs describe it: subscribe, replay, then live messages
de-duplicated by offset."""

from __future__ import annotations

from channels_app.streams import Position
from channels_app.streams.hub import LIVE_MESSAGE, from_live_message
from channels_app.streams.sequencer import Sequencer
from tests.layers.helpers import Listener


class Subscriber:
    """Listens on a fresh channel of ``streams``' layer and keeps what a
    client would be shown: ``delivered`` (offsets once each, in order), and
    ``raw``, every live message as the layer handed it over."""

    def __init__(self, streams, stream: str, fill_holes: bool = False) -> None:
        self.streams = streams
        #: Fill holes in the live messages from the store (as the mixin does);
        #: off by default, so a test sees what the layer alone delivered.
        self.fill_holes = fill_holes
        self.stream = stream
        self.delivered: list = []
        self.raw: list = []

    async def subscribe(self, since=None):
        self.channel = await self.streams.layer.new_channel()
        self.listener = Listener(self.streams.layer, self.channel)
        self.subscription = await self.streams.subscribe(
            self.stream, self.channel, since
        )
        self.sequencer = Sequencer(self.subscription.position)
        self.delivered.extend(self.subscription.replay)
        return self.subscription

    async def take_live(self, until_offset: int, timeout: float = 10) -> list:
        """Receive live messages until offset ``until_offset`` is delivered."""
        while self.sequencer.delivered < until_offset:
            try:
                message = await self.listener.next(timeout)
            except TimeoutError:
                raise AssertionError(
                    f"offset {until_offset} not delivered within {timeout}s: "
                    f"delivered up to {self.sequencer.delivered}, early "
                    f"{sorted(self.sequencer.early)[:10]}, fill_holes "
                    f"{self.fill_holes}, {len(self.raw)} received live"
                ) from None
            assert message["type"] == LIVE_MESSAGE
            live = from_live_message(message)
            self.raw.append(live)
            if live.epoch != self.sequencer.epoch and self.sequencer.delivered == 0:
                # Seen nothing yet: offset 0 fits any epoch (hub.recovery_from).
                self.sequencer.reset(Position(live.epoch, 0))
            self.delivered.extend(self.sequencer.offer(live))
            if self.sequencer.has_hole and self.fill_holes:
                # As StreamsMixin does: fetch what the layer skipped or lost.
                missed = await self.streams.read_after(
                    self.stream, self.sequencer.position
                )
                assert not missed.recovery.lost, missed
                for stored in missed.replay:
                    self.delivered.extend(self.sequencer.offer(stored))
                self.sequencer.early.clear()
        return self.delivered

    def offsets(self) -> list[int]:
        return [message.offset for message in self.delivered]

    async def stop(self) -> None:
        await self.listener.stop()
