"""Delivering live messages once each, in order, whatever order they came in."""

from __future__ import annotations

import pytest

from channels_app.streams import Position, StreamMessage
from channels_app.streams.sequencer import Sequencer


def message(offset, epoch="e1"):
    return StreamMessage("s", epoch, offset, {"n": offset})


def offsets(messages):
    return [m.offset for m in messages]


def test_in_order_messages_pass_straight_through():
    sequencer = Sequencer(Position("e1", 0))
    assert offsets(sequencer.offer(message(1))) == [1]
    assert offsets(sequencer.offer(message(2))) == [2]
    assert not sequencer.has_hole


def test_duplicates_of_what_was_delivered_are_dropped():
    sequencer = Sequencer(Position("e1", 5))
    assert sequencer.offer(message(3)) == []
    assert sequencer.offer(message(5)) == []
    assert offsets(sequencer.offer(message(6))) == [6]
    assert sequencer.offer(message(6)) == []


def test_an_early_message_waits_for_the_one_before_it():
    sequencer = Sequencer(Position("e1", 0))
    assert sequencer.offer(message(2)) == []
    assert sequencer.offer(message(3)) == []
    assert sequencer.has_hole
    assert offsets(sequencer.offer(message(1))) == [1, 2, 3]
    assert not sequencer.has_hole
    assert sequencer.position == Position("e1", 3)


def test_a_message_of_another_epoch_is_not_compared():
    sequencer = Sequencer(Position("e1", 0))
    with pytest.raises(ValueError, match="epoch"):
        sequencer.offer(message(1, epoch="e2"))
