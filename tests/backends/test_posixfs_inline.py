"""posixfs ``await load`` from the page cache on the event loop, and its fall-backs to a thread.

The seam is ``PosixFSBackend._read_nowait`` (the one ``preadv(..., RWF_NOWAIT)``): a subclass makes it
answer as a file system would (a hit, ``EAGAIN``, ``EOPNOTSUPP``, a short read); ``_run`` counts the thread
jobs. The files, the open and the path walk are real.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aiodepot import BackendError, ObjectExists, ObjectNotFound, PermissionDenied, Store
from aiodepot.backends.posixfs import PosixFSBackend
from aiodepot.backends.posixfs import _fileio as fileio
from aiodepot.backends.posixfs import backend as backend_module
from aiodepot.backends.posixfs._fileio import memory_file_system
from aiodepot.backends.posixfs._safe_open import CACHED_LOOKUPS
from aiodepot.backends.posixfs.backend import INLINE_READ_MAX
from aiodepot.names import TMP_SUFFIX
from tests.conformance.suite import BackendConformance, MakeBackend, StoreConformance

pytestmark = pytest.mark.skipif(not CACHED_LOOKUPS, reason="needs openat2 with RESOLVE_CACHED (Linux 5.12+)")


class Answering(PosixFSBackend):
    """Reads from the page cache answer ``answer``: None (a hit), an errno, or a byte count (short read)."""

    def __init__(self, path: Path, answer: int | None = None, *, short: int | None = None) -> None:
        super().__init__(path)
        self.answer = answer
        self.short = short
        self.nowait_reads = 0
        self.thread_jobs: list[str] = []

    def _read_nowait(self, fd: int, buffer: bytearray, offset: int) -> int:
        self.nowait_reads += 1
        if self.answer is not None:
            raise OSError(self.answer, os.strerror(self.answer))
        done = os.preadv(fd, [buffer], offset)  # what a page-cache hit gives, on any file system
        return min(done, self.short) if self.short is not None else done

    async def _run(self, name: str, job: Any, *args: Any) -> Any:
        self.thread_jobs.append(getattr(job, "__name__", "job"))
        return await super()._run(name, job, *args)


async def _store_with(backend: Answering) -> Store:
    store = Store(backend=backend)
    await store.create()
    await store.open()
    await store.store("a", b"0123456789")
    backend.thread_jobs.clear()
    return store


async def test_a_hit_is_read_on_the_loop_without_a_thread(tmp_path: Path) -> None:
    backend = Answering(tmp_path / "s")
    store = await _store_with(backend)
    try:
        assert await store.load("a") == b"0123456789"
        assert await store.load("a", offset=2, size=3) == b"234"
        assert await store.load("a", offset=-4) == b"6789"
        assert await store.load("a", offset=-4, size=1) == b"6"
        assert await store.load("a", offset=20) == b""
        assert await store.load("a", offset=8, size=10) == b"89"
        assert backend.nowait_reads == 5  # the empty range needs no read
        assert backend.thread_jobs == []
    finally:
        await store.close()


async def test_eagain_falls_back_to_the_thread_and_tries_again_next_time(tmp_path: Path) -> None:
    backend = Answering(tmp_path / "s", errno.EAGAIN)
    store = await _store_with(backend)
    try:
        assert await store.load("a") == b"0123456789"
        assert await store.load("a", offset=1, size=2) == b"12"
        assert backend.nowait_reads == 2 and backend.thread_jobs == ["_load_sync", "_load_sync"]
    finally:
        await store.close()


async def test_eopnotsupp_is_remembered(tmp_path: Path) -> None:
    backend = Answering(tmp_path / "s", errno.EOPNOTSUPP)
    store = await _store_with(backend)
    try:
        assert await store.load("a") == b"0123456789"
        assert await store.load("a") == b"0123456789"
        assert backend.nowait_reads == 1  # not asked again
        assert backend.thread_jobs == ["_load_sync", "_load_sync"]
    finally:
        await store.close()


async def test_a_short_read_goes_to_the_thread(tmp_path: Path) -> None:
    backend = Answering(tmp_path / "s", short=4)  # part of the value is not in the page cache
    store = await _store_with(backend)
    try:
        assert await store.load("a") == b"0123456789"
        assert backend.nowait_reads == 1 and backend.thread_jobs == ["_load_sync"]
    finally:
        await store.close()


async def test_big_values_are_read_in_a_thread(tmp_path: Path) -> None:
    backend = Answering(tmp_path / "s")
    store = await _store_with(backend)
    try:
        big = os.urandom(INLINE_READ_MAX + 1)
        await store.store("big", big)
        backend.thread_jobs.clear()
        assert await store.load("big") == big
        assert await store.load("big", size=INLINE_READ_MAX) == big[:INLINE_READ_MAX]  # a small range: inline
        assert backend.thread_jobs == ["_load_sync"] and backend.nowait_reads == 1
    finally:
        await store.close()


async def test_errors_on_the_loop_are_the_usual_ones(tmp_path: Path) -> None:
    backend = Answering(tmp_path / "s")
    store = await _store_with(backend)
    try:
        with pytest.raises(ObjectNotFound):
            await store.load("missing")
        os.symlink(tmp_path / "s" / "a", tmp_path / "s" / "link")
        with pytest.raises(PermissionDenied):
            await store.load("link")
        (tmp_path / "s" / "dir").mkdir()
        with pytest.raises(ObjectNotFound):  # a directory is no item: the thread says so, as before
            await store.load("dir")
    finally:
        await store.close()


async def test_the_real_file_system_answers_one_way_or_the_other(tmp_path: Path) -> None:
    # ext4, xfs, btrfs read from the page cache here; tmpfs and others answer EOPNOTSUPP once
    backend = PosixFSBackend(tmp_path / "s")
    store = Store(backend=backend)
    await store.create()
    async with store:
        await store.store("a", b"value")
        for _ in range(3):
            assert await store.load("a") == b"value"
            assert await store.load("a", offset=1, size=2) == b"al"


async def test_an_io_error_of_the_inline_read_is_raised_not_retried(tmp_path: Path) -> None:
    backend = Answering(tmp_path / "s", errno.EIO)
    store = await _store_with(backend)
    try:
        with pytest.raises(BackendError, match="Input/output error"):
            await store.load("a")
        assert backend.thread_jobs == []
    finally:
        await store.close()


async def test_inline_reads_can_be_turned_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = PosixFSBackend(tmp_path / "s", inline_reads=False)
    store = Store(backend=backend)
    await store.create()
    async with store:
        await store.store("a", b"value")
        assert await store.load("a") == b"value"  # from a thread
    monkeypatch.setenv("AIODEPOT_INLINE_READS", "0")
    assert not PosixFSBackend(tmp_path / "u")._inline_reads
    assert not PosixFSBackend(tmp_path / "u", inline_reads=False)._inline_reads
    monkeypatch.delenv("AIODEPOT_INLINE_READS")
    assert PosixFSBackend(tmp_path / "u")._inline_reads


# tmpfs and ramfs: no RWF_NOWAIT, but their pages are memory ------------------------------------------------------


def _kind(path: Path) -> str | None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return memory_file_system(fd)
    finally:
        os.close(fd)


def _shm_dir() -> Path | None:
    """``/dev/shm`` if it is a tmpfs (Linux), or None."""
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and _kind(shm) == "tmpfs" else None


@pytest.fixture
def shm_path() -> Iterator[Path]:
    shm = _shm_dir()
    if shm is None:
        pytest.skip("no tmpfs at /dev/shm on this machine")
    with tempfile.TemporaryDirectory(dir=shm, prefix="aiodepot-test-") as path:
        yield Path(path)


class Counting(PosixFSBackend):
    """Counts the thread jobs; reads go to the real file system."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.thread_jobs: list[str] = []

    async def _run(self, name: str, job: Any, *args: Any) -> Any:
        self.thread_jobs.append(getattr(job, "__name__", "job"))
        return await super()._run(name, job, *args)


