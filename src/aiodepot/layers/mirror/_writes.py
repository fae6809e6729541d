"""Writes of the mirror layer: fan-out to every child, the write quorum, per-name write locks, the stream tee."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any, NoReturn

from ...backends.base import Backend
from ...errors import ObjectNotFound, StoreError

__all__ = ["MirrorError", "NameLocks", "everywhere", "judge", "quietly", "raise_failure", "tee_chunks"]

logger = logging.getLogger("aiodepot.layers.mirror")

TEE_DEPTH = 2  # chunks queued per child while a stream is copied to all children


class MirrorError(StoreError):
    """A write reached fewer children than the write quorum (or a lifecycle call failed on some).

    ``succeeded`` holds the children that did the operation, ``failed`` maps each failed child to its
    error. The message names both.
    """

    def __init__(self, message: str, *, succeeded: Sequence[Backend], failed: Sequence[tuple[Backend, BaseException]]):
        super().__init__(message)
        self.succeeded = builtins.list(succeeded)
        self.failed = builtins.list(failed)


class NameLocks:
    """One lock per name while someone holds or waits for it (so the map stays small)."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, names: Iterable[str]) -> AsyncIterator[None]:
        """Hold the locks of ``names`` (taken in one global order: no deadlock between writers)."""
        ordered = sorted(set(names))
        for name in ordered:
            lock, users = self._locks.get(name, (None, 0))
            if lock is None:
                lock = asyncio.Lock()
            self._locks[name] = (lock, users + 1)
        acquired: builtins.list[asyncio.Lock] = []
        try:
            for name in ordered:
                lock = self._locks[name][0]
                await lock.acquire()
                acquired.append(lock)
            yield
        finally:
            for lock in acquired:
                lock.release()
            for name in ordered:
                lock, users = self._locks[name]
                if users == 1:
                    del self._locks[name]
                else:
                    self._locks[name] = (lock, users - 1)


async def everywhere(
    call: Callable[[Backend], Awaitable[Any]], children: Sequence[Backend]
) -> tuple[builtins.list[Backend], builtins.list[tuple[Backend, BaseException]]]:
    """Run ``call`` on all ``children`` concurrently: the children that did it, and those that failed."""
    outcomes = await asyncio.gather(*(call(child) for child in children), return_exceptions=True)
    done: builtins.list[Backend] = []
    failed: builtins.list[tuple[Backend, BaseException]] = []
    for child, outcome in zip(children, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            if not isinstance(outcome, Exception):
                raise outcome  # cancellation, KeyboardInterrupt
            failed.append((child, outcome))
        else:
            done.append(child)
    return done, failed


def raise_failure(
    what: str,
    done: Sequence[Backend],
    failed: Sequence[tuple[Backend, BaseException]],
    *,
    children: int,
    quorum: int,
    same_kind_ok: bool,
) -> NoReturn:
    """Raise the failure of an operation: the children's common error where ``same_kind_ok`` and they all
    failed alike, else a [`MirrorError`][aiodepot.layers.mirror.MirrorError] naming who did and who failed."""
    first = failed[0][1]
    if same_kind_ok and all(type(exc) is type(first) for _, exc in failed):
        raise first
    if same_kind_ok:
        for _, exc in failed:
            if not isinstance(exc, StoreError):
                raise exc  # a wrong argument (a stream of the wrong size): not a child's failure
    failures = "; ".join(f"{child.location}: {type(exc).__name__}: {exc}" for child, exc in failed)
    succeeded = ", ".join(child.location for child in done) or "none"
    raise MirrorError(
        f"{what}: failed on {len(failed)} of {children} children ({failures}); "
        f"done on: {succeeded} (write quorum {quorum})",
        succeeded=done,
        failed=failed,
    ) from first


def judge(
    what: str,
    done: Sequence[Backend],
    failed: Sequence[tuple[Backend, BaseException]],
    *,
    children: int,
    quorum: int,
    missing_ok: bool = False,
) -> None:
    """Raise unless the outcome meets the quorum; with ``missing_ok`` a child lacking the item counts
    as done, provided another child had it."""
    if not failed:
        return
    absent = [child for child, exc in failed if missing_ok and isinstance(exc, ObjectNotFound)]
    really_failed = [(child, exc) for child, exc in failed if child not in absent]
    if missing_ok and not done and absent and not really_failed:
        raise failed[0][1]  # no child had it
    if done and len(done) + len(absent) >= quorum:
        if really_failed:
            for child, exc in really_failed:
                logger.warning("mirror: %s failed on %r (quorum met): %s", what, child, exc)
        return
    raise_failure(what, done, really_failed or failed, children=children, quorum=quorum, same_kind_ok=not done)


async def tee_chunks(
    live: Sequence[Backend], name: str, chunks: AsyncIterable[bytes], size: int | None
) -> builtins.list[Any]:
    """Copy the stream to ``store_chunks`` of every child as it comes, with a small queue per child (memory
    stays bounded; the slowest child sets the pace); each child's outcome (None or its exception).

    A failing source makes every child's stream fail (so none stores anything) and is raised.
    """
    queues = [asyncio.Queue[bytes | BaseException | None](TEE_DEPTH) for _ in live]
    gone = [False] * len(live)

    async def feed(index: int) -> AsyncIterator[bytes]:
        queue = queues[index]
        while True:
            item = await queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    async def child_store(index: int) -> None:
        try:
            await live[index].store_chunks(name, feed(index), size=size)
        finally:
            gone[index] = True
            while not queues[index].empty():  # unblock the feeder
                queues[index].get_nowait()

    async def put(index: int, item: bytes | BaseException | None) -> None:
        # a child that stopped drains its queue once, which wakes a put blocked on it
        if not gone[index]:
            await queues[index].put(item)

    writers = [asyncio.ensure_future(child_store(index)) for index in range(len(live))]
    try:
        try:
            async for chunk in chunks:
                data = bytes(chunk)
                await asyncio.gather(*(put(i, data) for i in range(len(live))))
        except BaseException as exc:
            failure = StoreError(f"store {name!r}: the source stream failed: {exc!r}")
            await asyncio.gather(*(put(i, failure) for i in range(len(live))))
            await asyncio.gather(*writers, return_exceptions=True)
            raise
        await asyncio.gather(*(put(i, None) for i in range(len(live))))
        return await asyncio.gather(*writers, return_exceptions=True)
    finally:
        for writer in writers:
            writer.cancel()
        await asyncio.gather(*writers, return_exceptions=True)


async def quietly(call: Awaitable[Any]) -> None:
    """Best-effort cleanup: errors (a missing item, a child that is down) are ignored."""
    with contextlib.suppress(Exception):
        await call
