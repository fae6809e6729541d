"""The posixfs backend: the conformance suite plus its on-disk layout and durability."""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest

from aiodepot import (
    BackendURLInvalid,
    ObjectExists,
    ObjectNotFound,
    Store,
    StoreError,
    StoreExists,
    SyncStore,
    ValueChanged,
)
from aiodepot.backends import Limits, backend_from_url
from aiodepot.backends.posixfs import PosixFSBackend, _tempfiles
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
    real_fsync, real_replace, real_rename_new = os.fsync, os.replace, _tempfiles.rename_new

    def fsync(fd: int) -> None:
        kind = "dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "file"
        calls.append(f"fsync-{kind}")
        real_fsync(fd)

    def replace(src: str, dst: str) -> None:
        calls.append("rename")
        real_replace(src, dst)

    def rename_new(src: str, dst: str) -> bool:
        try:
            done = real_rename_new(src, dst)
        except FileExistsError:
            calls.append("exists")
            raise
        calls.append("rename" if done else "no renameat2")
        return done

    store = Store(f"file://{tmp_path / 'store'}", backend_options={"fsync": True})
    await store.create()
    async with store:
        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "replace", replace)
        monkeypatch.setattr(_tempfiles, "rename_new", rename_new)
        await store.store("item", b"durable")  # a new name: the no-replace rename
        assert calls == ["fsync-file", "rename", "fsync-dir"]
        calls.clear()
        await store.store("item", b"replaced")  # over an item: that rename fails, os.replace does it
        assert calls == ["fsync-file", "exists", "rename", "fsync-dir"]
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


# sessions of stores left unclosed (issue 18) -------------------------------------------------------------


def session_files(store_dir: Path) -> list[str]:
    return sorted(path.name for path in store_dir.glob("session.*.hid"))


