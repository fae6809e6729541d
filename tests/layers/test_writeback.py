"""The write-back layer: the conformance suites through it (memory, posixfs and sqlite backlogs), the
backlog's semantics (read-your-writes, ordering, limits, failures) and what a crash loses."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

import aiodepot
from aiodepot import ConnectionLost, ObjectNotFound, PermissionDenied, Store, SyncStore, WriteBackError
from aiodepot.backends.memory import MemoryBackend
from aiodepot.backends.posixfs import PosixFSBackend
from aiodepot.backends.sqlite import SQLiteBackend
from aiodepot.layers import Cache, ReadOnly, WriteBack
from tests.conformance.suite import BackendConformance, MakeBackend, StoreConformance, key


def memory_name() -> str:
    return f"test-{uuid.uuid4().hex}"


def in_memory(**limits: object) -> MakeBackend:
    name = memory_name()
    return lambda: WriteBack(MemoryBackend(name), **limits)  # type: ignore[arg-type]


# the conformance suites through the layer ------------------------------------------------------------------


class TestMemoryBacklogStore(StoreConformance):
    @pytest.fixture
    def make_backend(self) -> MakeBackend:
        return in_memory()


class TestMemoryBacklogBackend(BackendConformance):
    @pytest.fixture
    def make_backend(self) -> MakeBackend:
        return in_memory()


class TestTinyBacklogStore(StoreConformance):
    """Limits so small that nearly every write waits for a flush."""

    @pytest.fixture
    def make_backend(self) -> MakeBackend:
        return in_memory(max_items=3, max_bytes=1000)


class TestSQLiteBacklogOverPosixFSStore(StoreConformance):
    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> MakeBackend:
        return lambda: WriteBack(PosixFSBackend(tmp_path / "inner"), SQLiteBackend(tmp_path / "backlog.db"))


class TestPosixFSBacklogBackend(BackendConformance):
    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> MakeBackend:
        return lambda: WriteBack(MemoryBackend(memory_name()), PosixFSBackend(tmp_path / "backlog"))


# semantics -------------------------------------------------------------------------------------------------


CONFIG = {"data/": {"levels": [1]}, "meta/": {"levels": [0]}}


class Outage(MemoryBackend):
    """A memory backend whose writes fail while ``down`` is set (a store that went away)."""

    down = False

    async def _store(self, name: str, value: bytes | memoryview, *, replace: bool) -> None:
        if self.down:
            raise ConnectionLost(f"{name}: the backend is down")
        await super()._store(name, value, replace=replace)

    async def _delete(self, name: str) -> None:
        if self.down:
            raise ConnectionLost(f"{name}: the backend is down")
        await super()._delete(name)


async def inner_names(name: str) -> list[str]:
    """What the inner memory storage ``name`` holds (looked at from outside the layer)."""
    async with Store(backend=MemoryBackend(name), config=CONFIG) as view:
        return sorted(
            [f"data/{i.name}" async for i in view.list("data")] + [f"meta/{i.name}" async for i in view.list("meta")]
        )


@pytest.fixture
def inner() -> str:
    return memory_name()


async def make(inner: str, **limits: object) -> tuple[Store, WriteBack]:
    layer = WriteBack(Outage(inner), **limits)  # type: ignore[arg-type]
    store = Store(backend=layer, config=CONFIG)
    await store.create()
    await store.open()
    return store, layer


async def test_writes_wait_for_flush_and_reads_see_them(inner: str) -> None:
    store, layer = await make(inner)
    await store.store("meta/old", b"old")
    await store.flush()
    await store.store_many({f"data/{key(i)}": bytes([i]) * 10 for i in range(20)})
    await store.store("meta/a", b"A")
    await store.delete("meta/old")
    assert await inner_names(inner) == ["meta/old"]  # nothing written yet
    assert layer.pending == 22 and store.stats["writeback_pending"] == 22
    assert await store.load("meta/a") == b"A" and await store.load("meta/a", offset=-1) == b"A"
    assert await store.load(f"data/{key(3)}", offset=2, size=3) == b"\x03" * 3
    assert not await store.exists("meta/old")
    with pytest.raises(ObjectNotFound):
        await store.load("meta/old")
    assert [i.name async for i in store.list("meta")] == ["a"]
    assert await store.count("data") == 20 and await store.count("meta") == 1
    assert await store.hash("meta/a") == await store.hash("meta/a")
    await store.flush()
    assert layer.pending == 0
    assert await inner_names(inner) == sorted([f"data/{key(i)}" for i in range(20)] + ["meta/a"])
    await store.close()


async def test_moves_in_and_out_of_the_backlog(inner: str) -> None:
    store, _ = await make(inner)
    await store.store("meta/flushed", b"F")
    await store.flush()
    await store.store("meta/buffered", b"B")
    await store.move("meta/buffered", "meta/renamed")  # inside the backlog
    await store.move("meta/flushed", delete=True)  # only the inner backend has it: moved there at once
    assert [i.name async for i in store.list("meta")] == ["renamed"]
    assert [i.name async for i in store.list("meta", deleted=True)] == ["flushed"]
    assert await store.count("meta", deleted=True) == 1
    with pytest.raises(ObjectNotFound):
        await store.move("meta/buffered", "meta/again")
    await store.close()
    assert await inner_names(inner) == ["meta/renamed"]


async def test_the_last_change_of_a_name_wins(inner: str) -> None:
    store, layer = await make(inner)
    await store.store("meta/x", b"1")
    await store.flush()
    await store.store("meta/x", b"2")
    await store.delete("meta/x")  # store then delete: deleted
    await store.store("meta/y", b"1")
    await store.delete("meta/y")
    await store.store("meta/y", b"2")  # delete then store: stored
    assert layer.pending == 2 and layer.stats["writeback_coalesced"] == 3
    await store.close()
    assert await inner_names(inner) == ["meta/y"]
    async with Store(backend=MemoryBackend(inner), config=CONFIG) as view:
        assert await view.load("meta/y") == b"2"


async def test_a_failed_flush_keeps_the_backlog_and_a_later_one_retries(inner: str) -> None:
    store, layer = await make(inner)
    outage = layer.inner
    assert isinstance(outage, Outage)
    await store.store_many({f"meta/{i}": b"v" for i in range(5)})
    outage.down = True
    with pytest.raises(WriteBackError, match="5 changes are pending") as failure:
        await store.flush()
    assert failure.value.pending == 5 and isinstance(failure.value.__cause__, ConnectionLost)
    assert await store.load("meta/3") == b"v"  # still readable from the backlog
    with pytest.raises(WriteBackError):
        await store.close()  # a memory backlog is not given up: the store stays open
    assert store.opened
    outage.down = False
    await store.flush()
    assert layer.pending == 0
    await store.close()
    assert await inner_names(inner) == [f"meta/{i}" for i in range(5)]


async def test_a_full_backlog_flushes_in_the_background_and_pushes_back(inner: str) -> None:
    store, layer = await make(inner, max_items=10, max_bytes=10_000)
    await store.store_many({f"meta/{i:02d}": b"v" * 100 for i in range(50)}, max_concurrency=1)
    assert layer.pending <= 10  # never more than the limit
    assert len(await inner_names(inner)) >= 40
    outage = layer.inner
    assert isinstance(outage, Outage)
    outage.down = True
    with pytest.raises(WriteBackError, match="backlog is full"):
        for i in range(20):
            await store.store(f"meta/x{i:02d}", b"v")
    assert layer.pending <= 10
    outage.down = False
    await store.close()
    names = await inner_names(inner)
    assert all(f"meta/x{i:02d}" in names for i in range(i))  # every acknowledged store got there


async def test_max_age_flushes_in_the_background(inner: str) -> None:
    store, layer = await make(inner, max_age=0.05)
    await store.store("meta/a", b"A")
    for _ in range(100):
        if not layer.pending:
            break
        await asyncio.sleep(0.02)
    assert await inner_names(inner) == ["meta/a"]
    await store.close()


async def test_store_option_and_the_writeback_cache_mode(tmp_path: Path) -> None:
    plain = Store(f"memory://{memory_name()}")
    await plain.create()
    async with plain:
        await plain.flush()  # no write-back layer: nothing to do
    config: dict[str, dict[str, Any]] = {
        "data/": {"levels": [0], "cache": "writeback", "size": 1 << 20, "max_age": 30},
        "meta/": {"levels": [0]},
    }
    store = Store(f"file://{tmp_path}/inner", config=config)
    layer = store.backend
    assert isinstance(layer, WriteBack) and layer.buffer is None
    assert layer.namespaces == ("data/",) and layer.max_bytes == 1 << 20 and layer.max_age == 30
    await store.create()
    async with store:
        await store.store("data/a", b"A")
        await store.store("meta/b", b"B")  # not buffered: written through
        assert layer.pending == 1
        assert (tmp_path / "inner" / "meta" / "b").exists() and not (tmp_path / "inner" / "data" / "a").exists()
    assert (tmp_path / "inner" / "data" / "a").read_bytes() == b"A"
    with SyncStore(f"file://{tmp_path}/inner", writeback=f"sqlite://{tmp_path}/backlog.db") as sync:
        assert isinstance(sync.backend, WriteBack) and isinstance(sync.backend.buffer, SQLiteBackend)
        sync.store("data/c", b"C")
        assert not (tmp_path / "inner" / "data" / "c").exists()
        sync.flush()
        assert (tmp_path / "inner" / "data" / "c").read_bytes() == b"C"
        assert sync.count("data") == 2
    with pytest.raises(ValueError, match="WriteBack layer already"):
        Store(backend=WriteBack(MemoryBackend()), writeback=True)


# what a crash loses ----------------------------------------------------------------------------------------

WRITER = """
import asyncio, sys
from aiodepot import Store

