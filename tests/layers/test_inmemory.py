"""What the in-memory layer promises beyond the shared contract."""

import asyncio
import contextvars
import gc
import logging
import sys
import threading
import tracemalloc
import types

import pytest

import channels_app.layers.inmemory as inmemory_module
from channels_app.exceptions import ChannelFull
from channels_app.layers import InMemoryChannelLayer
from channels_app.logging_limits import RateLimitedLog
from tests.layers.helpers import FakeClock, receive_within
from tests.support.waiting import eventually


@pytest.fixture
async def layer():
    layer = InMemoryChannelLayer()
    yield layer
    await layer.flush()
    await layer.close()


async def test_a_receive_cancelled_just_after_being_handed_a_message_keeps_it(layer):
    channel = await layer.new_channel()
    doomed = asyncio.ensure_future(layer.receive(channel))
    await asyncio.sleep(0)  # doomed is now waiting
    await layer.send(channel, {"type": "test", "n": 1})
    # The message was handed to doomed, which has not run yet; cancel it now.
    doomed.cancel()
    await layer.send(channel, {"type": "test", "n": 2})
    with pytest.raises(asyncio.CancelledError):
        await doomed
    assert (await receive_within(layer, channel))["n"] == 1
    assert (await receive_within(layer, channel))["n"] == 2


async def test_a_message_put_back_goes_to_the_next_waiting_receiver(layer):
    channel = await layer.new_channel()
    doomed = asyncio.ensure_future(layer.receive(channel))
    survivor = asyncio.ensure_future(layer.receive(channel))
    await asyncio.sleep(0)
    await layer.send(channel, {"type": "test", "n": 1})
    doomed.cancel()
    assert (await asyncio.wait_for(survivor, 1))["n"] == 1
    assert doomed.cancelled()
    assert layer.stats()["queued_messages"] == 0


#: What a layer refers to without holding it: the event loop its timer runs
#: on, its logger, code, classes and modules, shared with everything else.
SHARED = (
    type,
    types.ModuleType,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.CodeType,
    types.FrameType,
    asyncio.AbstractEventLoop,
    logging.Logger,
    contextvars.Context,
)


def held_by(layer: InMemoryChannelLayer) -> int:
    """Bytes in the objects ``layer`` holds, found by following its references
    (``sys.getsizeof``, which counts a dict's or list's whole table).

    Not tracemalloc: its traces, filtered by file, also counted what others
    allocated in the same files during the wait (another thread's in-memory
    layer, tuples kept in CPython's free lists), and told nothing about
    whether the layer itself let go.
    """
    seen: set[int] = set()
    todo: list[object] = [layer]
    total = 0
    while todo:
        item = todo.pop()
        if id(item) in seen or isinstance(item, SHARED):
            continue
        seen.add(id(item))
        total += sys.getsizeof(item)
        todo.extend(gc.get_referents(item))
    return total


async def test_a_hundred_thousand_abandoned_channels_are_reclaimed(monkeypatch):
    # The layer's clock stands still while the channels are made, so none
    # expires before all 100,000 exist, however slow the machine.
    clock = FakeClock()
    monkeypatch.setattr(inmemory_module, "monotonic", clock)
    layer = InMemoryChannelLayer(expiry=2, group_expiry=2)
    empty = held_by(layer)
    for n in range(100_000):
        channel = f"specific.abandoned!{n}"
        await layer.send(channel, {"type": "test", "payload": "x" * 20})
        if n % 10 == 0:
            await layer.group_add(f"group{n % 1000}", channel)
    assert layer.stats()["channels"] == 100_000
    full = held_by(layer) - empty
    clock.advance(3)  # past both expiries
    # Nobody calls the layer while it is idle; its own timer reclaims
    # (stats() only reads, it expires nothing).
    await eventually(lambda: layer.stats()["channels"] == 0, timeout=10)
    left = held_by(layer) - empty
    stats = layer.stats()
    assert stats["channels"] == 0
    assert stats["queued_messages"] == 0
    assert stats["groups"] == 0
    assert stats["memberships"] == 0
    assert stats["deadlines"] == 0
    assert stats["expired_messages"] == 100_000
    assert full > 10_000_000, "the channels should have held memory"
    # CPython keeps a dict's table after its keys are deleted: without the
    # copies of `dict_compaction` several MB stayed here.
    assert left < full * 0.01, f"{left} bytes still held of {full}"
    await layer.close()


