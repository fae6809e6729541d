"""The posixfs backend: the conformance suite plus its on-disk layout and durability."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aiodepot import BackendURLInvalid, Store, StoreError, StoreExists
from aiodepot.backends import Limits, backend_from_url
from aiodepot.backends.posixfs import PosixFSBackend
from tests.conformance.suite import (
    CONFIG,
    BackendConformance,
    MakeBackend,
    StoreConformance,
    key,
    pool_threads,
    threads_settle,
)


class TestPosixFSStore(StoreConformance):
    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> MakeBackend:
        return lambda: PosixFSBackend(tmp_path / "store")


class TestPosixFSBackend(BackendConformance):
    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> MakeBackend:
        return lambda: PosixFSBackend(tmp_path / "store")


def test_url_parsing(tmp_path: Path) -> None:
    backend = backend_from_url("file:///srv/my%20depot")
    assert isinstance(backend, PosixFSBackend) and backend.base == "/srv/my depot"
    for bad in ("file://host/path", "file:relative", "file://relative/x"):
        with pytest.raises(BackendURLInvalid):
            backend_from_url(bad)
    with pytest.raises(BackendURLInvalid):
        PosixFSBackend("relative/path")


async def test_layout_is_borgstore_s(tmp_path: Path) -> None:
    base = tmp_path / "store"
    store = Store(f"file://{base}", config=CONFIG)
    await store.create()
    async with store:
        await store.store("data/" + key(1), b"one")
        await store.store("config/main", b"cfg")
        await store.store("data/" + key(2), b"two")
        await store.move("data/" + key(2), delete=True)
    k1, k2 = key(1), key(2)
    assert (base / "data" / k1[:2] / k1[2:4] / k1).read_bytes() == b"one"
    assert (base / "data" / k2[:2] / k2[2:4] / f"{k2}.del").read_bytes() == b"two"
    assert (base / "config" / "main").read_bytes() == b"cfg"
    leftovers = [p for p in base.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


async def test_temp_files_are_never_listed(tmp_path: Path) -> None:
    base = tmp_path / "store"
    store = Store(f"file://{base}")
    await store.create()
    (base / "item.abc123.tmp").write_bytes(b"half")
    (base / "NotOurs").write_bytes(b"foreign")
    async with store:
        await store.store("item", b"whole")
        assert [i.name async for i in store.list()] == ["item"]
    await store.destroy()


async def test_create_accepts_empty_directory_and_refuses_full(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    await Store(f"file://{tmp_path / 'empty'}").create()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "something").write_bytes(b"x")
    with pytest.raises(StoreExists):
        await Store(f"file://{tmp_path / 'full'}").create()
    await Store(f"file://{tmp_path / 'deep' / 'parents'}").create()
    assert (tmp_path / "deep" / "parents").is_dir()


async def test_failed_write_leaves_no_temp_file(tmp_path: Path) -> None:
    base = tmp_path / "store"
    store = Store(f"file://{base}")
    await store.create()
    async with store:
        (base / "blocked").mkdir()  # a directory where the item should go: the rename fails
        (base / "blocked" / "inner").write_bytes(b"x")
        with pytest.raises(StoreError):
            await store.store("blocked", b"value")
        assert sorted(p.name for p in base.iterdir() if not p.name.endswith(".hid")) == ["blocked"]
        os.unlink(base / "blocked" / "inner")
        os.rmdir(base / "blocked")
    await store.destroy()


async def test_fsync_option_orders_file_then_rename_then_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        kind = "dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "file"
        calls.append(f"fsync-{kind}")
        real_fsync(fd)

    def replace(src: str, dst: str) -> None:
        calls.append("rename")
        real_replace(src, dst)

    store = Store(f"file://{tmp_path / 'store'}", backend_options={"fsync": True})
    await store.create()
    async with store:
        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "replace", replace)
        await store.store("item", b"durable")
        assert calls == ["fsync-file", "rename", "fsync-dir"]
        monkeypatch.undo()
    await store.destroy()


def test_unknown_backend_option(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not take"):
        Store(f"file://{tmp_path}", backend_options={"nonsense": 1})


def test_the_old_workers_option_warns_and_still_works(tmp_path: Path) -> None:
    with pytest.warns(DeprecationWarning, match=r"workers=…\) is deprecated.*Limits\(threads=3\)"):
        backend = PosixFSBackend(tmp_path / "store", workers=3)
    assert backend.limits.threads == 3
    assert PosixFSBackend(tmp_path / "store", limits=Limits(threads=5)).limits.threads == 5


async def test_create_and_destroy_keep_no_thread(tmp_path: Path) -> None:
    """A closed backend holds no worker thread, whether create/destroy worked or failed: a REST server
    creates repositories by the hundred and each would otherwise keep one."""
    before = pool_threads("aiodepot-posixfs-")
    await PosixFSBackend(tmp_path / "store").create()
    (tmp_path / "store" / "x").write_bytes(b"")
    with pytest.raises(StoreExists):
        await PosixFSBackend(tmp_path / "store").create()
    await PosixFSBackend(tmp_path / "store").destroy()
    with pytest.raises(StoreError):
        await PosixFSBackend(tmp_path / "store").destroy()
    assert await threads_settle("aiodepot-posixfs-", before)
