"""The direct path (``aiodepot.store_direct``): single calls of a SyncStore in the caller's thread.

The conformance suites run through it (a Store whose single-item calls take the direct path, and backends
called through their blocking twins); then when it is taken and when not, thread safety under 16 threads,
and ``close()`` racing running calls.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from aiodepot import ItemInfo, ObjectNotFound, PermissionDenied, Store, StoreNotOpen, SyncStore
from aiodepot.backends.base import Backend
from aiodepot.backends.memory import MemoryBackend
from aiodepot.backends.posixfs import PosixFSBackend
from aiodepot.backends.sqlite import SQLiteBackend
from aiodepot.items import StoreValue
from aiodepot.names import is_internal
from tests.conformance.suite import CONFIG, BackendConformance, MakeBackend, StoreConformance

B = TypeVar("B", bound=Backend)


# 1. the conformance suites, through the direct path -------------------------------------------------------


class DirectStore(Store):
    """A Store whose single-item calls take the direct path wherever the sync facade would."""

    direct_calls = 0
    _overridden = frozenset()  # these overrides take the direct path themselves

    async def info(self, name: str, *, deleted: bool = False) -> ItemInfo:
        if self._direct_ok("info"):
            DirectStore.direct_calls += 1
            return self._info_direct(name, deleted=deleted)
        return await super().info(name, deleted=deleted)

    async def load(self, name: str, *, offset: int = 0, size: int | None = None, deleted: bool = False) -> bytes:
        if self._direct_ok("load"):
            DirectStore.direct_calls += 1
            return self._load_direct(name, offset=offset, size=size, deleted=deleted)
        return await super().load(name, offset=offset, size=size, deleted=deleted)

    async def store(self, name: str, value: Any, *, if_absent: bool = False) -> None:
        if not if_absent and isinstance(value, bytes | bytearray | memoryview) and self._direct_ok("store"):
            DirectStore.direct_calls += 1
            self._store_direct(name, value)
        else:
            await super().store(name, value, if_absent=if_absent)

    async def delete(self, name: str, *, deleted: bool = False) -> None:
        if self._direct_ok("delete"):
            DirectStore.direct_calls += 1
            self._delete_direct(name, deleted=deleted)
        else:
            await super().delete(name, deleted=deleted)


def through_blocking_twins(cls: type[B]) -> type[B]:
    """A subclass of the backend class ``cls`` whose item calls go through its blocking twins."""

    class Blocking(cls):  # type: ignore[valid-type,misc]
        async def info(self, name: str) -> ItemInfo:
            if self.has_blocking_twin("info"):
                return self.info_blocking(name)
            return await super().info(name)

        async def load(self, name: str, *, offset: int = 0, size: int | None = None) -> bytes:
            if self.has_blocking_twin("load"):
                return self.load_blocking(name, offset=offset, size=size)
            return await super().load(name, offset=offset, size=size)

        async def store(self, name: str, value: StoreValue) -> None:
            if self.has_blocking_twin("store"):
                self.store_blocking(name, value)
            else:
                await super().store(name, value)

        async def delete(self, name: str) -> None:
            if self.has_blocking_twin("delete"):
                self.delete_blocking(name)
            else:
                await super().delete(name)

        @staticmethod
        def has_blocking_twin(operation: str) -> bool:
            return operation in cls.blocking_operations

    Blocking.__name__ = f"Blocking{cls.__name__}"
    return Blocking


class _DirectStoreConformance(StoreConformance):
    @pytest.fixture
    def make_store(self, make_backend: MakeBackend) -> Callable[..., Store]:
        def make(**kwargs: Any) -> Store:
            kwargs.setdefault("config", CONFIG)
            return DirectStore(backend=make_backend(), **kwargs)

        return make


class TestMemoryDirect(_DirectStoreConformance):
    @pytest.fixture
    def make_backend(self) -> MakeBackend:
        name = f"test-{uuid.uuid4().hex}"
        return lambda: MemoryBackend(name)


class TestPosixFSDirect(_DirectStoreConformance):
    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> MakeBackend:
        return lambda: PosixFSBackend(str(tmp_path / "store"))


class TestSQLiteDirect(_DirectStoreConformance):
    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> MakeBackend:
        return lambda: SQLiteBackend(tmp_path / "store.db")


class TestMemoryBlockingTwins(BackendConformance):
    @pytest.fixture
    def make_backend(self) -> MakeBackend:
        name = f"test-{uuid.uuid4().hex}"
        return lambda: through_blocking_twins(MemoryBackend)(name)


class TestPosixFSBlockingTwins(BackendConformance):
    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> MakeBackend:
        return lambda: through_blocking_twins(PosixFSBackend)(str(tmp_path / "store"))


class TestSQLiteBlockingTwins(BackendConformance):
    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> MakeBackend:
        return lambda: through_blocking_twins(SQLiteBackend)(tmp_path / "store.db")


async def test_the_direct_store_really_takes_the_direct_path() -> None:
    before = DirectStore.direct_calls
    store = DirectStore(f"memory://{uuid.uuid4().hex}")
    await store.create()
    async with store:
        await store.store("a", b"1")
        assert await store.load("a") == b"1"
        assert (await store.info("a")).size == 1
        await store.delete("a")
    assert DirectStore.direct_calls == before + 4


# 2. when the direct path is taken -------------------------------------------------------------------------


def _sync_store(url: str, **kwargs: Any) -> SyncStore:
    store = SyncStore(url, **kwargs)
    store.create()
    store.open()
    return store


@pytest.mark.parametrize("scheme", ["memory", "file", "sqlite"])
def test_local_backends_take_it(scheme: str, tmp_path: Path) -> None:
    url = {
        "memory": f"memory://{uuid.uuid4().hex}",
        "file": f"file://{tmp_path}/s",
        "sqlite": f"sqlite://{tmp_path}/s.db",
    }
    store = _sync_store(url[scheme])
    try:
        for operation in ("load", "info", "store", "delete"):
            assert store.async_store._direct_ok(operation), operation
        store.store("a", b"value")
        assert store.load("a") == b"value"
        assert store.load("a", offset=-3, size=2) == b"lu"
        assert store.exists("a") and not store.exists("b")
        assert store.info("a").size == 5
        store.delete("a")
        with pytest.raises(ObjectNotFound) as excinfo:
            store.load("a")
        assert excinfo.value.store == store.url  # errors name the store, as on the portal
        figures = store.stats
        assert figures["load_calls"] == 3 and figures["store_calls"] == 1 and figures["backend_load_calls"] == 2
    finally:
        store.close()


def test_the_portal_thread_is_never_used_for_direct_calls() -> None:
    store = _sync_store(f"memory://{uuid.uuid4().hex}")
    try:
        loop_thread_jobs: list[str] = []
        original = store.async_store.load

        async def watched(*args: Any, **kwargs: Any) -> bytes:
            loop_thread_jobs.append("load")
            return await original(*args, **kwargs)

        store.async_store.load = watched  # type: ignore[method-assign]
        store.store("a", b"1")
        assert store.load("a") == b"1"
        assert loop_thread_jobs == []
    finally:
        store.close()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"timeout": 5.0},  # a timeout is enforced by cancelling on the loop
        {"latency": 0.0001},  # emulation sleeps on the loop
        {"config": {"": {"levels": [0], "cache": "mirror"}}, "cache_url": "memory://"},
    ],
    ids=["timeout", "emulation", "cache"],
)
def test_not_taken_where_the_loop_is_needed(kwargs: dict[str, Any]) -> None:
    store = _sync_store(f"memory://{uuid.uuid4().hex}", **kwargs)
    try:
        assert not (store.timeout is None and store.async_store._direct_ok("load"))
        store.store("a", b"1")
        assert store.load("a") == b"1"
    finally:
        store.close()


def test_a_per_operation_timeout_of_the_async_store_keeps_calls_on_the_loop() -> None:
    store = _sync_store(f"memory://{uuid.uuid4().hex}")
    try:
        store.async_store.timeout = 5.0
        assert not store.async_store._direct_ok("load")
    finally:
        store.close()


def test_a_subclass_that_overrides_an_async_hook_loses_its_twin() -> None:
    class Slow(MemoryBackend):
        async def _load(self, name: str, offset: int, size: int | None) -> bytes:
            return b"async" if name == "a" else await super()._load(name, offset, size)  # not layout.hid

    class SlowEverywhere(MemoryBackend):
        async def _load(self, name: str, offset: int, size: int | None) -> bytes:
            return b"async"

        def _load_blocking(self, name: str, offset: int, size: int | None) -> bytes:
            return b"blocking"

    assert not Slow().has_blocking("load") and Slow().has_blocking("store")
    assert SlowEverywhere().has_blocking("load")
    store = SyncStore(backend=Slow())
    store.create()
    with store:
        store.store("a", b"1")
        assert store.load("a") == b"async"


def test_a_store_subclass_that_overrides_a_method_keeps_it_on_the_loop() -> None:
    class Counting(Store):
        loads = 0

        async def load(self, name: str, *, offset: int = 0, size: int | None = None, deleted: bool = False) -> bytes:
            Counting.loads += 1
            return await super().load(name, offset=offset, size=size, deleted=deleted)

    store = SyncStore.wrap(Counting(f"memory://{uuid.uuid4().hex}"))
    store.create()
    with store:
        assert not store.async_store._direct_ok("load") and store.async_store._direct_ok("store")
        store.store("a", b"1")
        assert store.load("a") == b"1" and Counting.loads == 1


def test_layers_offer_no_twins_but_the_meter_does() -> None:
    from aiodepot.layers.meter import Meter
    from aiodepot.layers.views import ReadOnly
    from aiodepot.stats import Stats

    backend = MemoryBackend()
    assert Meter(backend, Stats()).has_blocking("load")
    assert not ReadOnly(backend).has_blocking("load")
    assert not Meter(ReadOnly(backend), Stats()).has_blocking("load")


def test_the_bare_path_keeps_the_backends_permissions_and_counts() -> None:
    """Right under the meter, the direct path calls the backend's blocking operation itself: it must still
    refuse what the permission map refuses, and count the backend calls as the meter would."""
    name = uuid.uuid4().hex
    SyncStore(f"memory://{name}").create()
    store = SyncStore(backend=MemoryBackend(name, permissions={"": "lr", "data": "lrw"}))
    with store:
        assert store.async_store._bare is not None
        store.store("data/a", b"1")
        with pytest.raises(PermissionDenied):
            store.store("config/a", b"1")
        assert store.load("data/a") == b"1"
        with pytest.raises(PermissionDenied):
            store.store("data/a", b"2")  # "w" creates, replacing takes "W"
        figures = store.stats
        assert figures["store_calls"] == 3 and figures["backend_store_calls"] == 1
        assert figures["load_calls"] == 1 and figures["backend_load_calls"] == 1
        assert figures["backend_load_volume"] == 1 and figures["backend_store_volume"] == 1


def test_a_backend_with_its_own_checks_is_called_through_them() -> None:
    class Picky(MemoryBackend):
        def _check_load(self, name: str, size: int | None) -> None:
            super()._check_load(name, size)
            if name.startswith("secret"):
                raise PermissionDenied(f"not {name}")

    store = SyncStore(backend=Picky())
    store.create()
    with store:
        assert store.async_store._bare is None and store.async_store._direct_ok("load")
        store.store("secret", b"1")
        with pytest.raises(PermissionDenied):
            store.load("secret")


def test_nested_and_deleted_names_on_the_direct_path() -> None:
    store = _sync_store(f"memory://{uuid.uuid4().hex}", config={"data/": {"levels": [1]}, "": {"levels": [0]}})
    try:
        assert not store.async_store._flat
        store.store("data/abcd", b"1")
        store.store("top", b"2")
        assert store.backend.load_blocking("data/ab/abcd") == b"1"
        store.async_store.set_levels({"": {"levels": [0]}})
        assert store.async_store._flat
        assert store.load("top") == b"2"
        store.move("top", delete=True)
        assert store.load("top", deleted=True) == b"2"
    finally:
        store.close()


# 3. threads -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["memory", "file", "sqlite"])
def test_sixteen_threads(scheme: str, tmp_path: Path) -> None:
    url = {
        "memory": f"memory://{uuid.uuid4().hex}",
        "file": f"file://{tmp_path}/s",
        "sqlite": f"sqlite://{tmp_path}/s.db",
    }[scheme]
    store = _sync_store(url, quota=10**9)
    rounds, threads = 100, 16
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def worker(n: int) -> None:
        try:
            start.wait()
            for i in range(rounds):
                own = f"t{n}-{i}"
                store.store(own, own.encode())
                store.store("shared", own.encode())  # everyone replaces one item
                assert store.load(own) == own.encode()
                assert store.load("shared").startswith(b"t")
                assert store.info(own).size == len(own)
                if i % 2:
                    store.delete(own)
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    try:
        assert errors == []
        figures = store.stats
        total = rounds * threads
        assert figures["store_calls"] == 2 * total
        assert figures["load_calls"] == 2 * total and figures["backend_load_calls"] == 2 * total
        assert figures["info_calls"] == total and figures["delete_calls"] == total // 2
        assert figures["store_busy_time"] <= figures["store_time"]
        kept = {info.name for info in store.list()}
        expected = {f"t{n}-{i}" for n in range(threads) for i in range(0, rounds, 2)} | {"shared"}
        assert kept == expected
        usage = sum(len(name) for name in expected if name != "shared") + len(store.load("shared"))
        assert store.quota()["usage"] == usage  # the quota accounting saw every store and delete
    finally:
        store.close()


class _GatedLoads(MemoryBackend):
    """Loads that wait until the test lets them finish."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.entered = threading.Event()
        self.release = threading.Event()

    def _load_blocking(self, name: str, offset: int, size: int | None) -> bytes:
        if not is_internal(name):  # the open's read of layout.hid passes
            self.entered.set()
            assert self.release.wait(10)
        return super()._load_blocking(name, offset, size)

    async def _load(self, name: str, offset: int, size: int | None) -> bytes:
        return self._load_blocking(name, offset, size)


