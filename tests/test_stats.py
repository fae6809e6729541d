"""Statistics (``aiodepot.stats``): the per-operation counters that every single call updates.

Calls count from the event loop and, on the sync facade's direct path, from many threads at once: the
counts must add up, and the busy time must be the wall-clock time during which at least one call ran
(never more than the wall clock, never less than the longest call).
"""

from __future__ import annotations

import threading
import time

from aiodepot.stats import OpCounts, Stats


def test_calls_volume_and_backend_calls_add_up_across_threads() -> None:
    stats = Stats()
    counts = stats.op("load")

    def calls() -> None:
        for _ in range(2000):
            counts.end(counts.begin(), 10, 1, True)

    threads = [threading.Thread(target=calls) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats.add_call("backend_load_calls", "backend_load_volume", 5)  # the meter's count of another path
    figures = stats.snapshot()
    assert figures["load_calls"] == 16_000 and figures["load_volume"] == 160_000
    assert figures["backend_load_calls"] == 16_001 and figures["backend_load_volume"] == 160_005
    assert 0 < figures["load_busy_time"] <= figures["load_time"]
    assert counts._starts == []


def test_overlapping_calls_count_their_busy_time_once() -> None:
    counts = OpCounts()
    barrier = threading.Barrier(8)

    def call() -> None:
        barrier.wait()
        started = counts.begin()
        time.sleep(0.05)
        counts.end(started)

    threads = [threading.Thread(target=call) for _ in range(8)]
    wall = time.perf_counter_ns()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter_ns() - wall
    assert counts.calls == 8
    assert counts.time >= 8 * 50_000_000  # every call's own duration
    assert 50_000_000 <= counts.busy <= wall  # the union of the calls, not their sum


def test_separate_periods_add_up_and_the_gap_between_them_does_not_count() -> None:
    counts = OpCounts()
    first = counts.begin()
    time.sleep(0.02)
    counts.end(first)
    time.sleep(0.1)
    second = counts.begin()
    time.sleep(0.02)
    counts.end(second)
    assert 40_000_000 <= counts.busy < 100_000_000


def test_a_call_that_registers_after_the_period_closed_is_not_counted_twice() -> None:
    # begin() takes its time before it registers without a lock: a call that started before another's end
    # may register only after that end closed the busy period. Its time before the close counts once.
    counts = OpCounts()
    first = counts.begin()
    late = time.perf_counter_ns()  # the late call's clock reading ...
    time.sleep(0.02)
    counts.end(first)
    closed = counts.busy
    counts._starts.append(late)  # ... and its registration, after the period closed
    time.sleep(0.02)
    counts.end(late)
    everything = time.perf_counter_ns() - first
    assert closed >= 20_000_000
    assert counts.busy <= everything  # counted from its start again, it would be about 60 ms of 40


class _GapBeforeTheLock:
    """``OpCounts``' lock, where the first ``acquire`` first runs ``gap``: what other threads do while the
    ending thread waits for the GIL between its call's end and the lock."""

    def __init__(self, gap: object) -> None:
        self._lock = threading.Lock()
        self._gap = gap

    def acquire(self) -> bool:
        gap, self._gap = self._gap, None
        if callable(gap):
            gap()
        return self._lock.acquire()

    def release(self) -> None:
        self._lock.release()


def test_an_end_delayed_before_the_lock_does_not_count_the_gaps_between_other_calls() -> None:
    counts = OpCounts()
    later: list[int] = []

    def other_threads() -> None:  # one short call, a pause with nothing running, then another call begins
        counts.end(counts.begin())
        time.sleep(0.05)
        later.append(counts.begin())

    counts._lock = _GapBeforeTheLock(other_threads)  # type: ignore[assignment]
    counts.end(counts.begin())  # its start stays registered through the gap
    counts.end(later[0])  # the last running call closes the period
    assert counts.calls == 3
    # The 50 ms pause counts in busy time only as part of the first call's time (it ended after the
    # lock); an end that read its clock before the lock counted the pause as busy without any call's time.
    assert counts.busy <= counts.time