async def test_an_expired_message_takes_its_channel_out_of_its_groups():
    layer = InMemoryChannelLayer(expiry=0.2)
    dead, alive = "consumer.dead", "consumer.alive"
    for channel in (dead, alive):
        await layer.group_add("room", channel)
        await layer.group_add("lobby", channel)
    await layer.send(dead, {"type": "unread"})
    await asyncio.sleep(0.5)  # deliberate: past the 0.2 s expiry
    await layer.group_send("room", {"type": "chat"})
    assert (await receive_within(layer, alive))["type"] == "chat"
    assert layer.stats()["memberships"] == 2  # alive in room and lobby


async def test_renewing_a_membership_postpones_its_expiry():
    layer = InMemoryChannelLayer(group_expiry=0.6)
    await layer.group_add("room", "member")
    await asyncio.sleep(0.4)  # deliberate, as are the next: expiry is the subject
    await layer.group_add("room", "member")
    await asyncio.sleep(0.4)  # past the first deadline, before the second
    await layer.group_send("room", {"type": "still-here"})
    assert (await receive_within(layer, "member"))["type"] == "still-here"
    await asyncio.sleep(0.4)
    await layer.group_send("room", {"type": "gone"})
    assert layer.stats()["memberships"] == 0
    await layer.close()


async def test_churning_memberships_keep_the_deadline_heap_bounded(layer):
    for n in range(20_000):
        await layer.group_add("busy", f"visitor.{n}")
        await layer.group_discard("busy", f"visitor.{n}")
    await layer.group_add("busy", "regular")
    stats = layer.stats()
    assert stats["memberships"] == 1
    assert stats["deadlines"] <= 2048


async def test_group_send_counts_the_members_it_missed_in_one_line(caplog):
    layer = InMemoryChannelLayer(capacity=1)
    for name in ("a", "b", "c"):
        await layer.group_add("room", f"member.{name}")
    await layer.send("member.a", {"type": "filler"})
    await layer.send("member.c", {"type": "filler"})
    with caplog.at_level(logging.WARNING, logger="channels_app.layers"):
        assert await layer.group_send("room", {"type": "chat"}) == 2
    assert layer.stats()["dropped_messages"] == 2
    [line] = [r.getMessage() for r in caplog.records]
    assert "group 'room' skipped 2 of 3 members" in line
    assert "(capacity 1)" in line
    assert "'member.a', 'member.c'" in line
    assert (await receive_within(layer, "member.b"))["type"] == "chat"
    await layer.close()


async def full_group(members=100, **options):
    """A layer whose group ``room`` has ``members`` members, all of them full."""
    layer = InMemoryChannelLayer(capacity=1, **options)
    for n in range(members):
        await layer.group_add("room", f"member.{n}")
        await layer.send(f"member.{n}", {"type": "filler"})
    return layer


async def test_a_burst_of_group_sends_to_full_members_logs_a_bounded_summary(caplog):
    layer = await full_group(100)
    with caplog.at_level(logging.WARNING, logger="channels_app.layers"):
        for _ in range(1000):
            assert await layer.group_send("room", {"type": "chat"}) == 100
        # Closing (or the interval ending) writes what was held back.
        await layer.close()
    assert layer.dropped_messages == 100_000
    assert layer.stats()["dropped_messages"] == 100_000
    first, summary = (r.getMessage() for r in caplog.records)
    assert "group 'room' skipped 100 of 100 members" in first
    assert "(capacity 1)" in first
    assert "'member.0', 'member.1', 'member.2', ..." in first
    assert "group 'room' skipped 100 of 100 members" in summary
    assert "latest of 999 similar messages not logged" in summary
    assert "in all they reported 99900 members skipped" in summary
    assert all(r.levelno == logging.WARNING for r in caplog.records)


async def test_a_steady_flood_logs_one_line_per_group_per_interval(caplog):
    layer = await full_group(10)
    await layer.group_add("lobby", "member.0")
    now = [1000.0]
    layer.full_channel_warnings.clock = lambda: now[0]
    interval = layer.full_warning_interval
    with caplog.at_level(logging.WARNING, logger="channels_app.layers"):
        for second in range(3 * int(interval)):
            now[0] = 1000.0 + second
            for _ in range(50):
                await layer.group_send("room", {"type": "chat"})
                await layer.group_send("lobby", {"type": "chat"})
    lines = [r.getMessage() for r in caplog.records]
    room = [line for line in lines if "group 'room'" in line]
    lobby = [line for line in lines if "group 'lobby'" in line]
    assert len(room) == len(lobby) == 3  # One per group per interval.
    # Each later line says what the interval before it held back.
    per_interval = 50 * int(interval) - 1
    assert f"({per_interval} similar messages not logged in the previous" in room[1]
    assert f"they reported {per_interval * 10} members skipped" in room[1]
    assert f"they reported {per_interval} members skipped" in lobby[2]
    assert layer.dropped_messages == 3 * int(interval) * 50 * 11
    await layer.close()


