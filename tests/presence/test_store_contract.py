"""What every presence store guarantees (in-memory and Redis)."""

from __future__ import annotations

import asyncio
import time

LATER = 10**10  # a lease that has not ended


async def test_a_users_first_connection_joins_and_their_last_leaves(store):
    assert await store.join("room", "c1", "ada", {"tab": 1}, LATER) is True
    assert await store.join("room", "c2", "ada", {"tab": 2}, LATER) is False
    assert await store.join("room", "c3", "bob", {}, LATER) is True
    members = await store.members("room", time.time())
    assert sorted(members) == ["ada", "bob"]
    assert sorted(m["tab"] for m in members["ada"]) == [1, 2]
    assert await store.leave("room", "c1") is None  # ada still has c2
    assert await store.leave("room", "c2") == "ada"
    assert await store.leave("room", "c2") is None  # already gone
    assert await store.members("room", time.time()) == {"bob": [{}]}


async def test_joining_again_on_the_same_connection_is_not_a_new_arrival(store):
    assert await store.join("room", "c1", "ada", {"v": 1}, LATER) is True
    assert await store.join("room", "c1", "ada", {"v": 2}, LATER) is False
    assert await store.members("room", time.time()) == {"ada": [{"v": 2}]}
    assert await store.leave("room", "c1") == "ada"


async def test_topics_are_separate(store):
    await store.join("room.a", "c1", "ada", {}, LATER)
    assert await store.join("room.b", "c1", "ada", {}, LATER) is True
    assert await store.leave("room.a", "c1") == "ada"
    assert await store.members("room.b", time.time()) == {"ada": [{}]}
    assert await store.members("room.a", time.time()) == {}


async def test_update_replaces_the_connections_metadata(store):
    await store.join("room", "c1", "ada", {"status": "here"}, LATER)
    assert await store.update("room", "c1", {"status": "away"}) is True
    assert await store.update("room", "nobody", {"status": "away"}) is False
    assert await store.members("room", time.time()) == {"ada": [{"status": "away"}]}


async def test_an_ended_lease_is_not_a_member_and_is_swept_once(store):
    now = time.time()
    await store.join("room", "dead", "ghost", {}, now + 0.2)
    await store.join("room", "live", "ada", {}, now + 0.2)
    await store.renew([("room", "live")], LATER)
    await store.join("room", "dead2", "ghost2", {}, now + 0.2)
    await asyncio.sleep(0.3)  # deliberate: past the 0.2 s leases
    assert sorted(await store.members("room", time.time())) == ["ada"]
    gone = await store.sweep(time.time())
    assert sorted(gone) == [("room", "ghost"), ("room", "ghost2")]
    assert await store.sweep(time.time()) == []
    assert await store.leave("room", "dead") is None  # swept already


async def test_renewing_a_swept_connection_does_not_bring_it_back(store):
    await store.join("room", "c1", "ada", {}, time.time() - 1)
    assert await store.sweep(time.time()) == [("room", "ada")]
    await store.renew([("room", "c1")], LATER)
    assert await store.members("room", time.time()) == {}
