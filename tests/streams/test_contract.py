"""The contract every stream store keeps, proved on each (tests/streams/backends.py).

Publishing assigns consecutive offsets in one epoch; a subscriber that
comes back with its position gets exactly what it missed, with no gap and
no duplicate at the seam between replay and live messages; history is
bounded by count and by age; and whenever the history a position refers to
is gone, the subscriber is told so instead of being given part of it.
"""

from __future__ import annotations

import asyncio

import pytest

from channels_app.streams import (
    HistoryLimits,
    InMemoryStreamStore,
    InvalidStreamName,
    Position,
    Recovery,
    RedisStreamStore,
)
from tests.streams.helpers import Subscriber
from tests.support.waiting import eventually


async def stored_stream_names(store) -> set[str]:
    """The streams a store holds anything for, looked up in the store itself."""
    if isinstance(store, InMemoryStreamStore):
        return set(store._logs)
    if isinstance(store, RedisStreamStore):
        client = store._connection().client
        keys = [k.decode() async for k in client.scan_iter(match=f"{store.prefix}*")]
        names = {k.removeprefix(f"{store.prefix}stream:") for k in keys}
        return {name.removesuffix(":meta") for name in names}
    from asgiref.sync import sync_to_async

    from channels_app.streams.models import StreamEntry, StreamState

    def names():
        from django.db import connections

        try:
            states = StreamState.objects.using(store.database).values_list("stream")
            entries = StreamEntry.objects.using(store.database).values_list("stream")
            return {name for (name,) in [*states, *entries]}
        finally:
            # Left open, it would keep PostgreSQL from dropping the test database.
            connections[store.database].close()

    return await sync_to_async(names)()


async def publish_many(streams, stream, count, start=0):
    return [
        await streams.publish(stream, {"n": n}) for n in range(start, start + count)
    ]


async def test_publish_assigns_consecutive_offsets_in_one_epoch(streams):
    published = await publish_many(streams, "chat.room-1", 5)
    assert [m.offset for m in published] == [1, 2, 3, 4, 5]
    assert len({m.epoch for m in published}) == 1
    assert [m.data for m in published] == [{"n": n} for n in range(5)]
    # Streams are independent: another starts at 1.
    other = await streams.publish("chat.room-2", {"n": 0})
    assert other.offset == 1


async def test_a_live_subscriber_receives_each_message_with_its_position(streams):
    subscriber = Subscriber(streams, "news")
    subscription = await subscriber.subscribe()
    assert subscription.recovery is Recovery.NONE
    assert subscription.position.offset == 0
    published = await publish_many(streams, "news", 3)
    await subscriber.take_live(3)
    assert [(m.epoch, m.offset, m.data) for m in subscriber.delivered] == [
        (m.epoch, m.offset, m.data) for m in published
    ]
    await subscriber.stop()


async def test_subscribing_without_a_position_starts_at_the_end(streams):
    await publish_many(streams, "news", 4)
    subscriber = Subscriber(streams, "news")
    subscription = await subscriber.subscribe()
    assert subscription.recovery is Recovery.NONE
    assert subscription.position.offset == 4
    assert subscription.replay == []
    await streams.publish("news", {"n": "next"})
    await subscriber.take_live(5)
    assert subscriber.offsets() == [5]
    await subscriber.stop()


async def test_recovery_replays_exactly_the_missed_messages(streams):
    first = await publish_many(streams, "chat.lobby", 3)
    last_seen = first[-1].position
    missed = await publish_many(streams, "chat.lobby", 4, start=3)

    subscription = await streams.subscribe("chat.lobby", "nobody.listens", last_seen)

    assert subscription.recovery is Recovery.RECOVERED
    assert [m.offset for m in subscription.replay] == [4, 5, 6, 7]
    assert [m.data for m in subscription.replay] == [m.data for m in missed]
    assert subscription.position == missed[-1].position
    # A position given as its JSON form works the same.
    again = await streams.subscribe(
        "chat.lobby", "nobody.listens", {"epoch": last_seen.epoch, "offset": 3}
    )
    assert [m.offset for m in again.replay] == [4, 5, 6, 7]


async def test_a_subscriber_that_missed_nothing_recovers_with_an_empty_replay(
    streams,
):
    published = await publish_many(streams, "chat.lobby", 2)
    subscription = await streams.subscribe(
        "chat.lobby", "nobody.listens", published[-1].position
    )
    assert subscription.recovery is Recovery.RECOVERED
    assert subscription.replay == []