def test_close_waits_for_running_direct_calls() -> None:
    backend = _GatedLoads(uuid.uuid4().hex)
    store = SyncStore(backend=backend)
    store.create()
    store.open()
    store.store("a", b"1")
    results: list[object] = []
    loader = threading.Thread(target=lambda: results.append(store.load("a")))
    loader.start()
    assert backend.entered.wait(10)
    closer = threading.Thread(target=store.close)
    closer.start()
    closer.join(0.2)
    assert closer.is_alive() and store.opened  # close waits for the load inside
    with pytest.raises(StoreNotOpen):  # and lets no new call in meanwhile
        store.info("a")
    backend.release.set()
    loader.join(10)
    closer.join(10)
    assert results == [b"1"] and not store.opened
    with pytest.raises(StoreNotOpen):
        store.load("a")
    store.open()  # the gate opens again with the store
    assert store.load("a") == b"1"
    store.close()


def test_calls_racing_close_and_open() -> None:
    store = _sync_store(f"memory://{uuid.uuid4().hex}")
    store.store("a", b"1")
    stop = threading.Event()
    outcomes: list[str] = []
    unexpected: list[BaseException] = []

    def caller() -> None:
        while not stop.is_set():
            try:
                assert store.load("a") == b"1"
                store.store("b", b"2")
                outcomes.append("ok")
            except StoreNotOpen:
                outcomes.append("closed")
            except BaseException as exc:
                unexpected.append(exc)
                return

    threads = [threading.Thread(target=caller) for _ in range(4)]
    for thread in threads:
        thread.start()
    for _ in range(20):
        store.close()
        store.open()
    stop.set()
    for thread in threads:
        thread.join(10)
    store.close()
    assert unexpected == []
    assert "ok" in outcomes
