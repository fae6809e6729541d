"""The write-back layer: stores, deletes and moves land in a local backlog and return; ``flush()`` writes them.

[`WriteBack`][aiodepot.layers.WriteBack] wraps a backend (the *inner* one, where the data is meant to be)
and keeps a bounded backlog of changes that are not written there yet, one per name: the last store or
delete of each name (a later change of a name replaces an earlier one, so a store then a delete can never
land in the wrong order). Reads see the backlog over the inner backend (read-your-writes): a buffered
value is loaded from the backlog, a buffered delete hides the inner item, listings and counts merge both.

``flush()`` writes the backlog to the inner backend with bounded concurrency (batches where the backend
has them) and returns when all of it is there; ``close()`` flushes. A flush that fails keeps what it could
not write and raises [`WriteBackError`][aiodepot.errors.WriteBackError] with the number of pending
changes; the next flush retries them. ``max_bytes``/``max_items`` bound the backlog: at half of either a
background flush starts, at the limit a write waits for it (backpressure), and if that flush failed the
write raises instead of growing the backlog. ``max_age`` flushes in the background when the oldest change
waited that long.

What a crash before ``flush()`` loses (the process dies, e.g. ``SIGKILL``):

- memory backlog (``buffer=None``): every change acknowledged since the last completed flush.
- local-store backlog (``buffer=`` a ``file://`` or ``sqlite://`` backend): nothing acknowledged. Each
  change is written to the buffer store before the call returns, and the next ``open()`` replays the
  backlog and flushes it. With ``file://`` the buffer files survive a process crash; to survive a power
  loss too, give the buffer ``fsync`` (``PosixFSBackend(path, fsync=True)``) — sqlite commits durably.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import dataclasses
import datetime
import logging
import struct
import time
from collections import Counter
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Iterable, Sequence
from typing import Any, TypeVar

from .. import hashing
from ..backends.base import Backend
from ..errors import ObjectNotFound, StoreError, StoreExists, StoreNotFound, WriteBackError
from ..items import ItemInfo, Source, StoreValue, validate_value
from ..names import DEL_SUFFIX, is_internal, validate_backend_name
from ..transfer import run_bounded
from .base import Layer

__all__ = ["WriteBack"]

logger = logging.getLogger("aiodepot.layers.writeback")
T = TypeVar("T")

MiB = 1024 * 1024
_JOURNAL = "writeback"
"""The directory of the backlog's records in a buffer store."""
_MAGIC = b"AWB1"
_HEAD = struct.Struct(">4scH")  # magic, kind (b"P" store / b"D" delete), length of the name


@dataclasses.dataclass(slots=True, eq=False)
class _Change:
    """One pending change of one name: a store (``size >= 0``) or a delete (``size == -1``)."""

    name: str
    size: int
    mtime: float
    seq: int
    data: bytes | None = None
    """The value, in a memory backlog (a buffer store keeps it in the record instead)."""
    record: str | None = None
    """The buffer store's record of the change."""

    @property
    def deleted(self) -> bool:
        return self.size < 0


def _parent(name: str) -> str:
    return name.rpartition("/")[0]


def _encode(name: str, data: bytes | None) -> bytes:
    encoded = name.encode()
    return _HEAD.pack(_MAGIC, b"D" if data is None else b"P", len(encoded)) + encoded + (data or b"")


def _decode(record: bytes) -> tuple[str, bytes | None]:
    magic, kind, length = _HEAD.unpack_from(record)
    if magic != _MAGIC or kind not in (b"P", b"D"):
        raise ValueError("not a write-back record")
    name = record[_HEAD.size : _HEAD.size + length].decode()
    return name, (record[_HEAD.size + length :] if kind == b"P" else None)


