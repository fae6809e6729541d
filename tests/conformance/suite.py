"""The conformance suite: every backend runs these tests through the Store and directly.

A backend's test module subclasses :class:`StoreConformance` and :class:`BackendConformance` and provides
the ``make_backend`` fixture: a callable returning a new, not yet created backend instance for one fresh
storage location. Later backends that need a server start it in a session fixture and point
``make_backend`` at it. Capability flags on the subclass skip only what truly cannot apply.
"""

from __future__ import annotations

import array
import asyncio
import hashlib
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest

from aiodepot import (
    InvalidName,
    ItemInfo,
    NotSupported,
    ObjectExists,
    ObjectNotFound,
    ReadRangeError,
    Store,
    StoreAlreadyOpen,
    StoreError,
    StoreExists,
    StoreNotFound,
    StoreNotOpen,
    SyncStore,
)
from aiodepot.backends.base import Backend
from aiodepot.transfer import Progress

MakeBackend = Callable[[], Backend]

CONFIG = {
    "config/": {"levels": [0]},
    "data/": {"levels": [2]},
    "mixed/": {"levels": [0, 1]},
    "flat/": {"levels": [0]},
}


def key(i: int) -> str:
    """A realistic 64-hex-digit key."""
    return hashlib.sha256(str(i).encode()).hexdigest()


BAD_NAMES: list[Any] = [
    "../escape",
    "data/../../etc/passwd",
    "/absolute",
    "data/",
    "UPPER",
    "data/Key",
    "data/caf\u00e9",
    "data/with blank",
    "data/tab\there",
    "data/nul\x00byte",
    "data\\backslash",
    "data/" + "a" * 100,
    "data/name.tmp",
    "data/name.del",
    "data/name.hid",
    "data//double",
    "data/./dot",
    "",
    None,
    42,
    b"data/bytes",
]


F = TypeVar("F", bound=Callable[..., Any])


def requires(*features: str) -> Callable[[F], F]:
    """Mark a test as needing backend features (``overwrite``, ``delete``, ``move``): a backend whose test
    class sets ``supports_<feature> = False`` skips it, naming the feature."""

    def mark(test: F) -> F:
        test.required_features = features  # type: ignore[attr-defined]
        return test

    return mark


def _layers_of(backend: Backend) -> list[Backend]:
    """``backend`` and every backend below it (layers wrap one ``inner``; a mirror has ``children``)."""
    found = [backend]
    for below in [getattr(backend, "inner", None), *getattr(backend, "children", ())]:
        if isinstance(below, Backend):
            found.extend(_layers_of(below))
    return found


class _FeatureFlags:
    """What a backend can do; a subclass turns off what truly cannot apply (e.g. a write-once archive)."""

    supports_overwrite = True
    supports_delete = True  # delete and rmdir
    supports_move = True  # move, hence soft delete, undelete and level changes

    @pytest.fixture(autouse=True)
    def _skip_unsupported(self, request: pytest.FixtureRequest) -> None:
        for feature in getattr(request.function, "required_features", ()):
            if not getattr(self, f"supports_{feature}"):
                pytest.skip(f"the backend does not support {feature} (supports_{feature} = False)")


def pool_threads(prefix: str) -> list[str]:
    """The names of the live threads whose name starts with ``prefix`` (a backend's worker pool)."""
    return sorted(t.name for t in threading.enumerate() if t.name.startswith(prefix))


async def threads_settle(prefix: str, expected: list[str]) -> bool:
    """Whether the pool threads named ``prefix…`` come back to ``expected`` within 5 s (stopped workers
    exit on their own, a moment after the pool is shut down)."""
    for _ in range(500):
        if pool_threads(prefix) == expected:
            return True
        await asyncio.sleep(0.01)
    return pool_threads(prefix) == expected


async def names_in(store: Store, namespace: str, *, deleted: bool = False) -> list[str]:
    return [info.name async for info in store.list(namespace, deleted=deleted)]


