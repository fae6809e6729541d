"""The mirror layer: the conformance suite over memory and posixfs children, plus quorum, read repair,
fastest-first reads and clean shutdown."""

from __future__ import annotations

import asyncio
import builtins
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from aiodepot import ConnectionLost, ObjectNotFound, Store, StoreNotFound
from aiodepot.backends.base import Backend
from aiodepot.backends.memory import MemoryBackend
from aiodepot.backends.posixfs import PosixFSBackend
from aiodepot.items import ItemInfo, StoreValue
from aiodepot.layers import Layer, Mirror, MirrorError
from tests.conformance.suite import CONFIG, BackendConformance, MakeBackend, StoreConformance, key


def memory_name() -> str:
    return f"test-{uuid.uuid4().hex}"


class TestMirrorMemoryStore(StoreConformance):
    @pytest.fixture
    def make_backend(self) -> MakeBackend:
        a, b = memory_name(), memory_name()
        return lambda: Mirror([MemoryBackend(a), MemoryBackend(b)])


class TestMirrorMemoryBackend(BackendConformance):
    @pytest.fixture
    def make_backend(self) -> MakeBackend:
        a, b = memory_name(), memory_name()
        return lambda: Mirror([MemoryBackend(a), MemoryBackend(b)], read="fastest")


class TestMirrorPosixFSStore(StoreConformance):
    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> MakeBackend:
        name = memory_name()
        return lambda: Mirror([PosixFSBackend(tmp_path / "a"), MemoryBackend(name), PosixFSBackend(tmp_path / "b")])


class TestMirrorFastestPosixFSStore(StoreConformance):
    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> MakeBackend:
        return lambda: Mirror(
            [PosixFSBackend(tmp_path / "a"), PosixFSBackend(tmp_path / "b")], read="fastest", write_quorum=1
        )


class TestMirrorPosixFSBackend(BackendConformance):
    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> MakeBackend:
        return lambda: Mirror([PosixFSBackend(tmp_path / "a"), PosixFSBackend(tmp_path / "b")])


class Flaky(Layer):
    """A test layer whose listed operations fail as if the child were unreachable."""

    def __init__(self, inner: Backend, *fail: str) -> None:
        super().__init__(inner)
        self.fail = set(fail)

    def _check(self, operation: str) -> None:
        if operation in self.fail:
            raise ConnectionLost(f"{operation}: flaky child is unreachable")

    async def open(self) -> None:
        self._check("open")
        await super().open()

    async def store(self, name: str, value: StoreValue) -> None:
        self._check("store")
        await super().store(name, value)

    async def store_batch(self, items: Sequence[tuple[str, StoreValue]]) -> builtins.list[Exception | None]:
        if "store" in self.fail:
            return [ConnectionLost("store: flaky child is unreachable") for _ in items]
        return await super().store_batch(items)

    async def store_chunks(self, name: str, chunks: object, *, size: int | None = None) -> None:  # type: ignore[override]
        self._check("store")
        await super().store_chunks(name, chunks, size=size)  # type: ignore[arg-type]

    async def load(self, name: str, *, offset: int = 0, size: int | None = None) -> bytes:
        self._check("load")
        return await super().load(name, offset=offset, size=size)

    async def delete(self, name: str) -> None:
        self._check("delete")
        await super().delete(name)


class Slow(Layer):
    """A test layer that adds latency to reads and stores and notes the calls it answered and those
    cancelled in their latency."""

    def __init__(self, inner: Backend, delay: float) -> None:
        super().__init__(inner)
        self.delay = delay
        self.cancelled = 0
        self.answered = 0

    async def _wait(self) -> None:
        try:
            await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        self.answered += 1

    async def load(self, name: str, *, offset: int = 0, size: int | None = None) -> bytes:
        await self._wait()
        return await super().load(name, offset=offset, size=size)

    async def info(self, name: str) -> ItemInfo:
        await self._wait()
        return await super().info(name)

    async def store(self, name: str, value: StoreValue) -> None:
        await self._wait()
        await super().store(name, value)


async def opened(*children: Backend, **options: object) -> Mirror:
    mirror = Mirror(children, **options)  # type: ignore[arg-type]
    await mirror.create()
    await mirror.open()
    return mirror


