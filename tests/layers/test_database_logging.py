"""The database layer's warnings about full members cannot flood the log."""

from __future__ import annotations

import logging

import pytest

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


async def test_a_burst_to_full_members_logs_one_line_with_the_count(
    make_db_layer, caplog
):
    layer = make_db_layer(capacity=1)
    await layer.group_add("g", "stalled.member")
    await layer.send("stalled.member", {"type": "filler"})
    with caplog.at_level(logging.WARNING, "channels_app.layers.database"):
        for _ in range(20):
            assert await layer.group_send("g", {"type": "news"}) == 1
        assert len(caplog.records) == 1  # the rest held back for the interval
        layer.full_channel_warnings.flush()
    assert len(caplog.records) == 2
    assert "latest of 19 similar" in caplog.records[1].getMessage()
    assert "19 members skipped" in caplog.records[1].getMessage()
    assert layer.dropped_messages == 20
