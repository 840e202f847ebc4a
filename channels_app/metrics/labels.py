"""Label values with a ceiling, so no input can grow the metric series unbounded.

Routes, consumer classes, handler names and worker channels come from the
project's code, so their number is small; the ceiling is a guard against a
project whose routes or message types are built from user input.
"""

from __future__ import annotations

import threading

#: Distinct values one label may take before the rest are reported as OTHER.
MAX_VALUES = 200
OTHER = "other"


class BoundedLabel:
    """Passes values through until ``limit`` distinct ones were seen."""

    def __init__(self, limit: int = MAX_VALUES) -> None:
        self.limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        # Invariant: a value once admitted stays admitted, so the set only
        # grows to ``limit`` and the fast path needs no lock (a set read).
        if value in self._seen:
            return value
        with self._lock:
            if len(self._seen) < self.limit:
                self._seen.add(value)
                return value
        return OTHER


def route_of(scope: dict[str, object], consumer: object) -> str:
    """The URL pattern that matched (``scope["route"]``), else the consumer class."""
    route = scope.get("route")
    if isinstance(route, str) and route:
        return route
    return type(consumer).__qualname__