class PublishingDuringRead:
    """Wraps a store so that messages are published after the subscriber has
    joined the group and before the history is read: the seam, made certain."""

    def __init__(self, streams, stream, count):
        self.inner = streams.store
        self.streams = streams
        self.stream = stream
        self.count = count
        self.during: list = []

    async def append(self, *args):
        return await self.inner.append(*args)

    async def read(self, *args):
        if self.count:
            count, self.count = self.count, 0
            self.streams.store = self.inner
            self.during = await publish_many(self.streams, self.stream, count, 100)
            self.streams.store = self
        return await self.inner.read(*args)

    async def delete(self, stream):
        await self.inner.delete(stream)

    async def close(self):
        await self.inner.close()


async def test_messages_published_during_the_replay_arrive_exactly_once_in_order(
    streams,
):
    before = await publish_many(streams, "chat.seam", 3)
    await publish_many(streams, "chat.seam", 2, start=3)  # missed while away
    wrapper = PublishingDuringRead(streams, "chat.seam", 4)
    streams.store = wrapper
    subscriber = Subscriber(streams, "chat.seam")
    await subscriber.subscribe(before[-1].position)
    streams.store = wrapper.inner
    after = await publish_many(streams, "chat.seam", 3, start=200)

    await subscriber.take_live(after[-1].offset)

    # The four published during the read were replayed and also came live:
    # the duplicates were there and were dropped.
    assert [m.offset for m in subscriber.subscription.replay] == [4, 5, 6, 7, 8, 9]
    assert [m.offset for m in subscriber.raw] == [6, 7, 8, 9, 10, 11, 12]
    assert subscriber.offsets() == list(range(4, 13))
    assert [m.data["n"] for m in subscriber.delivered] == [
        3, 4, 100, 101, 102, 103, 200, 201, 202,
    ]  # fmt: skip
    await subscriber.stop()


async def test_a_subscriber_joining_while_others_publish_misses_and_repeats_nothing(
    streams,
):
    """The seam under real concurrency: publishers keep going while a
    subscriber comes back; it ends with every message after its position."""
    await publish_many(streams, "chat.busy", 10)
    position = Position((await streams.read_after("chat.busy", None)).position.epoch, 5)

    async def publisher(tag):
        for n in range(60):
            await streams.publish("chat.busy", {"tag": tag, "n": n})
            await asyncio.sleep(0)  # let the others interleave

    tasks = [asyncio.ensure_future(publisher(tag)) for tag in "ab"]
    subscriber = Subscriber(streams, "chat.busy")
    await subscriber.subscribe(position)
    await asyncio.gather(*tasks)
    await subscriber.take_live(130)

    assert subscriber.offsets() == list(range(6, 131))
    for tag in "ab":
        sent = [m.data["n"] for m in subscriber.delivered if m.data.get("tag") == tag]
        assert sent == list(range(60))
    await subscriber.stop()


async def test_history_is_trimmed_to_the_newest_max_messages(make_streams):
    streams = make_streams(HistoryLimits(max_messages=5, max_age=None))
    published = await publish_many(streams, "ticker", 12)
    epoch = published[0].epoch

    kept = await streams.read_after("ticker", Position(epoch, 7))
    assert kept.recovery is Recovery.RECOVERED
    assert [m.offset for m in kept.replay] == [8, 9, 10, 11, 12]

    for lost in (0, 3, 6):
        too_old = await streams.read_after("ticker", Position(epoch, lost))
        assert too_old.recovery is Recovery.TOO_OLD
        assert too_old.recovery.lost
        assert too_old.replay == []  # never a partial replay
        assert too_old.position == Position(epoch, 12)


async def test_history_is_trimmed_by_age(make_streams):
    streams = make_streams(HistoryLimits(max_messages=None, max_age=1.0))
    published = await publish_many(streams, "ticker", 3)
    epoch = published[0].epoch
    fresh = await streams.read_after("ticker", Position(epoch, 0))
    assert [m.offset for m in fresh.replay] == [1, 2, 3]

    async def expired():
        read = await streams.read_after("ticker", Position(epoch, 0))
        return read.recovery is Recovery.TOO_OLD

    await eventually(expired, timeout=10)
    # A reader who had everything lost nothing, and the numbering goes on.
    up_to_date = await streams.read_after("ticker", Position(epoch, 3))
    assert up_to_date.recovery is Recovery.RECOVERED
    assert up_to_date.replay == []
    later = await streams.publish("ticker", {"n": 3})
    assert later.position == Position(epoch, 4)
    after = await streams.read_after("ticker", Position(epoch, 3))
    assert [m.offset for m in after.replay] == [4]


