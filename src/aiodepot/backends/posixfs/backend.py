"""[`PosixFSBackend`][aiodepot.backends.posixfs.PosixFSBackend]: the Backend hooks on files below a base
directory (the layout and crash cleanup are described in [`aiodepot.backends.posixfs`][aiodepot.backends.posixfs])."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import stat
import weakref
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from typing import Any, Self, TypeVar, cast
from urllib.parse import unquote

import aiofiles

from ..._threads import Offloader, cancelled
from ...errors import (
    BackendURLInvalid,
    ObjectNotFound,
    ReadRangeError,
    StoreCorrupt,
    StoreError,
    StoreExists,
    StoreNotFound,
    ValueChanged,
)
from ...hashing import check_algorithm, file_digest
from ...items import ItemInfo, Source
from ...names import DEL_SUFFIX, is_internal, validate_backend_name
from ..base import Backend, Capabilities, FirstRange
from ..options import Limits, RetryPolicy, Timeouts, legacy_options
from ._errors import NOT_FOUND, raise_translated
from ._fileio import MiB, copy_range, fsync_dir, memory_file_system, pread_exact, swap_in_use, write_all
from ._quota import COMMIT_LOCKS, QUOTA_FILE, Quota, QuotaState
from ._tempfiles import TempFiles, dead_sessions, remove_left_behind

__all__ = ["INLINE_READ_MAX", "PosixFSBackend"]

T = TypeVar("T")

INLINE_READ_MAX = 256 * 1024
"""The biggest read `await load` does on the event loop from the page cache (bigger ones go to a thread)."""
_RWF_NOWAIT: int = getattr(os, "RWF_NOWAIT", 0)  # 0: not on this platform
_INLINE_BATCH_SLICE = 64
"""A batch load reads this many cached items on the loop, then lets other tasks run."""


def _version(st: os.stat_result) -> str:
    """What tells one content of an item's file from another: a new file (an atomic store) has another
    inode, a change in place another mtime."""
    return f"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"


def _item_info(name: str, st: os.stat_result) -> ItemInfo:
    return ItemInfo(
        name=name,
        exists=True,
        size=st.st_size,
        directory=stat.S_ISDIR(st.st_mode),
        atime=st.st_atime,
        mtime=st.st_mtime,
    )


class PosixFSBackend(TempFiles, Backend):
    """Items as files below ``path`` (an absolute path), in borgstore's on-disk layout.

    Args:
        path: the store's base directory (created by ``create()``, with missing parents).
        fsync: fsync each file before it is renamed into place and its directory after, so an
            acknowledged store survives a power loss (much slower).
        permissions: a permission map, shortcut name or JSON (see [`aiodepot.permissions`][aiodepot.permissions]).
        quota: a byte limit for the whole store, tracked in ``quota.hid``.
        limits: ``threads``: threads for blocking file operations (default 32).
        cleanup: on ``open``, if a session crashed, remove the temp files of writers that crashed (see the
            module docs); the number removed is then in ``temp_files_removed``.
        inline_reads: let ``await load`` read small values that are in the page cache on the event loop
            (``RWF_NOWAIT``, with a path walk that needs no I/O) instead of in a thread. Turn it off where
            opening a file may wait on a network (NFS, FUSE). On tmpfs (without swap) and ramfs, where
            files are memory, small stores and deletes run on the event loop too. Default: on, unless the
            environment sets ``AIODEPOT_INLINE_READS=0``.
    """

    capabilities = Capabilities(
        batch_ops=True,
        server_side_hash=True,
        server_side_copy=True,
        server_side_gather=True,
        atomic_create=True,  # the temp file is hard-linked into place: a link never replaces an entry
        preferred_concurrency=512,  # bulk calls: two batch jobs of 256 items in flight
        batch_size=256,  # fewer, bigger thread jobs: each hand-off costs more than a cached small read
        part_size=16 * MiB,
    )
    blocking_operations = frozenset({"info", "load", "store", "delete"})

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fsync: bool = False,
        permissions: str | dict[str, str] | None = None,
        quota: int | None = None,
        limits: Limits | None = None,
        cleanup: bool = True,
        inline_reads: bool | None = None,
        **deprecated: Any,
    ) -> None:
        super().__init__(permissions=permissions)
        _, self.limits, _ = legacy_options(
            "PosixFSBackend",
            deprecated,
            {"workers": ("limits", "threads", None)},
            retry=RetryPolicy(attempts=1),
            limits=(limits or Limits()).or_defaults(Limits(threads=32)),
            timeouts=Timeouts(),
        )
        base = os.fspath(path)
        if not os.path.isabs(base):
            raise BackendURLInvalid(f"the posixfs path must be absolute: {base!r}")
        if quota is not None and (not isinstance(quota, int) or quota < 0):
            raise ValueError(f"quota must be a byte count >= 0, got {quota!r}")
        self.base = os.path.normpath(base)
        self._real_base = os.path.realpath(self.base)
        self._base_dir = None
        self.fsync = fsync
        self.quota_limit = quota
        self.cleanup = cleanup
        self.temp_files_removed = 0
        self._session: str | None = None
        self._session_pid = 0
        self._session_touched = 0.0
        self._session_end = None
        self._quota: Quota | None = None
        if inline_reads is None:
            inline_reads = os.environ.get("AIODEPOT_INLINE_READS", "1") != "0"
        self._inline_reads = inline_reads and _RWF_NOWAIT != 0  # until the file system answers EOPNOTSUPP
        self._inline_reads_allowed = inline_reads  # also small writes on tmpfs/ramfs (see _writes_inline)
        self._memory_dev: int | None = None  # st_dev of the tmpfs/ramfs the items are on (no RWF_NOWAIT there)
        self._memory_swaps = True  # tmpfs pages can go to swap; ramfs pages cannot
        self._memory_base = False  # the base directory is on tmpfs/ramfs (learnt at open): small writes inline
        self._offloader = Offloader(f"aiodepot-posixfs-{os.path.basename(self.base)}", self.limits.threads or 32)
        # a backend dropped without close() keeps no idle worker threads (at exit the pool's own hook joins them)
        weakref.finalize(self, self._offloader.shutdown).atexit = False

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """``file:///absolute/path`` (percent-encoding allowed); the host part must be empty."""
        if not url.startswith("file://"):
            raise BackendURLInvalid(f"not a file: URL: {url!r}")
        rest = url[len("file://") :]
        if not rest.startswith("/"):
            raise BackendURLInvalid(f"file: URLs need an empty host and an absolute path (file:///path): {url!r}")
        return cls(unquote(rest), **options)

    def __repr__(self) -> str:
        return f"<PosixFSBackend {self.base!r} {'open' if self.opened else 'closed'}>"

    def _describe_location(self) -> str:
        return f"file://{self.base}"

    # helpers ---------------------------------------------------------------------------------------------

    def _path(self, name: str) -> str:
        return os.path.join(self.base, name)

    async def _run(self, name: str, job: Any, *args: Any) -> Any:
        try:
            return await self._offloader.run(job, *args)
        except StoreError:
            raise
        except OSError as exc:
            raise_translated(exc, name)

    def _call(self, name: str, job: Callable[..., T], *args: Any) -> T:
        """``job(*args)`` in the caller's thread, errors translated as `_run` does."""
        try:
            return job(*args)
        except StoreError:
            raise
        except OSError as exc:
            raise_translated(exc, name)

    def _replace_item(self, name: str, size: int, fill: Callable[[int], object], replace: bool) -> None:
        """Put a new ``size``-byte value under ``name``: a temp file written by ``fill(fd)``, renamed into
        place, with the replace and quota checks first."""
        path = self._path(name)
        quota = None if is_internal(name) else self._quota  # the store's own layout.hid, as quota.hid: no usage
        if quota is None and replace:
            self._commit(self._write_temp(path, fill), path)  # nothing depends on what was there before
            return
        with COMMIT_LOCKS.hold(path):  # the check and the commit as one, for every writer of this path
            old_size = self._existing_size(path)
            if old_size is not None and not replace:
                self._refuse_replace(name)
            delta = size - (old_size or 0)
            if quota is not None:
                quota.reserve(delta)
            try:
                self._commit(self._write_temp(path, fill), path, replace=replace)
            except BaseException:
                if quota is not None:
                    quota.release(delta)
                raise
        if quota is not None:
            quota.flush()

    def _settle_and_commit(
        self, name: str, tmp: str, path: str, size: int, reserved: int, quota: Quota | None, replace: bool
    ) -> None:
        """Commit a streamed temp file of ``size`` bytes for which ``reserved`` bytes of quota are held:
        under the path's lock, count what it replaces now, settle the quota and commit. If this raises, the
        caller still holds (and releases) ``reserved``."""
        with COMMIT_LOCKS.hold(path):
            old_size = self._existing_size(path)
            if old_size is not None and not replace:
                self._refuse_replace(name)
            extra = size - (old_size or 0) - reserved
            if quota is not None:
                quota.reserve(extra)
            try:
                self._commit(tmp, path, replace=replace)
            except BaseException:
                if quota is not None:
                    quota.release(extra)
                raise
        if quota is not None:
            quota.flush()

    def _existing_size(self, path: str) -> int | None:
        try:
            st = self._lstat(path)
        except NOT_FOUND:
            return None
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory", path)
        return st.st_size

    # lifecycle -----------------------------------------------------------------------------------------

    async def _create(self) -> None:
        """Create the base directory (and parents); an existing empty directory is accepted."""

        def job() -> None:
            if os.path.lexists(self.base) and not os.path.isdir(self.base):
                raise StoreExists(f"{self.base} is a file, not a directory: it cannot hold a store")
            os.makedirs(self.base, exist_ok=True)
            if os.listdir(self.base):
                raise StoreExists(f"posixfs store directory is not empty: {self.base}")

        try:
            await self._run("", job)
        finally:
            self._offloader.shutdown()  # a closed store keeps no thread (a server creates many)

    async def _destroy(self) -> None:
        """Remove everything below the base directory, and the directory itself where allowed."""

        def job() -> None:
            if not os.path.isdir(self.base):
                raise StoreNotFound(f"posixfs store directory does not exist: {self.base}")

            def on_error(func: Any, path: str, exc_info: Any) -> None:
                if path != self.base:  # the base itself may belong to someone else: leave it
                    raise exc_info[1]

            shutil.rmtree(self.base, onerror=on_error)

        try:
            await self._run("", job)
        finally:
            self._offloader.shutdown()

    async def _open(self) -> None:
        """Start using the store: register the session; if an earlier one crashed (and ``cleanup``), walk
        the store and remove the temp files crashed writers left; set up (or drop) quota tracking."""

        def job() -> None:
            if not os.path.isdir(self.base):
                if os.path.lexists(self.base):
                    raise StoreCorrupt(f"{self.base} is not a directory, so not a posixfs store")
                raise StoreNotFound(f"posixfs store directory does not exist: {self.base}")
            self._open_base()
            self._learn_memory_base()
            if self.cleanup:
                dead = dead_sessions(self.base)
                self.temp_files_removed = remove_left_behind(self.base) if dead else 0
                for path in dead:  # only now: a crash during the walk leaves them for the next open
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
            self._register()
            if self.quota_limit is None:
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self.base, QUOTA_FILE))
            else:
                self._quota = Quota(self.base, self.quota_limit)
                self._quota.flush(force=True)

        try:
            await self._run("", job)
        except BaseException:
            self._offloader.shutdown()  # a store that is not there keeps no thread
            raise

    async def _close(self) -> None:
        """Persist the quota usage and release the thread pool."""
        quota, self._quota = self._quota, None
        session = self._unregister()
        self._base_dir = None

        def job() -> None:
            try:
                if quota is not None:
                    quota.flush(force=True)
            finally:
                if session is not None:
                    with contextlib.suppress(OSError):
                        os.unlink(session)

        try:
            await self._run("", job)
        finally:
            self._offloader.shutdown()

    async def remove_temp_files(self) -> int:
        """Walk the whole store now and remove the temp files that no live writer owns (the rules ``open``
        applies after a crash, see the module docs); return how many. For stores that borgstore or another
        program wrote to: their crashes leave no session registration behind."""
        self._require_open()
        removed: int = await self._run("", remove_left_behind, self.base)
        return removed

    # items ---------------------------------------------------------------------------------------------

    async def _mkdir(self, name: str) -> None:
        path = self._path(name)

        def job() -> None:
            if not os.path.isdir(path):
                self._make_parents(os.path.join(path, "entry"))
            self._check_dir(path)

        await self._run(name, job)

    async def _rmdir(self, name: str) -> None:
        path = self._path(name)

        def job() -> None:
            self._check_dir(os.path.dirname(path))
            os.rmdir(path)

        await self._run(name, job)

    # Each item operation is one sync function (the I/O in one thread hop); the async hooks run one of
    # them, the batch hooks run many in one job.

    def _info_sync(self, name: str) -> ItemInfo:
        path = os.path.join(self.base, name)
        basename = name.rpartition("/")[2]
        try:
            return _item_info(basename, self._lstat(path) if name else os.stat(path))
        except (FileNotFoundError, NotADirectoryError):
            return ItemInfo.missing(basename)

    def _load_sync(self, name: str, offset: int = 0, size: int | None = None) -> bytes:
        path = self._path(name)
        fd = self._open_item(path)
        try:
            if offset < 0 or size is None:
                total = os.fstat(fd).st_size
                if offset < 0:
                    offset = max(total + offset, 0)
                if size is None:
                    size = max(total - offset, 0)
            return pread_exact(fd, size, offset)
        finally:
            os.close(fd)

    def _load_first_sync(self, name: str, offset: int, size: int) -> FirstRange:
        fd = self._open_item(self._path(name))
        try:
            st = os.fstat(fd)
            data = pread_exact(fd, size, offset)
        finally:
            os.close(fd)
        return FirstRange(data, st.st_size, st.st_mtime, _version(st))

    def _load_into_if_sync(self, name: str, offset: int, buffer: memoryview, version: str) -> int:
        fd = self._open_item(self._path(name))
        try:
            if _version(os.fstat(fd)) != version:
                raise ValueChanged(f"{name} was replaced: it is no longer the file {version}")
            data = pread_exact(fd, len(buffer), offset)
            buffer[: len(data)] = data
            return len(data)
        finally:
            os.close(fd)

    def _store_sync(self, name: str, data: bytes | memoryview, replace: bool = True) -> None:
        self._replace_item(name, len(data), lambda fd: write_all(fd, data), replace)

    def _delete_sync(self, name: str) -> None:
        path = self._path(name)
        quota = self._quota
        with COMMIT_LOCKS.hold(path):
            size = self._existing_size(path)
            if size is None:
                raise FileNotFoundError(errno.ENOENT, "no such item", path)
            os.unlink(path)
        if quota is not None:
            quota.reserve(-size)
            quota.flush()

    def _batch_sync(self, operation: Callable[..., T], calls: Sequence[tuple[Any, ...]]) -> list[T | Exception]:
        results: list[T | Exception] = []
        for args in calls:
            if cancelled():  # the caller is gone (Ctrl-C, a timeout): stop between items, each one atomic
                break
            try:
                results.append(operation(*args))
            except StoreError as exc:
                results.append(exc)
            except OSError as exc:
                try:
                    raise_translated(exc, args[0])
                except StoreError as translated:
                    results.append(translated)
        return results

    def _info_blocking(self, name: str) -> ItemInfo:
        return self._call(name, self._info_sync, name)

    def _load_blocking(self, name: str, offset: int, size: int | None) -> bytes:
        return self._call(name, self._load_sync, name, offset, size)

    def _store_blocking(self, name: str, value: bytes | memoryview, *, replace: bool) -> None:
        self._call(name, self._store_sync, name, value, replace)

    def _delete_blocking(self, name: str) -> None:
        self._call(name, self._delete_sync, name)

    async def _info(self, name: str) -> ItemInfo:
        result: ItemInfo = await self._run(name, self._info_sync, name)
        return result

    async def _load_first(self, name: str, offset: int, size: int) -> FirstRange:
        """A range with the size, mtime and version (inode, mtime in ns and size) of the file it was read
        from, by ``fstat`` of the same open file: what the REST server sends with a range (see
        `FirstRange`)."""
        inline = self._inline(name, offset, size)  # as _load: from the page cache where that cannot block
        if inline is not None:
            data, st = inline
            return FirstRange(data, st.st_size, st.st_mtime, _version(st))
        first: FirstRange = await self._run(name, self._load_first_sync, name, offset, size)
        return first

    async def _load_into_if(self, name: str, offset: int, buffer: memoryview, version: str) -> int:
        """Read into ``buffer`` from the file if it is still ``version`` (checked by ``fstat`` of the open
        file the bytes are read from), else ``ValueChanged``."""
        count: int = await self._run(name, self._load_into_if_sync, name, offset, buffer, version)
        return count

    async def _load(self, name: str, offset: int, size: int | None) -> bytes:
        """Read a whole value or a range of it (one ``pread``): on the event loop if it is in the page cache
        and small, else in a thread."""
        inline = self._inline(name, offset, size)
        if inline is not None:
            return inline[0]
        data: bytes = await self._run(name, self._load_sync, name, offset, size)
        return data

    def _inline(self, name: str, offset: int, size: int | None) -> tuple[bytes, os.stat_result] | None:
        """`_read_inline` where reads run inline, its ``OSError`` translated; else None."""
        if not self._inline_reads:
            return None
        try:
            return self._read_inline(name, offset, size)
        except OSError as exc:
            raise_translated(exc, name)

    def _load_inline(self, name: str, offset: int, size: int | None) -> bytes | None:
        """The value, read without any chance of blocking, or None if that cannot be done (see
        `_read_inline`)."""
        read = self._read_inline(name, offset, size)
        return None if read is None else read[0]

    def _read_inline(self, name: str, offset: int, size: int | None) -> tuple[bytes, os.stat_result] | None:
        """The value and the ``fstat`` of the file it was read from, read without any chance of blocking,
        or None if that cannot be done.

        The item is opened with a path walk from the dentry cache only (see `_open_item_cached`) and read
        with ``RWF_NOWAIT``: the kernel copies from the page cache or answers ``EAGAIN``. Values bigger
        than ``INLINE_READ_MAX`` are read in a thread anyway (a long copy holds up the loop too).

        tmpfs and ramfs answer ``EOPNOTSUPP`` to ``RWF_NOWAIT`` (Linux 6.18 still does), yet their files
        are nothing but pages in memory: on ramfs always, and on tmpfs while the machine has no swap on
        (`swap_in_use`, read again each second), a read there is a memory copy and runs inline too. Any
        other file system without ``RWF_NOWAIT`` is remembered: this backend stops trying.
        """
        fd = self._open_item_cached(self._path(name))
        if fd is None:
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return None  # the thread refuses it as it always has
            total = st.st_size
            start = max(total + offset, 0) if offset < 0 else min(offset, total)
            length = total - start if size is None else min(size, total - start)
            if length > INLINE_READ_MAX:
                return None
            if length <= 0:
                return b"", st
            buffer = bytearray(length)
            if st.st_dev == self._memory_dev:
                done = self._read_resident(fd, buffer, start)
            else:
                try:
                    done = self._read_nowait(fd, buffer, start)
                except OSError as exc:
                    if exc.errno == errno.EAGAIN:
                        return None
                    if exc.errno != errno.EOPNOTSUPP:
                        raise
                    done = self._read_in_memory_fs(fd, st, buffer, start)
            # short: a part is not cached (or the file shrank meanwhile): the thread reads it as usual
            return (bytes(buffer), st) if done == length else None
        finally:
            os.close(fd)

    def _read_in_memory_fs(self, fd: int, st: os.stat_result, buffer: bytearray, offset: int) -> int:
        """After ``EOPNOTSUPP``: learn whether the file system is tmpfs/ramfs and read as one; else stop
        inline reads for good. -1: not read."""
        kind = memory_file_system(fd)
        if kind is None:
            self._inline_reads = False
            return -1
        self._memory_dev, self._memory_swaps = st.st_dev, kind == "tmpfs"
        return self._read_resident(fd, buffer, offset)

    def _read_resident(self, fd: int, buffer: bytearray, offset: int) -> int:
        """Read a tmpfs/ramfs file, whose pages are in memory unless swap can hold them (-1: not read)."""
        if self._memory_swaps and swap_in_use():
            return -1
        return os.preadv(fd, [buffer], offset)

    @staticmethod
    def _read_nowait(fd: int, buffer: bytearray, offset: int) -> int:
        """Read into ``buffer`` at ``offset`` from the page cache only (``EAGAIN`` if it would wait)."""
        return os.preadv(fd, [buffer], offset, _RWF_NOWAIT)

    async def _store(self, name: str, value: bytes | memoryview, *, replace: bool) -> None:
        """Write a temp file beside the item, then rename it into place: in a thread, or on the event loop
        where that is a memory copy (see `_writes_inline`)."""
        if self._writes_inline(len(value)):
            self._call(name, self._store_sync, name, value, replace)
        else:
            await self._run(name, self._store_sync, name, value, replace)

    async def _delete(self, name: str) -> None:
        if self._writes_inline(0):
            self._call(name, self._delete_sync, name)
        else:
            await self._run(name, self._delete_sync, name)

    def _learn_memory_base(self) -> None:
        """Note whether the base directory is on tmpfs or ramfs (in the open's thread job)."""
        fd = os.open(self.base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            kind = memory_file_system(fd)
            if kind is not None:
                self._memory_dev, self._memory_swaps = os.fstat(fd).st_dev, kind == "tmpfs"
        finally:
            os.close(fd)
        self._memory_base = kind is not None

    def _writes_inline(self, size: int) -> bool:
        """Whether a store of ``size`` bytes (or a delete) runs on the event loop: only where the store is
        on ramfs, or on tmpfs while no swap is on, and the value is at most ``INLINE_READ_MAX``. There the
        temp file, its pages, the rename and the directories are kernel memory: no step waits for a device,
        so it costs a copy and a few system calls, less than the hand-off to a thread. (A file system
        mounted inside the store's directory would not be noticed: the store does not expect one.)"""
        return (
            self._memory_base
            and self._inline_reads_allowed
            and size <= INLINE_READ_MAX
            and not (self._memory_swaps and swap_in_use())
        )

    async def _load_batch(self, names: Sequence[str]) -> list[bytes | Exception]:
        """Load many whole values: those in the page cache on the event loop as `_load` does (yielding to
        other tasks every ``_INLINE_BATCH_SLICE`` items), the others in one thread job."""
        if not self._inline_reads:
            return await self._offloader.run(self._batch_sync, self._load_sync, [(name,) for name in names])
        results: list[bytes | Exception | None] = [None] * len(names)
        left: list[int] = []
        for i, name in enumerate(names):
            if i and not i % _INLINE_BATCH_SLICE:
                await asyncio.sleep(0)  # a slice costs about a millisecond: let other tasks run between
            if not self._inline_reads:  # the file system refused RWF_NOWAIT meanwhile
                left.extend(range(i, len(names)))
                break
            try:
                try:
                    results[i] = inline = self._load_inline(name, 0, None)
                except OSError as exc:
                    raise_translated(exc, name)
            except StoreError as exc:
                results[i] = exc
            else:
                if inline is None:
                    left.append(i)
        if left:
            rest = await self._offloader.run(self._batch_sync, self._load_sync, [(names[i],) for i in left])
            for i, outcome in zip(left, rest, strict=True):
                results[i] = outcome
        return cast(list[bytes | Exception], results)  # every slot is filled above

    async def _store_batch(self, items: Sequence[tuple[str, bytes | memoryview, bool]]) -> list[Exception | None]:
        """Store many values in one thread job, each atomically."""
        return await self._offloader.run(self._batch_sync, self._store_sync, items)

    async def _delete_batch(self, names: Sequence[str]) -> list[Exception | None]:
        """Delete many items in one thread job."""
        return await self._offloader.run(self._batch_sync, self._delete_sync, [(name,) for name in names])

    async def _info_batch(self, names: Sequence[str]) -> list[ItemInfo | Exception]:
        """Describe many items in one thread job."""
        return await self._offloader.run(self._batch_sync, self._info_sync, [(name,) for name in names])

    async def _move(self, src: str, dst: str, *, replace: bool) -> None:
        """Rename an item (replacing the destination), creating directories as needed."""
        src_path, dst_path = self._path(src), self._path(dst)
        quota = self._quota

        def job() -> None:
            with COMMIT_LOCKS.hold(src_path, dst_path):
                replaced = locked_move()
            if quota is not None and replaced:
                quota.reserve(-replaced)
                quota.flush()

        def locked_move() -> int | None:
            replaced = self._existing_size(dst_path)
            if replaced is not None and not replace:
                self._refuse_replace(dst)
            self._lstat(src_path)  # missing: ObjectNotFound; a symbolic link or outside the store: refused
            with contextlib.suppress(FileNotFoundError):
                self._check_dir(os.path.dirname(dst_path))  # a missing one is made by _make_parents, checked
            try:
                os.replace(src_path, dst_path)
            except FileNotFoundError:
                self._make_parents(dst_path)
                try:
                    os.replace(src_path, dst_path)
                except FileNotFoundError:
                    raise ObjectNotFound(src) from None
            if self.fsync:
                fsync_dir(os.path.dirname(dst_path))
            return replaced

        await self._run(src, job)

    async def _list(self, name: str) -> AsyncIterator[ItemInfo]:
        """Yield a directory's entries sorted by name; temp and internal files are skipped."""
        path = os.path.join(self.base, name)

        def job() -> list[ItemInfo]:
            infos = []
            fd = self._open_below(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                with os.scandir(fd) as entries:
                    for entry in entries:
                        try:
                            validate_backend_name(entry.name)
                            if entry.is_symlink():
                                continue  # not ours: the store never makes links, and never follows them
                            infos.append(_item_info(entry.name, entry.stat(follow_symlinks=False)))
                        except (StoreError, FileNotFoundError):
                            continue  # not ours, still being written, or gone meanwhile
            finally:
                os.close(fd)
            infos.sort(key=lambda info: info.name)
            return infos

        infos: list[ItemInfo] = await self._run(name, job)
        for info in infos:
            yield info

    async def _count(self, name: str, deleted: bool) -> int:
        """Walk the directory tree with ``os.scandir`` in one job (no symlinks followed, as ``list``)."""
        path = os.path.join(self.base, name)

        def count_in(fd: int) -> int:
            total = 0
            subdirs = []
            with os.scandir(fd) as entries:
                for entry in entries:
                    try:
                        validate_backend_name(entry.name)
                        if entry.is_symlink():
                            continue
                        if entry.is_dir(follow_symlinks=False):
                            subdirs.append(entry.name)
                        elif entry.name.endswith(DEL_SUFFIX) == deleted:
                            total += 1
                    except (StoreError, FileNotFoundError):
                        continue
            for subdir in subdirs:
                try:
                    sub_fd = os.open(subdir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW, dir_fd=fd)
                except (FileNotFoundError, NotADirectoryError):
                    continue  # gone meanwhile
                try:
                    total += count_in(sub_fd)
                finally:
                    os.close(sub_fd)
            return total

        def job() -> int:
            fd = self._open_below(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                return count_in(fd)
            finally:
                os.close(fd)

        total: int = await self._run(name, job)
        return total

    async def _hash(self, name: str, algorithm: str) -> str:
        """Hash the file where it is (one job, no data through the event loop)."""
        path = self._path(name)
        check_algorithm(algorithm)

        def job() -> str:
            with open(self._open_item(path), "rb") as f:
                return file_digest(f, algorithm)

        digest: str = await self._run(name, job)
        return digest

    async def _gather(self, checked: list[Source]) -> bytes:
        """Read all ranges in one job, one ``pread`` each."""
        paths = {name: self._path(name) for name, _, _ in checked}

        def job() -> bytes:
            fds: dict[str, int] = {}
            parts = []
            current = ""
            try:
                for name, offset, size in checked:
                    current = name
                    if size == 0:
                        continue
                    fd = fds.get(name)
                    if fd is None:
                        fd = fds[name] = self._open_item(paths[name])
                    start = offset if offset >= 0 else max(os.fstat(fd).st_size + offset, 0)
                    data = pread_exact(fd, size, start)
                    if len(data) != size:
                        raise ReadRangeError(f"{name}: wanted {size} bytes at offset {offset}, got {len(data)}")
                    parts.append(data)
            except OSError as exc:
                raise_translated(exc, current)
            finally:
                for fd in fds.values():
                    os.close(fd)
            return b"".join(parts)

        data: bytes = await self._run("", job)
        return data

    async def _quota_usage(self) -> dict[str, int]:
        """The limit and the tracked usage (-1 when no quota is set)."""
        if self._quota is None:
            return {"limit": -1, "usage": -1}
        return {"limit": self._quota.limit, "usage": self._quota.usage}

    @property
    def quota_state(self) -> QuotaState | None:
        """The quota accounting now: the limit, the tracked usage, and the usage last persisted to
        ``quota.hid`` and when; None while the backend is closed or has no quota."""
        return None if self._quota is None else self._quota.state()

    def update_quota(self, delta: int = 0, *, force: bool = False) -> None:
        """Account ``delta`` bytes without checking the limit, then persist the usage if it is due (or
        ``force``); nothing while closed or without a quota. Blocking file I/O in the caller's thread: for
        synchronous adapters (the borgstore drop-in), not for the event loop."""
        quota = self._quota
        if quota is not None:
            quota.release(-delta)  # release() adds without checking the limit
            quota.flush(force=force)

    def set_quota_persisted_at(self, when: float) -> None:
        """Count the quota's persist interval from ``when`` (a `time.monotonic()` value), as if the usage
        had been persisted then (borgstore's drop-in moves this clock, as borgstore's tests do)."""
        if self._quota is not None:
            self._quota.set_persisted_at(when)

    # files -----------------------------------------------------------------------------------------------

    async def _read_into(self, name: str, fd: int, offset: int, size: int) -> None:
        """Copy a range into ``fd`` inside the kernel (``copy_file_range``), in one thread job."""

        def job() -> None:
            src = self._open_item(self._path(name))
            try:
                copy_range(src, fd, offset, size)
            finally:
                os.close(src)

        await self._run(name, job)

    async def _store_file(self, name: str, path: str, size: int, *, replace: bool) -> None:
        """Copy a local file into a temp file beside the item inside the kernel, then rename it into place."""

        def job() -> None:
            src = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:

                def copy(fd: int) -> None:
                    copy_range(src, fd, 0, size)
                    if os.fstat(src).st_size != size:
                        raise ValueError(f"{path} changed size while it was stored")

                self._replace_item(name, size, copy, replace)
            finally:
                os.close(src)

        await self._run(name, job)

    # streaming -----------------------------------------------------------------------------------------

    async def _read_chunks(self, name: str, offset: int, size: int | None, chunk_size: int) -> AsyncIterator[bytes]:
        """Stream a value from the file with aiofiles."""
        path = self._path(name)
        fd = await self._run(name, self._open_item, path)
        try:
            f = await aiofiles.open(fd, "rb", buffering=0, executor=self._offloader.executor)
        except BaseException as exc:
            os.close(fd)
            if isinstance(exc, OSError):
                raise_translated(exc, name)
            raise
        try:
            try:
                if offset:
                    await f.seek(offset, os.SEEK_SET if offset >= 0 else os.SEEK_END)
            except OSError as exc:
                raise_translated(exc, name)
            remaining = size
            while remaining is None or remaining > 0:
                try:
                    chunk = await f.read(chunk_size if remaining is None else min(chunk_size, remaining))
                except OSError as exc:
                    raise_translated(exc, name)
                if not chunk:
                    return
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
        finally:
            await f.close()

    async def _store_chunks(self, name: str, chunks: AsyncIterable[bytes], size: int | None, *, replace: bool) -> None:
        """Stream into a temp file with aiofiles, then rename it into place."""
        path = self._path(name)
        quota = self._quota
        old_size = await self._run(name, self._existing_size, path)
        if old_size is not None and not replace:
            self._refuse_replace(name)
        # Quota: what the value replaces (as seen now) is credit; bytes past it are reserved before they
        # land (all of a declared size at once), and the commit settles against what it really replaces.
        credit = old_size or 0
        reserved = 0
        if quota is not None and size is not None and size > credit:
            quota.reserve(size - credit)
            reserved = size - credit
        tmp = await self._run(name, self._write_temp, path, lambda fd: None)
        try:
            written = 0
            async with aiofiles.open(tmp, "wb", buffering=0, executor=self._offloader.executor) as f:
                async for chunk in chunks:
                    if quota is not None and written + len(chunk) - credit > reserved:
                        more = written + len(chunk) - credit - reserved
                        quota.reserve(more)
                        reserved += more
                    view = memoryview(chunk)
                    while view:
                        n = await f.write(view)
                        view = view[n:]
                    written += len(chunk)
                    if size is not None and written > size:
                        raise ValueError(f"{name}: the stream gave more than the expected {size} bytes")
                if self.fsync:
                    await f.flush()
                    await self._run(name, os.fsync, f.fileno())
            if size is not None and written != size:
                raise ValueError(f"{name}: expected {size} bytes, the stream gave {written}")
            await self._run(name, self._settle_and_commit, name, tmp, path, written, reserved, quota, replace)
        except BaseException as exc:
            if quota is not None and reserved:
                quota.release(reserved)
            with contextlib.suppress(OSError):
                await self._offloader.run(os.unlink, tmp)
            if isinstance(exc, OSError) and not isinstance(exc, StoreError):
                raise_translated(exc, name)  # e.g. ENOSPC or EIO from a write: a StoreError like the rest
            raise