async def test_tmpfs_without_swap_is_read_on_the_loop(shm_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backend_module, "swap_in_use", lambda: False)
    backend = Counting(shm_path / "s")
    store = Store(backend=backend)
    await store.create()
    async with store:
        await store.store("a", b"0123456789")
        backend.thread_jobs.clear()
        for _ in range(3):
            assert await store.load("a") == b"0123456789"
            assert await store.load("a", offset=-3) == b"789"
        assert backend.thread_jobs == [] and backend._inline_reads
        assert backend._memory_dev == os.stat(shm_path).st_dev and backend._memory_swaps


async def test_tmpfs_with_swap_on_is_read_in_a_thread(shm_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backend_module, "swap_in_use", lambda: True)  # its pages could be on a swap device
    backend = Counting(shm_path / "s")
    store = Store(backend=backend)
    await store.create()
    async with store:
        await store.store("a", b"value")
        backend.thread_jobs.clear()
        assert await store.load("a") == b"value"
        assert await store.load("a") == b"value"
        assert len(backend.thread_jobs) == 2
        assert backend._inline_reads  # still tried: swap may be turned off again
        monkeypatch.setattr(backend_module, "swap_in_use", lambda: False)
        assert await store.load("a") == b"value"
        assert len(backend.thread_jobs) == 2