class StoreConformance(_FeatureFlags):
    """Store semantics, run on each backend."""

    @pytest.fixture
    def make_backend(self) -> MakeBackend:
        raise NotImplementedError("a backend's test module provides make_backend")

    @pytest.fixture
    def make_store(self, make_backend: MakeBackend) -> Callable[..., Store]:
        def make(**kwargs: Any) -> Store:
            kwargs.setdefault("config", CONFIG)
            return Store(backend=make_backend(), **kwargs)

        return make

    @pytest.fixture
    async def store(self, make_store: Callable[..., Store]) -> AsyncIterator[Store]:
        store = make_store()
        await store.create()
        async with store:
            yield store
        await store.destroy()

    # lifecycle ---------------------------------------------------------------------------------------

    async def test_lifecycle(self, make_store: Callable[..., Store]) -> None:
        store = make_store()
        with pytest.raises(StoreNotFound):
            await store.open()
        await store.create()
        assert not store.opened
        async with store:
            assert store.opened
            await store.store("config/main", b"v1")
            with pytest.raises(StoreAlreadyOpen):
                await store.open()
            with pytest.raises(StoreAlreadyOpen):
                await store.destroy()
            with pytest.raises(StoreAlreadyOpen):
                await store.create()
        assert not store.opened
        with pytest.raises(StoreNotOpen):
            await store.load("config/main")
        with pytest.raises(StoreExists):
            await store.create()  # not empty
        async with store:  # reopen keeps the data
            assert await store.load("config/main") == b"v1"
        await store.destroy()
        with pytest.raises(StoreNotFound):
            await store.open()
        with pytest.raises(StoreNotFound):
            await store.destroy()

    async def test_close_twice_or_never_opened_does_nothing(self, make_store: Callable[..., Store]) -> None:
        store = make_store()
        await store.close()  # never opened (nor created): nothing to release
        await store.create()
        await store.close()
        await store.open()
        await store.store("config/a", b"kept")
        await store.close()
        await store.close()  # as for files and httpx clients: a second close is no error
        assert not store.opened
        async with store:  # and the store opens again as usual
            assert await store.load("config/a") == b"kept"
        await store.close()
        await store.destroy()

    async def test_state_errors_name_the_store_not_its_layers(self, make_store: Callable[..., Store]) -> None:
        store = make_store()
        await store.create()
        internal = {type(layer).__name__ for layer in _layers_of(store.backend)} | {"Meter", "Backend"}
        errors: list[StoreError] = []
        for call in (store.load("config/a"), store.load_many(["config/a", "config/b"]), store.quota()):
            with pytest.raises(StoreNotOpen) as caught:
                await call
            errors.append(caught.value)
        async with store:
            with pytest.raises(StoreAlreadyOpen) as already:
                await store.open()
            errors.append(already.value)
        for error in errors:
            message = str(error)
            assert "store" in message
            assert not [name for name in internal if name in message], message
        await store.destroy()

    async def test_closed_store_refuses_every_operation(self, make_store: Callable[..., Store]) -> None:
        store = make_store()
        await store.create()
        calls = [
            store.load("config/a"),
            store.store("config/a", b""),
            store.info("config/a"),
            store.delete("config/a"),
            store.move("config/a", delete=True),
            store.hash("config/a"),
            store.gather([("a", 0, 1)], namespace="config"),
            store.quota(),
            store.load_many(["config/a"]),
        ]
        for call in calls:
            with pytest.raises(StoreNotOpen):
                await call
        with pytest.raises(StoreNotOpen):
            await anext(store.list("config"))
        await store.destroy()

    # store and load ------------------------------------------------------------------------------------

    @pytest.mark.parametrize(
        "value",
        [b"", b"x", b"hello world" * 1000, bytes(range(256)) * 4096],
        ids=["empty", "one", "11k", "1mib"],
    )
    async def test_store_load_roundtrip(self, store: Store, value: bytes) -> None:
        await store.store("data/" + key(1), value)
        assert await store.load("data/" + key(1)) == value
        info = await store.info("data/" + key(1))
        assert info == ItemInfo("data/" + key(1), True, len(value), False, info.atime, info.mtime)
        assert info.mtime > 0

    async def test_store_accepts_buffers(self, store: Store) -> None:
        await store.store("flat/ba", bytearray(b"bytearray"))
        await store.store("flat/mv", memoryview(b"0123456789")[2:5])
        numbers = array.array("I", [1, 2, 3])
        await store.store("flat/arr", memoryview(numbers))
        assert await store.load("flat/ba") == b"bytearray"
        assert await store.load("flat/mv") == b"234"
        assert await store.load("flat/arr") == numbers.tobytes()

    async def test_caller_may_reuse_buffer_after_store(self, store: Store) -> None:
        buffer = bytearray(b"A" * 4096)
        await store.store("flat/buf", memoryview(buffer))
        buffer[:] = b"B" * 4096
        assert await store.load("flat/buf") == b"A" * 4096

    async def test_store_rejects_bad_values(self, store: Store) -> None:
        with pytest.raises(TypeError):
            await store.store("flat/s", "text")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await store.store("flat/n", 42)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="contiguous"):
            await store.store("flat/nc", memoryview(b"abcdef")[::2])
        assert await names_in(store, "flat") == []

    @requires("overwrite")
    async def test_overwrite(self, store: Store) -> None:
        await store.store("config/main", b"old value that is longer")
        await store.store("config/main", b"new")
        assert await store.load("config/main") == b"new"
        assert (await store.info("config/main")).size == 3

    async def test_partial_loads(self, store: Store) -> None:
        value = bytes(range(100))
        await store.store("flat/r", value)
        cases = [
            ({"offset": 10}, value[10:]),
            ({"offset": 10, "size": 5}, value[10:15]),
            ({"size": 7}, value[:7]),
            ({"offset": -10}, value[-10:]),
            ({"offset": -10, "size": 4}, value[-10:-6]),
            ({"offset": 95, "size": 50}, value[95:]),  # short read at the end
            ({"offset": 200}, b""),
            ({"offset": 200, "size": 5}, b""),
            ({"offset": -500}, value),
            ({"offset": 50, "size": 0}, b""),
        ]
        for kwargs, expected in cases:
            assert await store.load("flat/r", **kwargs) == expected, kwargs
        with pytest.raises(ValueError):
            await store.load("flat/r", size=-1)

    async def test_missing_items(self, store: Store) -> None:
        name = "data/" + key(404)
        with pytest.raises(ObjectNotFound) as caught:
            await store.load(name)
        assert isinstance(caught.value, KeyError)
        assert not (await store.info(name)).exists
        for call in (store.delete(name), store.move(name, delete=True), store.hash(name)):
            with pytest.raises(ObjectNotFound):
                await call
        with pytest.raises(ObjectNotFound):
            await store.move(name, "data/" + key(405))

    @requires("delete")
    async def test_delete(self, store: Store) -> None:
        await store.store("config/gone", b"x")
        await store.delete("config/gone")
        assert not (await store.info("config/gone")).exists
        with pytest.raises(ObjectNotFound):
            await store.delete("config/gone")

    # names -----------------------------------------------------------------------------------------------

    @pytest.mark.parametrize("bad", BAD_NAMES, ids=repr)
    async def test_bad_names_touch_nothing(self, store: Store, bad: Any) -> None:
        await store.store("config/keep", b"keep")
        before = [info async for info in store.backend.list("config")]
        operations = [
            lambda: store.store(bad, b"x"),
            lambda: store.load(bad),
            lambda: store.info(bad),
            lambda: store.delete(bad),
            lambda: store.hash(bad),
            lambda: store.move(bad, delete=True),
            lambda: store.move(bad, "config/other"),
            lambda: store.load_many(["config/keep", bad]),
            lambda: store.store_many([("config/new", b"x"), (bad, b"x")]),
            lambda: store.delete_many(["config/keep", bad]),
            lambda: store.find(bad),
        ]
        if bad is not None:  # None as the new name means "no new name"
            operations.append(lambda: store.move("config/keep", bad))
        for operation in operations:
            with pytest.raises(InvalidName) as caught:
                await operation()
            assert isinstance(caught.value, ValueError)
        if bad != "":  # "" is the root namespace for list
            with pytest.raises(InvalidName):
                await anext(store.list(bad))
        after = [info async for info in store.backend.list("config")]
        assert [i.name for i in after] == [i.name for i in before] == ["keep"]
        assert await store.load("config/keep") == b"keep"

    async def test_unconfigured_namespace(self, store: Store) -> None:
        with pytest.raises(InvalidName, match="no namespace"):
            await store.store("elsewhere/x", b"x")

    # nesting ---------------------------------------------------------------------------------------------

    async def test_nesting_layout(self, store: Store) -> None:
        name = "data/" + key(7)
        await store.store(name, b"nested")
        nested = await store.find(name)
        assert nested == f"data/{key(7)[:2]}/{key(7)[2:4]}/{key(7)}"
        assert (await store.backend.info(nested)).exists
        assert await store.backend.load(nested) == b"nested"

    async def test_too_short_key_for_nesting(self, store: Store) -> None:
        with pytest.raises(InvalidName, match="too short"):
            await store.store("data/abc", b"x")

    @requires("overwrite", "move")
    async def test_level_migration(self, store: Store) -> None:
        old = {f"mixed/{key(i)}": f"old{i}".encode() for i in range(10)}
        store.set_levels({**CONFIG, "mixed/": {"levels": [0]}})
        await store.store_many(old)
        for name in old:
            assert await store.find(name) == name  # level 0
        store.set_levels({**CONFIG, "mixed/": {"levels": [0, 1]}})
        new = {f"mixed/{key(i)}": f"new{i}".encode() for i in range(10, 20)}
        await store.store_many(new)
        for name in new:
            k = name.split("/")[1]
            assert await store.find(name) == f"mixed/{k[:2]}/{k}"  # written at the last level
        for name, value in old.items():
            assert await store.load(name) == value  # found at the old level
            assert await store.find(name) == name
        # an overwrite of an existing item stays where it is
        first = next(iter(old))
        await store.store(first, b"rewritten")
        assert await store.find(first) == first
        # list merges both levels into one sorted stream
        listed = await names_in(store, "mixed")
        assert listed == sorted(n.split("/")[1] for n in {**old, **new})
        # migrate everything to the last level
        for name in old:
            await store.move(name, change_level=True)
            k = name.split("/")[1]
            assert await store.find(name) == f"mixed/{k[:2]}/{k}"
        await store.move(first, change_level=True)  # already there: a no-op
        assert await store.load(first) == b"rewritten"
        store.set_levels({**CONFIG, "mixed/": {"levels": [1]}})
        assert await names_in(store, "mixed") == listed
        with pytest.raises(ObjectNotFound):
            await store.move("mixed/" + key(999), change_level=True)

    async def test_create_levels(self, make_store: Callable[..., Store]) -> None:
        store = make_store(config={"data/": {"levels": [1]}, "config/": {"levels": [0]}})
        await store.create()
        async with store:
            await store.create_levels()
            dirs = [info async for info in store.backend.list("data")]
            assert len(dirs) == 256 and all(info.directory for info in dirs)
            assert dirs[0].name == "00" and dirs[-1].name == "ff"
            assert await names_in(store, "data") == []
            assert await names_in(store, "config") == []
        await store.destroy()

    # soft delete -----------------------------------------------------------------------------------------

    @requires("move", "delete")
    async def test_soft_delete_and_undelete(self, store: Store) -> None:
        names = [f"data/{key(i)}" for i in range(5)]
        await store.store_many({n: n.encode() for n in names})
        await store.move(names[1], delete=True)
        await store.move(names[3], delete=True)
        keys = [n.split("/")[1] for n in names]
        assert await names_in(store, "data") == sorted([keys[0], keys[2], keys[4]])
        assert await names_in(store, "data", deleted=True) == sorted([keys[1], keys[3]])
        with pytest.raises(ObjectNotFound):
            await store.load(names[1])
        assert await store.load(names[1], deleted=True) == names[1].encode()
        assert (await store.info(names[1], deleted=True)).exists
        assert not (await store.info(names[1])).exists
        assert await store.hash(names[1], deleted=True) == hashlib.sha256(names[1].encode()).hexdigest()
        await store.move(names[1], undelete=True)
        assert await store.load(names[1]) == names[1].encode()
        await store.delete(names[3], deleted=True)
        assert await names_in(store, "data", deleted=True) == []
        with pytest.raises(ObjectNotFound):
            await store.move(names[3], undelete=True)

    @requires("move")
    async def test_rename(self, store: Store) -> None:
        await store.store("config/a", b"A")
        await store.store("config/b", b"B")
        await store.move("config/a", "config/c")
        assert await names_in(store, "config") == ["b", "c"]
        await store.move("config/c", "config/b")  # replaces
        assert await names_in(store, "config") == ["b"]
        assert await store.load("config/b") == b"A"
        await store.move("config/b", "data/" + key(3))  # across namespaces and levels
        assert await store.load("data/" + key(3)) == b"A"

    async def test_move_needs_exactly_one_mode(self, store: Store) -> None:
        await store.store("config/a", b"A")
        with pytest.raises(ValueError, match="exactly one"):
            await store.move("config/a")
        with pytest.raises(ValueError, match="exactly one"):
            await store.move("config/a", "config/b", delete=True)
        with pytest.raises(ValueError, match="exactly one"):
            await store.move("config/a", delete=True, undelete=True)
        assert await store.load("config/a") == b"A"

    # listing ---------------------------------------------------------------------------------------------

    async def test_list(self, store: Store) -> None:
        values = {f"data/{key(i)}": bytes(i) for i in range(300)}
        await store.store_many(values)
        infos = [info async for info in store.list("data")]
        assert [i.name for i in infos] == sorted(n.split("/")[1] for n in values)
        assert all(not i.directory and i.exists for i in infos)
        assert {i.name: i.size for i in infos} == {n.split("/")[1]: len(v) for n, v in values.items()}
        assert await names_in(store, "flat") == []  # configured, nothing stored yet
        with pytest.raises(ObjectNotFound):
            await anext(store.list("nosuchnamespace"))

    async def test_list_root_recurses(self, store: Store) -> None:
        await store.store("config/c1", b"1")
        await store.store("flat/f1", b"2")
        await store.store("data/" + key(1), b"3")
        assert sorted(await names_in(store, "")) == sorted(["c1", "f1", key(1)])

    @requires("move")
    async def test_count(self, store: Store) -> None:
        assert await store.count("data") == 0  # configured, nothing stored yet
        await store.store_many({f"data/{key(i)}": bytes(i % 7) for i in range(40)})
        await store.store_many({f"flat/f{i}": b"x" for i in range(5)})
        await store.store("config/c1", b"c")
        for i in range(3):
            await store.move(f"data/{key(i)}", delete=True)
        assert await store.count("data") == 37 == len(await names_in(store, "data"))
        assert await store.count("data", deleted=True) == 3
        assert await store.count("flat") == 5
        assert await store.count("") == 37 + 5 + 1 == len(await names_in(store, ""))
        with pytest.raises(ObjectNotFound):
            await store.count("nosuchnamespace")

    async def test_list_is_lazy_and_interleaves(self, store: Store) -> None:
        await store.store_many({f"flat/{i:04d}": b"x" for i in range(50)})
        seen = []
        async for info in store.list("flat"):
            seen.append(info.name)
            if len(seen) == 10:
                await store.store("flat/zzzz", b"late")  # operations inside a listing loop work
        assert seen[:10] == [f"{i:04d}" for i in range(10)]

    # hash, gather, defrag --------------------------------------------------------------------------------

    @pytest.mark.parametrize("algorithm", ["sha256", "md5", "sha512", "blake2b", "blake3"])
    async def test_hash(self, store: Store, algorithm: str) -> None:
        value = bytes(range(256)) * 1000
        await store.store("flat/h", value)
        if algorithm == "blake3":
            from blake3 import blake3

            expected = blake3(value).hexdigest()
        else:
            expected = hashlib.new(algorithm, value).hexdigest()
        assert await store.hash("flat/h", algorithm) == expected

    async def test_hash_unknown_algorithm(self, store: Store) -> None:
        await store.store("flat/h", b"x")
        with pytest.raises(ValueError, match="unsupported"):
            await store.hash("flat/h", "nosuchhash")

    async def test_gather(self, store: Store) -> None:
        a, b = bytes(range(100)), bytes(range(100, 200))
        await store.store("data/" + key(1), a)
        await store.store("data/" + key(2), b)
        sources = [(key(2), 10, 5), (key(1), 0, 3), (key(1), -4, 4), (key(2), 0, 0), (key(1), 50, 10)]
        assert await store.gather(sources, namespace="data") == b[10:15] + a[:3] + a[-4:] + a[50:60]
        assert await store.gather([], namespace="data") == b""
        with pytest.raises(ReadRangeError):
            await store.gather([(key(1), 95, 10)], namespace="data")
        with pytest.raises(InvalidName):
            await store.gather([("sub/" + key(1), 0, 1)], namespace="data")
        with pytest.raises(ObjectNotFound):
            await store.gather([(key(3), 0, 1)], namespace="data")
        with pytest.raises(ValueError):
            await store.gather([(key(1), 0, -1)], namespace="data")
        assert store.stats["gather_calls"] >= 1

    async def test_defrag(self, store: Store) -> None:
        a, b = b"a" * 100, b"b" * 100
        await store.store("data/" + key(1), a)
        await store.store("data/" + key(2), b)
        sources = [(key(1), 10, 20), (key(2), 0, 30)]
        content = a[10:30] + b[:30]
        name = await store.defrag(sources, algorithm="sha256", namespace="data")
        assert name == hashlib.sha256(content).hexdigest()
        assert await store.load("data/" + name) == content
        assert await store.find("data/" + name) == f"data/{name[:2]}/{name[2:4]}/{name}"
        target = await store.defrag(sources, target=key(9), namespace="data")
        assert target == key(9)
        assert await store.load("data/" + key(9)) == content
        assert await store.load("data/" + key(1)) == a  # sources stay
        with pytest.raises(ValueError):
            await store.defrag(sources, namespace="data")

    # store-wide ------------------------------------------------------------------------------------------

    async def test_quota_shape(self, store: Store) -> None:
        quota = await store.quota()
        assert set(quota) == {"limit", "usage"}

    async def test_stats(self, store: Store) -> None:
        await store.store("config/a", b"12345")
        await store.load("config/a")
        await store.load("config/a", size=2)
        await store.info("config/a")
        [_ async for _ in store.list("config")]
        stats = store.stats
        for op in ("info", "load", "store", "delete", "move", "list", "gather"):
            assert f"{op}_calls" in stats and f"{op}_time" in stats
        assert stats["store_calls"] == 1 and stats["store_volume"] == 5
        assert stats["load_calls"] == 2 and stats["load_volume"] == 7
        assert stats["backend_load_calls"] == 2 and stats["backend_store_volume"] == 5
        assert stats["info_calls"] == 1 and stats["list_calls"] == 1
        assert stats["load_throughput"] > 0 and stats["load_busy_time"] > 0
        assert stats["cache_hits"] == 0 and stats["cache_hit_ratio"] == 0

    # concurrency -----------------------------------------------------------------------------------------

    @requires("overwrite")
    async def test_concurrent_stores_same_key(self, store: Store) -> None:
        values = [bytes([i]) * (64 * 1024 + i) for i in range(40)]
        await asyncio.gather(*(store.store("flat/contended", v) for v in values))
        assert await store.load("flat/contended") in values
        assert await names_in(store, "flat") == ["contended"]

    async def test_store_if_absent_race(self, store: Store) -> None:
        """16 writers race to create one name: exactly one wins, the others get ObjectExists."""
        if not store.backend.capabilities.atomic_create:
            with pytest.raises(NotSupported) as caught:
                await store.store("flat/once", b"x", if_absent=True)
            assert str(caught.value).startswith(f"{store.backend.location} does not support")
            location = store.backend.location
            if "Backend" not in location:  # a backend of aiodepot's own: the location the user opened, no class
                assert "Backend" not in str(caught.value)
            assert not await store.exists("flat/once")
            return
        values = [bytes([i]) * (1000 + i) for i in range(16)]
        results = await asyncio.gather(
            *(store.store("flat/once", value, if_absent=True) for value in values), return_exceptions=True
        )
        winners = [i for i, result in enumerate(results) if result is None]
        assert len(winners) == 1, results
        losers = [result for result in results if result is not None]
        assert all(isinstance(result, ObjectExists) for result in losers), losers
        assert isinstance(losers[0], FileExistsError) and "flat/once" in str(losers[0])
        assert await store.load("flat/once") == values[winners[0]]

    async def test_store_if_absent_semantics(self, store: Store) -> None:
        if not store.backend.capabilities.atomic_create:
            return  # test_store_if_absent_race checks the NotSupported
        await store.store("flat/new", b"first", if_absent=True)
        with pytest.raises(ObjectExists):
            await store.store("flat/new", b"second", if_absent=True)

        async def stream() -> AsyncIterator[bytes]:
            yield b"stre"
            yield b"am"

        with pytest.raises(ObjectExists):
            await store.store("flat/new", stream(), if_absent=True)
        assert await store.load("flat/new") == b"first"
        await store.store("flat/streamed", stream(), if_absent=True)
        assert await store.load("flat/streamed") == b"stream"
        await store.store("mixed/abc", b"level 0")  # an item at another level of the namespace counts
        with pytest.raises(ObjectExists):
            await store.store("mixed/abc", b"level 1", if_absent=True)
        if self.supports_move:
            await store.move("flat/new", delete=True)  # a soft-deleted item does not count
            await store.store("flat/new", b"again", if_absent=True)
            assert await store.load("flat/new") == b"again"

    async def test_store_if_absent_race_in_threads(self, make_store: Callable[..., Store]) -> None:
        """The same race from 16 threads through a SyncStore (on its portal's loop)."""
        store = make_store()
        sync_store = SyncStore(backend=store.backend, config=CONFIG)
        del store

        def race() -> list[BaseException | None]:
            sync_store.create()
            with sync_store:
                if not sync_store.backend.capabilities.atomic_create:
                    with pytest.raises(NotSupported):
                        sync_store.store("flat/once", b"x", if_absent=True)
                    return []

                def one(i: int) -> BaseException | None:
                    try:
                        sync_store.store("flat/once", bytes([i]) * 100, if_absent=True)
                    except ObjectExists as exc:
                        return exc
                    return None

                with ThreadPoolExecutor(16) as pool:
                    results = list(pool.map(one, range(16)))
                winner = results.index(None)
                assert sync_store.load("flat/once") == bytes([winner]) * 100
            return results

        try:
            results = await asyncio.to_thread(race)
        finally:
            await asyncio.to_thread(sync_store.destroy)
        if results:
            assert results.count(None) == 1
            assert all(isinstance(r, ObjectExists) for r in results if r is not None)

    async def test_concurrent_stores_and_loads_distinct_keys(self, store: Store) -> None:
        values = {f"data/{key(i)}": key(i).encode() * (i % 7 + 1) for i in range(200)}
        await asyncio.gather(*(store.store(n, v) for n, v in values.items()))
        loaded = await asyncio.gather(*(store.load(n) for n in values))
        assert loaded == list(values.values())
        assert len(await names_in(store, "data")) == 200

    # bulk ------------------------------------------------------------------------------------------------

    @requires("delete")
    async def test_bulk_operations(self, store: Store) -> None:
        values = {f"data/{key(i)}": key(i).encode()[: i % 64] for i in range(500)}
        events: list[Progress] = []
        assert await store.store_many(values, max_concurrency=8, progress=events.append) == [None] * 500
        assert events[-1].items_done == 500 and events[-1].bytes_done == sum(map(len, values.values()))
        assert events[-1].bytes_total == events[-1].bytes_done
        names = list(values)[::-1]
        assert await store.load_many(names) == [values[n] for n in names]
        infos = await store.info_many([*names[:3], "data/" + key(9999)])
        assert [i.exists for i in infos] == [True, True, True, False]
        assert [i.name for i in infos] == [*names[:3], "data/" + key(9999)]

        seen = []

        async def async_progress(progress: Progress) -> None:
            seen.append(progress.items_done)

        await store.delete_many(names[:100], progress=async_progress)
        assert sorted(seen) == list(range(1, 101))
        assert len(await names_in(store, "data")) == 400
        await store.store_many([("config/x", b"1"), ("config/y", b"2")])  # pairs work too
        assert await store.load_many(["config/x", "config/y"]) == [b"1", b"2"]

    @requires("delete")
    async def test_bulk_counts_every_item(self, store: Store) -> None:
        values = {f"data/{key(i)}": bytes(100) for i in range(300)}
        await store.store_many(values)
        await store.load_many(values)
        await store.info_many(values)
        await store.delete_many(values)
        stats = store.stats
        for op in ("store", "load", "info", "delete"):
            assert stats[f"{op}_calls"] == 300, op
        assert stats["store_volume"] == stats["load_volume"] == 30_000
        assert stats["backend_store_calls"] == stats["backend_load_calls"] == 300
        assert stats["backend_load_volume"] == 30_000

    async def test_bulk_per_item_errors_in_order(self, store: Store) -> None:
        names = [f"flat/{i:03d}" for i in range(200)]
        await store.store_many({name: name.encode() for name in names[::2]})
        results = await store.load_many(names, return_exceptions=True)
        for i, (name, result) in enumerate(zip(names, results, strict=True)):
            if i % 2:
                assert isinstance(result, ObjectNotFound), name
            else:
                assert result == name.encode()
        infos = await store.info_many(names)
        assert [info.exists for info in infos] == [i % 2 == 0 for i in range(200)]
        assert [info.name for info in infos] == names

    @requires("delete")
    async def test_bulk_first_failure_is_raised_as_itself(self, store: Store) -> None:
        await store.store_many({f"flat/{i:03d}": b"x" for i in range(50)})
        names = [f"flat/{i:03d}" for i in range(50)]
        names.insert(25, "flat/missing")
        with pytest.raises(ObjectNotFound):
            await store.load_many(names, max_concurrency=4)
        results = await store.load_many(names, return_exceptions=True)
        assert isinstance(results[25], ObjectNotFound)
        assert results[:25] == [b"x"] * 25 and results[26:] == [b"x"] * 25
        errors = await store.delete_many(["flat/000", "flat/missing"], return_exceptions=True)
        assert errors[0] is None and isinstance(errors[1], ObjectNotFound)

    async def test_files_roundtrip(self, make_store: Callable[..., Store], tmp_path: Path) -> None:
        store = make_store(max_bytes_in_flight=3 * 4096)
        store.backend.capabilities = store.backend.capabilities.replace(part_size=4096)  # many small ranges
        source = tmp_path / "source.bin"
        payload = os.urandom(10 * 4096 + 123)
        source.write_bytes(payload)
        await store.create()
        async with store:
            events: list[Progress] = []
            assert await store.store_file("flat/file", source) == len(payload)
            assert await store.load("flat/file") == payload
            target = tmp_path / "out" / "copy.bin"
            target.parent.mkdir()
            assert await store.load_file("flat/file", target, progress=events.append) == len(payload)
            assert target.read_bytes() == payload
            assert events[-1].items_done == 11
            assert events[-1].bytes_done == len(payload)
            assert store.budget.in_flight == 0
            assert sorted(p.name for p in target.parent.iterdir()) == ["copy.bin"]  # no temp file left
            empty = tmp_path / "empty"
            empty.write_bytes(b"")
            assert await store.store_file("flat/empty", empty) == 0
            assert await store.load_file("flat/empty", tmp_path / "empty.out") == 0
            assert (tmp_path / "empty.out").read_bytes() == b""
            with pytest.raises(ObjectNotFound):
                await store.load_file("flat/missing", tmp_path / "nothing")
            assert not (tmp_path / "nothing").exists()
            assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []
            with pytest.raises(FileNotFoundError):
                await store.store_file("flat/nofile", tmp_path / "does-not-exist")
            assert not (await store.info("flat/nofile")).exists
        await store.destroy()

    async def test_latency_emulation(self, make_store: Callable[..., Store]) -> None:
        # checked on the emulator's own accounting, not on a clock (a busy machine only adds time)
        names = [f"flat/x{i:02}" for i in range(20)]  # distinct: a cache layer may share one load of a name
        setup = make_store()
        await setup.create()
        async with setup:
            await setup.store_many(dict.fromkeys(names, b"x"))
        store = make_store(latency=0.05)
        emulator = store.emulator
        async with store:
            await store.load(names[0])
            assert emulator.round_trips == 1 and emulator.in_flight == 0  # delayed, and done
            assert emulator.longest == pytest.approx(0.05)  # a round trip lasts the latency
            assert await store.load_many(names, max_concurrency=20) == [b"x"] * 20
            assert emulator.round_trips == 21 and emulator.in_flight == 0
            assert emulator.most_in_flight == 20  # the 20 latencies overlap ...
            assert emulator.longest == pytest.approx(0.05)  # ... they do not add up
        await setup.destroy()

    async def test_bandwidth_emulation_is_shared(self, make_store: Callable[..., Store]) -> None:
        store = make_store(bandwidth=8 * 1_000_000)  # 1 MB/s
        emulator = store.emulator
        await store.create()
        async with store:
            names = [f"flat/x{i}" for i in range(4)]  # distinct: a cache layer may share one load of a name
            for name in names:  # one after the other: 0.05 s each on the link, none waits for it
                await store.store(name, b"x" * 50_000)
            assert emulator.longest == pytest.approx(0.05)
            before = time.monotonic()
            await store.load_many(names, max_concurrency=4)
            # concurrency cannot create bandwidth: the four values crossed the link one after the other
            assert emulator.link_busy_until - before >= 4 * 0.05
        await store.destroy()