async def test_quorum_not_met_names_the_children() -> None:
    good, bad = MemoryBackend(memory_name()), Flaky(MemoryBackend(memory_name()), "store")
    mirror = await opened(good, bad)
    with pytest.raises(MirrorError) as caught:
        await mirror.store("ns/a", b"value")
    message = str(caught.value)
    assert f"{bad.location}: ConnectionLost" in message and f"done on: {good.location} " in message
    assert "Backend" not in message and "Flaky" not in message  # the locations the user opened, not classes
    assert caught.value.succeeded == [good] and [child for child, _ in caught.value.failed] == [bad]
    assert isinstance(caught.value.__cause__, ConnectionLost)
    assert await good.load("ns/a") == b"value"  # the child that got the write keeps it
    results = await mirror.store_batch([("ns/b", b"1"), ("ns/c", b"2")])
    assert all(isinstance(result, MirrorError) for result in results)
    await mirror.close()


async def test_quorum_met_deletes_stale_copy() -> None:
    a, b = Flaky(MemoryBackend(memory_name())), MemoryBackend(memory_name())
    mirror = await opened(a, b, write_quorum=1)
    await mirror.store("ns/a", b"old")
    await mirror.store_batch([("ns/b", b"old")])
    a.fail.add("store")
    await mirror.store("ns/a", b"new")  # b has it: the quorum of one is met
    assert await mirror.store_batch([("ns/b", b"new")]) == [None]
    for name in ("ns/a", "ns/b"):
        assert not (await a.info(name)).exists  # the stale copy is gone, not shadowing the new value
        assert await mirror.load(name) == b"new"
    assert mirror.stats["write_failures"] == 2
    await mirror.flush_repairs()
    assert mirror.stats["repair_failures"] == 2  # a still refuses stores
    a.fail.clear()
    assert await mirror.load("ns/a") == b"new"
    await mirror.close()
    async with a:
        assert await a.load("ns/a") == b"new"  # repaired on read, awaited by close


async def test_delete_and_move_accept_a_missing_copy() -> None:
    a, b = MemoryBackend(memory_name()), MemoryBackend(memory_name())
    mirror = await opened(a, b)
    await b.store("ns/only-b", b"x")
    await mirror.delete("ns/only-b")
    assert not (await b.info("ns/only-b")).exists
    with pytest.raises(ObjectNotFound):
        await mirror.delete("ns/only-b")  # no child has it: raised as itself
    await b.store("ns/src", b"new")
    await a.store("ns/dst", b"stale")
    await mirror.move("ns/src", "ns/dst")
    assert not (await a.info("ns/dst")).exists  # the stale target on a is removed
    assert await mirror.load("ns/dst") == b"new"
    results = await mirror.delete_batch(["ns/dst", "ns/nothing"])
    assert results[0] is None and isinstance(results[1], ObjectNotFound)
    await mirror.close()


async def test_read_repair() -> None:
    a, b = MemoryBackend(memory_name()), MemoryBackend(memory_name())
    mirror = await opened(a, b)
    await mirror.store_batch([("ns/x", b"x" * 100), ("ns/y", b"y"), ("ns/z", b"z" * 3000)])
    await a.delete("ns/x")
    await a.delete("ns/y")
    await a.delete("ns/z")
    assert await mirror.load("ns/x") == b"x" * 100
    assert await mirror.load_batch(["ns/y"]) == [b"y"]
    assert await mirror.load("ns/z", offset=10, size=5) == b"zzzzz"  # ranged: copied by streaming
    await mirror.flush_repairs()
    assert mirror.stats["repairs"] == 3
    assert await a.load("ns/x") == b"x" * 100 and await a.load("ns/y") == b"y"
    assert await a.load("ns/z") == b"z" * 3000
    await mirror.close()


async def test_repairs_hold_bounded_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("aiodepot.layers.mirror._repair.MAX_REPAIR_BYTES", 250)
    a, b = MemoryBackend(memory_name()), MemoryBackend(memory_name())
    mirror = await opened(a, b)
    await b.store_batch([(f"ns/{i}", bytes([i]) * 100) for i in range(5)])
    await mirror.load_batch([f"ns/{i}" for i in range(5)])
    assert mirror._repairs.held_bytes == 200  # two values held, three repairs read from b instead
    await mirror.flush_repairs()
    assert mirror._repairs.held_bytes == 0 and mirror.stats["repairs"] == 5
    assert await a.load_batch([f"ns/{i}" for i in range(5)]) == [bytes([i]) * 100 for i in range(5)]
    await mirror.close()