class WriteBack(Layer):
    """Buffer stores, deletes and moves in a bounded local backlog; write them to ``inner`` at ``flush()``.

    Args:
        inner: the backend the changes are meant for.
        buffer: where the backlog lives: None keeps it in memory (lost if the process dies before a
            flush); a local backend (``PosixFSBackend``, ``SQLiteBackend``) keeps it on disk, where it
            survives a crash and is replayed at the next ``open()``. The layer creates, opens and closes it.
        namespaces: the backend name prefixes whose changes are buffered (default: all); the others are
            written through at once.
        max_bytes: the most value bytes the backlog holds (a flush starts in the background at half).
        max_items: the most pending changes (a flush starts in the background at half).
        max_age: flush in the background once the oldest pending change is this many seconds old.
        max_concurrency: writes in flight during a flush (default: what the inner backend prefers).

    ```python
    store = Store(backend=WriteBack(S3Backend.from_url("s3:/bucket/path"), max_age=5.0))
    async with store:
        await store.store_many(values)  # lands in memory, returns at once
        await store.flush()  # durable in S3 from here on
    ```

    Streams (``store_chunks``, ``store_file``: a ``Store.store`` of a stream or file) and moves of items
    that are not in the backlog are written through to the inner backend (after the backlog's changes of
    the same names). A move of a buffered value stays in the backlog (a store and a delete).
    """

    def __init__(
        self,
        inner: Backend,
        buffer: Backend | None = None,
        *,
        namespaces: Iterable[str] | None = None,
        max_bytes: int = 64 * MiB,
        max_items: int = 10_000,
        max_age: float | None = None,
        max_concurrency: int | None = None,
    ) -> None:
        super().__init__(inner)
        if buffer is not None and (buffer is inner or not isinstance(buffer, Backend)):
            raise TypeError("the write-back buffer must be a Backend other than the inner one")
        for label, limit in (("max_bytes", max_bytes), ("max_items", max_items)):
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                raise ValueError(f"{label} must be an int >= 1, got {limit!r}")
        if max_age is not None and not max_age > 0:
            raise ValueError(f"max_age must be None or > 0 seconds, got {max_age!r}")
        if max_concurrency is not None and max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        self.buffer = buffer
        prefixes = sorted({ns.strip("/") + "/" if ns.strip("/") else "" for ns in namespaces or [""]})
        self.namespaces: tuple[str, ...] = tuple(prefixes)
        """The buffered backend name prefixes (``""``: everything)."""
        self.max_bytes = max_bytes
        self.max_items = max_items
        self.max_age = max_age
        self.max_concurrency = max_concurrency or inner.capabilities.preferred_concurrency
        self._changes: dict[str, _Change] = {}
        self._children: dict[str, dict[str, _Change]] = {}  # parent directory -> leaf -> change
        self._subdirs: dict[str, Counter[str]] = {}  # parent directory -> subdirectory -> stores below it
        self._bytes = 0
        self._seq = 0
        self._flushing = asyncio.Lock()
        self._background: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._counts: Counter[str] = Counter()

    def __repr__(self) -> str:
        where = "memory" if self.buffer is None else repr(self.buffer)
        return f"<WriteBack {'open' if self.opened else 'closed'} over {self.inner!r}, backlog in {where}>"

    # state ---------------------------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """The number of changes not written to the inner backend yet."""
        return len(self._changes)

    @property
    def pending_bytes(self) -> int:
        """The value bytes of the pending stores."""
        return self._bytes

    @property
    def stats(self) -> dict[str, Any]:
        """``writeback_pending``, ``writeback_pending_bytes``, ``writeback_flushes``, ``writeback_written``
        (changes written to the inner backend), ``writeback_coalesced`` (changes replaced by a later change
        of the same name before they were written) and ``writeback_failures`` (failed flushes)."""
        return {
            "writeback_pending": len(self._changes),
            "writeback_pending_bytes": self._bytes,
            **{f"writeback_{key}": self._counts.get(key, 0) for key in ("flushes", "written", "coalesced", "failures")},
        }

    def _buffered(self, name: str) -> bool:
        # the store's own files (its remembered layout) are written through
        return not is_internal(name) and any(name.startswith(prefix) for prefix in self.namespaces)

    def _add(self, change: _Change) -> _Change | None:
        """Make ``change`` the pending change of its name; return the one it replaces."""
        old = self._changes.get(change.name)
        if old is not None:
            self._drop_index(old)
        self._changes[change.name] = change
        parent, _, leaf = change.name.rpartition("/")
        self._children.setdefault(parent, {})[leaf] = change
        if not change.deleted:
            self._bytes += change.size
            self._count_dirs(change.name, 1)
        if old is None and len(self._changes) == 1:
            self._arm_timer()
        return old

    def _remove(self, change: _Change) -> bool:
        """Forget ``change`` if it is still its name's pending change."""
        if self._changes.get(change.name) is not change:
            return False
        del self._changes[change.name]
        self._drop_index(change)
        return True

    def _drop_index(self, change: _Change) -> None:
        parent, _, leaf = change.name.rpartition("/")
        siblings = self._children[parent]
        del siblings[leaf]
        if not siblings:
            del self._children[parent]
        if not change.deleted:
            self._bytes -= change.size
            self._count_dirs(change.name, -1)

    def _count_dirs(self, name: str, step: int) -> None:
        path = _parent(name)
        while path:
            parent, _, leaf = path.rpartition("/")
            counter = self._subdirs.setdefault(parent, Counter())
            counter[leaf] += step
            if counter[leaf] <= 0:
                del counter[leaf]
                if not counter:
                    del self._subdirs[parent]
            path = parent

    def _below(self, directory: str) -> builtins.list[_Change]:
        prefix = directory + "/" if directory else ""
        return [change for name, change in self._changes.items() if name.startswith(prefix)]

    # the buffer store ----------------------------------------------------------------------------------

    async def _record(self, change: _Change, data: bytes | None) -> None:
        """Write the change's record to the buffer store (a memory backlog keeps the value instead)."""
        if self.buffer is None:
            change.data = data
            return
        change.record = f"{_JOURNAL}/{change.seq:016x}"
        await self.buffer.store(change.record, _encode(change.name, data))

    async def _drop_record(self, change: _Change) -> None:
        if self.buffer is not None and change.record is not None:
            with contextlib.suppress(ObjectNotFound):
                await self.buffer.delete(change.record)

    async def _value(self, change: _Change, offset: int = 0, size: int | None = None) -> bytes:
        """The value of a pending store, or the range ``offset`` (negative: from the end), ``size``."""
        start = max(change.size + offset, 0) if offset < 0 else min(offset, change.size)
        end = change.size if size is None else min(start + size, change.size)
        if change.data is not None or change.size == 0:
            return (change.data or b"")[start:end]
        assert self.buffer is not None
        assert change.record is not None
        head = _HEAD.size + len(change.name.encode())
        return await self.buffer.load(change.record, offset=head + start, size=end - start)

    async def _replay(self) -> None:
        """Load the backlog a previous run left in the buffer store (in record order: the last one wins)."""
        assert self.buffer is not None
        try:
            records = [info.name async for info in self.buffer.list(_JOURNAL) if not info.directory]
        except ObjectNotFound:
            return
        records.sort()
        for record in records:
            raw = await self.buffer.load(f"{_JOURNAL}/{record}")
            try:
                name, data = _decode(raw)
                seq = int(record, 16)
            except ValueError:
                logger.warning("aiodepot write-back: %s in the buffer store is not a record, left alone", record)
                continue
            self._seq = max(self._seq, seq)
            change = _Change(name, -1 if data is None else len(data), time.time(), seq, record=f"{_JOURNAL}/{record}")
            old = self._add(change)
            if old is not None:
                await self._drop_record(old)
        if self._changes:
            logger.info("aiodepot write-back: replaying %d changes left by an earlier run", len(self._changes))

    # lifecycle -----------------------------------------------------------------------------------------

    async def create(self) -> None:
        """Create the inner storage, and the buffer store unless it exists."""
        await super().create()
        if self.buffer is not None:
            with contextlib.suppress(StoreExists):
                await self.buffer.create()

    async def destroy(self) -> None:
        """Destroy the inner storage and the buffer store (a backlog in it is gone with it)."""
        await super().destroy()
        if self.buffer is not None:
            with contextlib.suppress(StoreNotFound):
                await self.buffer.destroy()

    async def open(self) -> None:
        """Open the inner backend and the buffer store (created if missing); a backlog left by an earlier run
        is replayed and flushed (if that flush fails, the backlog stays and the layer opens anyway)."""
        await super().open()
        self._changes, self._children, self._subdirs, self._bytes, self._seq = {}, {}, {}, 0, 0
        if self.buffer is None:
            return
        try:
            try:
                await self.buffer.open()
            except StoreNotFound:
                await self.buffer.create()
                await self.buffer.open()
            await self._replay()
        except BaseException:
            await self.inner.close()
            raise
        if self._changes:
            try:
                await self.flush()
            except WriteBackError as exc:
                logger.warning("aiodepot write-back: the replayed backlog could not be flushed yet: %s", exc)

    async def close(self) -> None:
        """Flush, then close the buffer store and the inner backend.

        If the flush fails, a memory backlog keeps the layer open (closing would lose it): the error is
        raised and ``flush()``/``close()`` can be tried again. A buffer store's backlog is safe on disk:
        the layer closes and raises the error; the next ``open()`` replays it.
        """
        if not self.opened:  # closing twice, or a layer never opened: nothing to do
            return
        self._disarm_timer()
        failure: WriteBackError | None = None
        try:
            await self.flush()
        except WriteBackError as exc:
            if self.buffer is None:
                raise
            failure = exc
        if self._background is not None:
            await asyncio.gather(self._background, return_exceptions=True)
        try:
            if self.buffer is not None and self.buffer.opened:
                await self.buffer.close()
        finally:
            await super().close()
        if failure is not None:
            raise failure

    # flushing ------------------------------------------------------------------------------------------

    async def flush(self) -> None:
        """Write every pending change to the inner backend; return when all of them are there.

        Changes are written with ``max_concurrency`` in flight (in batches where the inner backend has
        them); changes made while a flush runs are written by it or by the next one. A failure keeps the
        changes that were not written and raises [`WriteBackError`][aiodepot.errors.WriteBackError]
        (``pending`` says how many); call ``flush()`` again to retry them.
        """
        self._require_open()
        async with self._flushing:
            await self._write(builtins.list(self._changes.values()))

    async def _write(self, changes: builtins.list[_Change]) -> None:
        """Write ``changes`` to the inner backend (the caller holds the flush lock)."""
        if not changes:
            return
        self._counts["flushes"] += 1
        inner = self.inner
        # as the Store's bulk calls: batches where the backend has them, at most max_concurrency items in flight
        size = min(inner.capabilities.batch_size, self.max_concurrency) if inner.capabilities.batch_ops else 1
        groups = [changes[i : i + size] for i in range(0, len(changes), size)]

        async def write(group: builtins.list[_Change]) -> builtins.list[BaseException | None]:
            current = [change for change in group if self._changes.get(change.name) is change]
            outcomes: dict[int, BaseException | None] = {}
            stores = [change for change in current if not change.deleted]
            deletes = [change for change in current if change.deleted]
            if stores:
                values = await asyncio.gather(*(self._value(change) for change in stores), return_exceptions=True)
                ready = [(c, v) for c, v in zip(stores, values, strict=True) if isinstance(v, bytes)]
                for change, value in zip(stores, values, strict=True):
                    if not isinstance(value, bytes) and self._changes.get(change.name) is change:
                        outcomes[id(change)] = value  # (a record replaced meanwhile is no failure)
                if len(ready) == 1:
                    results: builtins.list[Exception | None] = [await _failure(inner.store(*_pair(ready[0])))]
                elif ready:
                    results = await inner.store_batch([_pair(item) for item in ready])
                else:
                    results = []
                for (change, _), result in zip(ready, results, strict=True):
                    outcomes[id(change)] = result
            if deletes:
                if len(deletes) == 1:
                    results = [await _failure(inner.delete(deletes[0].name))]
                else:
                    results = await inner.delete_batch([change.name for change in deletes])
                for change, result in zip(deletes, results, strict=True):
                    outcomes[id(change)] = None if isinstance(result, ObjectNotFound) else result
            for change in current:
                if outcomes.get(id(change)) is None and self._remove(change):
                    self._counts["written"] += 1
                    await self._drop_record(change)
            return [outcomes.get(id(change)) for change in current]

        concurrency = max(1, self.max_concurrency // size)
        outcomes = await run_bounded(groups, write, max_concurrency=concurrency, return_exceptions=True)
        failures = [
            failure
            for outcome in outcomes
            for failure in (outcome if isinstance(outcome, builtins.list) else [outcome])
            if failure is not None
        ]
        if self._changes:
            self._arm_timer()
        if failures:
            self._counts["failures"] += 1
            raise WriteBackError(
                f"write-back flush: writing to {self.inner!r} failed ({failures[0]}); "
                f"{len(self._changes)} changes are pending, the next flush() retries them",
                pending=len(self._changes),
            ) from failures[0]

    async def _write_names(self, names: Iterable[str]) -> None:
        """Write the pending changes of ``names`` (the caller holds the flush lock)."""
        await self._write([self._changes[name] for name in dict.fromkeys(names) if name in self._changes])

    def _start_background(self) -> asyncio.Task[None]:
        """The running background flush, or a new one."""
        if self._background is None or self._background.done():
            self._background = asyncio.ensure_future(self._flush_in_background())
            self._background.add_done_callback(_retrieved)  # its failure is logged, and raised to waiters
        return self._background

    async def _flush_in_background(self) -> None:
        try:
            await self.flush()
        except WriteBackError as exc:
            logger.warning("aiodepot write-back: a background flush failed: %s", exc)
            raise

    def _arm_timer(self) -> None:
        if self.max_age is None or self._timer is not None:
            return
        with contextlib.suppress(RuntimeError):  # no running loop: armed at the next change
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.max_age, self._aged)

    def _disarm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _aged(self) -> None:
        self._timer = None
        if self._changes and self.opened:
            self._start_background()

    def _over(self, extra_bytes: int, fraction: float = 1.0) -> bool:
        return bool(self._changes) and (
            self._bytes + extra_bytes > self.max_bytes * fraction or len(self._changes) >= self.max_items * fraction
        )

    async def _make_room(self, size: int) -> None:
        """Wait until a change of ``size`` bytes fits the backlog (flushing); raise if the flush fails."""
        while self._over(size):
            task = self._start_background()
            try:
                await asyncio.shield(task)
            except WriteBackError as exc:
                if self._over(size):
                    raise WriteBackError(
                        f"the write-back backlog is full ({len(self._changes)} changes, {self._bytes} bytes) "
                        f"and writing it failed: {exc.__cause__ or exc}",
                        pending=len(self._changes),
                    ) from exc.__cause__
        if self._over(size, 0.5):
            self._start_background()

    # buffered writes -----------------------------------------------------------------------------------

    async def _put(self, name: str, data: bytes | None) -> None:
        """Buffer a store (``data``) or a delete (None) of ``name``."""
        await self._make_room(0 if data is None else len(data))
        self._seq += 1
        change = _Change(name, -1 if data is None else len(data), time.time(), self._seq)
        await self._record(change, data)
        current = self._changes.get(name)
        if current is not None and current.seq > change.seq:  # a later change of the name won meanwhile
            await self._drop_record(change)
            return
        old = self._add(change)
        if old is not None:
            self._counts["coalesced"] += 1
            await self._drop_record(old)

    async def store(self, name: str, value: StoreValue, *, if_absent: bool = False) -> None:
        """Buffered (in a buffered namespace): returns once the value is in the backlog.

        ``if_absent`` is for the inner backend to decide atomically, so such a store is written through,
        after the name's pending change."""
        if not self._buffered(name):
            await self.inner.store(name, value, if_absent=if_absent)
            return
        if if_absent:
            async with self._flushing:
                await self._write_names([name])
                await self.inner.store(name, value, if_absent=True)
            return
        self._require_open()
        validate_backend_name(name)
        data = bytes(validate_value(value))  # a copy: the caller may reuse its buffer
        await self._put(name, data)

    async def store_batch(self, items: Sequence[tuple[str, StoreValue]]) -> builtins.list[Exception | None]:
        """Each item as ``store``."""
        return [await _failure(self.store(name, value)) for name, value in items]

    async def delete(self, name: str) -> None:
        """Buffered: the item is hidden at once and deleted from the inner backend at the next flush."""
        if not self._buffered(name):
            await self.inner.delete(name)
            return
        self._require_open()
        validate_backend_name(name)
        change = self._changes.get(name)
        if change is None:
            info = await self.inner.info(name)
            if not info.exists or info.directory:
                await self.inner.delete(name)  # the inner backend's own error for it
                return
        elif change.deleted:
            raise ObjectNotFound(name)
        await self._put(name, None)

    async def delete_batch(self, names: Sequence[str]) -> builtins.list[Exception | None]:
        """Each name as ``delete``."""
        return [await _failure(self.delete(name)) for name in names]

    async def move(self, src: str, dst: str) -> None:
        """A buffered value moves inside the backlog; an item only the inner backend has is moved there at
        once (after the pending changes of both names are written)."""
        if not (self._buffered(src) or self._buffered(dst)):
            await self.inner.move(src, dst)
            return
        self._require_open()
        validate_backend_name(src)
        validate_backend_name(dst)
        if src not in self._changes:
            async with self._flushing:
                if src not in self._changes:
                    await self._write_names([dst])
                    await self.inner.move(src, dst)
                    return
        await self._move_buffered(src, dst)

    async def _move_buffered(self, src: str, dst: str) -> None:
        change = self._changes.get(src)
        if change is None or change.deleted:
            raise ObjectNotFound(src)
        if src == dst:
            return
        value = await self.load(src)
        if self._buffered(dst):
            await self._put(dst, value)  # first: a crash between the two keeps both, never neither
        else:
            async with self._flushing:
                await self.inner.store(dst, value)
        await self._put(src, None)

    async def store_chunks(
        self, name: str, chunks: AsyncIterable[bytes], *, size: int | None = None, if_absent: bool = False
    ) -> None:
        """Written through (after the name's pending change): a stream is not held in the backlog."""
        if not self._buffered(name):
            await self.inner.store_chunks(name, chunks, size=size, if_absent=if_absent)
            return
        async with self._flushing:
            await self._write_names([name])
            await self.inner.store_chunks(name, chunks, size=size, if_absent=if_absent)

    async def store_file(self, name: str, path: str, *, size: int) -> None:
        """Written through (after the name's pending change): a file is not copied into the backlog."""
        if not self._buffered(name):
            await self.inner.store_file(name, path, size=size)
            return
        async with self._flushing:
            await self._write_names([name])
            await self.inner.store_file(name, path, size=size)

    async def defrag(
        self,
        sources: Iterable[Source],
        *,
        target: str | None = None,
        algorithm: str | None = None,
        namespace: str | None = None,
        levels: int = 0,
    ) -> str:
        """Generic (gather through the backlog, then a buffered store of the result)."""
        return await Backend.defrag(
            self, sources, target=target, algorithm=algorithm, namespace=namespace, levels=levels
        )

    async def url_for(self, name: str, *, expires: float | datetime.timedelta, method: str = "GET") -> str:
        """Forwarded, after the name's pending change is written: a URL reaches the inner store."""
        if name in self._changes:
            async with self._flushing:
                await self._write_names([name])
        return await self.inner.url_for(name, expires=expires, method=method)

    # reads through the backlog -------------------------------------------------------------------------

    async def info(self, name: str) -> ItemInfo:
        """A pending change's item, else the inner backend's (a directory that only the backlog has
        items in is a directory)."""
        leaf = name.rpartition("/")[2]
        change = self._changes.get(name)
        if change is not None:
            return (
                ItemInfo.missing(leaf) if change.deleted else ItemInfo.for_file(leaf, change.size, mtime=change.mtime)
            )
        info = await self.inner.info(name)
        if not info.exists and self._has_below(name):
            return ItemInfo.for_directory(leaf)
        return info

    def _has_below(self, directory: str) -> bool:
        parent, _, leaf = directory.rpartition("/")
        counter = self._subdirs.get(parent)
        return bool(counter and counter.get(leaf)) or any(
            not change.deleted for change in self._children.get(directory, {}).values()
        )

    async def info_batch(self, names: Sequence[str]) -> builtins.list[ItemInfo | Exception]:
        """Pending changes from the backlog, the other names in one inner batch."""
        if not any(name in self._changes for name in names):
            return await self.inner.info_batch(names)
        return [await _outcome(self.info(name)) for name in names]

    async def load(self, name: str, *, offset: int = 0, size: int | None = None) -> bytes:
        """A pending store's value from the backlog (a pending delete: ``ObjectNotFound``), else the inner one."""
        if size is not None and size < 0:
            raise ValueError(f"size must be >= 0 or None, got {size}")
        while True:
            change = self._changes.get(name)
            if change is None:
                return await self.inner.load(name, offset=offset, size=size)
            if change.deleted:
                raise ObjectNotFound(name)
            try:
                return await self._value(change, offset, size)
            except ObjectNotFound:
                if self._changes.get(name) is change:
                    raise
                # replaced (and its record dropped) while it was read: read what is there now

    async def load_batch(self, names: Sequence[str]) -> builtins.list[bytes | Exception]:
        """Pending changes from the backlog, the other names in one inner batch."""
        if not any(name in self._changes for name in names):
            return await self.inner.load_batch(names)
        return [await _outcome(self.load(name)) for name in names]

    async def hash(self, name: str, algorithm: str = "sha256") -> str:
        """A pending value hashed here, else the inner backend's hash."""
        if name not in self._changes:
            return await self.inner.hash(name, algorithm)
        return hashing.new(algorithm, await self.load(name)).hexdigest()

    async def gather(self, sources: Iterable[Source]) -> bytes:
        """Forwarded unless a range is of a pending change (then read range by range through the backlog)."""
        reads = builtins.list(sources)
        if not any(name in self._changes for name, _, _ in reads):
            return await self.inner.gather(reads)
        return await Backend.gather(self, reads)

    def read_chunks(
        self, name: str, *, offset: int = 0, size: int | None = None, chunk_size: int = 1024 * 1024
    ) -> AsyncIterator[bytes]:
        """Forwarded unless the name has a pending change."""
        if name not in self._changes:
            return self.inner.read_chunks(name, offset=offset, size=size, chunk_size=chunk_size)
        return Backend.read_chunks(self, name, offset=offset, size=size, chunk_size=chunk_size)

    async def read_into(self, name: str, fd: int, *, offset: int, size: int) -> None:
        """Forwarded unless the name has a pending change."""
        if name not in self._changes:
            await self.inner.read_into(name, fd, offset=offset, size=size)
            return
        await Backend.read_into(self, name, fd, offset=offset, size=size)

    async def list(self, name: str) -> AsyncIterator[ItemInfo]:
        """The inner listing with the backlog's changes applied (sorted)."""
        changes = self._children.get(name, {})
        subdirs = self._subdirs.get(name, Counter())
        if not changes and not subdirs:
            async for info in self.inner.list(name):
                yield info
            return
        entries: dict[str, ItemInfo] = {}
        try:
            async for info in self.inner.list(name):
                entries[info.name] = info
        except ObjectNotFound:
            if not subdirs and all(change.deleted for change in changes.values()):
                raise
        for leaf, change in builtins.list(changes.items()):
            if change.deleted:
                entries.pop(leaf, None)
            else:
                entries[leaf] = ItemInfo.for_file(leaf, change.size, mtime=change.mtime)
        for leaf in subdirs:
            if leaf not in entries:
                entries[leaf] = ItemInfo.for_directory(leaf)
        for leaf in sorted(entries):
            yield entries[leaf]

    async def count(self, name: str, *, deleted: bool = False) -> int:
        """The inner count, corrected by the backlog's changes below ``name`` (one inner ``info_batch``).

        It waits for a running flush, so that no change moves from the backlog to the inner backend
        between the two looks."""
        async with self._flushing:
            changes = [c for c in self._below(name) if c.name.endswith(DEL_SUFFIX) == deleted]
            try:
                total = await self.inner.count(name, deleted=deleted)
            except ObjectNotFound:
                if not self._has_below(name) and name:
                    raise
                total = 0
            if changes:
                infos = await self.inner.info_batch([change.name for change in changes])
        for change, info in zip(changes, infos if changes else [], strict=True):
            there = isinstance(info, ItemInfo) and info.exists and not info.directory
            if change.deleted and there:
                total -= 1
            elif not change.deleted and not there:
                total += 1
        return total


def _pair(item: tuple[_Change, bytes]) -> tuple[str, bytes]:
    return item[0].name, item[1]


async def _failure(call: Awaitable[None]) -> Exception | None:
    """Await ``call``; its [`StoreError`][aiodepot.errors.StoreError], or None."""
    try:
        await call
    except StoreError as exc:
        return exc
    return None


async def _outcome(call: Awaitable[T]) -> T | Exception:
    """Await ``call``; its result or its [`StoreError`][aiodepot.errors.StoreError]."""
    try:
        return await call
    except StoreError as exc:
        return exc


def _retrieved(task: asyncio.Task[None]) -> None:
    """Done callback of a background flush: its failure was logged; mark it retrieved."""
    if not task.cancelled():
        task.exception()
