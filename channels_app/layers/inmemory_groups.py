"""Group membership for the in-memory layer: who is in which group, and until when.

Each membership lapses ``group_expiry`` seconds after its last ``group_add``.
Deadlines sit on a heap, so finding the lapsed ones costs only those; a
reverse index from channel to groups makes dropping one channel from all its
groups cost only its own groups.  The warning ``group_send`` logs when it
skips members whose channels are full is here too.
"""

from __future__ import annotations

import heapq
import itertools

from .dict_compaction import Compaction


class GroupMemberships:
    """Members of every group, with join times on the monotonic clock."""

    __slots__ = (
        "_deletions",
        "_tiebreak",
        "count",
        "deadlines",
        "expiry",
        "groups_of",
        "members",
    )

    def __init__(self, expiry: float) -> None:
        self.expiry = expiry
        #: group -> {channel: when it joined}.
        self.members: dict[str, dict[str, float]] = {}
        #: channel -> the groups it is in.
        self.groups_of: dict[str, set[str]] = {}
        self._deletions = Compaction()
        self.count = 0
        #: ``(deadline, tie-breaker, group, channel)``; a discard leaves its
        #: entry behind, to be skipped when it comes up (or compacted away).
        self.deadlines: list[tuple[float, int, str, str]] = []
        self._tiebreak = itertools.count()

    def add(self, group: str, channel: str, now: float) -> float | None:
        """Join ``channel`` to ``group`` or renew it; the new deadline, if any.

        A renewal moves no heap entry: the old one is looked at again when
        it comes up.  Returns None for a renewal.
        """
        members = self.members.setdefault(group, {})
        renewed = channel in members
        members[channel] = now
        if renewed:
            return None
        self.count += 1
        self.groups_of.setdefault(channel, set()).add(group)
        deadline = now + self.expiry
        heapq.heappush(self.deadlines, (deadline, next(self._tiebreak), group, channel))
        self._compact()
        return deadline

    def leave(self, group: str, channel: str) -> None:
        """Take ``channel`` out of ``group``; nothing if it is not a member."""
        members = self.members.get(group)
        if members is None or members.pop(channel, None) is None:
            return
        self.count -= 1
        if not members:
            del self.members[group]
        groups = self.groups_of.get(channel)
        if groups is not None:
            groups.discard(group)
            if not groups:
                self._forget_channel(channel)

    def remove_channel(self, channel: str) -> set[str]:
        """Take ``channel`` out of every group; the groups it was in."""
        groups = self._forget_channel(channel)
        for group in groups:
            members = self.members.get(group)
            if members is not None and members.pop(channel, None) is not None:
                self.count -= 1
                if not members:
                    del self.members[group]
        return groups

    def _forget_channel(self, channel: str) -> set[str]:
        """Drop ``channel``'s entry in the reverse index; the groups it named."""
        groups = self.groups_of.pop(channel, None)
        if groups is None:
            return set()
        if self._deletions.deleted(len(self.groups_of)):
            self.groups_of = dict(self.groups_of)
        return groups

    def expire_due(self, now: float) -> list[tuple[str, str]]:
        """Take out the memberships whose time is up; ``(group, channel)`` each."""
        lapsed = []
        deadlines = self.deadlines
        while deadlines and deadlines[0][0] <= now:
            _, _, group, channel = heapq.heappop(deadlines)
            joined = self.members.get(group, {}).get(channel)
            if joined is None:
                continue  # discarded since
            deadline = joined + self.expiry
            if deadline <= now:
                self.leave(group, channel)
                lapsed.append((group, channel))
            else:  # renewed since: look again at the new deadline
                heapq.heappush(
                    deadlines, (deadline, next(self._tiebreak), group, channel)
                )
        return lapsed

    def next_deadline(self) -> float | None:
        return self.deadlines[0][0] if self.deadlines else None

    def clear(self) -> None:
        self.members.clear()
        self.groups_of.clear()
        self.count = 0
        self.deadlines.clear()

    def _compact(self) -> None:
        """Rebuild the heap when stale entries (left by discards) dominate it."""
        if len(self.deadlines) < 1024 or len(self.deadlines) < 2 * self.count:
            return
        rebuilt = [
            (joined + self.expiry, next(self._tiebreak), group, channel)
            for group, members in self.members.items()
            for channel, joined in members.items()
        ]
        heapq.heapify(rebuilt)
        self.deadlines = rebuilt
