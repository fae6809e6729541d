"""The sync facade (aiodepot/sync.py): SyncStore mirrors Store, and the Portal that runs it.

Each test uses its own memory store name or ``tmp_path``, so the file runs in parallel under xdist. Tests
that stop, time out or interrupt a portal use a private :class:`Portal`, so the shared default portal
keeps running for the others.
"""

from __future__ import annotations

import _thread
import asyncio
import concurrent.futures
import contextlib
import gc
import hashlib
import inspect
import json
import os
import signal
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import aiodepot
from aiodepot import (
    InvalidName,
    ItemInfo,
    ObjectNotFound,
    Portal,
    Progress,
    QuotaExceeded,
    Store,
    StoreAlreadyOpen,
    StoreNotFound,
    StoreNotOpen,
    SyncStore,
)
from aiodepot.backends.memory import MemoryBackend
from aiodepot.names import LAYOUT_NAME

MULTI_LEVEL = {"data/": {"levels": [0, 1]}, "": {"levels": [0]}}


# helpers and fixtures -----------------------------------------------------------------------------------


def memory_url() -> str:
    return f"memory://test-sync-{uuid.uuid4().hex}"


@pytest.fixture(params=["memory", "file"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL that nothing has created yet, on each built-in backend."""
    if request.param == "memory":
        return memory_url()
    return f"file://{tmp_path / 'store'}"


@pytest.fixture
def portal() -> Iterator[Portal]:
    """A private portal (its own loop thread), stopped after the test."""
    private = Portal(f"test-portal-{uuid.uuid4().hex[:8]}")
    yield private
    private.stop()
    assert not private.running


@contextlib.contextmanager
def opened(url: str, **kwargs: Any) -> Iterator[SyncStore]:
    """Create a store, yield it open, then close and destroy it."""
    store = SyncStore(url, **kwargs)
    store.create()
    try:
        with store:
            yield store
    finally:
        if store.opened:
            store.close()
        store.destroy()


@contextlib.contextmanager
def default_sigint_handler() -> Iterator[None]:
    """Make SIGINT raise KeyboardInterrupt in the main thread for the duration (restored after)."""
    assert threading.current_thread() is threading.main_thread(), "signal tests need the main thread"
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def sleeper(started: threading.Event, cancelled: threading.Event, seconds: float = 30.0) -> Callable[[], Any]:
    """A coroutine function that sleeps ``seconds`` and sets ``cancelled`` if it is cancelled."""

    async def sleep() -> str:
        started.set()
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "slept"

    return sleep


class SlowLoadBackend(MemoryBackend):
    """A private memory backend whose ``load`` hangs until cancelled, and reports the cancellation."""

    def __init__(self) -> None:
        super().__init__(None)
        self.load_started = threading.Event()
        self.load_cancelled = threading.Event()

    async def load(self, name: str, *, offset: int = 0, size: int | None = None) -> bytes:
        if name == LAYOUT_NAME:  # the remembered levels, read by open: not the load under test
            return await super().load(name, offset=offset, size=size)
        self.load_started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            self.load_cancelled.set()
            raise
        return await super().load(name, offset=offset, size=size)  # pragma: no cover - cancelled first


# 1. signature parity ------------------------------------------------------------------------------------


def _public_members(cls: type) -> dict[str, Any]:
    return {name: inspect.getattr_static(cls, name) for name in dir(cls) if not name.startswith("_")}


def _async_members(cls: type) -> dict[str, Any]:
    return {
        name: member
        for name, member in _public_members(cls).items()
        if inspect.iscoroutinefunction(member) or inspect.isasyncgenfunction(member)
    }


def test_introspection_finds_the_async_api() -> None:
    # guards the parity test below against an introspection that silently finds nothing
    found = set(_async_members(Store))
    expected = {
        "create",
        "create_levels",
        "destroy",
        "open",
        "close",
        "find",
        "info",
        "load",
        "store",
        "delete",
        "move",
        "hash",
        "list",
        "gather",
        "defrag",
        "quota",
        "load_many",
        "store_many",
        "delete_many",
        "info_many",
        "exists",
    }
    assert expected <= found
    assert inspect.isasyncgenfunction(Store.list)


def test_open_reader_has_a_blocking_twin() -> None:
    # open_reader returns an async iterator without being an async function, so the parity test above
    # does not see it
    assert inspect.signature(SyncStore.open_reader).parameters == inspect.signature(Store.open_reader).parameters


@pytest.mark.parametrize("name", sorted(_async_members(Store)))
def test_every_async_store_method_has_a_blocking_twin(name: str) -> None:
    async_method = getattr(Store, name)
    assert hasattr(SyncStore, name), f"SyncStore lacks a twin of Store.{name}"
    twin = inspect.getattr_static(SyncStore, name)
    assert inspect.isfunction(twin), f"SyncStore.{name} must be a plain method"
    assert not inspect.iscoroutinefunction(twin)
    assert not inspect.isasyncgenfunction(twin)
    expected = inspect.signature(async_method).parameters
    actual = inspect.signature(twin).parameters
    assert list(actual) == list(expected), f"SyncStore.{name} parameter names differ"
    for param_name, param in expected.items():
        other = actual[param_name]
        assert other.kind == param.kind, f"{name}({param_name}): kind"
        assert other.default == param.default, f"{name}({param_name}): default"
        # both modules use `from __future__ import annotations`: annotations are the source strings
        assert isinstance(param.annotation, str) or param.annotation is inspect.Parameter.empty
        assert other.annotation == param.annotation, f"{name}({param_name}): annotation"
    assert actual == expected


def _parity_problems(async_cls: type, sync_cls: type) -> list[str]:
    """What keeps ``sync_cls`` from being the blocking twin of every async method of ``async_cls``."""
    problems = []
    sync_members = _public_members(sync_cls)
    for name, member in sorted(_async_members(async_cls).items()):
        twin = sync_members.get(name)
        if not inspect.isfunction(twin) or inspect.iscoroutinefunction(twin) or inspect.isasyncgenfunction(twin):
            problems.append(f"{name}: no plain method on {sync_cls.__name__}")
            continue
        expected = list(inspect.signature(member).parameters.values())
        actual = list(inspect.signature(twin).parameters.values())
        if actual != expected:  # Parameter equality: name, kind, default and annotation
            problems.append(f"{name}: {inspect.signature(twin)} != {inspect.signature(member)}")
    return problems


def test_sync_store_is_the_twin_of_store() -> None:
    assert _parity_problems(Store, SyncStore) == []


def test_parity_check_notices_drift() -> None:
    class DriftedStore(Store):
        async def extra(self) -> None:
            """A new method without a blocking twin."""

        async def load(  # a changed default
            self, name: str, *, offset: int = 1, size: int | None = None, deleted: bool = False
        ) -> bytes:
            return b""

        async def hash(self, name: str, algo: str = "sha256", *, deleted: bool = False) -> str:  # renamed
            return ""

        async def info_many(self, names: list[str]) -> list[ItemInfo]:  # annotation and parameters
            return []

    problems = _parity_problems(DriftedStore, SyncStore)
    assert [problem.partition(":")[0] for problem in problems] == ["extra", "hash", "info_many", "load"]


def test_plain_public_members_exist_on_both() -> None:
    store_members = _public_members(Store)
    sync_members = _public_members(SyncStore)
    for name in ("set_levels", "levels", "stats", "opened"):
        assert name in store_members
    for name, member in store_members.items():
        if name in _async_members(Store):
            continue
        assert name in sync_members, f"SyncStore lacks Store.{name}"
        twin = sync_members[name]
        if isinstance(member, property):
            assert isinstance(twin, property), f"SyncStore.{name} must be a property"
        elif inspect.isfunction(member):
            assert inspect.isfunction(twin), f"SyncStore.{name} must be a method"
            assert inspect.signature(twin).parameters == inspect.signature(member).parameters
    # instance attributes of Store that the facade exposes as properties
    assert isinstance(sync_members["url"], property)
    assert isinstance(sync_members["backend"], property)


def test_list_returns_a_sync_iterator_type() -> None:
    assert inspect.signature(SyncStore.list).return_annotation == "Iterator[ItemInfo]"
    assert inspect.signature(Store.list).return_annotation == "AsyncIterator[ItemInfo]"


# 2. round trips -------------------------------------------------------------------------------------------


def test_create_open_close_context_manager(url: str) -> None:
    store = SyncStore(url)
    assert store.url == url
    assert not store.opened
    store.create()
    with store as entered:
        assert entered is store
        assert store.opened
        assert store.async_store.opened
        with pytest.raises(StoreAlreadyOpen):
            store.create()
    assert not store.opened
    with pytest.raises(StoreNotOpen):
        store.load("x")
    store.open()
    store.store("x", b"kept")
    store.close()
    with store:
        assert store.load("x") == b"kept"
    store.destroy()
    with pytest.raises(StoreNotFound):
        store.open()


def test_store_load_ranges_info_and_delete(url: str) -> None:
    with opened(url) as store:
        value = b"0123456789"
        assert store.store("item", value) is None
        assert store.load("item") == value
        assert store.load("item", offset=3) == b"3456789"
        assert store.load("item", offset=-3) == b"789"
        assert store.load("item", offset=2, size=4) == b"2345"
        assert store.load("item", offset=-4, size=2) == b"67"
        assert store.load("item", offset=8, size=10) == b"89"  # short at the end
        assert store.load("item", offset=20) == b""
        store.store("buffer", bytearray(b"from a bytearray"))
        assert store.load("buffer") == b"from a bytearray"
        store.store("view", memoryview(b"from a view"))
        assert store.load("view") == b"from a view"

        info = store.info("item")
        assert isinstance(info, ItemInfo)
        assert (info.name, info.exists, info.size, info.directory) == ("item", True, 10, False)
        assert info.mtime > 0
        missing = store.info("missing")
        assert (missing.name, missing.exists) == ("missing", False)

        store.store("item", b"new")  # overwrite
        assert store.load("item") == b"new"
        store.delete("item")
        assert not store.info("item").exists
        with pytest.raises(ObjectNotFound):
            store.load("item")
        with pytest.raises(ObjectNotFound):
            store.delete("item")


def test_move_rename_soft_delete_undelete(url: str) -> None:
    with opened(url, config=MULTI_LEVEL) as store:
        assert store.levels == {"data/": [0, 1], "": [0]}
        store.store("data/aa01", b"one")
        store.move("data/aa01", "data/bb02")
        assert not store.info("data/aa01").exists
        assert store.load("data/bb02") == b"one"

        store.move("data/bb02", delete=True)
        assert not store.info("data/bb02").exists
        assert store.info("data/bb02", deleted=True).exists
        assert store.load("data/bb02", deleted=True) == b"one"
        assert [i.name for i in store.list("data")] == []
        assert [i.name for i in store.list("data", deleted=True)] == ["bb02"]
        with pytest.raises(ObjectNotFound):
            store.load("data/bb02")

        store.move("data/bb02", undelete=True)
        assert store.load("data/bb02") == b"one"
        assert not store.info("data/bb02", deleted=True).exists

        store.move("data/bb02", delete=True)
        store.delete("data/bb02", deleted=True)
        assert not store.info("data/bb02", deleted=True).exists
        with pytest.raises(ValueError, match="exactly one"):
            store.move("data/bb02")
        with pytest.raises(ObjectNotFound):
            store.move("data/bb02", delete=True)


def test_change_level_migrates_between_nesting_levels(url: str, tmp_path: Path) -> None:
    with opened(url, config={"data/": {"levels": [0]}, "": {"levels": [0]}}) as store:
        store.store("data/abcdef", b"flat")
        assert store.find("data/abcdef") == "data/abcdef"
        store.set_levels(MULTI_LEVEL)
        assert store.levels == {"data/": [0, 1], "": [0]}
        # found at the old level until migrated; new items go to the last level
        assert store.find("data/abcdef") == "data/abcdef"
        assert store.load("data/abcdef") == b"flat"
        store.store("data/123456", b"nested")
        assert store.find("data/123456") == "data/12/123456"

        store.move("data/abcdef", change_level=True)
        assert store.find("data/abcdef") == "data/ab/abcdef"
        assert store.load("data/abcdef") == b"flat"
        assert [(i.name, i.size) for i in store.list("data")] == [("123456", 6), ("abcdef", 4)]
        if url.startswith("file://"):
            assert (tmp_path / "store" / "data" / "ab" / "abcdef").read_bytes() == b"flat"
            assert not (tmp_path / "store" / "data" / "abcdef").exists()

        # a soft-deleted item migrates too
        store.set_levels({"data/": {"levels": [1]}, "": {"levels": [0]}})
        store.store("data/cdcdcd", b"gone")
        store.move("data/cdcdcd", delete=True)
        store.set_levels({"data/": {"levels": [1, 2]}, "": {"levels": [0]}})
        store.move("data/cdcdcd", change_level=True, deleted=True)
        assert store.find("data/cdcdcd", deleted=True) == "data/cd/cd/cdcdcd.del"
        assert store.load("data/cdcdcd", deleted=True) == b"gone"


def test_create_levels(url: str) -> None:
    with opened(url, config={"data/": {"levels": [1]}, "": {"levels": [0]}}) as store:
        store.create_levels()
        backend_info = store.portal.call(store.backend.info, "data/ab")
        assert backend_info.exists
        assert backend_info.directory
        assert list(store.list("data")) == []


def test_hash_gather_defrag(url: str) -> None:
    with opened(url, config=MULTI_LEVEL) as store:
        store.store("data/aa01", b"hello world")
        store.store("data/bb02", b"0123456789")
        assert store.hash("data/aa01") == hashlib.sha256(b"hello world").hexdigest()
        assert store.hash("data/aa01", "md5") == hashlib.md5(b"hello world").hexdigest()

        sources = [("aa01", 0, 5), ("bb02", -3, 3), ("aa01", 6, 5)]
        assert store.gather(sources, namespace="data") == b"hello789world"
        assert store.gather([], namespace="data") == b""
        with pytest.raises(aiodepot.ReadRangeError):
            store.gather([("aa01", 5, 100)], namespace="data")

        digest = store.defrag(sources, algorithm="sha256", namespace="data")
        assert digest == hashlib.sha256(b"hello789world").hexdigest()
        assert store.load("data/" + digest) == b"hello789world"
        assert store.find("data/" + digest) == f"data/{digest[:2]}/{digest}"

        assert store.defrag([("bb02", 0, 2)], target="cc03", namespace="data") == "cc03"
        assert store.load("data/cc03") == b"01"
        assert store.load("data/aa01") == b"hello world"  # sources are left alone
        with pytest.raises(ValueError, match="target name or a hash algorithm"):
            store.defrag(sources, namespace="data")


def test_quota(url: str) -> None:
    with opened(url) as store:
        assert store.quota() == {"limit": -1, "usage": -1}
    with opened(url, quota=100) as store:
        store.store("a", b"x" * 60)
        assert store.quota() == {"limit": 100, "usage": 60}
        with pytest.raises(QuotaExceeded):
            store.store("b", b"y" * 50)
        store.delete("a")
        assert store.quota() == {"limit": 100, "usage": 0}


def test_stats_come_from_the_async_store(url: str) -> None:
    with opened(url) as store:
        store.store("a", b"abc")
        store.load("a")
        store.load("a", size=1)
        list(store.list())
        stats = store.stats
        assert stats == store.async_store.stats
        assert stats["store_calls"] == 1
        assert stats["store_volume"] == 3
        assert stats["load_calls"] == 2
        assert stats["load_volume"] == 4
        assert stats["list_calls"] == 1
        assert stats["backend_load_calls"] == 2


def test_bulk_operations(url: str) -> None:
    with opened(url, config=MULTI_LEVEL) as store:
        items = {f"data/{i:04x}": bytes([i]) * i for i in range(1, 41)}
        progress: list[Progress] = []
        assert store.store_many(items, max_concurrency=4, progress=progress.append) == [None] * 40
        assert [p.items_done for p in progress] == list(range(1, 41))
        assert progress[-1].bytes_done == progress[-1].bytes_total == sum(len(v) for v in items.values())

        names = list(items)
        assert store.load_many(names) == list(items.values())
        assert store.load_many(reversed(names), max_concurrency=1) == list(reversed(items.values()))
        infos = store.info_many([*names[:3], "data/ffff"])
        assert [(i.name, i.exists, i.size) for i in infos] == [
            ("data/0001", True, 1),
            ("data/0002", True, 2),
            ("data/0003", True, 3),
            ("data/ffff", False, 0),
        ]

        mixed = store.load_many(["data/0001", "data/ffff"], return_exceptions=True)
        assert mixed[0] == b"\x01"
        assert isinstance(mixed[1], ObjectNotFound)
        with pytest.raises(ObjectNotFound):
            store.load_many(["data/0001", "data/ffff"])

        pairs = [("data/aaaa", b"pair"), ("data/bbbb", memoryview(b"view"))]
        assert store.store_many(pairs) == [None, None]
        assert store.load_many(["data/aaaa", "data/bbbb"]) == [b"pair", b"view"]

        result = store.delete_many(["data/0001", "data/ffff"], return_exceptions=True)
        assert result[0] is None
        assert isinstance(result[1], ObjectNotFound)
        assert store.delete_many(names[1:]) == [None] * 39
        assert [i.name for i in store.list("data")] == ["aaaa", "bbbb"]
        with pytest.raises(InvalidName):
            store.load_many(["data/ok", "BAD"])


def test_destroy_removes_everything(url: str, tmp_path: Path) -> None:
    store = SyncStore(url)
    store.create()
    with store:
        store.store("a", b"1")
    store.destroy()
    if url.startswith("file://"):
        assert not (tmp_path / "store").exists()
    with pytest.raises(StoreNotFound):
        store.open()
    with pytest.raises(StoreNotFound):
        store.destroy()
    store.create()  # and it can be made again, empty
    with store:
        assert list(store.list()) == []
    store.destroy()


# listing --------------------------------------------------------------------------------------------------


def test_list_returns_a_real_sorted_iterator(url: str) -> None:
    with opened(url, config=MULTI_LEVEL) as store:
        for key in ("cc03", "aa01", "bb02"):
            store.store(f"data/{key}", key.encode())
        store.store("top", b"t")
        listing = store.list("data")
        assert not isinstance(listing, list)
        assert iter(listing) is listing
        assert isinstance(listing, Iterator)
        first = next(listing)
        assert isinstance(first, ItemInfo)
        assert (first.name, first.size, first.exists, first.directory) == ("aa01", 4, True, False)
        assert [i.name for i in listing] == ["bb02", "cc03"]
        with pytest.raises(StopIteration):
            next(listing)
        with pytest.raises(StopIteration):  # stays exhausted
            next(listing)

        # the blocking listing yields exactly what the async one does, in the same order
        async def async_listing(name: str) -> list[ItemInfo]:
            return [info async for info in store.async_store.list(name)]

        for namespace in ("", "data"):
            assert list(store.list(namespace)) == store.portal.call(async_listing, namespace)
        with pytest.raises(ObjectNotFound):
            next(store.list("nothing"))


def test_list_is_lazy_and_checks_on_first_next(url: str) -> None:
    store = SyncStore(url)
    store.create()
    try:
        listing = store.list("BAD")  # nothing runs before the first next()
        with pytest.raises(InvalidName):
            next(listing)
        not_open = store.list()
        with pytest.raises(StoreNotOpen):
            next(not_open)
    finally:
        store.destroy()


def test_list_more_than_one_batch(url: str) -> None:
    count = 2 * 1000 + 345
    with opened(url, config={"data/": {"levels": [0]}, "": {"levels": [0]}}) as store:
        store.store_many({f"data/{i:05x}": b"v" for i in range(count)})
        listing = store.list("data")
        names = [info.name for info in listing]
        assert len(names) == count
        assert names == sorted(names)
        assert names == [f"{i:05x}" for i in range(count)]
        assert store.stats["list_calls"] == 1  # one async listing, pulled in batches


def test_list_fetches_batches_of_1000() -> None:
    with opened(memory_url()) as store:
        store.store_many({f"k{i:04d}": b"" for i in range(1500)})
        listing = store.list()
        assert type(listing).BATCH == 1000
        assert next(listing).name == "k0000"
        assert len(listing._buffer) == 1000  # one portal round trip brought the first batch
        rest = [info.name for info in listing]
        assert len(listing._buffer) == 0  # the last fetch came back empty
        assert rest == [f"k{i:04d}" for i in range(1, 1500)]


def test_list_early_break_and_close_releases_the_iterator(url: str) -> None:
    with opened(url) as store:
        store.store_many({f"k{i:04d}": b"x" for i in range(1200)})
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            listing = store.list()
            seen = []
            for info in listing:
                seen.append(info.name)
                if len(seen) == 5:
                    break
            source = listing._source  # the async generator behind the iterator
            assert source is not None
            assert source.ag_frame is not None  # suspended, not finished
            listing.close()
            assert source.ag_frame is None  # closed: its cleanup ran
            listing.close()  # idempotent
            del listing, source

            # dropping an unfinished iterator without close() releases it too
            abandoned = store.list()
            next(abandoned)
            abandoned_source = abandoned._source
            assert abandoned_source is not None
            del abandoned
            gc.collect()  # the finalizer schedules the close on the portal loop (it must never block) ...
            # ... which has run it by the next call on the portal (a bulk call: single loads run in this
            # thread, see test_store_direct): the portal is fine
            assert store.load_many(["k0000"]) == [b"x"]
            assert abandoned_source.ag_frame is None
        assert seen == ["k0000", "k0001", "k0002", "k0003", "k0004"]
        assert [str(w.message) for w in caught] == []


def test_list_close_ends_the_iteration(url: str) -> None:
    """After close(), next() raises StopIteration, as it does for a closed generator."""
    with opened(url) as store:
        store.store_many({f"k{i:02d}": b"x" for i in range(10)})
        listing = store.list()
        assert next(listing).name == "k00"
        listing.close()
        leftover = [info.name for info in listing]
        assert leftover == [], f"a closed listing still yielded {len(leftover)} buffered items"


def test_list_close_before_the_first_next() -> None:
    with opened(memory_url()) as store:
        listing = store.list()
        listing.close()
        with pytest.raises(StopIteration):
            next(listing)


# 3. callers with their own event loop --------------------------------------------------------------------


def test_works_inside_asyncio_run() -> None:
    url = memory_url()

    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        store = SyncStore(url)
        store.create()
        with store:
            assert store.portal.thread is not threading.current_thread()
            store.store("a", b"from a running loop")
            assert store.load("a") == b"from a running loop"
            await asyncio.sleep(0)  # our own loop still works between the blocking calls
            names = [info.name for info in store.list()]
        store.destroy()
        assert asyncio.get_running_loop() is loop
        return names

    assert asyncio.run(main()) == ["a"]


def test_works_in_a_thread_running_its_own_loop() -> None:
    url = memory_url()
    result: dict[str, Any] = {}

    async def main() -> None:
        with opened(url) as store:
            store.store("a", b"thread")
            result["value"] = store.load("a")
            result["portal_thread"] = store.portal.thread

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # reported to the test thread
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)
    assert not thread.is_alive()
    assert "error" not in result, result.get("error")
    assert result["value"] == b"thread"
    assert result["portal_thread"] is not thread


# 4. calls from the portal's own thread ------------------------------------------------------------------


def test_blocking_call_from_the_portal_thread_raises(portal: Portal) -> None:
    store = SyncStore(memory_url(), portal=portal)
    store.create()

    async def misuse() -> None:
        store.open()

    with pytest.raises(RuntimeError, match="portal") as excinfo:
        portal.call(misuse)
    assert "await the async Store" in str(excinfo.value)
    assert not store.opened  # nothing happened

    async def misuse_portal() -> None:
        portal.call(asyncio.sleep, 0)

    with pytest.raises(RuntimeError, match="portal's own event loop thread"):
        portal.call(misuse_portal)

    # the portal is unharmed: the same store works from this thread
    with store:
        store.store("a", b"1")
        assert store.load("a") == b"1"
    store.destroy()


def test_blocking_call_from_the_default_portal_thread_raises() -> None:
    with opened(memory_url()) as store:
        assert store.portal is Portal.default()

        async def misuse() -> bytes:
            return store.load("a")

        with pytest.raises(RuntimeError, match="portal"):
            Portal.default().call(misuse)


def test_a_coroutine_on_one_portal_may_block_on_another(portal: Portal) -> None:
    with opened(memory_url(), portal=portal) as store:
        store.store("a", b"other portal")

        async def cross() -> bytes:
            return store.load("a")

        other = Portal("test-other-portal")
        try:
            assert other.call(cross) == b"other portal"
        finally:
            other.stop()


# 5. timeouts ----------------------------------------------------------------------------------------------


def test_call_with_timeout_cancels_the_coroutine(portal: Portal) -> None:
    started, cancelled = threading.Event(), threading.Event()
    begin = time.monotonic()
    with pytest.raises(TimeoutError, match=r"did not finish in 0\.2 s"):
        portal.call_with_timeout(0.2, sleeper(started, cancelled))
    elapsed = time.monotonic() - begin
    assert started.is_set()
    assert cancelled.wait(2), "the timed-out coroutine was left running"
    assert 0.2 <= elapsed < 3
    # the portal still works, and a generous timeout returns the result
    assert portal.call_with_timeout(5, sleeper(threading.Event(), threading.Event(), 0.01)) == "slept"
    assert portal.call(sleeper(threading.Event(), threading.Event(), 0)) == "slept"


def test_timeout_waits_for_the_cancelled_coroutine_to_clean_up(portal: Portal) -> None:
    """The caller goes on only after the cancelled coroutine's cleanup ran (sync.py: _wait_cancelled)."""
    started, cleaned = threading.Event(), threading.Event()

    async def slow_cleanup() -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            await asyncio.sleep(0.3)  # e.g. removing a half-written temp file
            cleaned.set()
            raise

    with pytest.raises(TimeoutError):
        portal.call_with_timeout(0.2, slow_cleanup)
    assert started.is_set()
    cleaned_before_return = cleaned.is_set()
    assert cleaned.wait(5)  # it does clean up, eventually
    assert cleaned_before_return, "call_with_timeout returned while the cancelled coroutine was still cleaning up"


def test_call_passes_arguments(portal: Portal) -> None:
    async def combine(a: int, b: int, *, c: int) -> tuple[int, int, int]:
        return a, b, c

    assert portal.call(combine, 1, 2, c=3) == (1, 2, 3)
    assert portal.call_with_timeout(1, combine, 4, b=5, c=6) == (4, 5, 6)


def test_sync_store_timeout_cancels_the_backend_call(portal: Portal) -> None:
    backend = SlowLoadBackend()
    store = SyncStore(backend=backend, portal=portal, timeout=0.2)
    assert store.timeout == 0.2
    store.create()
    with store:
        store.store("a", b"fast")  # only load is slow
        begin = time.monotonic()
        with pytest.raises(TimeoutError, match=r"0\.2 s"):
            store.load("a")
        assert time.monotonic() - begin < 3
        assert backend.load_started.is_set()
        assert backend.load_cancelled.wait(2), "the timed-out load was left running"
        assert store.stats["load_calls"] == 1  # the Store's own cleanup ran too
        assert store.info("a").size == 4  # the store is still usable


def test_sync_store_timeout_with_emulated_latency() -> None:
    url = memory_url()
    setup = SyncStore(url)
    setup.create()
    slow = SyncStore(url, latency=30, timeout=0.2)
    slow.open()  # open makes no timed backend call
    try:
        begin = time.monotonic()
        with pytest.raises(TimeoutError):
            slow.store("a", b"slow")
        assert time.monotonic() - begin < 3
        # the store coroutine was cancelled and unwound: its statistics are complete
        assert slow.stats["store_calls"] == 1
        assert slow.stats["store_volume"] == 0
    finally:
        slow.close()
        setup.destroy()


def test_timeout_error_raised_by_the_coroutine_is_not_masked(portal: Portal) -> None:
    """A TimeoutError the coroutine raises itself is its result, not a portal timeout.

    On Python >= 3.11 ``concurrent.futures.TimeoutError is TimeoutError``, so the portal must not treat
    every TimeoutError out of ``future.result()`` as its own.
    """

    class BackendTimeout(TimeoutError):
        pass

    raised = BackendTimeout("the server did not answer")

    async def fails() -> None:
        raise raised

    with pytest.raises(TimeoutError) as excinfo:
        portal.call(fails)
    assert excinfo.value is raised, f"got {excinfo.value!r} instead of the coroutine's own error"
    with pytest.raises(TimeoutError) as excinfo:
        portal.call_with_timeout(10, fails)
    assert excinfo.value is raised


# 6. interrupts --------------------------------------------------------------------------------------------


def _interrupted_call(portal: Portal, interrupt: Callable[[], None]) -> dict[str, Any]:
    """Block in ``portal.call`` on a 30 s sleep while another thread runs ``interrupt`` after 0.2 s.

    A watchdog cancels the coroutine after 3 s if the interrupt did not get through, so this returns
    quickly either way; a KeyboardInterrupt still pending after the call is taken here, not in pytest.
    """
    started, cancelled, watchdog_fired = threading.Event(), threading.Event(), threading.Event()
    running: list[tuple[asyncio.AbstractEventLoop, asyncio.Task[Any]]] = []

    async def sleep() -> str:
        running.append((asyncio.get_running_loop(), asyncio.current_task()))  # type: ignore[arg-type]
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "slept"  # pragma: no cover

    def fire() -> None:
        if started.wait(5):
            interrupt()

    def watchdog() -> None:
        if running:
            watchdog_fired.set()
            loop, task = running[0]
            loop.call_soon_threadsafe(task.cancel)

    result: dict[str, Any] = {"outcome": None, "late_interrupt": False}
    interrupter = threading.Timer(0.2, fire)
    guard = threading.Timer(3.0, watchdog)
    with default_sigint_handler():
        try:
            interrupter.start()
            guard.start()
            begin = time.monotonic()
            try:
                portal.call(sleep)
                result["outcome"] = "returned"
            except KeyboardInterrupt:
                result["outcome"] = "interrupted"
            except concurrent.futures.CancelledError:
                result["outcome"] = "cancelled"
            result["elapsed"] = time.monotonic() - begin
            time.sleep(0.05)  # an interrupt still pending fires here
        except KeyboardInterrupt:
            result["late_interrupt"] = True
        finally:
            guard.cancel()
            interrupter.cancel()
            interrupter.join()
            guard.join()
    result["cancelled"] = cancelled.wait(2)
    result["watchdog_fired"] = watchdog_fired.is_set()
    return result


def test_sigint_to_the_main_thread_cancels_the_call(portal: Portal) -> None:
    result = _interrupted_call(portal, lambda: signal.pthread_kill(threading.main_thread().ident, signal.SIGINT))
    assert result["outcome"] == "interrupted", result
    assert not result["watchdog_fired"], result
    assert result["cancelled"], "the interrupted coroutine was left running"
    assert result["elapsed"] < 2.5
    assert portal.call(asyncio.sleep, 0, "still works") == "still works"


def test_interrupt_main_cancels_the_call(portal: Portal) -> None:
    result = _interrupted_call(portal, _thread.interrupt_main)
    assert not result["watchdog_fired"], (
        "_thread.interrupt_main() did not reach the main thread blocked in Portal.call: the interrupt "
        f"was only noticed when the watchdog cancelled the coroutine after 3 s ({result})"
    )
    assert result["outcome"] == "interrupted", result
    assert result["cancelled"], "the interrupted coroutine was left running"
    assert not result["late_interrupt"]
    assert result["elapsed"] < 2.5
    assert portal.call(asyncio.sleep, 0, "still works") == "still works"


# 7. fork ------------------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_fork_child_gets_a_fresh_portal(tmp_path: Path) -> None:
    url = f"file://{tmp_path / 'store'}"
    parent_store = SyncStore(url)
    parent_store.create()
    parent_store.open()
    try:
        parent_store.store("parent", b"from the parent")
        default = Portal.default()
        assert parent_store.portal is default
        assert default.running
        assert default.thread is not None
        parent_thread = default.thread
        parent_native_id = parent_thread.native_id

        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child; coverage does not follow it
            report: dict[str, Any] = {"ok": False}
            try:
                os.close(read_end)
                signal.signal(signal.SIGALRM, signal.SIG_DFL)
                signal.alarm(10)  # a deadlock kills the child instead of hanging the test
                portal = Portal.default()
                report["same_default"] = portal is default
                report["running_before_use"] = portal.running
                report["old_thread_alive"] = parent_thread.is_alive()
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    child_store = SyncStore(url)
                    with child_store:
                        child_store.store("child", b"from the child")
                        report["child_load"] = child_store.load("child").decode()
                        report["parent_load"] = child_store.load("parent").decode()
                        report["names"] = [info.name for info in child_store.list()]
                    report["direct_call"] = portal.call(asyncio.sleep, 0, "direct")
                    gc.collect()
                report["warnings"] = [f"{w.category.__name__}: {w.message}" for w in caught]
                new_thread = portal.thread
                report["new_thread_alive"] = new_thread is not None and new_thread.is_alive()
                report["new_thread_is_old"] = new_thread is parent_thread
                report["new_native_id"] = None if new_thread is None else new_thread.native_id
                report["new_thread_name"] = None if new_thread is None else new_thread.name
                report["ok"] = True
            except BaseException as exc:
                report["error"] = repr(exc)
            finally:
                try:
                    os.write(write_end, json.dumps(report).encode())
                finally:
                    os._exit(0 if report.get("ok") else 1)

        os.close(write_end)
        deadline = time.monotonic() + 15
        while True:
            waited, status = os.waitpid(pid, os.WNOHANG)
            if waited:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                pytest.fail("the forked child hung")
            time.sleep(0.02)
        with os.fdopen(read_end, "rb") as pipe:
            raw = pipe.read()
        report = json.loads(raw) if raw else {}
        assert os.WIFEXITED(status), f"child died: status {status:#x}, report {report}"
        assert os.WEXITSTATUS(status) == 0, report
        assert report["child_load"] == "from the child"
        assert report["parent_load"] == "from the parent"
        assert report["names"] == ["child", "parent"]
        assert report["direct_call"] == "direct"
        assert report["same_default"]
        assert not report["running_before_use"]
        assert not report["old_thread_alive"]
        assert report["new_thread_alive"]
        assert not report["new_thread_is_old"]
        assert report["new_native_id"] != parent_native_id
        assert report["new_thread_name"] == "aiodepot-portal"
        assert report["warnings"] == []

        # the parent's portal and store are untouched, and see the child's item
        assert default.thread is parent_thread
        assert parent_thread.is_alive()
        assert parent_store.load("child") == b"from the child"
    finally:
        parent_store.close()
        parent_store.destroy()


# 8. portal lifecycle and resource warnings -------------------------------------------------------------


def test_portal_starts_lazily_stops_and_restarts() -> None:
    name = f"test-lifecycle-{uuid.uuid4().hex[:8]}"
    portal = Portal(name)
    try:
        assert portal.name == name
        assert not portal.running
        assert portal.thread is None
        assert repr(portal) == f"<Portal {name!r} stopped>"

        async def where() -> str:
            return threading.current_thread().name

        assert portal.call(where) == name
        first = portal.thread
        assert first is not None
        assert first.name == name
        assert first.daemon
        assert first is not threading.current_thread()
        assert portal.running
        assert repr(portal) == f"<Portal {name!r} running>"

        portal.stop()
        assert not first.is_alive()  # joined
        assert not portal.running
        portal.stop()  # stopping a stopped portal is harmless

        assert portal.call(where) == name  # starts again on the next call
        second = portal.thread
        assert second is not None
        assert second is not first
        assert second.is_alive()
    finally:
        portal.stop()
    assert not portal.running


def test_stop_cancels_work_in_flight() -> None:
    portal = Portal("test-stop-in-flight")
    started, cancelled = threading.Event(), threading.Event()
    outcome: list[BaseException | str] = []

    def caller() -> None:
        try:
            outcome.append(portal.call(sleeper(started, cancelled)))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=caller)
    thread.start()
    try:
        assert started.wait(5)
        loop_thread = portal.thread
        portal.stop()
        assert loop_thread is not None
        assert not loop_thread.is_alive()
        assert cancelled.is_set()
        thread.join(5)
        assert not thread.is_alive()
        assert len(outcome) == 1
        assert isinstance(outcome[0], concurrent.futures.CancelledError)
    finally:
        portal.stop()


def test_default_portal_is_shared() -> None:
    assert Portal.default() is Portal.default()
    assert Portal.default().name == "aiodepot-portal"
    store = SyncStore(memory_url())
    assert store.portal is Portal.default()
    store.create()
    store.destroy()
    assert Portal.default().running
    assert Portal.default().thread is not None
    assert Portal.default().thread.name == "aiodepot-portal"


def test_separate_portals_run_on_their_own_named_threads(portal: Portal) -> None:
    async def thread_name() -> str:
        return threading.current_thread().name

    with opened(memory_url(), portal=portal) as store:
        assert store.portal is portal
        assert portal.call(thread_name) == portal.name
        assert Portal.default().call(thread_name) == "aiodepot-portal"
        assert portal.thread is not Portal.default().thread


def test_wrap_an_existing_async_store(portal: Portal) -> None:
    async_store = Store(memory_url())
    wrapped = SyncStore.wrap(async_store, portal=portal, timeout=5)
    assert wrapped.async_store is async_store
    assert wrapped.portal is portal
    assert wrapped.timeout == 5
    assert SyncStore.wrap(async_store).portal is Portal.default()
    wrapped.create()
    with wrapped:
        wrapped.store("a", b"wrapped")
        assert portal.call(async_store.load, "a") == b"wrapped"
    assert not async_store.opened
    wrapped.destroy()
    assert repr(wrapped) == f"<SyncStore {async_store!r}>"


def test_unclosed_sync_store_warns_when_deleted() -> None:
    url = memory_url()
    store = SyncStore(url)
    store.create()
    store.open()
    # a warning raised inside __del__ during collection is "unraisable"; call the finalizer directly
    with pytest.warns(ResourceWarning, match=r"<SyncStore .*> was not closed"):
        store.__del__()
    store.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        store.__del__()  # closed: silent
    store.destroy()


def test_unclosed_sync_store_warns_on_garbage_collection() -> None:
    url = memory_url()
    SyncStore(url).create()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        store = SyncStore(url)
        store.open()
        del store
        gc.collect()
    messages = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert any(m.startswith("<SyncStore") and m.endswith("was not closed") for m in messages), messages

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        store = SyncStore(url)
        with store:
            pass
        del store
        unopened = SyncStore(url)
        del unopened
        gc.collect()
    assert [str(w.message) for w in caught] == []
    SyncStore(url).destroy()


# 9. errors ------------------------------------------------------------------------------------------------


def test_errors_come_through_unchanged(url: str) -> None:
    with opened(url) as store:
        with pytest.raises(ObjectNotFound) as excinfo:
            store.load("missing")
        assert isinstance(excinfo.value, KeyError)
        assert isinstance(excinfo.value, aiodepot.StoreError)
        with pytest.raises(KeyError):
            store.hash("missing")

        for bad in ("UPPER", "a/../b", "", "x.del", "/abs"):
            with pytest.raises(InvalidName) as name_info:
                store.store(bad, b"")
            assert isinstance(name_info.value, ValueError)
        with pytest.raises(ValueError):
            store.info("a b")
        with pytest.raises(TypeError, match="not str"):
            store.store("a", "text")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="size"):
            store.load("a", size=-1)