async def main(inner, writeback):
    store = Store(inner, writeback=writeback)
    async with store:
        for i in range(200):
            await store.store(f"item{i:03d}", b"acknowledged %d" % i)
        print("acknowledged", flush=True)
        await asyncio.sleep(60)  # killed here, before any flush

asyncio.run(main(sys.argv[1], True if sys.argv[2] == "memory" else sys.argv[2]))
"""


def crash_after_acknowledged_stores(inner: str, writeback: str) -> None:
    """Run a writer that stores 200 values through a write-back store, then SIGKILL it."""
    env = {**os.environ, "PYTHONPATH": str(Path(aiodepot.__file__).parents[1])}
    with subprocess.Popen(
        [sys.executable, "-c", WRITER, inner, writeback], stdout=subprocess.PIPE, env=env, text=True
    ) as writer:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "acknowledged"
        writer.send_signal(signal.SIGKILL)
        assert writer.wait(timeout=30) == -signal.SIGKILL


@pytest.mark.parametrize("buffer", ["memory", "sqlite", "file"])
def test_a_crash_before_flush(tmp_path: Path, buffer: str) -> None:
    inner = f"file://{tmp_path}/inner"
    SyncStore(inner).create()
    writeback = {"memory": "memory", "sqlite": f"sqlite://{tmp_path}/backlog.db", "file": f"file://{tmp_path}/backlog"}
    crash_after_acknowledged_stores(inner, writeback[buffer])
    with SyncStore(inner) as after:  # the inner store alone: what reached it before the crash
        reached = after.count("")
    if buffer == "memory":
        assert reached == 0  # the memory backlog died with the process
        return
    assert reached == 0  # nothing was flushed before the crash ...
    with SyncStore(inner, writeback=writeback[buffer]) as reopened:  # ... and the next open replays it
        assert reopened.count("") == 200
        assert reopened.backend.pending == 0  # type: ignore[attr-defined]
    with SyncStore(inner) as after:
        assert after.count("") == 200
        assert after.load("item123") == b"acknowledged 123"


async def test_flush_to_a_read_only_store_keeps_the_backlog(inner: str) -> None:
    setup = Store(backend=MemoryBackend(inner), config=CONFIG)
    await setup.create()
    async with setup:
        await setup.store("meta/there", b"T")
    layer = WriteBack(ReadOnly(MemoryBackend(inner)))
    store = Store(backend=layer, config=CONFIG)
    await store.open()
    await store.store("meta/new", b"N")
    await store.delete("meta/there")
    with pytest.raises(WriteBackError, match="2 changes are pending") as failure:
        await store.flush()
    assert isinstance(failure.value.__cause__, PermissionDenied) and failure.value.pending == 2
    assert [i.name async for i in store.list("meta")] == ["new"]
    with pytest.raises(WriteBackError):
        await store.close()
    layer.inner = MemoryBackend(inner)  # the store is writable again
    await layer.inner.open()
    await store.close()
    assert await inner_names(inner) == ["meta/new"]


async def test_cache_and_writeback_namespaces_in_one_store(tmp_path: Path) -> None:
    config: dict[str, dict[str, Any]] = {
        "data/": {"levels": [0], "cache": "writethrough"},
        "log/": {"levels": [0], "cache": "writeback", "max_age": 60},
    }
    store = Store(f"file://{tmp_path}/primary", config=config, cache_url="memory://")
    assert isinstance(store.backend, Cache) and isinstance(store.backend.inner, WriteBack)
    assert store.backend.inner.namespaces == ("log/",)
    await store.create()
    async with store:
        await store.store("data/a", b"cached, written through")
        await store.store("log/b", b"buffered")
        assert (tmp_path / "primary" / "data" / "a").exists()
        assert not (tmp_path / "primary" / "log" / "b").exists()
        assert await store.load("log/b") == b"buffered" and await store.count("log") == 1
        await store.flush()
        assert (tmp_path / "primary" / "log" / "b").read_bytes() == b"buffered"
