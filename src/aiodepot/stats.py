"""Operation statistics: what a Store counts, with borgstore's keys.

(`Emulator` lives in [`aiodepot.emulation`][aiodepot.emulation]; it is importable from here, too.)
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import Counter
from time import perf_counter_ns
from typing import Any

from .emulation import Emulator

__all__ = ["Emulator", "OpCounts", "Stats"]

_TIMED = ("info", "load", "store", "delete", "move", "list", "gather", "hash", "defrag")
_VOLUMES = ("load", "store", "gather")
_BACKEND = ("load", "gather", "store", "delete")
_all_stats: weakref.WeakSet[Stats] = weakref.WeakSet()


def _new_locks_after_fork() -> None:
    # a thread of the parent may have held a lock at the fork: in the child nobody would release it
    for stats in list(_all_stats):
        stats._lock = threading.Lock()
        for counts in stats._ops.values():
            counts._lock = threading.Lock()


os.register_at_fork(after_in_child=_new_locks_after_fork)


class OpCounts:
    """The counters of one timed operation (``load``, ``store`` …) of a [`Stats`][aiodepot.stats.Stats].

    `begin` and `end` are the hot path of every single call, so the figures are slots of this object
    under its own lock, not keys of a shared dict.
    """

    __slots__ = (
        "_closed",
        "_lock",
        "_period",
        "_starts",
        "backend_calls",
        "backend_volume",
        "busy",
        "calls",
        "time",
        "volume",
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls = self.time = self.volume = self.busy = 0
        self.backend_calls = self.backend_volume = 0
        self._starts: list[int] = []  # the start times of the calls running now
        self._period = 0  # the earliest start of the running calls' busy period, as far as ends have seen
        self._closed = 0  # when the last busy period ended (a call that started before counts from here)

    def begin(self) -> int:
        """Mark the start of a call; returns the start time to pass to `end`."""
        now = perf_counter_ns()
        self._starts.append(now)  # atomic: no lock on the way in
        return now

    def end(self, started: int, volume: int = 0, calls: int = 1, backend: bool = False) -> None:
        """Mark the end of a call (or a batch of ``calls``) that moved ``volume`` bytes; ``backend``: it
        went straight to the backend (bypassing the metering layer), so count it as the backend's too.

        The busy time grows when the last running call ends, by the time since the earliest start of the
        calls that ran in that period (each end keeps the earliest start it has seen).

        The end's clock is read under the lock, where its start leaves ``_starts``: read before it, a
        thread that loses the GIL in between leaves its start behind as if the call still ran, while calls
        of other threads come and go with gaps between them, and the period that closes later counts those
        gaps (busy time ten times the calls' summed time, seen with 16 threads).
        """
        lock = self._lock
        lock.acquire()  # not `with`: its __exit__ call costs as much again, on every call
        try:
            now = perf_counter_ns()
            self.calls += calls
            self.time += now - started
            self.volume += volume
            if backend:
                self.backend_calls += calls
                self.backend_volume += volume
            starts = self._starts
            starts.remove(started)
            period = self._period
            if not period or started < period:
                period = started
            if starts:
                self._period = period
            else:
                closed = self._closed
                since = period if period > closed else closed
                if now > since:
                    self.busy += now - since
                self._period = 0
                self._closed = now
        finally:
            lock.release()

    def add_to(self, op: str, counts: Counter[str]) -> None:
        """Add these figures to ``counts`` under the keys of operation ``op`` (times in ns)."""
        with self._lock:
            figures = (self.calls, self.time, self.volume, self.busy, self.backend_calls, self.backend_volume)
        keys = (
            f"{op}_calls",
            f"{op}_time",
            f"{op}_volume",
            f"{op}_busy_time",
            f"backend_{op}_calls",
            f"backend_{op}_volume",
        )
        for key, value in zip(keys, figures, strict=True):
            if value:
                counts[key] += value


class Stats:
    """Counters of a store: calls, time and volume per operation, and the backend calls behind them.

    ``<op>_time`` adds up the duration of every call (as borgstore does), so with concurrent calls it can
    exceed the wall-clock time; ``<op>_busy_time`` is the wall-clock time during which at least one call
    of that kind was running, and ``<op>_busy_throughput`` the volume per busy second: the throughput
    a user really got.
    """

    __slots__ = ("__weakref__", "_counts", "_lock", "_ops")

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._ops: dict[str, OpCounts] = {}
        # calls count from the event loop and, on the direct path of the sync facade, from callers' threads
        self._lock = threading.Lock()
        _all_stats.add(self)

    def op(self, op: str) -> OpCounts:
        """The counters of operation ``op`` (made on first use; the same object every time after)."""
        counts = self._ops.get(op)
        if counts is None:
            with self._lock:
                counts = self._ops.setdefault(op, OpCounts())
        return counts

    def begin(self, op: str) -> int:
        """Mark the start of an ``op`` call; returns the start time to pass to `end`."""
        return (self._ops.get(op) or self.op(op)).begin()

    def end(self, op: str, started: int, volume: int = 0, *, calls: int = 1, backend: bool = False) -> None:
        """Mark the end of an ``op`` call (or a batch of ``calls``) that moved ``volume`` bytes (see
        [`OpCounts.end`][aiodepot.stats.OpCounts.end])."""
        self._ops[op].end(started, volume, calls, backend)

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
            ops = list(self._ops.items())
        for op, op_counts in ops:
            op_counts.add_to(op, counts)
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