def test_the_very_exception_object_is_raised(portal: Portal) -> None:
    error = ObjectNotFound("exact")

    async def fails() -> None:
        raise error

    with pytest.raises(ObjectNotFound) as excinfo:
        portal.call(fails)
    assert excinfo.value is error
    # the traceback reaches into the coroutine
    assert any(entry.name == "fails" for entry in excinfo.traceback)


def test_constructor_errors_are_raised_directly() -> None:
    with pytest.raises(ValueError, match="either a store URL or a backend"):
        SyncStore()
    with pytest.raises(aiodepot.BackendURLInvalid):
        SyncStore("nope://x")
    with pytest.raises(ValueError, match="levels"):
        SyncStore(memory_url(), config={"data/": {"levels": [9]}})


# 10. bulk calls under Ctrl-C, fork on every local backend, close twice (issue 18) -------------------------


@pytest.fixture(params=["memory", "file", "sqlite"])
def local_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL that nothing has created yet, on each local backend the direct path serves."""
    if request.param == "memory":
        return memory_url()
    if request.param == "file":
        return f"file://{tmp_path / 'store'}"
    return f"sqlite://{tmp_path / 'store.db'}"


BULK_ITEMS = {"memory": 200_000, "file": 10_000, "sqlite": 100_000}
"""Items in a bulk call that Ctrl-C interrupts: seconds of work on this machine, so the interrupt lands inside."""


@pytest.mark.parametrize("operation", ["store_many", "load_many", "delete_many"])
def test_ctrl_c_stops_a_bulk_call_and_nothing_runs_on(local_url: str, operation: str) -> None:
    url = local_url
    count = BULK_ITEMS[url.partition(":")[0]]
    items = {f"k{i:07d}": b"v" for i in range(count)}
    names = list(items)
    main = threading.main_thread().ident
    assert main is not None
    fired = threading.Event()

    def progress(done: Progress) -> None:  # on the portal's thread, while the call runs
        if done.items_done >= 100 and not fired.is_set():
            fired.set()
            signal.pthread_kill(main, signal.SIGINT)

    def measure() -> tuple[int, int]:
        return store.count(), store.stats["backend_load_calls"]

    with opened(url) as store:
        if operation != "store_many":
            store.store_many(items)
        with default_sigint_handler():
            with pytest.raises(KeyboardInterrupt):
                if operation == "store_many":
                    store.store_many(items, progress=progress)
                elif operation == "load_many":
                    store.load_many(names, progress=progress)
                else:
                    store.delete_many(names, progress=progress)
            assert fired.is_set()
            at_catch = measure()
            time.sleep(0.3)  # work left running on the loop or in a thread would show meanwhile
            assert measure() == at_catch
        stored, loads = at_catch
        if operation == "store_many":
            assert 0 < stored < count  # stopped part-way, each item whole
        elif operation == "load_many":
            assert stored == count and 0 < loads < count
        else:
            assert 0 < stored < count
        started = time.monotonic()
        store.store("after", b"ok")  # the loop is free: no interrupted work ahead of this call
        assert store.load("after") == b"ok"
        assert store.load_many(["after"]) == [b"ok"]
        assert time.monotonic() - started < 1.0


def _run_in_fork(child: Callable[[], dict[str, Any]], *, limit: float = 30.0) -> dict[str, Any]:
    """Run ``child()`` in a forked child and return its report; a child that hangs is killed after
    ``limit`` seconds and fails the test (as does one that dies or raises)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child; coverage does not follow it
        report: dict[str, Any] = {"ok": False}
        try:
            os.close(read_end)
            report.update(child())
            report["ok"] = True
        except BaseException as exc:
            report["error"] = repr(exc)
        finally:
            try:
                os.write(write_end, json.dumps(report).encode())
            finally:
                os._exit(0 if report.get("ok") else 1)
    os.close(write_end)
    deadline = time.monotonic() + limit
    while not os.waitpid(pid, os.WNOHANG)[0]:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(read_end)
            pytest.fail(f"the forked child hung for {limit} s")
        time.sleep(0.02)
    with os.fdopen(read_end, "rb") as pipe:
        raw = pipe.read()
    report = json.loads(raw) if raw else {}
    assert report.get("ok"), report
    return report