async def test_what_was_held_back_is_reported_when_the_interval_ends(caplog):
    layer = await full_group(5)
    layer.full_channel_warnings.interval = 0.05
    reported = asyncio.Event()

    class Spy(logging.Handler):
        def emit(self, record):
            if "similar messages not logged" in record.getMessage():
                reported.set()

    spy = Spy()
    logging.getLogger("channels_app.layers").addHandler(spy)
    try:
        with caplog.at_level(logging.WARNING, logger="channels_app.layers"):
            for _ in range(20):
                await layer.group_send("room", {"type": "chat"})
            # No further group_send, no close(): a timer writes the report.
            await asyncio.wait_for(reported.wait(), 5)
    finally:
        logging.getLogger("channels_app.layers").removeHandler(spy)
    _, summary = (r.getMessage() for r in caplog.records)
    assert "latest of 19 similar messages" in summary
    assert "in all they reported 95 members skipped" in summary
    await layer.close()
    assert len(caplog.records) == 2  # close() found nothing left to report.


def test_the_rate_limiter_without_an_event_loop_reports_on_the_next_call(caplog):
    now = [0.0]
    limiter = RateLimitedLog(
        logging.getLogger("tests.limits"), 10, clock=lambda: now[0], max_keys=2
    )
    with caplog.at_level(logging.WARNING, logger="tests.limits"):
        assert limiter.log("a", "a is full (%d)", 1, totals={"lost": 1})
        assert not limiter.log("a", "a is full (%d)", 2, totals={"lost": 2})
        assert not limiter.log("a", "a is full (%d)", 3, totals={"lost": 3})
        now[0] = 10.0
        assert limiter.log("a", "a is full (%d)", 4)
        # A third key makes room by reporting and forgetting the oldest.
        assert limiter.log("b", "b is full")
        assert not limiter.log("b", "b is full")
        assert limiter.log("c", "c is full")
        assert limiter.log("d", "d is full")
    assert [r.getMessage() for r in caplog.records] == [
        "a is full (1)",
        "a is full (4) (2 similar messages not logged in the previous 10s; "
        "in all they reported 5 lost)",
        "b is full",
        "c is full",
        "d is full",
        "b is full (held back 0s by rate limiting)",
    ]
    assert limiter.suppressed_total == 3


async def test_group_members_get_independent_copies(layer):
    await layer.group_add("room", "first")
    await layer.group_add("room", "second")
    await layer.group_send("room", {"type": "chat", "tags": ["a"]})
    first = await receive_within(layer, "first")
    first["tags"].append("mutated")
    assert (await receive_within(layer, "second"))["tags"] == ["a"]


async def test_unportable_values_are_refused_by_send_and_group_send(layer):
    await layer.group_add("room", "member")
    with pytest.raises(TypeError, match=r"message\['meta'\]\['at'\] is a datetime"):
        import datetime

        await layer.group_send(
            "room", {"type": "chat", "meta": {"at": datetime.datetime.now()}}
        )
    with pytest.raises(TypeError, match="message has the key 1 of type int"):
        await layer.send("member", {1: "one"})
    assert layer.stats()["queued_messages"] == 0


async def test_unportable_values_can_be_allowed_and_are_still_copied():
    layer = InMemoryChannelLayer(require_portable_messages=False)
    payload = {"items": {1, 2}}
    await layer.send("lenient", {"type": "test", "payload": payload})
    payload["items"].add(3)
    assert (await receive_within(layer, "lenient"))["payload"] == {"items": {1, 2}}
    with pytest.raises(TypeError, match="must be a dict"):
        await layer.send("lenient", "text")


async def test_capacity_frees_up_as_messages_are_received(layer):
    small = InMemoryChannelLayer(capacity=2)
    await small.send("c", {"type": "1"})
    await small.send("c", {"type": "2"})
    with pytest.raises(ChannelFull, match="'c' already holds 2 messages"):
        await small.send("c", {"type": "3"})
    await small.receive("c")
    await small.send("c", {"type": "3"})


