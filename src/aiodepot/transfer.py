"""The transfer engine: bounded, ordered fan-out of many operations.

``run_bounded`` runs one coroutine per job with at most ``max_concurrency`` in flight (a fixed set of
worker tasks pulls jobs, so a million jobs cost a million results, not a million tasks). Results come back
in job order. The first failure cancels the rest and is raised as itself, not wrapped in an
ExceptionGroup, unless ``return_exceptions=True`` asks for the per-job errors in the result list instead.

Jobs that finish without waiting (a memory backend, pages in the cache) never give the event loop back on
their own: a million of them would hold it for seconds, and a cancel (Ctrl-C in a blocking caller, a
timeout) would land only at the end. So the workers of one call share a [`LoopShare`][aiodepot.transfer.LoopShare]
and pause after `LOOP_SLICE` seconds of work; ``map_pausing`` does the same for the checks a bulk call
makes before it starts.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import inspect
import io
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeAlias, TypeVar

__all__ = [
    "LOOP_SLICE",
    "ByteBudget",
    "LoopShare",
    "Progress",
    "ProgressCallback",
    "ProgressTracker",
    "RangePlan",
    "ValueBuffer",
    "map_pausing",
    "plan_ranges",
    "run_bounded",
]

T = TypeVar("T")
R = TypeVar("R")

LOOP_SLICE = 0.01
"""Seconds a bulk call may hold the event loop before it lets other callbacks (a cancel) run."""
_CHECK_EVERY = 512
"""Items ``map_pausing`` handles between two looks at the clock."""


class LoopShare:
    """Lets the tasks of one bulk call hold the event loop for at most about `LOOP_SLICE` seconds in a row.

    ``await share.pause()`` after each piece of work returns at once while the slice lasts. Once it is
    over, every task that asks yields (``asyncio.sleep(0)``); the slice starts again one loop iteration
    later, after the callbacks that waited (a cancellation, other tasks' wake-ups) have run. A cancel
    therefore waits for at most about one slice, however many tasks share it.
    """

    __slots__ = ("_deadline", "_renewing")

    def __init__(self) -> None:
        self._deadline = time.monotonic() + LOOP_SLICE
        self._renewing = False

    def _renew(self) -> None:
        self._deadline = time.monotonic() + LOOP_SLICE
        self._renewing = False

    async def pause(self) -> None:
        """Yield to the event loop if this call has held it for a slice."""
        if time.monotonic() < self._deadline:
            return
        if not self._renewing:
            self._renewing = True
            asyncio.get_running_loop().call_soon(self._renew)
        await asyncio.sleep(0)


async def map_pausing(func: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``[func(item) for item in items]``, yielding to the event loop every `LOOP_SLICE` seconds (for the
    checks of a million names, which take seconds)."""
    results: list[R] = []
    share = LoopShare()
    pending = iter(items)
    while chunk := list(itertools.islice(pending, _CHECK_EVERY)):
        results.extend(map(func, chunk))
        await share.pause()
    return results


@dataclasses.dataclass(frozen=True, slots=True)
class Progress:
    """How far a bulk operation is: items and bytes done, and the totals where known."""

    items_done: int
    items_total: int
    bytes_done: int
    bytes_total: int | None

    @property
    def fraction(self) -> float:
        """Share of the items done, from 0.0 to 1.0."""
        return self.items_done / self.items_total if self.items_total else 1.0


ProgressCallback: TypeAlias = Callable[[Progress], object]
"""Called after each item; may be a plain function or a coroutine function."""


class ProgressTracker:
    """Counts finished items and bytes and reports them to a progress callback."""

    __slots__ = ("bytes_done", "bytes_total", "callback", "items_done", "items_total")

    def __init__(self, callback: ProgressCallback | None, items_total: int, bytes_total: int | None) -> None:
        self.callback = callback
        self.items_total = items_total
        self.bytes_total = bytes_total
        self.items_done = 0
        self.bytes_done = 0

    async def step(self, nbytes: int) -> None:
        """One more item done, having moved ``nbytes``."""
        self.items_done += 1
        self.bytes_done += nbytes
        if self.callback is not None:
            result = self.callback(Progress(self.items_done, self.items_total, self.bytes_done, self.bytes_total))
            if inspect.isawaitable(result):
                await result


async def run_bounded(
    jobs: Sequence[T],
    worker: Callable[[T], Awaitable[R]],
    *,
    max_concurrency: int,
    return_exceptions: bool = False,
    progress: ProgressCallback | None = None,
    bytes_total: int | None = None,
    bytes_of: Callable[[T, R], int] | None = None,
) -> list[Any]:
    """Run ``worker(job)`` for every job, at most ``max_concurrency`` at a time; results in job order.

    ``bytes_of(job, result)`` tells the progress callback how many bytes a finished job moved.
    """
    if max_concurrency < 1:
        raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
    count = len(jobs)
    results: list[Any] = [None] * count
    if not count:
        return results
    tracker = ProgressTracker(progress, count, bytes_total)
    pending = iter(range(count))
    first_error: BaseException | None = None
    share = LoopShare()

    async def work() -> None:
        nonlocal first_error
        for index in pending:  # a shared iterator: each job is taken by exactly one worker
            job = jobs[index]
            try:
                result = await worker(job)
            except Exception as exc:
                if not return_exceptions:
                    if first_error is None:
                        first_error = exc
                    raise
                results[index] = exc
                await tracker.step(0)
                await share.pause()
                continue
            results[index] = result
            await tracker.step(bytes_of(job, result) if bytes_of is not None else 0)
            await share.pause()

    failure: BaseException | None = None
    try:
        if count == 1 or max_concurrency == 1:
            await work()
        else:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(max_concurrency, count)):
                    group.create_task(work())
    except BaseExceptionGroup as group_error:
        failure = first_error if first_error is not None else group_error.exceptions[0]
    if failure is not None:
        raise failure  # outside the except block, so the traceback shows the job's error, not the group
    return results


