"""borgstore's statistics over aiodepot's: the adapter that gives borgstore's exact counts.

The figures come from the layers: the async [`Store`][aiodepot.Store]'s own counters (calls, times,
volumes per operation), a [`Meter`][aiodepot.layers.meter.Meter] right above the primary backend (its
``backend_*`` counts leave out cache hits, as borgstore's do) and the
[`Cache`][aiodepot.layers.cache.Cache] layer's ``cache_*`` counts. `BorgStats` shows them as borgstore's
``Store._stats`` mapping (times in ns, only the counters that are not zero), which borgstore's users and
tests read and sometimes reset (``store._stats["cache_delete_calls"] = 0``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

__all__ = ["BorgStats", "figures"]

_OPS = ("info", "load", "store", "delete", "move", "list", "gather", "hash", "defrag")
_BACKEND_OPS = ("load", "gather", "store", "delete")
_CACHE_COUNTERS = (
    "hits",
    "misses",
    "errors",
    "load_calls",
    "store_calls",
    "delete_calls",
    "load_volume",
    "store_volume",
)


def raw_counters(store: dict[str, Any], meter: dict[str, Any], cache: dict[str, Any]) -> dict[str, int]:
    """borgstore's raw counters from the snapshots of the Store, the primary's Meter and the cache layer."""
    raw: dict[str, int] = {}
    for op in _OPS:
        raw[f"{op}_calls"] = store.get(f"{op}_calls", 0)
        raw[f"{op}_time"] = round(store.get(f"{op}_time", 0) * 1e9)
        raw[f"{op}_volume"] = store.get(f"{op}_volume", 0)
    for op in _BACKEND_OPS:
        raw[f"backend_{op}_calls"] = meter.get(f"backend_{op}_calls", 0)
        raw[f"backend_{op}_volume"] = meter.get(f"backend_{op}_volume", 0)
    for key in _CACHE_COUNTERS:
        raw[f"cache_{key}"] = cache.get(f"cache_{key}", 0)
    return {key: value for key, value in raw.items() if value}


class BorgStats(MutableMapping[str, int]):
    """borgstore's ``Store._stats``: a live view of the counters; assigning a value resets that counter.

    Args:
        source: returns the current raw counters (see `raw_counters`).
    """

    def __init__(self, source: Callable[[], dict[str, int]]) -> None:
        self._source = source
        self._offsets: dict[str, int] = {}

    def _current(self) -> dict[str, int]:
        current = self._source()
        for key, offset in self._offsets.items():
            current[key] = current.get(key, 0) + offset
        return {key: value for key, value in current.items() if value or key in self._offsets}

    def __getitem__(self, key: str) -> int:
        return self._current().get(key, 0)

    def __setitem__(self, key: str, value: int) -> None:
        self._offsets[key] = self._offsets.get(key, 0) + value - self[key]

    def __delitem__(self, key: str) -> None:
        self[key] = 0

    def __iter__(self) -> Iterator[str]:
        return iter(self._current())

    def __len__(self) -> int:
        return len(self._current())

    def __repr__(self) -> str:
        return f"BorgStats({self._current()!r})"


def figures(counters: MutableMapping[str, int], cache: dict[str, Any]) -> dict[str, Any]:
    """borgstore's ``Store.stats``: counts, times [s], volumes [bytes], throughputs [bytes/s] and cache figures."""
    result: dict[str, Any] = dict(counters)
    for op in ("info", "load", "store", "delete", "move", "list", "gather"):
        result[f"{op}_calls"] = result.get(f"{op}_calls", 0)
        result[f"{op}_time"] = result.get(f"{op}_time", 0) / 1e9
    for op in ("load", "store", "gather"):
        volume = result[f"{op}_volume"] = result.get(f"{op}_volume", 0)
        spent = result[f"{op}_time"]
        result[f"{op}_throughput"] = volume / spent if spent else 0
    for op in _BACKEND_OPS:
        result[f"backend_{op}_calls"] = result.get(f"backend_{op}_calls", 0)
    for op in ("load", "gather", "store"):
        result[f"backend_{op}_volume"] = result.get(f"backend_{op}_volume", 0)
    for key in _CACHE_COUNTERS:
        result[f"cache_{key}"] = result.get(f"cache_{key}", 0)
    hits, misses = result["cache_hits"], result["cache_misses"]
    result["cache_hit_ratio"] = hits / (hits + misses) if hits + misses else 0
    result["cache_disabled"] = bool(cache.get("cache_disabled", False))
    for key in ("evictions", "evicted_volume", "skipped", "scans", "items", "bytes"):
        if f"cache_{key}" in cache:
            result[f"cache_{key}"] = cache[f"cache_{key}"]
    return result