async def test_damaged_copy_is_repaired() -> None:
    from aiodepot.layers import Hmac

    secret = b"s" * 32
    raw_a = MemoryBackend(memory_name())
    a, b = Hmac(raw_a, secret), Hmac(MemoryBackend(memory_name()), secret)
    mirror = await opened(a, b)
    await mirror.store("ns/v", b"genuine")
    await raw_a.store("ns/v", b"tampered" + bytes(32))
    assert await mirror.load("ns/v") == b"genuine"
    await mirror.flush_repairs()
    assert await a.load("ns/v") == b"genuine"
    await mirror.close()


async def test_repair_never_overwrites_a_newer_write() -> None:
    a, b = MemoryBackend(memory_name()), MemoryBackend(memory_name())
    mirror = await opened(a, b)
    await b.store("ns/x", b"old")
    assert await mirror.load("ns/x") == b"old"  # schedules a repair of a with "old"
    await mirror.store("ns/x", b"new")  # runs first: the repair is void
    await mirror.flush_repairs()
    assert await a.load("ns/x") == b"new" and await b.load("ns/x") == b"new"
    assert mirror.stats["repairs_skipped"] == 1 and mirror.stats["repairs"] == 0
    await mirror.close()


@pytest.mark.parametrize("mode", ["ordered", "fastest"])
async def test_fastest_read_picks_the_fast_child(mode: str) -> None:
    slow = Slow(MemoryBackend(memory_name()), 0.5)
    fast = Slow(MemoryBackend(memory_name()), 0)
    mirror = await opened(slow, fast, read=mode)
    slow.delay = 0
    await mirror.store("ns/x", b"value")
    slow.delay = 0.5
    answered = slow.answered, fast.answered
    assert await mirror.load("ns/x") == b"value"
    assert (await mirror.info("ns/x")).size == 5
    if mode == "fastest":
        assert fast.answered - answered[1] == 2  # both reads answered by the fast child ...
        assert slow.answered - answered[0] == 0
        assert slow.cancelled == 2  # ... and the losing requests are cancelled, not left running
    else:
        assert slow.answered - answered[0] == 2  # the first child answers, however slow
        assert fast.answered - answered[1] == 0 and slow.cancelled == 0
    await mirror.close()
    assert {t for t in asyncio.all_tasks() if t is not asyncio.current_task()} == set()


async def test_close_awaits_repairs_and_leaks_no_tasks() -> None:
    inner_a = MemoryBackend(memory_name())
    a, b = Slow(inner_a, 0.0), MemoryBackend(memory_name())
    mirror = await opened(a, b)
    await b.store_batch([(f"ns/{i}", bytes([i])) for i in range(10)])
    a.delay = 0.05
    assert await mirror.load_batch([f"ns/{i}" for i in range(10)]) == [bytes([i]) for i in range(10)]
    assert len(mirror._repairs.tasks) == 10
    await mirror.close()
    assert {t for t in asyncio.all_tasks() if t is not asyncio.current_task()} == set()
    assert mirror.stats["repairs"] == 10
    async with inner_a:
        assert [i.name async for i in inner_a.list("ns")] == sorted(str(i) for i in range(10))


async def test_list_is_the_union() -> None:
    a, b = MemoryBackend(memory_name()), MemoryBackend(memory_name())
    mirror = await opened(a, b)
    await a.store("ns/x", b"1")
    await b.store("ns/y", b"22")
    await mirror.store("ns/z", b"333")
    await b.store("ns/sub/deep", b"4")
    listing = [i async for i in mirror.list("ns")]
    assert [(i.name, i.directory) for i in listing] == [("sub", True), ("x", False), ("y", False), ("z", False)]
    assert [i.size for i in listing[1:]] == [1, 2, 3]
    assert [i.name async for i in mirror.list("ns/sub")] == ["deep"]  # a lacks the directory
    with pytest.raises(ObjectNotFound):
        await anext(mirror.list("nothing"))
    await mirror.close()


