"""Operation statistics: what a Store counts, with borgstore's keys.

(`Emulator` lives in [`aiodepot.emulation`][aiodepot.emulation]; it is importable from here, too.)
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections import Counter
from typing import Any

from .emulation import Emulator

__all__ = ["Emulator", "Stats"]

_TIMED = ("info", "load", "store", "delete", "move", "list", "gather", "hash", "defrag")
_VOLUMES = ("load", "store", "gather")
_BACKEND = ("load", "gather", "store", "delete")
_KEYS: dict[str, tuple[str, str, str, str]] = {}
_all_stats: weakref.WeakSet[Stats] = weakref.WeakSet()


def _new_locks_after_fork() -> None:
    # a thread of the parent may have held a lock at the fork: in the child nobody would release it
    for stats in list(_all_stats):
        stats._lock = threading.Lock()


os.register_at_fork(after_in_child=_new_locks_after_fork)


def _keys(op: str) -> tuple[str, str, str, str]:
    keys = _KEYS[op] = (op + "_calls", op + "_time", op + "_volume", op + "_busy_time")
    return keys


class Stats:
    """Counters of a store: calls, time and volume per operation, and the backend calls behind them.

    ``<op>_time`` adds up the duration of every call (as borgstore does), so with concurrent calls it can
    exceed the wall-clock time; ``<op>_busy_time`` is the wall-clock time during which at least one call
    of that kind was running, and ``<op>_busy_throughput`` the volume per busy second: the throughput
    a user really got.
    """

    __slots__ = ("__weakref__", "_busy_since", "_counts", "_lock", "_running")

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._running: Counter[str] = Counter()
        self._busy_since: dict[str, int] = {}
        # calls count from the event loop and, on the direct path of the sync facade, from callers' threads
        self._lock = threading.Lock()
        _all_stats.add(self)

    def begin(self, op: str) -> int:
        """Mark the start of an ``op`` call; returns the start time to pass to `end`."""
        now = time.perf_counter_ns()
        with self._lock:
            if not self._running[op]:
                self._busy_since[op] = now
            self._running[op] += 1
        return now

    def end(self, op: str, started: int, volume: int = 0, *, calls: int = 1) -> None:
        """Mark the end of an ``op`` call (or a batch of ``calls``) that moved ``volume`` bytes."""
        now = time.perf_counter_ns()
        counts = self._counts
        keys = _KEYS.get(op) or _keys(op)
        with self._lock:
            counts[keys[0]] += calls
            counts[keys[1]] += now - started
            if volume:
                counts[keys[2]] += volume
            self._running[op] -= 1
            if not self._running[op]:
                counts[keys[3]] += now - self._busy_since.pop(op)

    def add(self, key: str, amount: int = 1) -> None:
        """Add to a plain counter."""
        with self._lock:
            self._counts[key] += amount

    def add_call(self, calls_key: str, volume_key: str, volume: int) -> None:
        """Count one call under ``calls_key`` and its ``volume`` bytes (if any) under ``volume_key``."""
        with self._lock:
            self._counts[calls_key] += 1
            if volume:
                self._counts[volume_key] += volume

    def snapshot(self) -> dict[str, Any]:
        """The figures as a dict with borgstore's keys (times in seconds, throughput in bytes/s)."""
        with self._lock:
            counts = self._counts.copy()
        result: dict[str, Any] = {key: value for key, value in counts.items() if not key.endswith("time")}
        for op in _TIMED:
            result[f"{op}_calls"] = counts.get(f"{op}_calls", 0)
            result[f"{op}_time"] = counts.get(f"{op}_time", 0) / 1e9
            result[f"{op}_busy_time"] = counts.get(f"{op}_busy_time", 0) / 1e9
        for op in _VOLUMES:
            volume = result[f"{op}_volume"] = counts.get(f"{op}_volume", 0)
            spent, busy = result[f"{op}_time"], result[f"{op}_busy_time"]
            result[f"{op}_throughput"] = volume / spent if spent else 0
            result[f"{op}_busy_throughput"] = volume / busy if busy else 0
        for op in _BACKEND:
            result[f"backend_{op}_calls"] = counts.get(f"backend_{op}_calls", 0)
            result[f"backend_{op}_volume"] = counts.get(f"backend_{op}_volume", 0)
        hits, misses = counts.get("cache_hits", 0), counts.get("cache_misses", 0)
        result["cache_disabled"] = False
        result["cache_hits"], result["cache_misses"] = hits, misses
        result["cache_hit_ratio"] = hits / (hits + misses) if hits + misses else 0
        for key in ("errors", "load_calls", "store_calls", "delete_calls", "load_volume", "store_volume"):
            result[f"cache_{key}"] = counts.get(f"cache_{key}", 0)
        return result
