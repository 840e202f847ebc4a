"""When to copy a dict that lost most of its keys, so its memory comes back.

CPython never shrinks a dict's table when keys are deleted: a burst of
100,000 abandoned channels left about 2 MB of empty table in the in-memory
layer after every one of them had expired (measured with tracemalloc).
"""

from __future__ import annotations


class Compaction:
    """Counts deletions from one dict and says when a copy of it is due.

    Invariant: a copy is due once the deletions since the last copy reach
    four times the keys left (and at least 1,024), so the table never holds
    more than about five times its live keys plus 1,024 slots, and each copy
    costs at most a quarter of the deletions that paid for it: O(1) amortised.
    """

    __slots__ = ("_deleted",)

    #: Deletions below which a copy is never worth it.
    MINIMUM = 1024

    def __init__(self) -> None:
        self._deleted = 0

    def deleted(self, left: int) -> bool:
        """Note one deletion, leaving ``left`` keys; True when a copy is due."""
        self._deleted += 1
        if self._deleted < self.MINIMUM or self._deleted < 4 * left:
            return False
        self._deleted = 0
        return True
