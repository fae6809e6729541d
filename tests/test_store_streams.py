"""The second-wave core API: exists, listing by prefix and from a key, streaming reads and writes, timeouts."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from aiodepot import BackendError, InvalidName, ObjectNotFound, Store, SyncStore
from aiodepot.backends.memory import MemoryBackend
from aiodepot.items import ItemInfo
from tests.servers.sshd import Sshd, sshd

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def openssh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    with sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture(params=["memory", "file", "sftp"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    config = {"": {"levels": [0]}, "data/": {"levels": [1, 2]}}
    if request.param == "memory":
        s = Store(f"memory://streams-{uuid.uuid4().hex}", config=config)
    elif request.param == "file":
        s = Store(f"file://{tmp_path}/depot", config=config)
    else:
        server: Sshd = request.getfixturevalue("openssh")
        s = Store(server.url(tmp_path / "depot"), config=config, backend_options=server.options())
    await s.create()
    async with s:
        yield s
    await s.destroy()


async def _names(listing: AsyncIterator[ItemInfo]) -> list[str]:
    return [info.name async for info in listing]


async def test_exists(store: Store) -> None:
    assert not await store.exists("thing")
    await store.store("thing", b"x")
    assert await store.exists("thing")
    await store.store("dir/inner", b"y")
    assert not await store.exists("dir")  # a directory is no item
    await store.move("thing", delete=True)
    assert not await store.exists("thing")
    assert await store.exists("thing", deleted=True)
    with pytest.raises(InvalidName):
        await store.exists("Upper")


async def test_list_prefix_and_start_after_over_two_nesting_levels(store: Store) -> None:
    keys = [f"{i:02x}{j:02x}" + "ab" * 14 for i in (0x10, 0x11, 0x2F) for j in (0, 1, 0x80)]
    store.set_levels({"": {"levels": [0]}, "data/": {"levels": [1]}})
    for key in keys[:4]:
        await store.store("data/" + key, b"1")  # level 1: data/10/1000ab…
    store.set_levels({"": {"levels": [0]}, "data/": {"levels": [1, 2]}})
    for key in keys[4:]:
        await store.store("data/" + key, b"2")  # level 2: data/11/80/1180ab…
    assert await _names(store.list("data")) == sorted(keys)
    assert await _names(store.list("data", prefix="11")) == [k for k in sorted(keys) if k.startswith("11")]
    assert await _names(store.list("data", prefix="1100")) == [k for k in keys if k.startswith("1100")]
    assert await _names(store.list("data", prefix="3")) == []
    assert await _names(store.list("data", start_after=keys[3])) == sorted(keys)[4:]
    assert await _names(store.list("data", prefix="10", start_after=keys[1])) == [keys[2]]
    assert await _names(store.list("data", start_after="ff")) == []
    # resumable: pages of two, each starting after the last key seen
    seen: list[str] = []
    last = None
    while True:
        page = []
        async for info in store.list("data", start_after=last):
            page.append(info.name)
            if len(page) == 2:
                break
        if not page:
            break
        seen += page
        last = page[-1]
    assert seen == sorted(keys)


async def test_list_prefix_prunes_nesting_directories(tmp_path: Path) -> None:
    class CountingMemory(MemoryBackend):
        listed: list[str] = []  # noqa: RUF012 - one list per test, reset below

        async def list(self, name: str) -> AsyncIterator[ItemInfo]:  # type: ignore[override]
            self.listed.append(name)
            async for info in super().list(name):
                yield info

    backend = CountingMemory.from_url(f"memory://prune-{uuid.uuid4().hex}")
    CountingMemory.listed = []
    store = Store(backend=backend, config={"data/": {"levels": [2]}})
    await store.create()
    async with store:
        for i in range(16):
            await store.store(f"data/{i:02x}{i:02x}00", b"v")
        CountingMemory.listed.clear()
        assert await _names(store.list("data", prefix="0505")) == ["050500"]
        assert CountingMemory.listed == ["data", "data/05", "data/05/05"]
        CountingMemory.listed.clear()
        assert await _names(store.list("data", start_after="0d0d00")) == ["0e0e00", "0f0f00"]
        opened = ["data", "data/0d", "data/0d/0d", "data/0e", "data/0e/0e", "data/0f", "data/0f/0f"]
        assert CountingMemory.listed == opened
    await store.destroy()


async def test_list_deleted_with_prefix(store: Store) -> None:
    for name in ("a1", "a2", "b1"):
        await store.store(name, b"v")
        await store.move(name, delete=True)
    await store.store("a3", b"v")
    assert await _names(store.list("", prefix="a", deleted=True)) == ["a1", "a2"]
    assert await _names(store.list("", prefix="a")) == ["a3"]


@pytest.mark.parametrize("chunk_size", [1, 1000, 64 * 1024, 3 * MiB])
async def test_open_reader_yields_the_value_in_chunks(store: Store, chunk_size: int) -> None:
    value = os.urandom(2 * MiB + 17) if chunk_size > 1 else b"0123456789"
    await store.store("big", value)
    chunks = [chunk async for chunk in store.open_reader("big", chunk_size=chunk_size)]
    assert b"".join(chunks) == value
    assert all(0 < len(chunk) <= chunk_size for chunk in chunks)


@pytest.mark.parametrize(
    ("offset", "size"), [(0, None), (5, 100), (-10, None), (-10, 3), (10**9, None), (7, 0), (5, 10**9)]
)
async def test_open_reader_ranges_match_load(store: Store, offset: int, size: int | None) -> None:
    value = os.urandom(300_000)
    await store.store("item", value)
    got = b"".join([chunk async for chunk in store.open_reader("item", offset=offset, size=size, chunk_size=65536)])
    assert got == await store.load("item", offset=offset, size=size)


async def test_open_reader_of_a_missing_item_raises_on_the_first_step(store: Store) -> None:
    reader = store.open_reader("missing")
    with pytest.raises(ObjectNotFound):
        await anext(reader)
    with pytest.raises(StopAsyncIteration):
        await anext(reader)
    with pytest.raises(ValueError):
        store.open_reader("x", chunk_size=0)
    with pytest.raises(ValueError):
        store.open_reader("x", size=-1)


async def test_open_reader_stops_early_and_keeps_memory_bounded(store: Store) -> None:
    await store.store("big", os.urandom(8 * MiB))
    async with store.open_reader("big", chunk_size=256 * 1024) as reader:
        first = await anext(reader)
        assert len(first) == 256 * 1024
        # what is fetched ahead never exceeds max_concurrency chunks
        assert store.budget.in_flight <= store.max_concurrency * 256 * 1024
    await asyncio.sleep(0)
    assert store.budget.in_flight == 0


async def test_store_from_an_async_iterable_and_a_file_object(store: Store, tmp_path: Path) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(5):
            yield bytes([i]) * 100_000

    await store.store("streamed", chunks())
    assert await store.load("streamed") == b"".join(bytes([i]) * 100_000 for i in range(5))
    value = os.urandom(3 * MiB + 5)
    await store.store("from-file", io.BytesIO(value))
    assert await store.load("from-file") == value
    path = tmp_path / "local"
    path.write_bytes(value)
    with path.open("rb") as f:
        await store.store("from-real-file", f)
    assert await store.hash("from-real-file") == await store.hash("from-file")
    assert store.stats["store_volume"] >= 500_000 + 2 * len(value)


async def test_a_failing_stream_stores_nothing(store: Store) -> None:
    await store.store("kept", b"old")

    async def broken() -> AsyncIterator[bytes]:
        yield b"x" * 100_000
        raise OSError("the source broke")

    with pytest.raises(OSError, match="the source broke"):
        await store.store("kept", broken())
    assert await store.load("kept") == b"old"
    with pytest.raises(OSError, match="the source broke"):
        await store.store("new", broken())
    assert not await store.exists("new")
    with pytest.raises(TypeError):
        await store.store("text", io.StringIO("text"))  # type: ignore[arg-type]
    assert not await store.exists("text")


async def test_timeout_per_operation() -> None:
    store = Store(f"memory://timeout-{os.getpid()}", latency=0.2, timeout=0.05)
    await store.create()
    async with store:
        store.timeout = None
        await store.store("x", b"v")
        store.timeout = 0.05
        with pytest.raises(TimeoutError):
            await store.load("x")
        with pytest.raises(TimeoutError):
            await _names(store.list())
        with pytest.raises(TimeoutError):
            await store.exists("x")

        async def slow() -> AsyncIterator[bytes]:
            yield b"a"
            await asyncio.sleep(1)
            yield b"b"

        with pytest.raises(TimeoutError):
            await store.store("y", slow())
        store.timeout = 5
        assert not await store.exists("y")
        assert await store.load("x") == b"v"
    await store.destroy()
    with pytest.raises(ValueError):
        Store("memory://x", timeout=0)


def test_sync_twins(tmp_path: Path) -> None:
    with contextlib.ExitStack() as stack:
        store = SyncStore(f"file://{tmp_path}/sync", timeout=30)
        store.create()
        stack.enter_context(store)
        value = os.urandom(MiB + 3)
        store.store("a-big", io.BytesIO(value))
        assert store.exists("a-big") and not store.exists("nothing")
        assert b"".join(store.open_reader("a-big", chunk_size=100_000)) == value
        reader = store.open_reader("a-big", offset=-3)
        assert list(reader) == [value[-3:]]
        for name in ("b1", "b2", "c1"):
            store.store(name, b"v")
        assert [i.name for i in store.list(prefix="b")] == ["b1", "b2"]
        assert [i.name for i in store.list(start_after="b1")] == ["b2", "c1"]
        early = store.open_reader("a-big", chunk_size=1000)
        assert len(next(early)) == 1000
        early.close()


async def test_open_reader_keeps_to_the_version_of_its_first_chunk() -> None:
    """On a backend with versions the reader asks no ``info``: the first chunk brings size and version, and a
    value replaced while it is read raises at the first chunk read from the new one."""
    from tests.test_store import VersionedMemory

    backend = VersionedMemory(uuid.uuid4().hex)  # ranges pay on it; chunks of 1000 bytes
    store = Store(backend=backend, max_concurrency=2)
    value = os.urandom(10_000)
    await store.create()
    async with store:
        await store.store("big", value)
        backend.infos = 0
        assert b"".join([chunk async for chunk in store.open_reader("big", chunk_size=1000)]) == value
        assert (
            b"".join([c async for c in store.open_reader("big", offset=2500, size=5000, chunk_size=999)])
            == (value[2500:7500])
        )
        assert [c async for c in store.open_reader("big", offset=20_000, chunk_size=999)] == []
        assert backend.infos == 0
        reader = store.open_reader("big", chunk_size=1000)
        assert await anext(reader) == value[:1000]
        await backend.store("big", os.urandom(10_000))
        with pytest.raises(BackendError, match="big changed while it was read"):
            async for _ in reader:
                pass
        with pytest.raises(ObjectNotFound):
            await anext(store.open_reader("missing", chunk_size=1000))
        await store.store("dir/inner", b"x")
        with pytest.raises(ObjectNotFound):
            await anext(store.open_reader("dir", chunk_size=1000))
    await store.destroy()