def _work_in_child(store: SyncStore, tag: str) -> dict[str, Any]:
    """What a child does with a store its parent opened: single and bulk writes, reads, deletes, a listing."""
    store.store(f"{tag}-single", b"1")
    store.store_many({f"{tag}-bulk-{i}": b"2" for i in range(20)})
    store.delete(f"{tag}-bulk-0")
    store.delete_many([f"{tag}-bulk-1"])
    return {
        "single": store.load(f"{tag}-single").decode(),
        "bulk": [value.decode() for value in store.load_many([f"{tag}-bulk-2", f"{tag}-bulk-19"])],
        "parent": store.load("parent").decode(),
        "count": len([info for info in store.list() if info.name.startswith(f"{tag}-")]),
    }


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Python 3.12+: fork() of a process with threads
def test_store_opened_before_fork_works_in_the_child(local_url: str) -> None:
    with opened(local_url) as store:
        store.store("parent", b"p")
        assert store.load("parent") == b"p"  # the parent's direct path, readers and portal are in use

        def child() -> dict[str, Any]:
            report = _work_in_child(store, "child")
            store.close()
            store.close()
            return report

        report = _run_in_fork(child)
        assert report["single"] == "1"
        assert report["bulk"] == ["2", "2"]
        assert report["parent"] == "p"
        assert report["count"] == 19  # 1 single + 20 bulk - 2 deleted
        # the parent's store is still open and working after the child closed its copy
        store.store("parent-after", b"q")
        assert store.load("parent-after") == b"q"
        if not local_url.startswith("memory:"):  # a memory store's data went separate ways at the fork
            assert store.load("child-single") == b"1"
            assert sorted(store.load_many(["child-bulk-2", "child-bulk-19"])) == [b"2", b"2"]


