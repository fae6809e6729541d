"""The cache layer's LRU index of a size- or age-limited namespace, and the record of a pending fill."""

from __future__ import annotations

from collections import Counter, OrderedDict

from ._policy import CachePolicy

__all__ = ["CACHE_RESCAN_DIVISOR", "Fill", "Index"]

CACHE_RESCAN_DIVISOR = 4
"""A ``size``-limited namespace is rescanned (in the background) after this layer put ``size / 4`` bytes in:
other clients sharing the cache backend add and evict items, too."""


class Index:
    """What this layer knows of one limited namespace in the cache: name → (size, last use), LRU first.

    Other clients sharing the cache backend are seen at the next scan. Names being written are reserved
    in ``pending`` (counted in ``total``, never chosen for eviction).
    """

    __slots__ = ("changed", "entries", "inserted", "namespace", "pending", "policy", "scanning", "total")

    def __init__(self, namespace: str, policy: CachePolicy) -> None:
        self.namespace = namespace
        self.policy = policy
        self.entries: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self.pending: Counter[str] = Counter()
        self.total = 0
        self.inserted = 0
        self.scanning = False
        self.changed: set[str] = set()  # names changed by this layer while a scan runs

    def add(self, name: str, size: int, used: float) -> None:
        self.remove(name)
        self.entries[name] = (size, used)
        self.total += size

    def remove(self, name: str) -> None:
        entry = self.entries.pop(name, None)
        if entry is not None:
            self.total -= entry[0]
        if self.scanning:
            self.changed.add(name)

    def reserve(self, name: str, size: int) -> None:
        self.pending[name] += size
        self.total += size

    def release(self, name: str, size: int) -> None:
        self.pending[name] -= size
        if not self.pending[name]:
            del self.pending[name]
        self.total -= size

    def merge_scan(self, seen: dict[str, tuple[int, float]]) -> None:
        """Adopt a scan's findings, except for names this layer changed while it ran (there it knows better)."""
        changed, self.changed, self.scanning = self.changed, set(), False
        merged: dict[str, tuple[int, float]] = {}
        for name, (size, used) in self.entries.items():
            if name in changed:
                merged[name] = (size, used)
            elif name in seen:  # the later use counts: another client may have used it
                merged[name] = (seen[name][0], max(used, seen[name][1]))
            # else: evicted by another client
        for name, found in seen.items():
            if name not in merged and name not in changed:
                merged[name] = found  # cached by another client
        self.entries = OrderedDict(sorted(merged.items(), key=lambda item: (item[1][1], item[0])))
        self.total = sum(size for size, _ in self.entries.values()) + sum(self.pending.values())


class Fill:
    """One primary load that will put its value into the cache, unless a write to the name intervenes."""

    __slots__ = ("stale",)

    def __init__(self) -> None:
        self.stale = False
