"""The view layers: Prefix runs the conformance suite; ReadOnly and WriteOnly get focused tests (a store
that refuses all writes, or all reads, cannot run a suite that writes and reads back)."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pytest

from aiodepot import ObjectNotFound, PermissionDenied, Store, StoreExists, StoreNotFound
from aiodepot.backends.memory import MemoryBackend
from aiodepot.backends.posixfs import PosixFSBackend
from aiodepot.layers import Layer, Prefix, ReadOnly, WriteOnly
from tests.conformance.suite import CONFIG, BackendConformance, MakeBackend, StoreConformance, key


def memory_name() -> str:
    return f"test-{uuid.uuid4().hex}"


class TestLayerMemoryStore(StoreConformance):
    @pytest.fixture
    def make_backend(self) -> MakeBackend:
        name = memory_name()
        return lambda: Layer(MemoryBackend(name))


class TestLayerPosixFSBackend(BackendConformance):
    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> MakeBackend:
        return lambda: Layer(PosixFSBackend(tmp_path / "store"))


class TestPrefixMemoryStore(StoreConformance):
    @pytest.fixture
    def make_backend(self) -> MakeBackend:
        name = memory_name()
        return lambda: Prefix(MemoryBackend(name), "tenant1")


class TestPrefixMemoryBackend(BackendConformance):
    @pytest.fixture
    def make_backend(self) -> MakeBackend:
        name = memory_name()
        return lambda: Prefix(MemoryBackend(name), "tenants/t1")


class TestPrefixPosixFSStore(StoreConformance):
    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> MakeBackend:
        return lambda: Prefix(PosixFSBackend(tmp_path / "store"), "tenant1")


class TestPrefixPosixFSBackend(BackendConformance):
    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> MakeBackend:
        return lambda: Prefix(PosixFSBackend(tmp_path / "store"), "tenant1")


async def test_prefix_isolation() -> None:
    name = memory_name()
    a = Store(backend=Prefix(MemoryBackend(name), "tenant-a"), config=CONFIG)
    b = Store(backend=Prefix(MemoryBackend(name), "tenant-b"), config=CONFIG)
    await a.create()
    await b.create()  # the inner store exists already: shared
    async with a, b:
        await a.store("config/main", b"A")
        await b.store("config/main", b"B")
        await a.store("data/" + key(1), b"only a")
        assert await a.load("config/main") == b"A"
        assert await b.load("config/main") == b"B"
        assert not (await b.info("data/" + key(1))).exists
        with pytest.raises(ObjectNotFound):
            await b.load("data/" + key(1))
        assert [i.name async for i in b.list("data")] == []
        await b.delete("config/main")
        assert await a.load("config/main") == b"A"
    inner = MemoryBackend(name)
    async with inner:
        assert [i.name async for i in inner.list("")] == ["tenant-a", "tenant-b"]
        assert await inner.load("tenant-a/config/main") == b"A"
    await b.destroy()
    with pytest.raises(StoreNotFound):
        await b.open()
    async with a:  # untouched by b's destroy
        assert await a.load("config/main") == b"A"
    with pytest.raises(StoreExists):
        await a.create()
    await a.destroy()


async def test_layer_capabilities_and_repr() -> None:
    inner = MemoryBackend(memory_name())
    layer = ReadOnly(Prefix(inner, "t"))
    assert layer.capabilities == inner.capabilities
    assert "ReadOnly" in repr(layer) and "Prefix 't'" in repr(layer)


@pytest.fixture
async def written(tmp_path: Path) -> PosixFSBackend:
    """A posixfs store written through the inner backend directly."""
    inner = PosixFSBackend(tmp_path / "store")
    await inner.create()
    async with inner:
        await inner.store("config/main", b"cfg")
        await inner.store(f"data/{key(1)[:2]}/{key(1)}", b"value")
    return inner


def snapshot(base: Path) -> dict[str, bytes]:
    return {str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*")) if p.is_file()}


async def test_read_only_reads(written: PosixFSBackend, tmp_path: Path) -> None:
    store = Store(backend=ReadOnly(written), config={"config/": {"levels": [0]}, "data/": {"levels": [1]}})
    async with store:
        assert await store.load("config/main") == b"cfg"
        assert await store.load("data/" + key(1), offset=1, size=3) == b"alu"
        assert (await store.info("config/main")).size == 3
        assert [i.name async for i in store.list("data")] == [key(1)]
        assert await store.hash("config/main") == hashlib.sha256(b"cfg").hexdigest()
        assert await store.load_many(["config/main"]) == [b"cfg"]


async def test_read_only_refuses_writes(written: PosixFSBackend, tmp_path: Path) -> None:
    before = snapshot(tmp_path / "store")
    layer = ReadOnly(written)
    with pytest.raises(PermissionDenied, match="read-only") as caught:
        await layer.create()
    assert str(caught.value).startswith(f"file://{tmp_path / 'store'}: create: refused")  # the location, no class
    with pytest.raises(PermissionDenied, match="read-only"):
        await layer.destroy()
    source = tmp_path / "source"
    source.write_bytes(b"file")

    async def chunks() -> object:
        yield b"x"

    async with layer:
        calls = [
            layer.store("config/main", b"new"),
            layer.store("config/other", b"new"),
            layer.delete("config/main"),
            layer.move("config/main", "config/moved"),
            layer.mkdir("newdir"),
            layer.rmdir("config"),
            layer.defrag([("config/main", 0, 1)], target="config/d"),
            layer.store_file("config/f", str(source), size=4),
            layer.store_chunks("config/c", chunks(), size=1),  # type: ignore[arg-type]
        ]
        for call in calls:
            with pytest.raises(PermissionDenied, match="read-only"):
                await call
        results = await layer.store_batch([("config/a", b"1"), ("config/b", b"2")])
        assert all(isinstance(r, PermissionDenied) for r in results)
        results = await layer.delete_batch(["config/main"])
        assert all(isinstance(r, PermissionDenied) for r in results)
        store = Store(backend=layer, config={"config/": {"levels": [0]}})
        with pytest.raises(PermissionDenied):
            await store.store("config/main", b"via store")
        with pytest.raises(PermissionDenied):
            await store.move("config/main", delete=True)
    assert snapshot(tmp_path / "store") == before


async def test_write_only() -> None:
    name = memory_name()
    layer = WriteOnly(MemoryBackend(name))
    await layer.create()
    async with layer:
        await layer.store("ns/a", b"secret")
        await layer.store_chunks("ns/b", _stream(b"xy"), size=2)
        assert (await layer.info("ns/a")).size == 6
        assert [i.name async for i in layer.list("ns")] == ["a", "b"]
        for call in (
            layer.load("ns/a"),
            layer.hash("ns/a"),
            layer.gather([("ns/a", 0, 1)]),
            layer.defrag([("ns/a", 0, 1)], target="ns/c"),
            layer.read_into("ns/a", 0, offset=0, size=1),
        ):
            with pytest.raises(PermissionDenied, match="write-only"):
                await call
        with pytest.raises(PermissionDenied, match="write-only"):
            [c async for c in layer.read_chunks("ns/a")]
        refused = await layer.load_batch(["ns/a"])
        assert isinstance(refused[0], PermissionDenied) and str(refused[0]).startswith(f"memory://{name}: load 'ns/a'")
        await layer.move("ns/a", "ns/z")
        await layer.delete("ns/b")
    inner = MemoryBackend(name)
    async with inner:
        assert await inner.load("ns/z") == b"secret"
        assert not (await inner.info("ns/b")).exists
    await layer.destroy()


async def _stream(data: bytes):  # type: ignore[no-untyped-def]
    yield data


async def test_composition() -> None:
    name = memory_name()
    writer = Store(backend=Prefix(MemoryBackend(name), "tenant1"), config=CONFIG)
    await writer.create()
    async with writer:
        await writer.store("config/main", b"v")
    reader = Store(backend=ReadOnly(Prefix(MemoryBackend(name), "tenant1")), config=CONFIG)
    async with reader:
        assert await reader.load("config/main") == b"v"
        with pytest.raises(PermissionDenied):
            await reader.store("config/main", b"w")