@dataclasses.dataclass(frozen=True, slots=True)
class RangePlan:
    """How to serve a list of byte ranges with fewer, bigger reads (see [`plan_ranges`][aiodepot.transfer.plan_ranges]).

    ``reads`` are the ranges to fetch; ``pieces[i]`` says where requested range ``i`` lies in them:
    ``(read index, start within that read, size)``.
    """

    reads: list[tuple[str, int, int]]
    pieces: list[tuple[int, int, int]]

    def assemble(self, blobs: Sequence[bytes | memoryview]) -> bytes:
        """Cut the requested ranges out of the fetched ``blobs`` and join them in the requested order."""
        views = [memoryview(blob) for blob in blobs]
        return b"".join(views[read][start : start + size] for read, start, size in self.pieces if size)


def plan_ranges(sources: Sequence[tuple[str, int, int]], max_gap: int) -> RangePlan:
    """Merge ranges of the same item that touch, overlap or lie within ``max_gap`` bytes of each other.

    Ranges with a negative offset (counted from the end) are fetched as they are. A gap is read and
    thrown away: one read of ``a + gap + b`` bytes beats two round trips where a round trip costs more
    than ``gap`` bytes of transfer.
    """
    if max_gap < 0:
        raise ValueError(f"max_gap must be >= 0, got {max_gap}")
    reads: list[tuple[str, int, int]] = []
    pieces: list[tuple[int, int, int]] = [(0, 0, 0)] * len(sources)
    by_item: dict[str, list[int]] = {}
    for index, (name, offset, size) in enumerate(sources):
        if offset < 0:
            pieces[index] = (len(reads), 0, size)
            reads.append((name, offset, size))
        elif size:
            by_item.setdefault(name, []).append(index)
    for name, indices in by_item.items():
        indices.sort(key=lambda i: sources[i][1])
        groups: list[list[int]] = []
        end = 0
        for index in indices:
            _, offset, size = sources[index]
            if groups and offset <= end + max_gap:
                groups[-1].append(index)
                end = max(end, offset + size)
            else:
                groups.append([index])
                end = offset + size
        for group in groups:
            start = sources[group[0]][1]
            stop = max(sources[i][1] + sources[i][2] for i in group)
            read = len(reads)
            reads.append((name, start, stop - start))
            for i in group:
                pieces[i] = (read, sources[i][1] - start, sources[i][2])
    return RangePlan(reads, pieces)


class ByteBudget:
    """A store-wide cap on the bytes that ranged transfers hold in memory at once.

    ``async with budget.reserve(n):`` waits until ``n`` more bytes fit, first come first served. A request
    larger than the whole budget waits until nothing else is in flight and then runs alone.
    """

    __slots__ = ("_waiters", "in_flight", "limit")

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"the byte budget must be >= 1, got {limit}")
        self.limit = limit
        self.in_flight = 0
        self._waiters: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()

    async def acquire(self, nbytes: int) -> None:
        """Wait until ``nbytes`` fit into the budget and take them."""
        nbytes = min(nbytes, self.limit)
        if not self._waiters and self.in_flight + nbytes <= self.limit:
            self.in_flight += nbytes
            return
        future = asyncio.get_running_loop().create_future()
        entry = (nbytes, future)
        self._waiters.append(entry)
        try:
            await future
        except BaseException:
            if future.done() and not future.cancelled():
                self.release(nbytes)  # granted just as we were cancelled: give it back
            else:
                self._waiters.remove(entry)
                self._wake()
            raise

    def release(self, nbytes: int) -> None:
        """Give back ``nbytes`` taken with [`acquire`][aiodepot.transfer.ByteBudget.acquire]."""
        self.in_flight -= min(nbytes, self.limit)
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            nbytes, future = self._waiters[0]
            if future.done():
                self._waiters.popleft()
                continue
            if self.in_flight + nbytes > self.limit:
                return
            self._waiters.popleft()
            self.in_flight += nbytes
            future.set_result(None)

    @contextlib.asynccontextmanager
    async def reserve(self, nbytes: int) -> AsyncIterator[None]:
        """Hold ``nbytes`` of the budget for the duration of the block."""
        await self.acquire(nbytes)
        try:
            yield
        finally:
            self.release(nbytes)


class ValueBuffer:
    """A zero-filled buffer of ``size`` bytes that is written through a memoryview and then becomes a
    ``bytes`` object without a copy (``io.BytesIO`` hands over its storage when no view is left): where a
    value received in pieces (ranges, a body's reads) is put together without a join."""

    __slots__ = ("_io",)

    def __init__(self, size: int) -> None:
        # bytes(size) is calloc'ed: its pages are mapped (zero) when first written, not zero-filled here; a
        # BytesIO that holds the only reference to its initial bytes writes into them without a copy
        self._io = io.BytesIO(bytes(size))

    def view(self) -> memoryview:
        """A writable view of the whole buffer; release it (``with``) before `value`."""
        return self._io.getbuffer()

    def value(self, size: int) -> bytes:
        """The first ``size`` bytes (a copy only if a view is still alive)."""
        try:
            self._io.truncate(size)
        except BufferError:  # a view is still alive: the storage cannot be handed over
            with self._io.getbuffer() as view:
                return bytes(view[:size])
        value = self._io.getvalue()
        self._io = io.BytesIO()
        return value
