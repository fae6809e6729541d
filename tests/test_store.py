"""Store construction and configuration (behaviour on each backend is in tests/conformance)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

import aiodepot
from aiodepot import BackendURLInvalid, Store
from aiodepot.backends.base import FirstRange
from aiodepot.backends.memory import MemoryBackend
from aiodepot.items import ItemInfo
from aiodepot.layers.base import Layer
from aiodepot.layers.views import Prefix, ReadOnly, WriteOnly


def test_needs_exactly_one_of_url_and_backend() -> None:
    with pytest.raises(ValueError, match="either"):
        Store()
    with pytest.raises(ValueError, match="either"):
        Store("memory://x", backend=MemoryBackend("x"))
    with pytest.raises(ValueError, match="backend options"):
        Store(backend=MemoryBackend("x"), quota=10)
    with pytest.raises(TypeError, match="Backend"):
        Store(backend=object())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "non-empty"),
        ({"data/": {}}, "levels"),
        ({"data/": {"levels": []}}, "levels"),
        ({"data/": {"levels": [1.5]}}, "levels"),
        ({"data/": {"levels": [True]}}, "levels"),
        ({"data/": {"levels": [9]}}, "levels"),
        ({"data/": {"levels": [1], "cahce": "x"}}, "unknown config keys"),
        ({"data/": [1]}, "mapping"),
        ({"Data/": {"levels": [0]}}, "lowercase"),
        ({"data/": {"levels": [0]}, "data": {"levels": [1]}}, "twice"),
    ],
)
def test_bad_config_says_why(config: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Store("memory://", config=config)  # type: ignore[arg-type]


def test_levels_longest_namespace_wins() -> None:
    store = Store("memory://", config={"": {"levels": [0]}, "data/": {"levels": [1]}, "data/sub/": {"levels": [2]}})
    assert store.levels == {"data/sub/": [2], "data/": [1], "": [0]}
    assert store._levels_for("data/sub/abcd") == [2]
    assert store._levels_for("data/abcd") == [1]
    assert store._levels_for("database/abcd") == [0]  # "data/" does not swallow "database"


def test_emulation_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BORGSTORE_LATENCY", "20000")  # µs
    monkeypatch.setenv("BORGSTORE_BANDWIDTH", "8000000")  # bit/s
    store = Store("memory://")
    assert store.emulator.latency == pytest.approx(0.02)
    assert store.emulator.bandwidth == pytest.approx(8e6)
    assert Store("memory://", latency=0.5).emulator.latency == 0.5  # an argument wins
    monkeypatch.setenv("BORGSTORE_LATENCY", "fast")
    with pytest.raises(ValueError, match="BORGSTORE_LATENCY"):
        Store("memory://")


AZURE_KEY = "c2Vr/3JpdA=="  # base64 keys hold "/"
SECRET_URLS = {
    "http://alice:s3cret@127.0.0.1:9/depot": "http://alice:***@127.0.0.1:9/depot",
    f"azure://devstoreaccount1:{AZURE_KEY}@container/depot?endpoint=http://127.0.0.1:9/devstoreaccount1": (
        "azure://devstoreaccount1:***@container/depot?endpoint=http://127.0.0.1:9/devstoreaccount1"
    ),
}


@pytest.mark.parametrize(("url", "shown"), SECRET_URLS.items(), ids=["password", "azure-key"])
def test_url_and_repr_hide_secrets_as_the_backend_location_does(url: str, shown: str) -> None:
    store = Store(url)
    assert store.url == shown == store.backend.location
    assert repr(store) == f"<Store {shown!r} closed>"
    sync = aiodepot.SyncStore(url)
    assert sync.url == shown and repr(sync) == f"<SyncStore <Store {shown!r} closed>>"


async def test_errors_name_the_store_without_its_secrets() -> None:
    store = Store("http://alice:s3cret@127.0.0.1:9/depot")
    with pytest.raises(aiodepot.StoreError) as caught:
        await store.load("data/x")  # not open
    assert caught.value.store == "http://alice:***@127.0.0.1:9/depot"
    assert "s3cret" not in str(caught.value)


def test_max_concurrency_defaults_to_backend_preference(tmp_path: Path) -> None:
    assert Store(f"file://{tmp_path}").max_concurrency == 512
    assert Store("memory://").max_concurrency == 64
    assert Store("memory://", max_concurrency=3).max_concurrency == 3
    with pytest.raises(ValueError):
        Store("memory://", max_concurrency=0)


def test_bad_urls() -> None:
    with pytest.raises(BackendURLInvalid, match="unknown store URL scheme"):
        Store("nosuch://x")
    with pytest.raises(BackendURLInvalid, match="no scheme"):
        Store("")


def test_a_local_path_is_a_file_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert Store(str(tmp_path / "depot")).url == (tmp_path / "depot").as_uri()
    monkeypatch.chdir(tmp_path)
    for relative in ("depot", "./depot", "sub/../depot"):
        assert Store(relative).url == (tmp_path / "depot").as_uri()
    assert Store("memory://x").url == "memory://x"


async def test_unclosed_store_warns() -> None:
    store = Store(f"memory://{uuid.uuid4().hex}")
    await store.create()
    await store.open()
    with pytest.warns(ResourceWarning, match="not closed"):
        store.__del__()
    await store.close()


def test_error_tree() -> None:
    assert issubclass(aiodepot.ObjectNotFound, KeyError)
    assert issubclass(aiodepot.InvalidName, ValueError)
    assert issubclass(aiodepot.PermissionDenied, PermissionError)
    assert issubclass(aiodepot.BackendURLInvalid, ValueError)
    assert issubclass(aiodepot.ConnectionLost, ConnectionError)
    assert issubclass(aiodepot.MissingDependency, ImportError)
    for name in aiodepot.errors.__all__:
        assert issubclass(getattr(aiodepot.errors, name), aiodepot.StoreError)
    assert str(aiodepot.ObjectNotFound("data/x")) == "no item 'data/x'"  # not KeyError's quoted repr


class RangedMemory(MemoryBackend):
    """A memory backend that claims parallel range loads pay off, and counts its loads."""

    capabilities = MemoryBackend.capabilities.replace(parallel_ranges=True, part_size=1000)

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.loads: list[tuple[int, int | None]] = []

    async def _load(self, name: str, offset: int, size: int | None) -> bytes:
        self.loads.append((offset, size))
        return await super()._load(name, offset, size)


async def test_big_loads_go_as_parallel_ranges() -> None:
    backend = RangedMemory(uuid.uuid4().hex)
    store = Store(backend=backend, max_bytes_in_flight=2500)
    payload = bytes(range(256)) * 40  # 10240 bytes: 11 ranges of 1000
    await store.create()
    async with store:
        await store.store("big", payload)
        backend.loads.clear()
        assert await store.load("big") == payload
        assert sorted(backend.loads) == [(start, 1000) for start in range(0, 10000, 1000)] + [(10000, 240)]
        assert store.budget.in_flight == 0
        backend.loads.clear()
        assert await store.load("big", offset=500, size=3000) == payload[500:3500]
        assert sorted(backend.loads) == [(500, 1000), (1500, 1000), (2500, 1000)]
        await store.store("small", b"tiny")
        backend.loads.clear()
        assert await store.load("small") == b"tiny"
        assert backend.loads == [(0, 1000)]  # one request, as a plain load
        assert await store.load("big", offset=-10) == payload[-10:]  # from the end: one plain request
        assert await store.load("big", offset=10_000, size=5000) == payload[10_000:]  # short at the end
    await store.destroy()


class IntoMemory(RangedMemory):
    """A ranged memory backend that receives ranges into the caller's buffer, and counts those."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.into: list[tuple[int, int]] = []

    async def _load_into(self, name: str, offset: int, buffer: memoryview) -> int:
        self.into.append((offset, len(buffer)))
        data = await MemoryBackend._load(self, name, offset, len(buffer))  # not counted as a load
        buffer[: len(data)] = data
        return len(data)