class BackendConformance(_FeatureFlags):
    """The backend contract, called directly."""

    @pytest.fixture
    def make_backend(self) -> MakeBackend:
        raise NotImplementedError("a backend's test module provides make_backend")

    @pytest.fixture
    async def backend(self, make_backend: MakeBackend) -> AsyncIterator[Backend]:
        backend = make_backend()
        await backend.create()
        async with backend:
            yield backend
        await backend.destroy()

    @requires("delete")
    async def test_mkdir_rmdir_info(self, backend: Backend) -> None:
        await backend.mkdir("ns/sub")
        await backend.mkdir("ns/sub")  # exists: fine
        info = await backend.info("ns/sub")
        assert info.exists and info.directory and info.name == "sub"
        assert [i.name for i in [i async for i in backend.list("ns")]] == ["sub"]
        await backend.rmdir("ns/sub")
        assert not (await backend.info("ns/sub")).exists
        with pytest.raises(ObjectNotFound):
            await backend.rmdir("ns/sub")

    async def test_store_creates_parents_and_lists_sorted(self, backend: Backend) -> None:
        for name in ("ns/b/2", "ns/a", "ns/c", "ns/b/1"):
            await backend.store(name, name.encode())
        listing = [i async for i in backend.list("ns")]
        assert [(i.name, i.directory) for i in listing] == [("a", False), ("b", True), ("c", False)]
        assert [i.name async for i in backend.list("ns/b")] == ["1", "2"]
        assert [i.name async for i in backend.list("")] == ["ns"]
        with pytest.raises(ObjectNotFound):
            await anext(backend.list("nothing"))

    async def test_count(self, backend: Backend) -> None:
        for name in ("ns/a", "ns/b/1", "ns/b/2.del", "ns/b/c/3", "other/x"):
            await backend.store(name, b"v")
        assert await backend.count("ns") == 3
        assert await backend.count("ns", deleted=True) == 1
        assert await backend.count("ns/b") == 2
        assert await backend.count("") == 4
        with pytest.raises(ObjectNotFound):
            await backend.count("nothing")

    async def test_del_suffix_is_a_valid_backend_name(self, backend: Backend) -> None:
        await backend.store("ns/item.del", b"soft")
        assert await backend.load("ns/item.del") == b"soft"
        for bad in ("ns/item.tmp", "ns/item.hid", "../x", "/abs", "ns/Upper"):
            with pytest.raises(InvalidName):
                await backend.store(bad, b"x")
            with pytest.raises(InvalidName):
                await backend.load(bad)

    @requires("move")
    async def test_move_replaces_and_creates_parents(self, backend: Backend) -> None:
        await backend.store("ns/a", b"A")
        await backend.store("ns/b", b"B")
        await backend.move("ns/a", "ns/b")
        assert await backend.load("ns/b") == b"A"
        await backend.move("ns/b", "other/deep/b")
        assert await backend.load("other/deep/b") == b"A"
        with pytest.raises(ObjectNotFound):
            await backend.move("ns/a", "ns/z")

    async def test_default_and_native_helpers(self, backend: Backend) -> None:
        value = bytes(range(256)) * 100
        await backend.store("ns/v", value)
        assert await backend.hash("ns/v") == hashlib.sha256(value).hexdigest()
        assert await backend.gather([("ns/v", 5, 10), ("ns/v", -3, 3)]) == value[5:15] + value[-3:]
        with pytest.raises(ReadRangeError):
            await backend.gather([("ns/v", len(value) - 2, 5)])
        target = await backend.defrag([("ns/v", 0, 10)], algorithm="sha256", namespace="ns", levels=1)
        digest = hashlib.sha256(value[:10]).hexdigest()
        assert target == f"ns/{digest[:2]}/{digest}"
        assert await backend.load(target) == value[:10]
        quota = await backend.quota()
        assert set(quota) == {"limit", "usage"}

    async def test_read_chunks(self, backend: Backend) -> None:
        value = bytes(range(256)) * 1000
        await backend.store("ns/big", value)
        chunks = [c async for c in backend.read_chunks("ns/big", chunk_size=10_000)]
        assert b"".join(chunks) == value and max(map(len, chunks)) <= 10_000
        assert b"".join([c async for c in backend.read_chunks("ns/big", offset=100, size=5000)]) == value[100:5100]
        assert b"".join([c async for c in backend.read_chunks("ns/big", offset=-10)]) == value[-10:]
        with pytest.raises(ObjectNotFound):
            [c async for c in backend.read_chunks("ns/missing")]

    async def test_load_into(self, backend: Backend) -> None:
        """Ranges land in the caller's buffer: across a network backend's read blocks, short at the end, none
        past it; a missing item is missing even for no bytes."""
        value = os.urandom(600 * 1024 + 7)  # several of sftp's 255 KiB reads; more than one HTTP chunk
        await backend.store("ns/big", value)
        for offset, length in [(0, len(value)), (1000, 300 * 1024), (len(value) - 5000, 5000), (12345, 1)]:
            buffer = bytearray(length)
            assert await backend.load_into("ns/big", offset, buffer) == length, (offset, length)
            assert buffer == value[offset : offset + length], (offset, length)
        view = memoryview(bytearray(b"\xff" * 10_000))
        assert await backend.load_into("ns/big", len(value) - 100, view[1000:9000]) == 100  # short at the end
        assert view[1000:1100] == value[-100:] and view[1100:] == b"\xff" * 8900 and view[:1000] == b"\xff" * 1000
        assert await backend.load_into("ns/big", len(value) + 10, bytearray(10)) == 0  # past the end
        assert await backend.load_into("ns/big", 0, bytearray()) == 0
        for buffer in (bytearray(10), bytearray()):
            with pytest.raises(ObjectNotFound):
                await backend.load_into("ns/missing", 0, buffer)
        with pytest.raises(ValueError):
            await backend.load_into("ns/big", -1, bytearray(10))

    async def test_store_chunks(self, backend: Backend) -> None:
        async def stream(parts: list[bytes]) -> AsyncIterator[bytes]:
            for part in parts:
                yield part

        parts = [bytes([i]) * 1000 for i in range(20)]
        await backend.store_chunks("ns/streamed", stream(parts), size=20_000)
        assert await backend.load("ns/streamed") == b"".join(parts)
        with pytest.raises(ValueError):
            await backend.store_chunks("ns/short", stream(parts), size=30_000)
        with pytest.raises(ValueError):
            await backend.store_chunks("ns/long", stream(parts), size=100)
        assert [i.name async for i in backend.list("ns")] == ["streamed"]  # nothing half-written

    @requires("overwrite")
    async def test_store_is_atomic_under_concurrent_readers(self, backend: Backend) -> None:
        a, b = b"a" * 500_000, b"b" * 500_000
        await backend.store("ns/x", a)

        async def writer() -> None:
            for i in range(20):
                await backend.store("ns/x", a if i % 2 else b)

        async def reader() -> None:
            for _ in range(40):
                assert await backend.load("ns/x") in (a, b)

        await asyncio.gather(writer(), reader(), reader())
        assert [i.name async for i in backend.list("ns")] == ["x"]
