"""The key transform layers: the conformance suite around memory and posixfs, plus what the inner backend
sees, names a REST server refuses, and name recovery."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiodepot import IntegrityError, InvalidName, Store
from aiodepot.backends.memory import MemoryBackend
from aiodepot.backends.posixfs import PosixFSBackend
from aiodepot.backends.rest import RestBackend
from aiodepot.layers import Encrypt, HashedNames, URLEncode
from aiodepot.names import MAX_BACKEND_NAME_LENGTH
from tests.conformance.suite import CONFIG, BackendConformance, MakeBackend, StoreConformance, key
from tests.servers.rest import ThreadedServer


def memory_name() -> str:
    return f"test-{uuid.uuid4().hex}"


class TestURLEncodeMemoryStore(StoreConformance):
    @pytest.fixture
    def make_backend(self) -> MakeBackend:
        name = memory_name()
        return lambda: URLEncode(MemoryBackend(name))


class TestURLEncodeMemoryBackend(BackendConformance):
    @pytest.fixture
    def make_backend(self) -> MakeBackend:
        name = memory_name()
        return lambda: URLEncode(MemoryBackend(name), safe="_")  # even '.' and '-' escaped


class TestURLEncodePosixFSStore(StoreConformance):
    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> MakeBackend:
        return lambda: URLEncode(PosixFSBackend(tmp_path / "store"))


class TestURLEncodePosixFSBackend(BackendConformance):
    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> MakeBackend:
        return lambda: URLEncode(PosixFSBackend(tmp_path / "store"))


class TestHashedNamesMemoryStore(StoreConformance):
    @pytest.fixture
    def make_backend(self) -> MakeBackend:
        name = memory_name()
        return lambda: HashedNames(MemoryBackend(name))


class TestHashedNamesMemoryBackend(BackendConformance):
    @pytest.fixture
    def make_backend(self) -> MakeBackend:
        name = memory_name()
        return lambda: HashedNames(MemoryBackend(name), levels=2, key=b"names")


class TestHashedNamesPosixFSStore(StoreConformance):
    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> MakeBackend:
        return lambda: HashedNames(PosixFSBackend(tmp_path / "store"), levels=1)


class TestHashedNamesPosixFSBackend(BackendConformance):
    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> MakeBackend:
        return lambda: HashedNames(PosixFSBackend(tmp_path / "store"))


class TestHashedEncryptedPosixFSStore(StoreConformance):
    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> MakeBackend:
        return lambda: HashedNames(Encrypt(PosixFSBackend(tmp_path / "store"), b"k" * 32), key=b"names")


ODD = 'flat/what?is#this:*"<>|%20~'


async def test_url_encoding_on_the_inner_backend() -> None:
    name = memory_name()
    store = Store(backend=URLEncode(MemoryBackend(name)), config=CONFIG)
    await store.create()
    async with store:
        await store.store(ODD, b"odd")
        await store.store("flat/plain-name_1.x", b"plain")
        await store.store("flat/a", b"a")
        assert await store.load(ODD) == b"odd"
        assert [i.name async for i in store.list("flat")] == sorted(["a", "plain-name_1.x", ODD[5:]])
        await store.move(ODD, delete=True)
        assert [i.name async for i in store.list("flat", deleted=True)] == [ODD[5:]]
    inner = MemoryBackend(name)
    async with inner:
        assert [i.name async for i in inner.list("flat")] == [
            "a",
            "plain-name_1.x",
            "what%3fis%23this%3a%2a%22%3c%3e%7c%2520%7e.del",
        ]


async def test_url_encoding_length_limit() -> None:
    layer = URLEncode(MemoryBackend(memory_name()))
    await layer.create()
    async with layer:
        await layer.store("ns/" + "?" * 41, b"fits")  # 3 + 123 characters
        with pytest.raises(InvalidName, match=f"at most {MAX_BACKEND_NAME_LENGTH}"):
            await layer.store("ns/" + "?" * 42, b"too long")
        with pytest.raises(InvalidName):
            await layer.store("ns/Upper", b"x")
    with pytest.raises(ValueError):
        URLEncode(MemoryBackend(), safe="%")


@pytest.fixture
def rest_server() -> Iterator[ThreadedServer]:
    with ThreadedServer(MemoryBackend(f"rest-{uuid.uuid4().hex}")) as server:
        yield server


async def test_names_rest_refuses_travel_url_encoded(rest_server: ThreadedServer) -> None:
    quick = RestBackend.default_retry.with_backoff(0.01)
    plain = Store(backend=RestBackend(rest_server.url, retry=quick), config=CONFIG)
    await plain.create()
    async with plain:
        with pytest.raises(InvalidName, match="REST"):
            await plain.store("flat/what?#", b"x")
    encoded = Store(backend=URLEncode(RestBackend(rest_server.url, retry=quick)), config=CONFIG)
    async with encoded:
        for name in ("flat/what?#", "flat/a#b", "flat/q?"):
            await encoded.store(name, name.encode())
        names = ["flat/what?#", "flat/a#b", "flat/q?"]
        assert await encoded.load_many(names) == [name.encode() for name in names]
        assert [i.name async for i in encoded.list("flat")] == ["a#b", "q?", "what?#"]
        assert (await encoded.info("flat/q?")).size == len(b"flat/q?")
    async with plain:
        assert [i.name async for i in plain.list("flat")] == ["a%23b", "q%3f", "what%3f%23"]
    await plain.destroy()


async def test_hashed_names_on_the_inner_backend() -> None:
    name = memory_name()
    store = Store(backend=HashedNames(MemoryBackend(name), levels=1), config=CONFIG)
    await store.create()
    async with store:
        await store.store("config/main", b"settings")
        await store.store("data/" + key(1), b"data")
        await store.store("flat/" + "x" * 95, b"long")  # fixed length, however long the name
        await store.move("data/" + key(1), delete=True)
        assert [i.name async for i in store.list("config")] == ["main"]
        assert [i.name async for i in store.list("data", deleted=True)] == [key(1)]
        assert (await store.info("config/main")).size == 8
        with pytest.raises(InvalidName, match="reserved"):
            await store.backend.mkdir("~ab")
    inner = MemoryBackend(name)
    async with inner:
        spread = [i async for i in inner.list("config")]
        assert len(spread) == 1 and spread[0].directory and spread[0].name.startswith("~")
        stored = [i async for i in inner.list(f"config/{spread[0].name}")]
        assert len(stored) == 1 and len(stored[0].name) == 32 and "main" not in stored[0].name
        assert stored[0].size == 8 + 5 + 4  # value, header, the name "main"
        flat = [i async for i in inner.list("flat")]
        leaves = [i async for i in inner.list(f"flat/{flat[0].name}")]
        assert [len(leaf.name) for leaf in leaves] == [32]
        data_dirs = [i.name async for i in inner.list(f"data/{key(1)[:2]}/{key(1)[2:4]}")]
        assert len(data_dirs) == 1 and data_dirs[0].startswith("~")
        deleted = [i.name async for i in inner.list(f"data/{key(1)[:2]}/{key(1)[2:4]}/{data_dirs[0]}")]
        assert len(deleted) == 1 and deleted[0].endswith(".del") and len(deleted[0]) == 36


async def test_hashed_names_errors_say_what_is_wrong_without_naming_the_layer() -> None:
    layer = HashedNames(MemoryBackend(memory_name()), levels=4)
    await layer.create()
    async with layer:
        with pytest.raises(InvalidName) as reserved:
            await layer.mkdir("~ab")
        with pytest.raises(InvalidName) as too_long:
            await layer.store("d" * 90 + "/x", b"x")  # 90 + 1 + 4 x 4 + 32 characters stored
    assert "'~ab': names starting with '~' are reserved in this store" in str(reserved.value)
    assert str(too_long.value).startswith(f"'{'d' * 90}/x' is too long once hashed: it is stored as 139 characters")
    for caught in (reserved, too_long):
        assert "HashedNames" not in str(caught.value) and "layer" not in str(caught.value)
    await layer.destroy()


async def test_hashed_names_detect_a_swapped_item() -> None:
    name = memory_name()
    layer = HashedNames(MemoryBackend(name))
    await layer.create()
    inner = MemoryBackend(name)
    async with layer, inner:
        await layer.store("ns/a", b"A")
        await layer.store("ns/b", b"B")
        path_a, _ = layer._item("ns/a")
        path_b, _ = layer._item("ns/b")
        await inner.store(path_a, await inner.load(path_b))
        with pytest.raises(IntegrityError, match="another name"):
            await layer.load("ns/a")
        assert isinstance((await layer.load_batch(["ns/a"]))[0], IntegrityError)
        await inner.store("ns/stray", b"not an item of the layer")
        assert [i.name async for i in layer.list("ns")] == ["b", "b"]  # the swapped copy names itself "b"
        await layer.move("ns/b", "ns/c")  # another last element: rewritten with the new header
        assert await layer.load("ns/c") == b"B"
        assert not (await layer.info("ns/b")).exists


def test_hashed_names_keyed_and_checked() -> None:
    plain, keyed = HashedNames(MemoryBackend()), HashedNames(MemoryBackend(), key=b"secret")
    assert plain._item("ns/a")[0] != keyed._item("ns/a")[0]
    assert plain._item("ns/a.del")[0] == plain._item("ns/a")[0] + ".del"
    with pytest.raises(InvalidName, match="too long once hashed"):
        HashedNames(MemoryBackend(), levels=4)._item("a" * 80 + "/b" * 4 + "/item")
    with pytest.raises(ValueError):
        HashedNames(MemoryBackend(), levels=9)
    with pytest.raises(ValueError):
        HashedNames(MemoryBackend(), key=b"k" * 65)
