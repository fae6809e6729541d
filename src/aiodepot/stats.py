"""Operation statistics and the latency/bandwidth emulator."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

__all__ = ["Emulator", "Stats"]

_TIMED = ("info", "load", "store", "delete", "move", "list", "gather", "hash", "defrag")
_VOLUMES = ("load", "store", "gather")
_BACKEND = ("load", "gather", "store", "delete")


class Stats:
    """Counters of a store: calls, time and volume per operation, and the backend calls behind them.

    ``<op>_time`` adds up the duration of every call (as borgstore does), so with concurrent calls it can
    exceed the wall-clock time; ``<op>_busy_time`` is the wall-clock time during which at least one call
    of that kind was running, and ``<op>_busy_throughput`` the volume per busy second: the throughput
    a user really got.
    """

    __slots__ = ("_busy_since", "_counts", "_running")

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._running: Counter[str] = Counter()
        self._busy_since: dict[str, int] = {}

    def begin(self, op: str) -> int:
        """Mark the start of an ``op`` call; returns the start time to pass to `end`."""
        now = time.perf_counter_ns()
        if not self._running[op]:
            self._busy_since[op] = now
        self._running[op] += 1
        return now

    def end(self, op: str, started: int, volume: int = 0, *, calls: int = 1) -> None:
        """Mark the end of an ``op`` call (or a batch of ``calls``) that moved ``volume`` bytes."""
        now = time.perf_counter_ns()
        counts = self._counts
        counts[op + "_calls"] += calls
        counts[op + "_time"] += now - started
        if volume:
            counts[op + "_volume"] += volume
        self._running[op] -= 1
        if not self._running[op]:
            counts[op + "_busy_time"] += now - self._busy_since.pop(op)

    def add(self, key: str, amount: int = 1) -> None:
        """Add to a plain counter."""
        self._counts[key] += amount

    def snapshot(self) -> dict[str, Any]:
        """The figures as a dict with borgstore's keys (times in seconds, throughput in bytes/s)."""
        counts = self._counts
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


class Emulator:
    """Makes a fast backend behave like a slow, far-away one.

    Each backend call takes at least ``latency`` seconds. Its bytes cross one shared link of ``bandwidth``
    bits per second: concurrent calls queue for the link, as they would on a real network, so parallelism
    hides latency but cannot create bandwidth.
    """

    __slots__ = ("_bytes_per_second", "_link_free_at", "latency")

    def __init__(self, latency: float = 0.0, bandwidth: float = 0.0) -> None:
        if latency < 0 or bandwidth < 0:
            raise ValueError("latency and bandwidth must be >= 0")
        self.latency = latency
        self._bytes_per_second = bandwidth / 8
        self._link_free_at = 0.0

    @property
    def bandwidth(self) -> float:
        """The emulated link's speed in bits per second (0: unlimited)."""
        return self._bytes_per_second * 8

    def __bool__(self) -> bool:
        return bool(self.latency or self._bytes_per_second)

    async def delay(self, started: float, volume: int) -> None:
        """Sleep for what a call started at ``started`` (``time.monotonic()``) moving ``volume`` bytes lacks."""
        done = started
        if self._bytes_per_second and volume:
            begin = max(started, self._link_free_at)
            done = self._link_free_at = begin + volume / self._bytes_per_second
        remaining = done + self.latency - time.monotonic()
        if remaining > 0:
            await asyncio.sleep(remaining)
