"""The cache layer: the conformance suite around memory and posixfs in each mode, plus every cache semantic."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
import uuid
import warnings
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from aiodepot import BackendURLInvalid, ObjectNotFound, Store, SyncStore
from aiodepot.backends.base import Backend
from aiodepot.backends.memory import MemoryBackend
from aiodepot.backends.posixfs import PosixFSBackend
from aiodepot.errors import BackendError, StoreAlreadyOpen
from aiodepot.layers import Cache, CacheMode, CachePolicy, Layer
from tests.conformance.suite import BackendConformance, MakeBackend, StoreConformance, key

WRITETHROUGH = {"": "writethrough"}
MIRROR = {"": "mirror"}
LIMITED = {"": {"cache": "writethrough", "size": 300_000, "max_age": 3600}}


def memory_name() -> str:
    return f"test-{uuid.uuid4().hex}"


def memory_pair(policies: dict[str, Any]) -> MakeBackend:
    primary, cache = memory_name(), memory_name()
    return lambda: Cache(MemoryBackend(primary), MemoryBackend(cache), policies)


def posixfs_pair(tmp_path: Path, policies: dict[str, Any]) -> MakeBackend:
    return lambda: Cache(PosixFSBackend(tmp_path / "primary"), PosixFSBackend(tmp_path / "cache"), policies)


# the conformance suite -------------------------------------------------------------------------------------


class _WritethroughOverrides:
    async def test_stats(self, store: Store) -> None:
        # as the suite's, but the loads are cache hits: the value went into the cache when it was stored
        await store.store("config/a", b"12345")
        assert await store.load("config/a") == b"12345"
        assert await store.load("config/a", size=2) == b"12"
        stats = store.stats
        assert stats["store_calls"] == 1 and stats["load_calls"] == 2 and stats["load_volume"] == 7
        assert stats["cache_hits"] == 2 and stats["cache_misses"] == 0 and stats["cache_hit_ratio"] == 1
        assert stats["cache_store_calls"] == 1 and stats["cache_store_volume"] == 5
        assert stats["cache_load_volume"] == 7 and stats["cache_errors"] == 0 and not stats["cache_disabled"]

    async def test_latency_emulation(self, make_store: Callable[..., Store]) -> None:
        # as the suite's, but the emulated latency stands for the primary: cache hits skip it, misses pay it
        names = [f"flat/x{i:02}" for i in range(20)]
        setup = make_store()
        await setup.create()
        async with setup:
            await setup.store_many(dict.fromkeys(names, b"x"))
        store = make_store(latency=0.05)
        emulator = store.emulator
        async with store:
            await store.cache_invalidate()
            await store.load(names[0])  # a miss goes to the "far-away" primary
            assert emulator.round_trips == 1 and emulator.in_flight == 0
            assert emulator.longest == pytest.approx(0.05)
            await store.load(names[0])  # a hit: no emulated round trip
            assert emulator.round_trips == 1
            await store.cache_invalidate()
            assert await store.load_many(names, max_concurrency=20) == [b"x"] * 20
            assert emulator.round_trips == 21 and emulator.in_flight == 0
            assert emulator.most_in_flight == 20  # the 20 latencies overlap ...
            assert emulator.longest == pytest.approx(0.05)  # ... they do not add up
        await setup.destroy()

    async def test_bandwidth_emulation_is_shared(self, make_store: Callable[..., Store]) -> None:
        # as the suite's, with the values evicted first: hits do not cross the emulated link
        names = [f"flat/x{i}" for i in range(4)]  # distinct: concurrent loads of one name share one read
        setup = make_store()
        await setup.create()
        async with setup:
            await setup.store_many({name: b"x" * 50_000 for name in names})  # 0.05 s each on the link
        store = make_store(bandwidth=8 * 1_000_000)  # 1 MB/s
        async with store:
            await store.cache_invalidate()
            before = time.monotonic()
            await store.load_many(names, max_concurrency=4)
            # concurrency cannot create bandwidth: the four values crossed the link one after the other
            assert store.emulator.link_busy_until - before >= 4 * 0.05
        await setup.destroy()


class TestWritethroughMemoryStore(_WritethroughOverrides, StoreConformance):
    @pytest.fixture
    def make_backend(self) -> MakeBackend:
        return memory_pair(WRITETHROUGH)


class TestWritethroughMemoryBackend(BackendConformance):
    @pytest.fixture
    def make_backend(self) -> MakeBackend:
        return memory_pair(WRITETHROUGH)


class TestMirrorMemoryStore(StoreConformance):
    @pytest.fixture
    def make_backend(self) -> MakeBackend:
        return memory_pair(MIRROR)


class TestMirrorMemoryBackend(BackendConformance):
    @pytest.fixture
    def make_backend(self) -> MakeBackend:
        return memory_pair(MIRROR)


class TestWritethroughPosixFSStore(_WritethroughOverrides, StoreConformance):
    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> MakeBackend:
        return posixfs_pair(tmp_path, WRITETHROUGH)


class TestWritethroughPosixFSBackend(BackendConformance):
    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> MakeBackend:
        return posixfs_pair(tmp_path, WRITETHROUGH)


class TestMirrorPosixFSStore(StoreConformance):
    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> MakeBackend:
        return posixfs_pair(tmp_path, MIRROR)


class TestMirrorPosixFSBackend(BackendConformance):
    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> MakeBackend:
        return posixfs_pair(tmp_path, MIRROR)


class TestLimitedPosixFSInMemoryStore(_WritethroughOverrides, StoreConformance):
    """A posixfs primary with a size- and age-limited in-memory cache (the 1 MiB value is never cached)."""

    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> MakeBackend:
        cache = memory_name()
        return lambda: Cache(PosixFSBackend(tmp_path / "primary"), MemoryBackend(cache), LIMITED)


class TestLimitedMemoryInPosixFSBackend(BackendConformance):
    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> MakeBackend:
        primary = memory_name()
        return lambda: Cache(MemoryBackend(primary), PosixFSBackend(tmp_path / "cache"), LIMITED)


# helpers for the focused tests ------------------------------------------------------------------------------


class Counting(Layer):
    """Counts the calls that reach the wrapped backend."""

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner)
        self.calls: Counter[str] = Counter()

    async def load(self, name: str, *, offset: int = 0, size: int | None = None) -> bytes:
        self.calls["load"] += 1
        return await self.inner.load(name, offset=offset, size=size)


class Gated(Counting):
    """Loads wait for ``gate`` (to interleave a write with a load that already read the old value)."""

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner)
        self.gate = asyncio.Event()
        self.gate.set()
        self.read = asyncio.Event()

    async def load(self, name: str, *, offset: int = 0, size: int | None = None) -> bytes:
        value = await super().load(name, offset=offset, size=size)
        self.read.set()
        await self.gate.wait()
        return value


class Failing(Layer):
    """A cache backend that breaks on demand (every call raises once ``broken`` is set)."""

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner)
        self.broken = False
        self.fail_open = False

    def _check(self) -> None:
        if self.broken:
            raise BackendError("the cache disk is gone")

    async def open(self) -> None:
        if self.fail_open:
            raise BackendError("cannot open the cache")
        await super().open()

    async def load(self, name: str, *, offset: int = 0, size: int | None = None) -> bytes:
        self._check()
        return await super().load(name, offset=offset, size=size)

    async def store(self, name: str, value: Any) -> None:
        self._check()
        await super().store(name, value)

    async def delete(self, name: str) -> None:
        self._check()
        await super().delete(name)

    async def move(self, src: str, dst: str) -> None:
        self._check()
        await super().move(src, dst)

    def list(self, name: str) -> AsyncIterator[Any]:
        self._check()
        return super().list(name)


CONFIG: dict[str, dict[str, Any]] = {
    "data/": {"levels": [1], "cache": "writethrough"},
    "meta/": {"levels": [0], "cache": "mirror"},
    "plain/": {"levels": [0]},
}


async def cached_names(cache: Backend, path: str = "") -> list[str]:
    """Every item in a cache backend (recursively), by full name."""
    found: list[str] = []
    try:
        entries = [entry async for entry in cache.list(path)]
    except ObjectNotFound:
        return found
    for entry in entries:
        full = f"{path}/{entry.name}" if path else entry.name
        found.extend(await cached_names(cache, full) if entry.directory else [full])
    return sorted(found)


@pytest.fixture
def primary() -> Counting:
    return Counting(MemoryBackend(memory_name()))


@pytest.fixture
def cache_backend() -> MemoryBackend:
    return MemoryBackend()


@pytest.fixture
async def store(primary: Counting, cache_backend: MemoryBackend) -> AsyncIterator[Store]:
    store = Store(backend=primary, config=CONFIG, cache_backend=cache_backend)
    await store.create()
    async with store:
        yield store
    await store.destroy()


K1, K2, K3 = "aa" + key(1)[2:], "bb" + key(2)[2:], "cc" + key(3)[2:]


# modes, hits and misses -----------------------------------------------------------------------------------


async def test_writethrough_serves_loads_from_the_cache(
    store: Store, primary: Counting, cache_backend: MemoryBackend
) -> None:
    await store.store(f"data/{K1}", b"value-1")
    assert await cached_names(cache_backend) == [f"data/aa/{K1}"]  # same nesting as the primary
    assert await store.load(f"data/{K1}") == b"value-1"
    assert await store.load(f"data/{K1}", offset=-2, size=1) == b"-"
    assert primary.calls["load"] == 0
    assert await store.cache_invalidate(f"data/{K1}") == 1
    assert await store.load(f"data/{K1}", offset=2, size=3) == b"lue"  # a miss loads and caches the whole value
    assert primary.calls["load"] == 1
    assert await store.load(f"data/{K1}") == b"value-1"
    stats = store.stats
    assert (stats["cache_hits"], stats["cache_misses"]) == (3, 1)
    assert stats["cache_hit_ratio"] == 0.75 and stats["backend_load_calls"] == 4


async def test_mirror_reads_the_primary_and_fills_the_cache(
    store: Store, primary: Counting, cache_backend: MemoryBackend
) -> None:
    await store.store("meta/m", b"meta")
    await store.cache_invalidate("meta/m")
    assert await store.load("meta/m") == b"meta"
    assert await store.load("meta/m", size=2) == b"me"
    assert primary.calls["load"] == 2
    assert await cached_names(cache_backend) == ["meta/m"]
    assert (await cache_backend.load("meta/m")) == b"meta"
    assert store.stats["cache_hits"] == store.stats["cache_misses"] == 0


async def test_uncached_namespace_bypasses_the_cache(store: Store, cache_backend: MemoryBackend) -> None:
    await store.store("plain/p", b"p")
    assert await store.load("plain/p") == b"p"
    assert await cached_names(cache_backend) == []
    assert store.stats["cache_store_calls"] == 0


async def test_bulk_gather_and_files_go_through_the_cache(
    store: Store, primary: Counting, cache_backend: MemoryBackend, tmp_path: Path
) -> None:
    values = {f"data/{k}": k.encode() for k in (K1, K2, K3)} | {"plain/x": b"x", "meta/y": b"y"}
    await store.store_many(values)
    assert set(await cached_names(cache_backend)) == {
        f"data/aa/{K1}",
        f"data/bb/{K2}",
        f"data/cc/{K3}",
        "meta/y",
    }
    assert await store.load_many(list(values)) == list(values.values())
    assert await store.gather([(K1, 0, 4), (K2, 10, 2)], namespace="data") == K1.encode()[:4] + K2.encode()[10:12]
    assert primary.calls["load"] == 2  # plain/x and meta/y (mirror); data/ came from the cache
    source = tmp_path / "big.bin"
    source.write_bytes(b"f" * 5000)
    await store.store_file(f"data/{K1}", source)
    assert await cache_backend.load(f"data/aa/{K1}") == b"f" * 5000
    await store.delete_many([f"data/{K2}", "plain/x"])
    assert f"data/bb/{K2}" not in await cached_names(cache_backend)


# consistency ----------------------------------------------------------------------------------------------


async def test_soft_delete_undelete_rename_and_delete_follow_the_primary(
    store: Store, cache_backend: MemoryBackend
) -> None:
    name = f"data/{K1}"
    await store.store(name, b"v")
    await store.move(name, delete=True)
    assert await cached_names(cache_backend) == [f"data/aa/{K1}.del"]
    with pytest.raises(ObjectNotFound):
        await store.load(name)
    assert await store.load(name, deleted=True) == b"v"
    await store.move(name, undelete=True)
    assert await cached_names(cache_backend) == [f"data/aa/{K1}"]
    await store.move(name, f"data/{K2}")
    assert await cached_names(cache_backend) == [f"data/bb/{K2}"]
    await store.delete(f"data/{K2}")
    assert await cached_names(cache_backend) == []
    assert store.stats["cache_hits"] == 1


async def test_a_rename_over_a_cached_item_drops_its_stale_copy(store: Store, cache_backend: MemoryBackend) -> None:
    await store.store(f"data/{K1}", b"new")
    await store.store(f"data/{K2}", b"old")
    await store.cache_invalidate(f"data/{K1}")  # the source is not cached, the target is
    await store.move(f"data/{K1}", f"data/{K2}")
    assert await store.load(f"data/{K2}") == b"new"


async def test_an_overwrite_during_a_load_of_the_old_value_keeps_the_cache_right(
    cache_backend: MemoryBackend,
) -> None:
    gated = Gated(MemoryBackend(memory_name()))
    store = Store(backend=gated, config=CONFIG, cache_backend=cache_backend)
    await store.create()
    async with store:
        await store.store(f"data/{K1}", b"old")
        await store.cache_invalidate()
        gated.gate.clear()
        loading = asyncio.create_task(store.load(f"data/{K1}"))
        await gated.read.wait()  # the load has read b"old" from the primary
        await store.store(f"data/{K1}", b"new")
        gated.gate.set()
        assert await loading == b"old"
        assert await store.load(f"data/{K1}") == b"new"
        assert await cache_backend.load(f"data/aa/{K1}") == b"new"
    await store.destroy()


async def test_concurrent_loads_of_one_key_share_one_primary_read(cache_backend: MemoryBackend) -> None:
    gated = Gated(MemoryBackend(memory_name()))
    config = {"data/": {"levels": [1], "cache": "writethrough", "size": 10_000}}
    store = Store(backend=gated, config=config, cache_backend=cache_backend)
    await store.create()
    async with store:
        await store.store(f"data/{K1}", b"v" * 100)
        await store.cache_invalidate()
        gated.gate.clear()
        loads = [asyncio.create_task(store.load(f"data/{K1}")) for _ in range(50)]
        await gated.read.wait()
        gated.gate.set()
        assert await asyncio.gather(*loads) == [b"v" * 100] * 50
        assert gated.calls["load"] == 1
        stats = store.stats
        assert stats["cache_items"] == 1 and stats["cache_bytes"] == 100 and stats["cache_misses"] == 50
    await store.destroy()


# limits ---------------------------------------------------------------------------------------------------


async def test_size_limit_evicts_the_least_recently_used_first(cache_backend: MemoryBackend) -> None:
    config = {"data/": {"levels": [0], "cache": "writethrough", "size": 100}}
    store = Store(backend=MemoryBackend(memory_name()), config=config, cache_backend=cache_backend)
    await store.create()
    async with store:
        await store.store("data/a", b"a" * 40)
        await store.store("data/b", b"b" * 40)
        await store.load("data/a")  # a is now more recently used than b
        await store.store("data/c", b"c" * 40)
        assert await cached_names(cache_backend) == ["data/a", "data/c"]
        await store.store("data/big", b"x" * 101)  # never fits: not cached
        assert await cached_names(cache_backend) == ["data/a", "data/c"]
        assert await store.load("data/big") == b"x" * 101
        stats = store.stats
        assert stats["cache_evictions"] == 1 and stats["cache_evicted_volume"] == 40
        assert stats["cache_skipped"] == 2 and stats["cache_bytes"] == 80
    await store.destroy()


async def test_closing_before_a_scheduled_rescan_ran_leaves_no_coroutine_unawaited(
    cache_backend: MemoryBackend,
) -> None:
    config = {"data/": {"levels": [0], "cache": "writethrough", "size": 100}}
    store = Store(backend=MemoryBackend(memory_name()), config=config, cache_backend=cache_backend)
    await store.create()
    await store.open()
    await store.store("data/a", b"a" * 30)
    await store.store("data/b", b"b" * 30)  # more than a quarter of the limit came in: a rescan is scheduled
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await store.close()  # before the rescan started
        gc.collect()
    assert [str(warning.message) for warning in caught] == []
    await store.destroy()


async def test_a_too_big_new_value_drops_the_cached_old_one(cache_backend: MemoryBackend) -> None:
    config = {"data/": {"levels": [0], "cache": "writethrough", "size": 10}}
    store = Store(backend=MemoryBackend(memory_name()), config=config, cache_backend=cache_backend)
    await store.create()
    async with store:
        await store.store("data/a", b"small")
        await store.store("data/a", b"much too big")
        assert await cached_names(cache_backend) == []
        assert await store.load("data/a") == b"much too big"
    await store.destroy()


async def test_max_age_expires_items_at_close_and_before_insertions(tmp_path: Path) -> None:
    config = {"data/": {"levels": [0], "cache": "writethrough", "max_age": 0.3}}
    cache = PosixFSBackend(tmp_path / "cache")
    store = Store(backend=MemoryBackend(memory_name()), config=config, cache_backend=cache)
    await store.create()
    async with store:
        await store.store("data/old", b"o")
        await asyncio.sleep(0.4)
        assert await store.load("data/old") == b"o"  # a hit never expires anything; it counts as a use
        await asyncio.sleep(0.4)
        await store.store("data/new", b"n")  # making room first expires data/old
        assert await cached_names(cache) == ["data/new"]
        await asyncio.sleep(0.4)
    await cache.open()
    assert await cached_names(cache) == []  # close cleaned up
    await cache.close()
    await store.destroy()


# failures -------------------------------------------------------------------------------------------------


async def test_a_failing_cache_warns_once_and_is_turned_off(caplog: pytest.LogCaptureFixture) -> None:
    failing = Failing(MemoryBackend())
    store = Store(backend=MemoryBackend(memory_name()), config=CONFIG, cache_backend=failing)
    await store.create()
    async with store:
        await store.store(f"data/{K1}", b"one")
        failing.broken = True
        with caplog.at_level(logging.WARNING, logger="aiodepot.layers.cache"):
            await store.store(f"data/{K2}", b"two")
            assert await store.load(f"data/{K1}") == b"one"
            assert await store.load(f"data/{K2}") == b"two"
            await store.move(f"data/{K1}", delete=True)
            await store.delete(f"data/{K2}")
        warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
        assert len(warnings) == 1 and "the cache disk is gone" in warnings[0].getMessage()
        stats = store.stats
        assert stats["cache_disabled"] and stats["cache_errors"] == 1
        assert await store.load(f"data/{K1}", deleted=True) == b"one"
        assert await store.cache_invalidate() == 0
    failing.broken = False
    async with store:  # reopening turns the cache on again
        assert not store.stats["cache_disabled"]
        await store.store(f"data/{K3}", b"three")
        assert await store.load(f"data/{K3}") == b"three"
        assert store.stats["cache_hits"] >= 1
    await store.destroy()


async def test_a_cache_that_does_not_open_leaves_the_store_working(caplog: pytest.LogCaptureFixture) -> None:
    failing = Failing(MemoryBackend())
    failing.fail_open = True
    store = Store(backend=MemoryBackend(memory_name()), config=CONFIG, cache_backend=failing)
    await store.create()
    with caplog.at_level(logging.WARNING, logger="aiodepot.layers.cache"):
        async with store:
            await store.store(f"data/{K1}", b"v")
            assert await store.load(f"data/{K1}") == b"v"
            assert store.stats["cache_disabled"] and store.stats["cache_hits"] == 0
    assert "cannot open the cache" in caplog.text
    await store.destroy()


async def test_a_missing_cache_directory_is_created_at_open(tmp_path: Path) -> None:
    primary = tmp_path / "primary"
    store = Store(primary.as_uri(), config={"data/": {"levels": [1]}})
    await store.create()
    cached = Store(primary.as_uri(), config=CONFIG, cache_url=(tmp_path / "new-cache").as_uri())
    async with cached:
        await cached.store(f"data/{K1}", b"v")
        assert await cached.load(f"data/{K1}") == b"v"
        assert cached.stats["cache_hits"] == 1
    assert (tmp_path / "new-cache" / "data" / "aa" / K1).read_bytes() == b"v"
    await cached.destroy()


# sharing and invalidation ---------------------------------------------------------------------------------


async def test_two_clients_share_one_cache(tmp_path: Path) -> None:
    config = {"data/": {"levels": [1], "cache": "writethrough", "size": 1000}}
    primary, cache_url = (tmp_path / "primary").as_uri(), (tmp_path / "cache").as_uri()
    first = Store(primary, config=config, cache_url=cache_url)
    second = Store(primary, config=config, cache_url=cache_url)
    await first.create()
    async with first, second:
        await first.store(f"data/{K1}", b"1" * 300)
        assert await second.load(f"data/{K1}") == b"1" * 300  # cached by the other client
        assert second.stats["cache_hits"] == 1
        assert second.stats["cache_bytes"] == 300  # learned the item's size from the cache backend
        await second.store(f"data/{K2}", b"2" * 600)
        await first.store(f"data/{K3}", b"3" * 300)  # first's index does not know K2 yet
    # closing scans the shared namespace and evicts until both clients' items fit again
    cache = PosixFSBackend(tmp_path / "cache")
    async with cache:
        names = await cached_names(cache)
        sizes = [(await cache.info(name)).size for name in names]
    assert sum(sizes) <= 1000 and f"data/cc/{K3}" in names
    await first.destroy()


async def test_invalidate_an_item_a_namespace_or_everything(store: Store, cache_backend: MemoryBackend) -> None:
    await store.store_many({f"data/{K1}": b"1", f"data/{K2}": b"2", "meta/a": b"a", "meta/b": b"b"})
    await store.move(f"data/{K2}", delete=True)
    assert await store.cache_invalidate(f"data/{K2}", deleted=True) == 1
    assert await store.cache_invalidate(f"data/{K3}") == 0  # not cached
    assert await store.cache_invalidate("meta") == 2
    assert await cached_names(cache_backend) == [f"data/aa/{K1}"]
    await store.store("meta/a", b"a")
    assert await store.cache_invalidate() == 2
    assert await cached_names(cache_backend) == []
    assert await store.load(f"data/{K1}") == b"1"  # the primary is untouched


# configuration --------------------------------------------------------------------------------------------


def test_cache_url_builds_the_layer(tmp_path: Path) -> None:
    store = Store("memory://x", config=CONFIG, cache_url="memory://")
    assert isinstance(store.backend, Cache) and isinstance(store.backend.cache, MemoryBackend)
    assert store.backend.policies["data/"] == CachePolicy(CacheMode.WRITETHROUGH)
    assert store.backend.policies["plain/"] == CachePolicy(CacheMode.OFF)
    store = Store("memory://x", config=CONFIG, cache_url=(tmp_path / "c").as_uri())
    assert isinstance(store.backend, Cache) and isinstance(store.backend.cache, PosixFSBackend)
    assert not store.backend.capabilities.parallel_ranges
    with pytest.raises(BackendURLInvalid):
        Store("memory://x", config=CONFIG, cache_url="nosuch://x")
    layer = Cache(MemoryBackend(), MemoryBackend(), {"data": "mirror"})
    assert Store(backend=layer, config={"data/": {"levels": [1]}}).backend is layer


@pytest.mark.parametrize(
    ("ns_config", "message"),
    [
        ({"levels": [0], "cache": "fast"}, "'cache' of namespace 'data/' must be one of 'off', 'mirror'"),
        ({"levels": [0], "cache": 1}, "got 1"),
        ({"levels": [0], "cache": "mirror", "size": -1}, "'size' of namespace 'data/' must be bytes"),
        ({"levels": [0], "cache": "mirror", "size": 1.5}, "got 1.5"),
        ({"levels": [0], "cache": "mirror", "max_age": True}, "'max_age' of namespace 'data/'"),
        ({"levels": [0], "size": 10}, "cache mode is 'off'"),
        ({"levels": [0], "cache": "mirror", "color": "red"}, "unknown config keys for namespace 'data/'"),
    ],
)
def test_bad_policies_name_the_namespace_and_value(ns_config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        Store("memory://x", config={"data/": ns_config}, cache_url="memory://")


def test_cache_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match=r"namespaces \['data/', 'meta/'\] use the cache: give cache_url"):
        Store("memory://x", config=CONFIG)
    with pytest.raises(ValueError, match="either cache_url or cache_backend"):
        Store("memory://x", config=CONFIG, cache_url="memory://", cache_backend=MemoryBackend())
    layer = Cache(MemoryBackend(), MemoryBackend(), {"data": "mirror"})
    with pytest.raises(ValueError, match="has a Cache layer already"):
        Store(backend=layer, config=CONFIG)
    inner = MemoryBackend()
    with pytest.raises(ValueError, match="must not be the primary"):
        Cache(inner, inner, {})


async def test_set_levels_changes_policies_only_while_closed() -> None:
    store = Store("memory://" + memory_name(), config=CONFIG, cache_url="memory://")
    store.set_levels(CONFIG | {"plain/": {"levels": [0], "cache": "mirror"}})
    assert isinstance(store.backend, Cache) and store.backend.policies["plain/"].mode is CacheMode.MIRROR
    await store.create()
    async with store:
        store.set_levels({"data/": {"levels": [1, 2]}, "meta/": {"levels": [0]}, "plain/": {"levels": [0]}})
        with pytest.raises(StoreAlreadyOpen):
            store.set_levels(CONFIG)
    with pytest.raises(ValueError, match="has no cache"):
        Store("memory://y").set_levels(CONFIG)
    await store.destroy()


async def test_in_memory_lru() -> None:
    layer = Cache.in_memory(MemoryBackend(memory_name()), size=100)
    store = Store(backend=layer)
    await store.create()
    async with store:
        for name in "abcd":
            await store.store(name, name.encode() * 40)
        # c and d are cached (the 100-byte bound holds two values); a and b were evicted
        assert [await store.load(name) for name in "dcba"] == [name.encode() * 40 for name in "dcba"]
        stats = store.stats
        assert (stats["cache_hits"], stats["cache_misses"]) == (2, 2)
        assert stats["cache_bytes"] == 80 and stats["cache_evictions"] == 4
    await store.destroy()
    assert Cache.in_memory(MemoryBackend(), size=10, mode="mirror").policies[""].mode is CacheMode.MIRROR


def test_sync_store_with_a_cache(tmp_path: Path) -> None:
    primary = (tmp_path / "primary").as_uri()
    store = SyncStore(primary, config=CONFIG, cache_url="memory://")
    store.create()
    with store:
        store.store(f"data/{K1}", b"sync")
        assert store.load(f"data/{K1}") == b"sync"
        assert store.stats["cache_hits"] == 1
        assert store.cache_invalidate("data") == 1
        assert store.load(f"data/{K1}") == b"sync"
        assert store.stats["cache_misses"] == 1
    store.destroy()


async def test_timestamps_of_other_clients_order_the_index(tmp_path: Path) -> None:
    # items found by a scan (cached in an earlier session) are ordered by their atime
    config = {"data/": {"levels": [0], "cache": "writethrough", "size": 100}}
    primary, cache_url = (tmp_path / "primary").as_uri(), (tmp_path / "cache").as_uri()
    store: Callable[[], Store] = lambda: Store(primary, config=config, cache_url=cache_url)  # noqa: E731
    first = store()
    await first.create()
    async with first:
        await first.store("data/a", b"a" * 40)
        await first.store("data/b", b"b" * 40)
    old = time.time() - 1000
    os.utime(tmp_path / "cache" / "data" / "b", (old, old))  # b was used long ago
    second = store()
    async with second:
        await second.store("data/c", b"c" * 40)
    cache = PosixFSBackend(tmp_path / "cache")
    async with cache:
        assert await cached_names(cache) == ["data/a", "data/c"]
    await first.destroy()


async def test_latency_emulation_applies_to_the_primary_only() -> None:
    store = Store("memory://" + memory_name(), config=CONFIG, cache_url="memory://", latency=0.05)
    await store.create()
    async with store:
        await store.store(f"data/{K1}", b"v")
        before = store.emulator.round_trips
        assert await store.load(f"data/{K1}") == b"v"  # a hit: no emulated round trip
        assert store.emulator.round_trips == before
        await store.cache_invalidate()
        assert await store.load(f"data/{K1}") == b"v"  # a miss goes to the "far-away" primary
        assert store.emulator.round_trips == before + 1 and store.emulator.in_flight == 0
        assert store.emulator.longest == pytest.approx(0.05)
    await store.destroy()