async def test_ranges_go_into_one_buffer_where_the_backend_can() -> None:
    backend = IntoMemory(uuid.uuid4().hex)
    store = Store(backend=backend)
    payload = bytes(range(251)) * 10  # 2510 bytes: a probe of 1000, then two ranges into the buffer
    await store.create()
    async with store:
        await store.store("big", payload)
        backend.loads.clear()
        assert await store.load("big") == payload
        assert backend.loads == [(0, 1000)] and sorted(backend.into) == [(1000, 1000), (2000, 510)]
        assert store.stats["backend_load_calls"] >= 3  # the meter counts the ranges as loads
        # a layer that forwards load forwards load_into; one with a load of its own loads with it
        buffer = bytearray(100)
        assert await ReadOnly(backend).load_into("big", 5, buffer) == 100 and buffer == payload[5:105]
        assert backend.into[-1] == (5, 100)
        with pytest.raises(aiodepot.PermissionDenied):
            await WriteOnly(backend).load_into("big", 5, buffer)
        # the default (load and copy) where a backend has no _load_into, through a layer that changes loads
        plain = MemoryBackend(uuid.uuid4().hex)
        await plain.create()
        async with plain:
            await plain.store("x", payload)
            buffer = bytearray(100)
            assert await plain.load_into("x", 2500, buffer) == 10 and buffer[:10] == payload[2500:]
            assert await plain.load_into("x", 5000, buffer) == 0
            with pytest.raises(ValueError):
                await plain.load_into("x", -1, buffer)
    await store.destroy()


