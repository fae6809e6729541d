"""The sqlite backend: the conformance suite plus its schema, ranged blob reads and concurrency."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from aiodepot import (
    BackendError,
    BackendURLInvalid,
    QuotaExceeded,
    Store,
    StoreCorrupt,
    StoreExists,
    StoreNotFound,
    SyncStore,
)
from aiodepot.backends import Limits, backend_from_url
from aiodepot.backends.sqlite import SQLiteBackend
from tests.conformance.suite import (
    CONFIG,
    BackendConformance,
    MakeBackend,
    StoreConformance,
    key,
    pool_threads,
    threads_settle,
)


class TestSQLiteStore(StoreConformance):
    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> MakeBackend:
        return lambda: SQLiteBackend(tmp_path / "store.db")


class TestSQLiteBackend(BackendConformance):
    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> MakeBackend:
        return lambda: SQLiteBackend(tmp_path / "store.db")


def test_url_parsing() -> None:
    backend = backend_from_url("sqlite:///srv/my%20depot.db")
    assert isinstance(backend, SQLiteBackend) and backend.path == "/srv/my depot.db"
    for bad in ("sqlite://host/x.db", "sqlite:relative.db", "sqlite:///", "sqlite://"):
        with pytest.raises(BackendURLInvalid):
            backend_from_url(bad)
    with pytest.raises(ValueError, match="threads"):
        SQLiteBackend("/x.db", limits=Limits(threads=0))
    with pytest.warns(DeprecationWarning, match=r"readers=…\) is deprecated.*Limits\(threads=2\)"):
        assert SQLiteBackend("/x.db", readers=2).readers == 2


async def test_rows_and_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "depot.db"
    store = Store(f"sqlite://{path}", config=CONFIG)
    await store.create()
    async with store:
        await store.store("data/" + key(1), b"one")
        await store.store("config/main", b"cfg")
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            rows = db.execute("SELECT name, parent, value FROM items ORDER BY name").fetchall()
            dirs = [row[0] for row in db.execute("SELECT name FROM dirs ORDER BY name")]
        db.close()
    k = key(1)
    assert rows == [("config/main", "config", b"cfg"), (f"data/{k[:2]}/{k[2:4]}/{k}", f"data/{k[:2]}/{k[2:4]}", b"one")]
    assert dirs == ["config", "data", f"data/{k[:2]}", f"data/{k[:2]}/{k[2:4]}"]
    await store.destroy()
    assert list(tmp_path.iterdir()) == []


async def test_create_refuses_a_foreign_database(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (x)")
    db.close()
    with pytest.raises(StoreExists):
        await SQLiteBackend(path).create()
    with pytest.raises(StoreCorrupt, match="something else"):  # not "no such store": create refuses it too
        await SQLiteBackend(path).open()
    with pytest.raises(StoreNotFound):
        await SQLiteBackend(tmp_path / "missing.db").open()


async def test_ranged_load_reads_only_the_range(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path / "big.db")
    await backend.create()
    value = bytes(range(256)) * (64 * 1024)  # 16 MiB
    async with backend:
        await backend.store("big", value)
        assert await backend.load("big", offset=10_000_001, size=100) == value[10_000_001:10_000_101]
        assert await backend.load("big", offset=-5) == value[-5:]
        assert await backend.hash("big", "md5") == hashlib.md5(value).hexdigest()
    await backend.destroy()


async def test_item_and_directory_names_do_not_clash(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path / "s.db")
    await backend.create()
    async with backend:
        await backend.store("a/b", b"x")
        with pytest.raises(BackendError, match="directory"):
            await backend.store("a", b"x")
        with pytest.raises(BackendError, match="not a directory"):
            await backend.store("a/b/c", b"x")
        with pytest.raises(BackendError, match="not empty"):
            await backend.rmdir("a")
        results = await backend.store_batch([("ok/1", b"1"), ("a", b"bad"), ("ok/2", b"2")])
        assert results[0] is None and isinstance(results[1], BackendError) and results[2] is None
        assert await backend.load("ok/2") == b"2"
    await backend.destroy()


async def test_quota_is_kept_by_triggers(tmp_path: Path) -> None:
    store = Store(f"sqlite://{tmp_path / 'q.db'}", quota=1000)
    await store.create()
    async with store:
        await store.store("a", b"x" * 600)
        with pytest.raises(QuotaExceeded):
            await store.store("b", b"x" * 500)
        await store.store("a", b"x" * 100)  # an overwrite counts the difference
        assert await store.quota() == {"limit": 1000, "usage": 100}
        results = await store.store_many({"b": b"x" * 800, "c": b"x" * 200}, return_exceptions=True)
        assert results[0] is None and isinstance(results[1], QuotaExceeded)
        await store.delete("a")
    async with store:  # the usage persists in the database
        assert await store.quota() == {"limit": 1000, "usage": 800}
    await store.destroy()


async def test_readers_run_concurrently_with_a_writer(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path / "c.db", limits=Limits(threads=4))
    await backend.create()
    async with backend:
        await backend.store("x", b"a" * 100_000)

        async def read() -> None:
            for _ in range(50):
                assert await backend.load("x") in (b"a" * 100_000, b"b" * 100_000)

        async def write() -> None:
            for i in range(50):
                await backend.store("x", (b"a" if i % 2 else b"b") * 100_000)

        await asyncio.gather(write(), *(read() for _ in range(4)))
    await backend.destroy()


async def test_create_and_destroy_keep_no_thread(tmp_path: Path) -> None:
    """A closed backend holds no worker thread after create/destroy, worked or failed."""
    # the pools of stores that earlier tests closed may still be exiting: count from where they end
    await threads_settle("aiodepot-sqlite-", [])
    before = pool_threads("aiodepot-sqlite-")
    await SQLiteBackend(tmp_path / "s.db").create()
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(StoreExists):
        await SQLiteBackend(tmp_path / "dir.db").create()
    await SQLiteBackend(tmp_path / "s.db").destroy()
    with pytest.raises(StoreNotFound):
        await SQLiteBackend(tmp_path / "s.db").destroy()
    assert await threads_settle("aiodepot-sqlite-", before)


def _in_forked_child(job: Callable[[], None], timeout: float = 30.0) -> int:
    """Run ``job`` in a forked child; its exit status (1 if it raised), or a failure if it hangs."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            job()
            code = 0
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail(f"the forked child hung for {timeout} s")


def test_a_store_opened_before_fork_writes_in_the_child(tmp_path: Path) -> None:
    """SQLite connections must not cross a fork: the child makes its own, for direct and awaited writes,
    and the parent's keep working."""
    store = SyncStore(f"sqlite://{tmp_path}/s.db")
    store.create()
    store.open()
    try:
        store.store("before", b"parent")
        store.load("before")  # the parent's reader and writer connections exist

        def child() -> None:
            store.store("direct", b"child")  # the caller's thread
            store.store_many({"bulk1": b"1", "bulk2": b"2"})  # the writer's thread
            assert store.load("direct") == b"child" and store.load("before") == b"parent"
            store.delete("bulk2")

        assert _in_forked_child(child) == 0
        assert store.load("direct") == b"child" and store.load("bulk1") == b"1"
        assert not store.exists("bulk2")
        store.store("after", b"parent again")
        assert store.load("after") == b"parent again"
    finally:
        store.close()