async def test_flush_keeps_pending_receivers_working(layer):
    await layer.send("queue", {"type": "old"})
    waiting = asyncio.ensure_future(layer.receive("idle"))
    await asyncio.sleep(0)
    await layer.flush()
    assert layer.stats()["queued_messages"] == 0
    await layer.send("idle", {"type": "after-flush"})
    assert (await asyncio.wait_for(waiting, 1))["type"] == "after-flush"


async def test_close_leaves_the_layer_usable(layer):
    await layer.send("c", {"type": "queued"})
    await layer.close()
    assert (await receive_within(layer, "c"))["type"] == "queued"


async def test_a_sender_on_another_event_loop_wakes_the_receiver(layer):
    waiting = asyncio.ensure_future(layer.receive("cross"))
    await asyncio.sleep(0)
    thread = threading.Thread(
        target=asyncio.run, args=(layer.send("cross", {"type": "from-thread"}),)
    )
    thread.start()
    thread.join()
    assert (await asyncio.wait_for(waiting, 1))["type"] == "from-thread"


def test_the_layer_survives_its_event_loop_closing():
    layer = InMemoryChannelLayer(expiry=0.1)
    asyncio.run(layer.send("first", {"type": "test"}))

    async def later():
        # The sweep timer lived on the closed loop; this one re-arms it.
        await layer.send("second", {"type": "test"})
        await asyncio.sleep(0.4)  # deliberate: past the expiry, for the timer
        return layer.stats()

    stats = asyncio.run(later())
    assert stats["queued_messages"] == 0
    assert stats["expired_messages"] == 2


async def test_new_channel_names(layer):
    assert (await layer.new_channel()).startswith("specific.inmemory!")
    assert (await layer.new_channel("worker")).startswith("worker.inmemory!")
    with pytest.raises(TypeError, match="ASCII letters"):
        await layer.new_channel("bad prefix")


@pytest.mark.parametrize(
    ("config", "explains"),
    [
        ({"capacity": 0}, "capacity must be a positive integer, not 0"),
        ({"capacity": 2.5}, "capacity must be a positive integer"),
        ({"expiry": -1}, "expiry must be a positive number, not -1"),
        ({"group_expiry": "1d"}, "group_expiry must be a positive number"),
        ({"channel_capacity": {"a*": 0}}, "channel_capacity values must be"),
    ],
)
def test_bad_configuration_is_explained(config, explains):
    with pytest.raises(ValueError, match=explains):
        InMemoryChannelLayer(**config)


async def test_the_channels_and_groups_views_stay_live(layer):
    channels, groups = layer.channels, layer.groups
    await layer.send("later", {"type": "test"})
    await layer.group_add("room", "later")
    members = groups["room"]
    assert list(channels) == ["later"] and list(members) == ["later"]
    await layer.flush()
    assert len(channels) == 0 and len(groups) == 0 and len(members) == 0
    await layer.send("again", {"type": "test"})
    assert "again" in channels


async def test_a_drained_channel_leaves_the_view_but_keeps_its_expiry_entry(layer):
    # Sending to it again must not push a second deadline onto the heap.
    await layer.send("busy", {"type": "1"})
    await layer.receive("busy")
    assert "busy" not in layer.channels
    await layer.send("busy", {"type": "2"})
    assert layer.stats()["deadlines"] == 1
    assert layer.channels["busy"].qsize() == 1


async def test_a_waiting_receiver_costs_little_memory(layer):
    """A server holds one waiting receive per open connection, by the thousand:
    each costs its task, future and table entry, no empty queue of its own
    (1.2 KB measured with the task; 2.6 KB when every channel had two deques)."""
    names = [await layer.new_channel() for _ in range(1010)]
    tasks = [asyncio.ensure_future(layer.receive(name)) for name in names[:10]]
    await asyncio.sleep(0)  # the first receives set up what all of them share
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        tasks += [asyncio.ensure_future(layer.receive(name)) for name in names[10:]]
        await asyncio.sleep(0)  # every receive is now waiting
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    per_receiver = sum(s.size_diff for s in after.compare_to(before, "filename")) / 1000
    assert per_receiver < 1700, f"{per_receiver:.0f} bytes per waiting receiver"
    await layer.send(names[-1], {"type": "still.works"})
    assert (await tasks[-1])["type"] == "still.works"
    for task in tasks[:-1]:
        task.cancel()
    await asyncio.gather(*tasks[:-1], return_exceptions=True)