async def test_tmpfs_without_swap_stores_and_deletes_small_values_on_the_loop(
    shm_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backend_module, "swap_in_use", lambda: False)
    backend = Counting(shm_path / "s")
    store = Store(backend=backend, config={"data/": {"levels": [2]}})
    await store.create()
    async with store:
        backend.thread_jobs.clear()
        name = "data/" + "ab" * 32
        await store.store(name, b"first")  # the nesting directories are made on the loop too
        await store.store(name, b"second")
        with pytest.raises(ObjectExists):
            await store.store(name, b"third", if_absent=True)
        assert await store.load(name) == b"second"
        await store.delete(name)
        with pytest.raises(ObjectNotFound):
            await store.delete(name)
        assert backend.thread_jobs == []
        await store.store(name, bytes(INLINE_READ_MAX + 1))  # a long copy would hold up the loop
        assert backend.thread_jobs == ["_store_sync"]
        assert [p.name for p in (shm_path / "s").rglob(f"*{TMP_SUFFIX}")] == []  # no temp file left behind


async def test_tmpfs_with_swap_on_stores_in_a_thread(shm_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backend_module, "swap_in_use", lambda: True)
    backend = Counting(shm_path / "s")
    store = Store(backend=backend)
    await store.create()
    async with store:
        backend.thread_jobs.clear()
        await store.store("a", b"value")
        await store.delete("a")
        assert backend.thread_jobs == ["_store_sync", "_delete_sync"]


async def test_inline_writes_follow_the_inline_reads_option(shm_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backend_module, "swap_in_use", lambda: False)
    monkeypatch.setenv("AIODEPOT_INLINE_READS", "0")
    backend = Counting(shm_path / "s")
    store = Store(backend=backend)
    await store.create()
    async with store:
        backend.thread_jobs.clear()
        await store.store("a", b"value")
        assert backend.thread_jobs == ["_store_sync"]


async def test_stores_on_a_disk_file_system_go_to_a_thread(tmp_path: Path) -> None:
    backend = Counting(tmp_path / "s")
    store = Store(backend=backend)
    await store.create()
    async with store:
        backend.thread_jobs.clear()
        await store.store("a", b"value")
        expected = [] if _kind(tmp_path) is not None and not fileio.swap_in_use() else ["_store_sync"]
        assert backend.thread_jobs == expected


async def test_another_file_system_without_nowait_stops_inline_reads(tmp_path: Path) -> None:
    backend = Answering(tmp_path / "s", errno.EOPNOTSUPP)
    store = await _store_with(backend)
    try:
        assert await store.load("a") == b"0123456789"  # from a thread
        if _kind(tmp_path) is None:  # e.g. ext4 answering EOPNOTSUPP: no more tries
            assert not backend._inline_reads and backend._memory_dev is None
        else:  # the temporary directory is on tmpfs itself: read as one
            assert backend._inline_reads and backend._memory_dev is not None
    finally:
        await store.close()


