"""The channel layer contract, run against every layer in ``implementations.LAYERS``.

Each test states the behaviour consumers rely on.  Where a layer does not
offer it (its capability flag is off), the test checks and states what the
layer does instead.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid

import pytest

from channels_app.exceptions import ChannelFull
from channels_app.layers.base import GROUPS_LOST
from tests.layers.helpers import receive_within
from tests.support.waiting import eventually


async def test_layer_lists_its_extensions(make_layer):
    layer = await make_layer()
    assert {"groups", "flush"} <= set(layer.extensions)


async def test_new_channel_names_are_unique_process_specific_and_prefixed(
    make_layer, layer_under_test
):
    layer = await make_layer()
    names = {await layer.new_channel() for _ in range(20)}
    assert len(names) == 20
    # Instead of "!", a layer may make names unique by a random part only.
    bang = "!" if layer_under_test.marks_process_channels else ""
    for name in names:
        assert re.fullmatch(rf"[a-zA-Z0-9\-_.]+{bang}[a-zA-Z0-9\-_.]+", name), name
        assert len(name) < 100
        assert "specific." in name  # the default prefix
        if layer_under_test.marks_process_channels:
            # Instead: a publish/subscribe layer puts its own prefix first.
            assert name.startswith("specific."), name
    named = await layer.new_channel(prefix="orders.")
    assert "orders." in named
    assert named.startswith("orders.") == layer_under_test.marks_process_channels


async def test_messages_on_a_channel_arrive_once_and_in_order(make_layer, listen):
    layer = await make_layer()
    channel = await layer.new_channel()
    for n in range(5):
        await layer.send(channel, {"type": "test.message", "n": n})
    listener = listen(layer, channel)
    received = [await listener.next() for _ in range(5)]
    assert [message["n"] for message in received] == [0, 1, 2, 3, 4]
    await listener.nothing(0.1)


async def test_message_values_survive_the_trip(make_layer):
    layer = await make_layer()
    channel = await layer.new_channel()
    message = {
        "type": "test.values",
        "text": "héllo ✓",
        "bytes": b"\x00\xff",
        "int": -(2**40),
        "float": 1.5,
        "flags": [True, False, None],
        "nested": {"list": [1, {"deep": "yes"}], "empty": {}},
        "tuple": (1, "two"),
    }
    await layer.send(channel, message)
    received = await receive_within(layer, channel)
    received.pop("__asgi_channel__", None)  # channels_redis marks ! messages
    # A tuple's items survive (as a list, on a layer that serialises).
    assert list(received.pop("tuple")) == list(message.pop("tuple"))
    assert received == message


async def test_a_message_of_one_megabyte_is_carried(make_layer):
    layer = await make_layer()
    channel = await layer.new_channel()
    payload = bytes(range(256)) * 4096
    await layer.send(channel, {"type": "test.big", "payload": payload})
    assert (await receive_within(layer, channel))["payload"] == payload


async def test_the_sender_changing_its_message_later_changes_nothing(make_layer):
    layer = await make_layer()
    channel = await layer.new_channel()
    message = {"type": "test.mutable", "items": [1, 2], "meta": {"k": "v"}}
    await layer.send(channel, message)
    message["items"].append(3)
    message["meta"]["k"] = "changed"
    received = await receive_within(layer, channel)
    assert received["items"] == [1, 2]
    assert received["meta"] == {"k": "v"}


async def test_values_no_network_layer_can_carry_are_refused(make_layer):
    layer = await make_layer()
    channel = await layer.new_channel()
    with pytest.raises(TypeError):
        await layer.send(channel, {"type": "test.bad", "value": {1, 2}})
    # Nothing half-sent: the next message is the first one to arrive.
    await layer.send(channel, {"type": "test.good"})
    assert (await receive_within(layer, channel))["type"] == "test.good"


async def test_bad_names_and_non_dict_messages(make_layer, layer_under_test, listen):
    layer = await make_layer()
    if layer_under_test.validates_input:
        for bad in ("has space", "ünicode", "a" * 100, "semi;colon", 42, None):
            with pytest.raises(TypeError):
                await layer.send(bad, {"type": "test"})
        with pytest.raises(TypeError):
            await receive_within(layer, "has space")
        with pytest.raises(TypeError):
            await layer.group_add("bad group", "chan")
        with pytest.raises((TypeError, AssertionError)):
            await layer.send("fine", ["not", "a", "dict"])
    else:
        # Instead: the layer publishes whatever it is given, so a bad name
        # never reaches a receiver and no error tells the sender.
        listener = listen(layer, await layer.new_channel())
        await layer.send("has space", {"type": "test"})
        await listener.nothing(layer_under_test.quiet_period)


async def test_a_normal_channel_keeps_messages_until_someone_receives(
    make_layer, layer_under_test, listen
):
    layer = await make_layer()
    # A name of this test's own: publish/subscribe channels are not prefixed
    # (nor kept per Redis database), so another run could be listening.
    channel = f"work.queue{uuid.uuid4().hex}"
    await layer.send(channel, {"type": "job", "n": 1})
    listener = listen(layer, channel)
    if layer_under_test.queues_until_received:
        assert (await listener.next())["n"] == 1
    else:
        # Instead: publish/subscribe delivers only to current listeners.
        await listener.nothing(layer_under_test.quiet_period)


async def test_sending_past_capacity_raises_channel_full(make_layer, layer_under_test):
    layer = await make_layer(capacity=3)
    channel = await layer.new_channel()
    for n in range(3):
        await layer.send(channel, {"type": "test", "n": n})
    if layer_under_test.capacity:
        with pytest.raises(ChannelFull):
            await layer.send(channel, {"type": "test", "n": 3})
        assert (await receive_within(layer, channel))["n"] == 0
        # Receiving one made room for one, queued behind the others.
        await layer.send(channel, {"type": "test", "n": 4})
        received = [await receive_within(layer, channel) for _ in range(3)]
        assert [message["n"] for message in received] == [1, 2, 4]
    else:
        # Instead: no limit is enforced; every message is delivered.
        await layer.send(channel, {"type": "test", "n": 3})
        received = [await receive_within(layer, channel) for _ in range(4)]
        assert [message["n"] for message in received] == [0, 1, 2, 3]


async def test_channel_capacity_patterns_override_the_default(
    make_layer, layer_under_test
):
    layer = await make_layer(
        capacity=3, channel_capacity={"tight.*": 1, re.compile(r"^pair$"): 2}
    )
    if not layer_under_test.capacity:
        # Instead: the setting is accepted and has no effect.
        channel = await layer.new_channel(prefix="tight.")
        await layer.send(channel, {"type": "test", "n": 1})
        await layer.send(channel, {"type": "test", "n": 2})
        assert (await receive_within(layer, channel))["n"] == 1
        assert (await receive_within(layer, channel))["n"] == 2
        return
    await layer.send("tight.one", {"type": "test"})
    with pytest.raises(ChannelFull):
        await layer.send("tight.one", {"type": "test"})
    # A compiled regex is a pattern too.
    for _ in range(2):
        await layer.send("pair", {"type": "test"})
    with pytest.raises(ChannelFull):
        await layer.send("pair", {"type": "test"})
    # A channel no pattern matches gets the default capacity.
    for _ in range(3):
        await layer.send("roomy.one", {"type": "test"})
    with pytest.raises(ChannelFull):
        await layer.send("roomy.one", {"type": "test"})


async def test_queued_messages_expire(make_layer, layer_under_test, listen):
    layer = await make_layer(expiry=1)
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "test.stale"})
    await asyncio.sleep(2.1)  # deliberate: past the expiry (whole seconds in Redis)
    listener = listen(layer, channel)
    if layer_under_test.message_expiry:
        await listener.nothing(layer_under_test.quiet_period)
    else:
        # Instead: messages wait however long it takes.
        assert (await listener.next())["type"] == "test.stale"
    await layer.send(channel, {"type": "test.fresh"})
    assert (await listener.next())["type"] == "test.fresh"


async def _cancel_receives_at_random_moments(
    layer, channel: str, layer_under_test
) -> None:
    """Receives cancelled while a message is on its way, on a process-specific
    and a normal channel: every message still arrives, once (on a layer that
    keeps the messages of cancelled receives)."""
    got = []
    for n in range(80):
        if n < 60:  # the receive starts first
            target = channel
            task = asyncio.ensure_future(layer.receive(target))
            await layer.send(target, {"type": "test", "n": n})
        else:  # the message is sent first
            target = "contract.shared"
            await layer.send(target, {"type": "test", "n": n})
            task = asyncio.ensure_future(layer.receive(target))
        # Deliberate: cancel at a different moment each time (not a wait for
        # something to happen), so some cancels hit a receive mid-delivery.
        await asyncio.sleep((n % 6) * 0.001)
        task.cancel()
        try:
            got.append((await task)["n"])
        except asyncio.CancelledError:
            pass
    if layer_under_test.keeps_messages_of_cancelled_receives:
        for target, wanted in ((channel, 60), ("contract.shared", 80)):
            while len([n for n in got if n < wanted]) < wanted:
                got.append((await receive_within(layer, target))["n"])
        assert sorted(got) == list(range(80))
    else:
        # Instead: a message whose receive was cancelled mid-delivery may be
        # lost (how many depends on the moments the cancels hit), but none
        # arrives twice or out of nowhere.
        for target in (channel, "contract.shared"):
            while True:
                try:
                    message = await receive_within(
                        layer, target, layer_under_test.quiet_period
                    )
                except asyncio.TimeoutError:
                    break
                got.append(message["n"])
        assert len(got) == len(set(got)), "a message was delivered twice"
        assert set(got) <= set(range(80))


async def test_a_cancelled_receive_loses_no_message(make_layer, layer_under_test):
    layer = await make_layer()
    channel = await layer.new_channel()
    pending = asyncio.ensure_future(layer.receive(channel))
    # Let the receive get under way (no layer-neutral sign shows it waiting);
    # cancelled earlier, the test would pass without testing anything more.
    await asyncio.sleep(0.05)
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending
    await layer.send(channel, {"type": "test.after-cancel"})
    if layer_under_test.queues_until_received:
        received = await receive_within(layer, channel)
        assert received["type"] == "test.after-cancel"
        await _cancel_receives_at_random_moments(layer, channel, layer_under_test)
    else:
        # Instead: cancelling unsubscribes (a consumer cancels its receive
        # only when it ends), so later messages to that channel go nowhere.
        with pytest.raises(asyncio.TimeoutError):
            await receive_within(layer, channel, layer_under_test.quiet_period)


async def test_each_message_goes_to_exactly_one_of_many_receivers(
    make_layer, layer_under_test
):
    # What is tested is 8 receivers competing for every message; 2,000 gives
    # each some 250 contested deliveries.  channels_redis serialises its
    # receivers of one channel (a lock per channel key), about 2.7 ms per
    # message here: 10,000 took 28-37 s, the longest test of make test-fast.
    total, receivers = 2_000, 8
    layer = await make_layer(capacity=total)
    channel = "contract.work"
    if not layer_under_test.queues_until_received:
        # A subscription must exist before anything is published to it.
        channel = await layer.new_channel()
    seen: list[int] = []

    async def receive_forever():
        while True:
            seen.append((await layer.receive(channel))["n"])

    tasks = [asyncio.ensure_future(receive_forever()) for _ in range(receivers)]
    try:
        # Let the receivers start (no layer-neutral sign shows them waiting;
        # the messages queue, or the pub/sub channel is subscribed, anyway).
        await asyncio.sleep(0.05)
        for n in range(total):
            await layer.send(channel, {"type": "test", "n": n})
        await eventually(lambda: len(seen) >= total, timeout=60)
        # Deliberate: time for a duplicate to arrive, if the layer sent one.
        await asyncio.sleep(layer_under_test.quiet_period)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert len(seen) == total, "a message was delivered twice"
    assert sorted(seen) == list(range(total))


async def test_group_send_reaches_every_member_until_it_leaves(
    make_layer, layer_under_test, listen
):
    layer = await make_layer()
    first = listen(layer, await layer.new_channel())
    second = listen(layer, await layer.new_channel())
    others = [listen(layer, await layer.new_channel()) for _ in range(10)]
    for member in (first, second, *others):
        await layer.group_add("room", member.channel)
    await layer.group_add("room", second.channel)  # adding twice delivers once
    result = await layer.group_send("room", {"type": "chat", "text": "hello"})
    # Nobody was full, so nobody missed it (or the layer does not say).
    assert result == (0 if layer_under_test.counts_group_drops else None)
    for member in (first, second, *others):
        assert (await member.next())["text"] == "hello"
    await second.nothing(0.1)

    await layer.group_discard("room", first.channel)
    await layer.group_discard("room", first.channel)  # leaving twice is harmless
    await layer.group_discard("room", "never.added")  # as is leaving unjoined
    await layer.group_send("room", {"type": "chat", "text": "again"})
    assert (await second.next())["text"] == "again"
    await first.nothing(0.1)

    await layer.group_send("nobody-here", {"type": "chat"})  # no error


async def test_a_full_member_does_not_stop_the_others(
    make_layer, layer_under_test, caplog
):
    layer = await make_layer(capacity=1)
    # Distinct normal channels: channels_redis counts capacity per process
    # for "!" channels, all of which share one queue.
    full, free = "member.full", "member.free"
    if not layer_under_test.queues_until_received:
        full, free = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("room", full)
    await layer.group_add("room", free)
    await layer.send(full, {"type": "test.filler"})
    with caplog.at_level(logging.WARNING):
        result = await layer.group_send("room", {"type": "chat", "text": "hi"})
    assert (await receive_within(layer, free))["text"] == "hi"
    assert (await receive_within(layer, full))["type"] == "test.filler"
    if layer_under_test.capacity:
        # The full member missed the group message.
        with pytest.raises(asyncio.TimeoutError):
            await receive_within(layer, full, layer_under_test.quiet_period)
    else:
        # Instead: without capacities nobody is ever full.
        assert (await receive_within(layer, full))["text"] == "hi"
    if layer_under_test.counts_group_drops:
        assert result == 1
        assert layer.dropped_messages == 1
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert "room" in warnings[0].getMessage()
        assert full in warnings[0].getMessage()
        assert "capacity 1" in warnings[0].getMessage()
    else:
        # Instead: the caller is told nothing.
        assert result is None


async def test_group_membership_expires(make_layer, layer_under_test, listen):
    layer = await make_layer(group_expiry=1)
    listener = listen(layer, await layer.new_channel())
    await layer.group_add("lapsing", listener.channel)
    await asyncio.sleep(2.1)  # deliberate: past the group expiry
    await layer.group_send("lapsing", {"type": "chat"})
    if layer_under_test.sends_groups_lost:
        # The member is told, on its channel, instead of the group's message.
        notice = await listener.next()
        assert notice == {"type": GROUPS_LOST, "groups": ["lapsing"]}
    if layer_under_test.group_expiry:
        await listener.nothing(layer_under_test.quiet_period)
    else:
        # Instead: members stay until they are discarded.
        assert (await listener.next())["type"] == "chat"


async def test_flush_forgets_messages_and_groups(make_layer, layer_under_test, listen):
    layer = await make_layer()
    channel = await layer.new_channel()
    await layer.group_add("room", channel)
    await layer.send(channel, {"type": "test.before-flush"})
    await layer.flush()
    listener = listen(layer, channel)
    await layer.group_send("room", {"type": "test.to-old-group"})
    await listener.nothing(layer_under_test.quiet_period)
