"""The transform layers: the conformance suite around memory and posixfs, plus tamper detection."""

from __future__ import annotations

import uuid
import zlib
from pathlib import Path

import pytest

from aiodepot import IntegrityError, Store
from aiodepot.backends.memory import MemoryBackend
from aiodepot.backends.posixfs import PosixFSBackend
from aiodepot.layers import Compress, Hmac, Prefix
from tests.conformance.suite import CONFIG, BackendConformance, MakeBackend, StoreConformance, key

KEY = b"k" * 32


def memory_name() -> str:
    return f"test-{uuid.uuid4().hex}"


class TestHmacMemoryStore(StoreConformance):
    @pytest.fixture
    def make_backend(self) -> MakeBackend:
        name = memory_name()
        return lambda: Hmac(MemoryBackend(name), KEY)


class TestHmacMemoryBackend(BackendConformance):
    @pytest.fixture
    def make_backend(self) -> MakeBackend:
        name = memory_name()
        return lambda: Hmac(MemoryBackend(name), KEY)


class TestHmacPosixFSStore(StoreConformance):
    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> MakeBackend:
        return lambda: Hmac(PosixFSBackend(tmp_path / "store"), KEY)


class TestHmacPosixFSBackend(BackendConformance):
    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> MakeBackend:
        return lambda: Hmac(PosixFSBackend(tmp_path / "store"), KEY)


class TestCompressMemoryStore(StoreConformance):
    @pytest.fixture
    def make_backend(self) -> MakeBackend:
        name = memory_name()
        return lambda: Compress(MemoryBackend(name))


class TestCompressZlibMemoryBackend(BackendConformance):
    @pytest.fixture
    def make_backend(self) -> MakeBackend:
        name = memory_name()
        return lambda: Compress(MemoryBackend(name), codec="zlib")


class TestCompressPosixFSStore(StoreConformance):
    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> MakeBackend:
        return lambda: Compress(PosixFSBackend(tmp_path / "store"))


class TestCompressPosixFSBackend(BackendConformance):
    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> MakeBackend:
        return lambda: Compress(PosixFSBackend(tmp_path / "store"))


class TestStackedMemoryStore(StoreConformance):
    @pytest.fixture
    def make_backend(self) -> MakeBackend:
        name = memory_name()
        return lambda: Hmac(Compress(Prefix(MemoryBackend(name), "tenant1")), KEY)


async def test_hmac_detects_tampering(tmp_path: Path) -> None:
    base = tmp_path / "store"
    store = Store(backend=Hmac(PosixFSBackend(base), KEY), config=CONFIG)
    await store.create()
    async with store:
        await store.store("config/main", b"the value")
        await store.store("config/other", b"another value")
    path = base / "config" / "main"
    stored = path.read_bytes()
    assert stored.startswith(b"the value") and len(stored) == len(b"the value") + 32
    path.write_bytes(b"THE value" + stored[9:])
    async with store:
        with pytest.raises(IntegrityError):
            await store.load("config/main")
        with pytest.raises(IntegrityError):
            await store.load("config/main", offset=1, size=2)  # ranges are verified too
        with pytest.raises(IntegrityError):
            await store.hash("config/main")
        results = await store.load_many(["config/main", "config/other"], return_exceptions=True)
        assert isinstance(results[0], IntegrityError) and results[1] == b"another value"
    path.write_bytes(b"short")
    async with store:
        with pytest.raises(IntegrityError):
            await store.load("config/main")


async def test_hmac_wrong_key() -> None:
    name = memory_name()
    writer = Store(backend=Hmac(MemoryBackend(name), KEY), config=CONFIG)
    await writer.create()
    async with writer:
        await writer.store("data/" + key(1), b"payload")
    reader = Store(backend=Hmac(MemoryBackend(name), b"x" * 32), config=CONFIG)
    async with reader:
        with pytest.raises(IntegrityError):
            await reader.load("data/" + key(1))
        assert (await reader.info("data/" + key(1))).size == 7  # metadata is not authenticated


def test_hmac_key_is_checked() -> None:
    with pytest.raises(ValueError):
        Hmac(MemoryBackend(), b"short")


@pytest.mark.parametrize("codec", ["zlib", "zstd"])
async def test_compress_stores_compressed(codec: str) -> None:
    if codec == "zstd":
        pytest.importorskip("zstandard")
    name = memory_name()
    store = Store(backend=Compress(MemoryBackend(name), codec=codec), config=CONFIG)
    value = b"compressible " * 10_000
    await store.create()
    async with store:
        await store.store("config/main", value)
        assert (await store.info("config/main")).size == len(value)
        assert await store.load("config/main", offset=-5) == value[-5:]
    inner = MemoryBackend(name)
    async with inner:
        stored = await inner.load("config/main")
        assert len(stored) < len(value) // 10
        assert (await inner.info("config/main")).size == len(stored)
        if codec == "zlib":
            assert zlib.decompress(stored[12:]) == value
        await inner.store("config/main", stored[:12] + b"garbage")
        await inner.store("config/raw", b"not compressed at all")
    async with store:
        for name_ in ("config/main", "config/raw"):
            with pytest.raises(IntegrityError):
                await store.load(name_)


async def test_compress_reads_either_codec() -> None:
    pytest.importorskip("zstandard")
    name = memory_name()
    writer = Store(backend=Compress(MemoryBackend(name), codec="zlib"), config=CONFIG)
    await writer.create()
    async with writer:
        await writer.store("config/main", b"zlib data")
    async with Store(backend=Compress(MemoryBackend(name), codec="zstd"), config=CONFIG) as reader:
        assert await reader.load("config/main") == b"zlib data"
    with pytest.raises(ValueError):
        Compress(MemoryBackend(), codec="lz4")