def test_swap_in_use_reads_proc_swaps_at_most_each_second(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    swaps = tmp_path / "swaps"
    swaps.write_text("Filename\tType\tSize\tUsed\tPriority\n")
    monkeypatch.setattr(fileio, "_SWAPS", str(swaps))
    monkeypatch.setattr(fileio, "_swap_seen", (-10.0, True))
    assert fileio.swap_in_use() is False
    swaps.write_text("Filename\tType\tSize\tUsed\tPriority\n/swapfile file 1024 0 -2\n")
    assert fileio.swap_in_use() is False  # the answer of the last second
    monkeypatch.setattr(fileio, "_swap_seen", (-10.0, False))
    assert fileio.swap_in_use() is True
    monkeypatch.setattr(fileio, "_SWAPS", str(tmp_path / "missing"))
    monkeypatch.setattr(fileio, "_swap_seen", (-10.0, False))
    assert fileio.swap_in_use() is True  # unknown counts as on


# batch loads (load_many): cached items on the loop, the others in one thread job -----------------------------------


class BatchAnswering(Answering):
    """`Answering`, and records the names each batch thread job gets."""

    def __init__(self, path: Path, answer: int | None = None) -> None:
        super().__init__(path, answer)
        self.batch_jobs: list[list[str]] = []

    def _batch_sync(self, operation: Any, calls: Any) -> Any:
        self.batch_jobs.append([args[0] for args in calls])
        return super()._batch_sync(operation, calls)


async def test_a_batch_reads_cached_items_on_the_loop_and_the_rest_in_one_job(tmp_path: Path) -> None:
    backend = BatchAnswering(tmp_path / "s")
    store = await _store_with(backend)
    try:
        big = os.urandom(INLINE_READ_MAX + 1)
        await store.store("big", big)
        names = [f"n{i:03d}" for i in range(150)]  # more than one slice of 64
        await store.store_many((name, name.encode()) for name in names)
        backend.batch_jobs.clear()
        loaded = await store.load_many(["a", *names, "big"])
        assert loaded == [b"0123456789", *(name.encode() for name in names), big]
        assert backend.batch_jobs == [["big"]]  # too big for the loop: the only thread job
        missing = await store.load_many(["a", "missing"], return_exceptions=True)
        assert missing[0] == b"0123456789" and isinstance(missing[1], ObjectNotFound)
    finally:
        await store.close()


async def test_a_batch_on_a_file_system_without_nowait_goes_to_a_thread(tmp_path: Path) -> None:
    backend = BatchAnswering(tmp_path / "s", errno.EOPNOTSUPP)
    store = await _store_with(backend)
    try:
        await store.store_many((f"n{i}", b"v") for i in range(5))
        backend.batch_jobs.clear()
        assert await store.load_many(["a", *(f"n{i}" for i in range(5))]) == [b"0123456789", *[b"v"] * 5]
        if _kind(tmp_path) is None:  # ext4 and the like: the first refusal sends the whole batch to a thread
            assert not backend._inline_reads
            assert backend.batch_jobs == [["a", *(f"n{i}" for i in range(5))]]
    finally:
        await store.close()


async def test_a_batch_names_an_io_error_per_item(tmp_path: Path) -> None:
    backend = BatchAnswering(tmp_path / "s", errno.EIO)
    store = await _store_with(backend)
    try:
        result = await store.load_many(["a"], return_exceptions=True)
        assert isinstance(result[0], BackendError) and "Input/output error" in str(result[0])
        assert backend.batch_jobs == []
    finally:
        await store.close()


class TestPosixFSStoreOnTmpfs(StoreConformance):
    """The whole Store suite where stores, deletes and loads run on the event loop (tmpfs, no swap)."""

    @pytest.fixture
    def make_backend(self, shm_path: Path, monkeypatch: pytest.MonkeyPatch) -> MakeBackend:
        monkeypatch.setattr(backend_module, "swap_in_use", lambda: False)
        return lambda: PosixFSBackend(shm_path / "store")


class TestPosixFSBackendOnTmpfs(BackendConformance):
    @pytest.fixture
    def make_backend(self, shm_path: Path, monkeypatch: pytest.MonkeyPatch) -> MakeBackend:
        monkeypatch.setattr(backend_module, "swap_in_use", lambda: False)
        return lambda: PosixFSBackend(shm_path / "store")