async def test_open_tolerates_a_down_child_within_quorum() -> None:
    names = memory_name(), memory_name()
    for name in names:
        await MemoryBackend(name).create()
    down = Flaky(MemoryBackend(names[0]), "open")
    mirror = Mirror([down, MemoryBackend(names[1])], write_quorum=1)
    await mirror.open()
    assert list(mirror.down) == [down]
    await mirror.store("ns/x", b"x")
    assert await mirror.load("ns/x") == b"x"
    await mirror.close()
    assert mirror.down == {}
    strict = Mirror([Flaky(MemoryBackend(names[0]), "open"), MemoryBackend(names[1])])
    with pytest.raises(MirrorError, match="open: failed on 1 of 2"):
        await strict.open()
    assert not strict.children[1].opened  # the child that did open is closed again
    with pytest.raises(StoreNotFound):
        await Mirror([MemoryBackend(memory_name()), MemoryBackend(memory_name())]).open()


async def test_streams_reach_every_child_and_a_failing_source_stores_nothing() -> None:
    a, b = MemoryBackend(memory_name()), Flaky(MemoryBackend(memory_name()))
    mirror = await opened(a, b, write_quorum=1)
    parts = [bytes([i]) * 10_000 for i in range(50)]

    async def stream(fail: bool = False) -> AsyncIterator[bytes]:
        for i, part in enumerate(parts):
            if fail and i == 30:
                raise OSError("the source broke")
            yield part

    await mirror.store_chunks("ns/big", stream(), size=500_000)
    assert await a.load("ns/big") == await b.load("ns/big") == b"".join(parts)
    with pytest.raises(OSError, match="source broke"):
        await mirror.store_chunks("ns/broken", stream(fail=True))
    assert not (await a.info("ns/broken")).exists and not (await b.info("ns/broken")).exists
    b.fail.add("store")  # a child that fails at once does not stall the others
    await asyncio.wait_for(mirror.store_chunks("ns/one", stream(), size=500_000), 10)
    assert (await a.info("ns/one")).size == 500_000 and not (await b.info("ns/one")).exists
    with pytest.raises(ValueError):
        await mirror.store_chunks("ns/short", stream(), size=1)
    await mirror.close()


class SlowReader(Layer):
    """A test layer whose store_chunks takes its chunks slowly and notes how many it has taken."""

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner)
        self.taken = 0

    async def store_chunks(self, name: str, chunks: object, *, size: int | None = None) -> None:  # type: ignore[override]
        async def slowly() -> AsyncIterator[bytes]:
            async for chunk in chunks:  # type: ignore[attr-defined]
                self.taken += 1
                await asyncio.sleep(0.002)
                yield chunk

        await super().store_chunks(name, slowly(), size=size)


async def test_streams_are_not_buffered_ahead_of_the_slowest_child() -> None:
    slow = SlowReader(MemoryBackend(memory_name()))
    mirror = await opened(MemoryBackend(memory_name()), slow)
    produced = 0
    lead = 0

    async def stream() -> AsyncIterator[bytes]:
        nonlocal produced, lead
        for _ in range(100):
            produced += 1
            lead = max(lead, produced - slow.taken)
            yield b"x" * 1000

    await mirror.store_chunks("ns/paced", stream(), size=100_000)
    assert slow.taken == 100
    assert lead <= 4  # the queue depth (2), the chunk in hand and the one being produced
    await mirror.close()


async def test_store_over_a_mirror_with_quota_and_hash() -> None:
    mirror = Mirror([MemoryBackend(memory_name()), MemoryBackend(memory_name())], read="fastest")
    store = Store(backend=mirror, config=CONFIG)
    await store.create()
    async with store:
        await store.store_many({f"data/{key(i)}": bytes(i) for i in range(20)})
        assert len(await store.load_many([f"data/{key(i)}" for i in range(20)])) == 20
        quota = await store.quota()
        assert set(quota) == {"limit", "usage"}
        assert await store.hash("data/" + key(3)) == await mirror.children[1].hash(await store.find("data/" + key(3)))
    await store.destroy()
    for child in mirror.children:
        with pytest.raises(StoreNotFound):
            await child.open()


def test_arguments_are_checked() -> None:
    child = MemoryBackend()
    with pytest.raises(ValueError):
        Mirror([])
    with pytest.raises(ValueError):
        Mirror([child, child])
    with pytest.raises(ValueError):
        Mirror([child], write_quorum=2)
    with pytest.raises(ValueError):
        Mirror([child], read="random")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Mirror([object()])  # type: ignore[list-item]