_forked_store: SyncStore | None = None
"""The store a fork pool's workers inherit (module state: the fork start method copies it)."""


def _pool_task(index: int) -> list[str]:
    assert _forked_store is not None
    report = _work_in_child(_forked_store, f"pool{index}")
    return [report["single"], *report["bulk"], report["parent"], str(report["count"])]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Python 3.12+: fork() of a process with threads
def test_store_opened_before_fork_works_in_a_fork_pool(local_url: str) -> None:
    import multiprocessing

    global _forked_store
    with opened(local_url) as store:
        store.store("parent", b"p")
        _forked_store = store
        try:
            with multiprocessing.get_context("fork").Pool(2) as pool:
                # a worker that hangs fails the test here (multiprocessing.TimeoutError), not the suite
                results = pool.map_async(_pool_task, range(6)).get(timeout=60)
        finally:
            _forked_store = None
        assert results == [["1", "2", "2", "p", "19"]] * 6
        store.store("parent-after", b"q")
        if not local_url.startswith("memory:"):
            assert store.load_many([f"pool{i}-single" for i in range(6)]) == [b"1"] * 6


def test_close_twice_or_never_opened_does_nothing(local_url: str) -> None:
    store = SyncStore(local_url)
    store.close()  # never opened, never created
    store.create()
    store.close()
    with store:
        store.store("x", b"1")
    store.close()
    store.close()
    assert not store.opened
    with pytest.raises(StoreNotOpen) as caught:
        store.load("x")
    message = str(caught.value)
    assert "the store is not open" in message
    for internal in ("Meter", "Backend", "Layer"):
        assert internal not in message
    store.destroy()


def test_close_twice_with_a_cache_layer(tmp_path: Path) -> None:
    store = SyncStore(
        f"file://{tmp_path / 'store'}", config={"": {"levels": [0], "cache": "mirror"}}, cache_url=memory_url()
    )
    store.create()
    store.close()
    store.open()
    store.store("x", b"1")
    store.close()
    store.close()
    store.destroy()