async def test_rules_apply_per_stream(make_streams):
    streams = make_streams(
        lambda stream: HistoryLimits(max_messages=2 if stream == "small" else 50)
    )
    await publish_many(streams, "small", 5)
    await publish_many(streams, "large", 5)
    small = await streams.read_after("small", None)
    large = await streams.read_after("large", None)
    assert small.position.offset == large.position.offset == 5
    epoch = small.position.epoch
    assert (await streams.read_after("small", Position(epoch, 2))).recovery is (
        Recovery.TOO_OLD
    )
    whole = await streams.read_after("large", Position(large.position.epoch, 0))
    assert len(whole.replay) == 5


async def test_deleting_a_stream_changes_its_epoch_and_forbids_recovery(streams):
    published = await publish_many(streams, "chat.gone", 3)
    await streams.delete("chat.gone")

    since = published[-1].position
    lost = await streams.subscribe("chat.gone", "nobody.listens", since)
    assert lost.recovery is Recovery.EPOCH_CHANGED
    assert lost.replay == []
    assert lost.position.epoch != published[0].epoch
    assert lost.position.offset == 0
    # The new history starts at 1, and the subscriber, told to continue from
    # offset 0, gets all of it.
    restarted = await streams.publish("chat.gone", {"n": "new"})
    assert restarted.offset == 1
    assert restarted.epoch != published[0].epoch
    after = await streams.read_after("chat.gone", lost.position)
    assert after.recovery is Recovery.RECOVERED
    assert [m.data for m in after.replay] == [{"n": "new"}]


async def test_a_position_past_the_end_is_reported_not_trusted(streams):
    published = await publish_many(streams, "chat.lobby", 2)
    ahead = Position(published[0].epoch, 9)
    result = await streams.read_after("chat.lobby", ahead)
    assert result.recovery is Recovery.UNKNOWN_POSITION
    assert result.replay == []
    assert result.position == published[-1].position


async def test_an_epoch_from_elsewhere_is_not_recovered(streams):
    await publish_many(streams, "chat.lobby", 2)
    result = await streams.read_after("chat.lobby", Position("not-this-one", 1))
    assert result.recovery is Recovery.EPOCH_CHANGED


async def test_a_subscriber_of_a_fresh_stream_gets_its_first_messages(streams):
    """Reading a stream never published to stores nothing, so its first
    message may come under another epoch than the one the read reported;
    offset 0 (nothing seen yet) recovers in any epoch."""
    subscription = await streams.subscribe("fresh", "nobody.listens")
    assert subscription.position.offset == 0
    first = await streams.publish("fresh", {"n": 0})
    recovered = await streams.read_after("fresh", subscription.position)
    assert recovered.recovery is Recovery.RECOVERED
    assert [m.offset for m in recovered.replay] == [1]
    assert recovered.position == first.position


async def test_reading_streams_never_published_to_stores_nothing(streams):
    """A client allowed ``chat.*`` may subscribe to a million names: that
    must not create a million entries in the store."""
    for n in range(20):
        result = await streams.read_after(f"chat.ghost-{n}", None)
        assert result.position.offset == 0
    await streams.publish("chat.real", {"n": 1})
    assert await stored_stream_names(streams.store) == {"chat.real"}


@pytest.mark.parametrize(
    "message", [["a", "list"], "text", None, 3, {"when": object()}, {1: "int key"}]
)
async def test_a_message_that_is_not_a_json_dict_is_refused(streams, message):
    with pytest.raises(TypeError, match="stream message must be"):
        await streams.publish("chat.lobby", message)
    assert (await streams.read_after("chat.lobby", None)).position.offset == 0


@pytest.mark.parametrize(
    "name", ["", "has space", "caf\u00e9", "new\nline", "x" * 80, "a:b", "a*"]
)
async def test_an_invalid_stream_name_is_refused(streams, name):
    with pytest.raises(InvalidStreamName, match="Invalid stream name"):
        await streams.publish(name, {"n": 1})
    with pytest.raises(InvalidStreamName):
        await streams.subscribe(name, "nobody.listens")


async def test_a_stream_name_that_is_not_a_str_is_refused(streams):
    with pytest.raises(TypeError, match="must be a str"):
        await streams.publish(b"bytes", {"n": 1})


@pytest.mark.parametrize(
    "since",
    [{"epoch": "e"}, {"offset": 1}, {"epoch": "e", "offset": -1}, "e:1", 5],
)
async def test_a_malformed_position_is_refused(streams, since):
    with pytest.raises(TypeError, match="Position|position"):
        await streams.subscribe("chat.lobby", "nobody.listens", since)


async def test_a_restarted_in_memory_store_starts_a_new_epoch(make_streams):
    before = make_streams(store=InMemoryStreamStore())
    published = await before.publish("chat.lobby", {"n": 1})
    after = make_streams(store=InMemoryStreamStore())  # the server restarted
    result = await after.read_after("chat.lobby", published.position)
    assert result.recovery is Recovery.EPOCH_CHANGED