class ChangingMemory(RangedMemory):
    """Replaces the value once, between the probe and the other parts of a ranged load."""

    replacement: bytes | None = None

    async def load(self, name: str, *, offset: int = 0, size: int | None = None) -> bytes:
        if offset > 0 and self.replacement is not None:
            replacement, self.replacement = self.replacement, None
            await self.store(name, replacement)
        return await super().load(name, offset=offset, size=size)


async def test_a_value_replaced_during_a_ranged_load_is_loaded_again() -> None:
    backend = ChangingMemory(uuid.uuid4().hex)
    store = Store(backend=backend)
    old, new = b"o" * 5000, b"n" * 6000
    await store.create()
    async with store:
        await store.store("big", old)
        await asyncio.sleep(0.01)  # a later mtime for the replacement
        backend.replacement = new
        assert await store.load("big") == new  # never a mix of the two
    await store.destroy()


class VersionedMemory(IntoMemory):
    """A ranged memory backend whose first range carries the value's size and version (a counter of its
    stores), as an S3 GET's reply does, and whose other ranges are conditional on the version. It can
    replace the value between the first range and the others (``replacements``, one at each load)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.versions: dict[str, int] = {}
        self.infos = 0
        self.replacements: list[bytes] = []

    async def _store(self, name: str, value: bytes | memoryview, *, replace: bool) -> None:
        await super()._store(name, value, replace=replace)
        self.versions[name] = self.versions.get(name, 0) + 1

    async def _info(self, name: str) -> ItemInfo:
        self.infos += 1
        return await super()._info(name)

    async def _load_first(self, name: str, offset: int, size: int) -> FirstRange:
        data = await self._load(name, offset, size)
        whole = MemoryBackend._info_blocking(self, name).size
        version = str(self.versions[name])
        if self.replacements:
            await self.store(name, self.replacements.pop(0))
        return FirstRange(data, whole, version=version)

    async def _load_into_if(self, name: str, offset: int, buffer: memoryview, version: str) -> int:
        if str(self.versions.get(name)) != version:
            raise aiodepot.errors.ValueChanged(f"{name} is not version {version}")
        return await self._load_into(name, offset, buffer)


class Doubled(Layer):
    """A layer with a load of its own: each range is its first half twice."""

    async def load(self, name: str, *, offset: int = 0, size: int | None = None) -> bytes:
        data = await self.inner.load(name, offset=offset, size=size)
        return data[: len(data) // 2] * 2


async def test_a_versioned_first_range_saves_the_size_requests() -> None:
    backend = VersionedMemory(uuid.uuid4().hex)
    store = Store(backend=backend)
    payload = bytes(range(251)) * 10
    await store.create()
    async with store:
        await store.store("big", payload)
        backend.loads.clear()
        backend.infos = 0
        assert await store.load("big") == payload
        # one request for the first range (size and version in its reply), the rest conditional on it
        assert backend.loads == [(0, 1000)] and sorted(backend.into) == [(1000, 1000), (2000, 510)]
        assert backend.infos == 0
        assert await store.load("big", offset=1500, size=1005) == payload[1500:2505]
        assert await store.load("big", offset=1500, size=5000) == payload[1500:]  # no range past the end
        assert backend.into[-1] == (2500, 10)
        # a layer that maps names forwards both; one with a load of its own asks info (no version)
        prefixed = Prefix(backend, "p")
        await prefixed.store("big", payload)
        backend.infos = 0
        first = await prefixed.load_first("big", 0, 1000)
        assert (first.data, first.size, first.version) == (payload[:1000], 2510, "1") and backend.infos == 0
        buffer = bytearray(10)
        assert await prefixed.load_into("big", 2500, buffer, version="1") == 10 and buffer == payload[2500:]
        assert backend.into[-1] == (2500, 10)
        first = await Doubled(backend).load_first("big", 0, 1000)
        assert (first.data, first.size, first.version) == (payload[:500] * 2, 2510, None)
        assert backend.infos == 1 and first.mtime
        await store.store("other", payload)
        replaced = b"n" * 3000
        backend.replacements = [replaced]
        assert await store.load("other") == replaced  # the ranges refused the old version: loaded again
        backend.replacements = [b"x" * 3000, b"y" * 3000, b"z" * 3000]
        with pytest.raises(aiodepot.BackendError, match="kept changing while it was loaded in parts"):
            await store.load("other")
        assert store.budget.in_flight == 0
        buffer = bytearray(10)
        with pytest.raises(aiodepot.errors.ValueChanged):
            await backend.load_into("other", 5, buffer, version="1")
        unversioned = RangedMemory(uuid.uuid4().hex)
        await unversioned.create()
        async with unversioned:
            with pytest.raises(aiodepot.NotSupported, match="RangedMemory gives no versions"):
                await unversioned.load_into("x", 0, buffer, version="1")
    await store.destroy()


class CopyReplacing(MemoryBackend):
    """Replaces the value (one of ``in_copy`` each time) as its second range is copied into a file."""

    in_copy: list[bytes]

    async def _read_into(self, name: str, fd: int, offset: int, size: int) -> None:
        if offset == 1000 and self.in_copy:  # the second range: once per copy
            replacement = self.in_copy.pop(0)
            await asyncio.sleep(0.01)  # a later mtime
            await self.store(name, replacement)
        await super()._read_into(name, fd, offset, size)


class PlainCopies(CopyReplacing, RangedMemory):
    """Without versions: the probes compare size and mtime."""


class VersionedCopies(CopyReplacing, VersionedMemory):
    """With versions: the probes compare them."""


@pytest.mark.parametrize("versioned", [True, False])
async def test_load_file_copies_a_value_replaced_meanwhile_again(tmp_path: Path, versioned: bool) -> None:
    """The value is probed before and after the copy (its version, or size and mtime): a replacement of the
    same size during the copy makes it copy again, so the file is one version whole; one that keeps on
    changing fails and leaves no file."""
    backend = (VersionedCopies if versioned else PlainCopies)(uuid.uuid4().hex)
    store = Store(backend=backend)
    old, new = b"o" * 5000, b"n" * 5000
    replacements = backend.in_copy = [new]
    await store.create()
    async with store:
        await store.store("big", old)
        target = tmp_path / "out"
        assert await store.load_file("big", target) == 5000
        assert target.read_bytes() == new and not replacements
        replacements += [b"x" * 5000, b"y" * 5000, b"z" * 5000]
        with pytest.raises(aiodepot.BackendError, match="kept changing while it was copied to a file"):
            await store.load_file("big", tmp_path / "never")
        assert not (tmp_path / "never").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    await store.destroy()
