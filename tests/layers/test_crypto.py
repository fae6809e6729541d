"""The encryption layer: the conformance suite around memory and posixfs, plus what encryption promises."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aiodepot import IntegrityError, Store
from aiodepot.backends.memory import MemoryBackend
from aiodepot.backends.posixfs import PosixFSBackend
from aiodepot.layers import Encrypt
from aiodepot.layers.crypto import derive_key
from tests.conformance.suite import CONFIG, BackendConformance, MakeBackend, StoreConformance

KEY = bytes(range(32))
SEGMENT = 64 * 1024


def memory_name() -> str:
    return f"test-{uuid.uuid4().hex}"


class TestEncryptMemoryStore(StoreConformance):
    @pytest.fixture
    def make_backend(self) -> MakeBackend:
        name = memory_name()
        return lambda: Encrypt(MemoryBackend(name), KEY)


class TestEncryptMemoryBackend(BackendConformance):
    @pytest.fixture
    def make_backend(self) -> MakeBackend:
        name = memory_name()
        return lambda: Encrypt(MemoryBackend(name), KEY)


class TestEncryptPosixFSStore(StoreConformance):
    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> MakeBackend:
        return lambda: Encrypt(PosixFSBackend(tmp_path / "store"), KEY)


class TestEncryptPosixFSBackend(BackendConformance):
    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> MakeBackend:
        return lambda: Encrypt(PosixFSBackend(tmp_path / "store"), KEY)


@pytest.fixture
async def pair() -> AsyncIterator[tuple[Encrypt, MemoryBackend]]:
    name = memory_name()
    layer = Encrypt(MemoryBackend(name), KEY)
    await layer.create()
    raw = MemoryBackend(name)
    async with layer, raw:
        yield layer, raw


async def test_stored_bytes_are_not_plaintext_and_nonces_differ(pair: tuple[Encrypt, MemoryBackend]) -> None:
    layer, raw = pair
    value = b"attack at dawn " * 100
    await layer.store("ns/a", value)
    await layer.store("ns/b", value)
    a, b = await raw.load("ns/a"), await raw.load("ns/b")
    assert b"attack" not in a and b"attack" not in b
    assert a != b and a[4:20] != b[4:20]  # a fresh random salt (hence key and nonces) per value
    assert len(a) == 20 + len(value) + 16 and a[:4] == b"ADE\x01"
    assert (await layer.info("ns/a")).size == len(value)
    assert [i.size async for i in layer.list("ns")] == [len(value)] * 2
    assert [i.size for i in await layer.info_batch(["ns/a", "ns/zz"])] == [len(value), 0]  # type: ignore[union-attr]
    await layer.store("ns/a", value)
    assert await raw.load("ns/a") != a  # even an overwrite with the same value


@pytest.mark.parametrize("position", [0, 3, 19, 25, 100, -1])
async def test_tampering_is_detected(pair: tuple[Encrypt, MemoryBackend], position: int) -> None:
    layer, raw = pair
    await layer.store("ns/v", os.urandom(1000))
    stored = bytearray(await raw.load("ns/v"))
    stored[position] ^= 0x01
    await raw.store("ns/v", bytes(stored))
    with pytest.raises(IntegrityError):
        await layer.load("ns/v")
    with pytest.raises(IntegrityError):
        await layer.load("ns/v", offset=10, size=10)
    with pytest.raises(IntegrityError):
        await layer.hash("ns/v")


async def test_wrong_key_and_foreign_data(pair: tuple[Encrypt, MemoryBackend]) -> None:
    layer, raw = pair
    await layer.store("ns/v", b"secret")
    other = Encrypt(raw, b"\xff" * 32)
    other.opened = True  # shares raw, which is open
    with pytest.raises(IntegrityError, match="key is wrong"):
        await other.load("ns/v")
    await raw.store("ns/plain", b"x" * 100)
    await raw.store("ns/short", b"ADE\x01")
    for name in ("ns/plain", "ns/short"):
        with pytest.raises(IntegrityError):
            await layer.load(name)
        with pytest.raises(IntegrityError):
            await layer.load(name, offset=5, size=3)


async def test_segments_cannot_be_cut_swapped_or_appended(pair: tuple[Encrypt, MemoryBackend]) -> None:
    layer, raw = pair
    value = os.urandom(3 * SEGMENT + 500)
    await layer.store("ns/v", value)
    stored = await raw.load("ns/v")
    sealed = SEGMENT + 16
    header, segments = stored[:20], [stored[20 + i * sealed : 20 + (i + 1) * sealed] for i in range(4)]
    forgeries = [
        header + b"".join(segments[:3]),  # truncated at a segment boundary
        header + segments[1] + segments[0] + segments[2] + segments[3],  # reordered
        stored + segments[3],  # appended
        header + b"".join(segments[:2]) + segments[3],  # one dropped
    ]
    for forged in forgeries:
        await raw.store("ns/v", forged)
        with pytest.raises(IntegrityError):
            await layer.load("ns/v")
    await raw.store("ns/v", header + b"".join(segments[:3]))
    with pytest.raises(IntegrityError):
        await layer.load("ns/v", offset=2 * SEGMENT + 10, size=5)  # the new "last" segment is rejected


async def test_ranged_loads_read_only_their_segments(pair: tuple[Encrypt, MemoryBackend]) -> None:
    layer, raw = pair
    value = os.urandom(10 * SEGMENT + 123)
    await layer.store("ns/big", value)
    reads: list[tuple[int, int | None]] = []
    original = raw.load

    async def counting(name: str, *, offset: int = 0, size: int | None = None) -> bytes:
        reads.append((offset, size))
        return await original(name, offset=offset, size=size)

    raw.load = counting  # type: ignore[method-assign]
    cases = [
        (5 * SEGMENT + 7, 100),
        (SEGMENT - 3, 10),
        (0, 10),
        (10 * SEGMENT, 123),
        (10 * SEGMENT + 100, 1000),
        (9 * SEGMENT, SEGMENT),
        (len(value) + 5, 10),
        (3, 0),
    ]
    for offset, size in cases:
        reads.clear()
        assert await layer.load("ns/big", offset=offset, size=size) == value[offset : offset + size]
        assert sum(s or 0 for _, s in reads) <= 2 * (SEGMENT + 16) + 21 + 1
    assert await layer.load("ns/big", offset=-50) == value[-50:]
    assert await layer.load("ns/big", offset=4 * SEGMENT) == value[4 * SEGMENT :]
    assert await layer.load("ns/big", offset=-len(value) - 10, size=20) == value[:20]


@pytest.mark.parametrize("size", [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 3 * SEGMENT])
async def test_streamed_and_whole_forms_agree(pair: tuple[Encrypt, MemoryBackend], size: int) -> None:
    layer, raw = pair
    value = os.urandom(size)

    async def stream() -> AsyncIterator[bytes]:
        for start in range(0, size, 10_000):
            yield value[start : start + 10_000]

    await layer.store_chunks("ns/streamed", stream(), size=size)
    await layer.store("ns/whole", value)
    assert (await raw.info("ns/streamed")).size == (await raw.info("ns/whole")).size
    assert await layer.load("ns/streamed") == value
    assert (await layer.info("ns/streamed")).size == size
    with pytest.raises(ValueError):
        await layer.store_chunks("ns/bad", stream(), size=size + 1)
    assert not (await raw.info("ns/bad")).exists


async def test_through_a_store_with_files(tmp_path: Path) -> None:
    store = Store(backend=Encrypt(PosixFSBackend(tmp_path / "store"), KEY), config=CONFIG)
    store.backend.capabilities = store.backend.capabilities.replace(parallel_ranges=True)
    payload = os.urandom(5 * SEGMENT + 77)
    source = tmp_path / "in.bin"
    source.write_bytes(payload)
    await store.create()
    async with store:
        await store.store_file("flat/file", source)
        assert payload[:1000] not in (tmp_path / "store" / "flat" / "file").read_bytes()
        assert await store.load("flat/file") == payload
        await store.load_file("flat/file", tmp_path / "out.bin")
        assert (tmp_path / "out.bin").read_bytes() == payload
    await store.destroy()


def test_key_checks_and_derivation() -> None:
    with pytest.raises(ValueError):
        Encrypt(MemoryBackend(), b"short")
    salt = b"s" * 16
    key = derive_key("correct horse", salt, n=2**10)
    assert len(key) == 32 and key == derive_key(b"correct horse", salt, n=2**10)
    assert key != derive_key("correct horse", b"t" * 16, n=2**10)
    with pytest.raises(ValueError):
        derive_key("", salt)
    with pytest.raises(ValueError):
        derive_key("x", b"short")


def test_missing_cryptography_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    from aiodepot.errors import MissingDependency

    real_import = builtins.__import__

    def no_cryptography(name: str, *args: object, **kwargs: object) -> object:
        if name.startswith("cryptography"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_cryptography)
    monkeypatch.setattr("importlib.import_module", lambda name: no_cryptography(name))
    with pytest.raises(MissingDependency, match=r"aiodepot\[crypto\]"):
        Encrypt(MemoryBackend(), KEY)
