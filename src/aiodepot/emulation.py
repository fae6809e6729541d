"""The latency/bandwidth emulator, and the one place that reads ``BORGSTORE_LATENCY``/``BORGSTORE_BANDWIDTH``.

The [`Emulate`][aiodepot.layers.emulate.Emulate] layer applies an `Emulator` to the calls of the backend it
wraps; the [`Store`][aiodepot.Store] and the borgstore drop-in put that layer right above the primary
backend (below a cache: a cache hit does not cross the emulated link).
"""

from __future__ import annotations

import asyncio
import os
import time

__all__ = ["BANDWIDTH_VARIABLE", "LATENCY_VARIABLE", "Emulator"]

LATENCY_VARIABLE = "BORGSTORE_LATENCY"
"""The environment variable with the default emulated latency, in **microseconds** (as borgstore)."""
BANDWIDTH_VARIABLE = "BORGSTORE_BANDWIDTH"
"""The environment variable with the default emulated bandwidth, in bits per second (as borgstore)."""


def _env_float(name: str, scale: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return 0.0
    try:
        return float(raw) * scale
    except ValueError:
        raise ValueError(f"environment variable {name} must be a number, got {raw!r}") from None


class Emulator:
    """Makes a fast backend behave like a slow, far-away one.

    Each backend call takes at least ``latency`` seconds. Its bytes cross one shared link of ``bandwidth``
    bits per second: concurrent calls queue for it, as they would on a real network, so parallelism
    hides latency but cannot create bandwidth.

    The emulator also keeps count of the round trips it emulated: `round_trips`, `most_in_flight`,
    `longest` and `link_busy_until` tell how a workload met the emulated network (how many requests, how
    many at once, the slowest one, how long the link carried their bytes) without timing it.
    """

    __slots__ = (
        "_bytes_per_second",
        "_in_flight",
        "_link_free_at",
        "latency",
        "longest",
        "most_in_flight",
        "round_trips",
    )

    def __init__(self, latency: float = 0.0, bandwidth: float = 0.0) -> None:
        if latency < 0 or bandwidth < 0:
            raise ValueError("latency and bandwidth must be >= 0")
        self.latency = latency
        self._bytes_per_second = bandwidth / 8
        self._link_free_at = 0.0
        self._in_flight = 0
        self.round_trips = 0
        """The round trips emulated so far (one per call; one per item of a batch call)."""
        self.most_in_flight = 0
        """The most round trips that were in flight together (parallelism the latency overlapped with)."""
        self.longest = 0.0
        """The longest emulated round trip so far, in seconds of the model: from the call's start to the end
        of its latency, including its wait for the shared link and its bytes' time on it."""

    @classmethod
    def from_environment(cls, latency: float | None = None, bandwidth: float | None = None) -> Emulator:
        """An emulator with ``latency`` (s) and ``bandwidth`` (bit/s); each one not given comes from
        ``BORGSTORE_LATENCY`` (µs) or ``BORGSTORE_BANDWIDTH`` (bit/s), or is off if that is unset."""
        return cls(
            _env_float(LATENCY_VARIABLE, 1e-6) if latency is None else latency,
            _env_float(BANDWIDTH_VARIABLE, 1.0) if bandwidth is None else bandwidth,
        )

    def __repr__(self) -> str:
        return f"Emulator(latency={self.latency!r}, bandwidth={self.bandwidth!r})"

    @property
    def bandwidth(self) -> float:
        """The emulated link's speed in bits per second (0: unlimited)."""
        return self._bytes_per_second * 8

    @property
    def link_busy_until(self) -> float:
        """When (``time.monotonic()``) the shared link has carried the bytes booked on it so far."""
        return self._link_free_at

    @property
    def in_flight(self) -> int:
        """The round trips begun and not yet ended."""
        return self._in_flight

    def __bool__(self) -> bool:
        return bool(self.latency or self._bytes_per_second)

    def begin(self, count: int = 1) -> float:
        """Start ``count`` round trips now; return their start (``time.monotonic()``) for `delay`.

        Each one ends with its `delay`, or with `end` when its call failed."""
        self.round_trips += count
        self._in_flight += count
        if self._in_flight > self.most_in_flight:
            self.most_in_flight = self._in_flight
        return time.monotonic()

    def end(self, count: int = 1) -> None:
        """End ``count`` round trips without a delay (their call failed)."""
        self._in_flight -= count

    def owed(self, started: float, volume: int) -> float:
        """Seconds that a call started at ``started`` (``time.monotonic()``) moving ``volume`` bytes still
        has to wait (books its bytes on the shared link)."""
        done = started
        if self._bytes_per_second and volume:
            begin = max(started, self._link_free_at)
            done = self._link_free_at = begin + volume / self._bytes_per_second
        deadline = done + self.latency
        if deadline - started > self.longest:
            self.longest = deadline - started
        return deadline - time.monotonic()

    async def delay(self, started: float, volume: int) -> None:
        """Wait for what a round trip started at ``started`` (by `begin`) moving ``volume`` bytes lacks,
        then end it."""
        try:
            remaining = self.owed(started, volume)
            if remaining > 0:
                await self._wait(remaining)
        finally:
            self._in_flight -= 1

    async def _wait(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