def test_unclosed_stores_leave_no_session_files_when_the_process_exits(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    script = textwrap.dedent(
        f"""
        import glob, json, sys, warnings
        warnings.simplefilter("ignore", ResourceWarning)
        import aiodepot
        url = "file://{store_dir}"
        aiodepot.SyncStore(url).create()
        stores = []
        for i in range(200):
            store = aiodepot.SyncStore(url)
            store.open()
            store.store(f"item{{i}}", b"x")
            stores.append(store)  # alive and open at exit, never closed
        json.dump(len(glob.glob("{store_dir}/session.*.hid")), sys.stdout)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == 200  # each open store had its session while the program ran
    assert session_files(store_dir) == []
    assert len([name for name in os.listdir(store_dir) if name.startswith("item")]) == 200


def test_dropped_unclosed_stores_end_their_sessions(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    url = f"file://{store_dir}"
    SyncStore(url).create()
    kept = SyncStore(url)
    kept.open()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # "was not closed": that is the point here
        dropped = []
        for i in range(50):
            store = SyncStore(url)
            store.open()
            store.store(f"item{i}", b"x")
            dropped.append(store)
        assert len(session_files(store_dir)) == 51
        del dropped, store
        gc.collect()
    assert len(session_files(store_dir)) == 1  # the store still open keeps its session
    kept.close()
    assert session_files(store_dir) == []
    with SyncStore(url) as again:  # the next open finds nothing to clean up
        assert again.backend.temp_files_removed == 0  # type: ignore[attr-defined]
        assert again.count() == 50


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Python 3.12+: fork() of a process with threads
def test_a_forked_child_leaves_the_parents_session_alone(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    store = SyncStore(f"file://{store_dir}")
    store.create()
    store.open()
    parents = session_files(store_dir)
    assert len(parents) == 1
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child; coverage does not follow it
        status = 1
        try:
            os.close(read_end)
            store.store("from-child", b"c")  # the child's first write registers its own session
            during = session_files(store_dir)
            store.close()  # ends the child's session, not the parent's
            os.write(write_end, json.dumps(during).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    deadline = time.monotonic() + 30
    while not (waited := os.waitpid(pid, os.WNOHANG))[0]:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung")
        time.sleep(0.02)
    with os.fdopen(read_end, "rb") as pipe:
        during = json.loads(pipe.read() or b"null")
    assert os.waitstatus_to_exitcode(waited[1]) == 0
    assert len(during) == 2 and set(parents) < set(during)
    assert session_files(store_dir) == parents
    assert store.load("from-child") == b"c"
    store.close()
    assert session_files(store_dir) == []
    store.destroy()


def test_rename_new_renames_only_onto_nothing(tmp_path: Path) -> None:
    from aiodepot.backends.posixfs._fileio import rename_new

    (tmp_path / "a").write_bytes(b"new")
    assert rename_new(str(tmp_path / "a"), str(tmp_path / "b")) is True
    assert (tmp_path / "b").read_bytes() == b"new" and not (tmp_path / "a").exists()
    (tmp_path / "a").write_bytes(b"other")
    with pytest.raises(FileExistsError):
        rename_new(str(tmp_path / "a"), str(tmp_path / "b"))
    assert (tmp_path / "b").read_bytes() == b"new" and (tmp_path / "a").read_bytes() == b"other"
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    with pytest.raises(FileExistsError):  # a dangling symbolic link is something too
        rename_new(str(tmp_path / "a"), str(tmp_path / "link"))
    with pytest.raises(FileNotFoundError):
        rename_new(str(tmp_path / "missing"), str(tmp_path / "c"))


@pytest.mark.parametrize("renameat2", [True, False], ids=["renameat2", "no-renameat2"])
async def test_store_commits_new_and_existing_items_refusing_a_symlink(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, renameat2: bool
) -> None:
    """The commit with and without ``renameat2`` (a file system without ``RENAME_NOREPLACE`` makes
    `rename_new` answer False): new names, replaced items, ``if_absent``, and a symbolic link in an
    item's place, refused with the temp file gone and the link untouched."""
    if not renameat2:
        monkeypatch.setattr(_tempfiles, "rename_new", lambda tmp, path: False)
    store = Store(f"file://{tmp_path / 'store'}")
    await store.create()
    async with store:
        await store.store("one", b"1")
        await store.store("one", b"11")
        assert await store.load("one") == b"11"
        with pytest.raises(ObjectExists):
            await store.store("one", b"x", if_absent=True)
        await store.store("two", b"2", if_absent=True)
        assert await store.load("two") == b"2"
        (tmp_path / "outside").write_bytes(b"secret")
        (tmp_path / "store" / "link").symlink_to(tmp_path / "outside")
        with pytest.raises(StoreError, match="symbolic link"):
            await store.store("link", b"over the link")
        assert (tmp_path / "store" / "link").is_symlink() and (tmp_path / "outside").read_bytes() == b"secret"
        assert not [p.name for p in (tmp_path / "store").iterdir() if ".tmp" in p.name]
    await store.destroy()


@pytest.mark.parametrize("inline", [True, False])
async def test_a_first_range_names_the_file_it_came_from(tmp_path: Path, inline: bool) -> None:
    """``load_first`` reads a range and ``fstat``s the same open file (on the event loop from the page cache,
    or in a thread): its version (inode, mtime, size) changes with every store, even of the same bytes, and
    ``load_into(..., version=...)`` reads only from that file."""
    backend = PosixFSBackend(tmp_path / "store")
    await backend.create()
    async with backend:
        backend._inline_reads = inline
        value = os.urandom(300_000)
        await backend.store("v", value)
        first = await backend.load_first("v", 1000, 100_000)
        assert (first.data, first.size) == (value[1000:101_000], len(value)) and first.version
        assert first.mtime == (await backend.info("v")).mtime
        assert (await backend.load_first("v", 0, 10)).version == first.version
        past = await backend.load_first("v", len(value) + 5, 100)
        assert (past.data, past.size, past.version) == (b"", len(value), first.version)
        buffer = bytearray(1000)
        assert await backend.load_into("v", len(value) - 10, buffer, version=first.version) == 10
        assert buffer[:10] == value[-10:]
        await backend.store("v", value)  # the same bytes, a new file
        renewed = await backend.load_first("v", 0, 10)
        assert renewed.version != first.version
        with pytest.raises(ValueChanged, match="no longer the file"):
            await backend.load_into("v", 0, buffer, version=first.version)
        with pytest.raises(ObjectNotFound):
            await backend.load_first("missing", 0, 10)
