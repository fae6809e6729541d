"""Small stores of concurrent requests written as batches: each request still gets its own outcome, and a
cancelled request leaves its value stored or not, never half."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from pathlib import Path

import aiohttp

from aiodepot.backends.base import Capabilities
from aiodepot.backends.memory import MemoryBackend
from aiodepot.backends.posixfs import PosixFSBackend
from aiodepot.protocol import ACCEPT
from aiodepot.server._coordination import StoreBatches
from tests.servers.rest import ThreadedServer

HEADERS = {"Accept": ACCEPT}


class GatedBatches(MemoryBackend):
    """A memory store with batch calls whose batches wait for ``gate`` and are recorded."""

    capabilities = Capabilities(batch_ops=True, batch_size=3, atomic_create=True)

    def __init__(self) -> None:
        super().__init__(f"batches-{uuid.uuid4().hex}")
        self.gate = asyncio.Event()
        self.batches: list[list[str]] = []

    async def _store_batch(self, items: Sequence[tuple[str, bytes | memoryview, bool]]) -> list[Exception | None]:
        self.batches.append([name for name, _, _ in items])
        await self.gate.wait()
        await asyncio.sleep(0)
        return await super()._store_batch(items)


async def started(batches: StoreBatches, name: str) -> asyncio.Task[None]:
    task = asyncio.create_task(batches.store(name, name.encode()))
    await asyncio.sleep(0)  # the store joins the pending ones (and the first starts a batch)
    return task


async def test_stores_that_wait_go_in_the_next_batch_of_at_most_size() -> None:
    backend = GatedBatches()
    await backend.create()
    await backend.open()
    batches = StoreBatches(backend, backend.capabilities.batch_size)
    tasks = [await started(batches, f"item{i}") for i in range(5)]
    await asyncio.sleep(0)
    assert backend.batches == [["item0"]]  # the first one did not wait for company
    backend.gate.set()
    await asyncio.gather(*tasks)
    assert backend.batches == [["item0"], ["item1", "item2", "item3"], ["item4"]]
    assert [await backend.load(f"item{i}") for i in range(5)] == [f"item{i}".encode() for i in range(5)]


async def test_each_store_of_a_batch_gets_its_own_outcome() -> None:
    backend = GatedBatches()
    await backend.create()
    await backend.open()
    batches = StoreBatches(backend, 10)
    first = await started(batches, "first")
    good, bad = await started(batches, "good"), await started(batches, "bad/../name")
    backend.gate.set()
    await asyncio.gather(first, good)
    assert backend.batches == [["first"], ["good"]]  # the invalid name never reached the backend
    assert type(bad.exception()).__name__ == "InvalidName"


async def test_a_cancelled_store_that_waits_is_not_written() -> None:
    backend = GatedBatches()
    await backend.create()
    await backend.open()
    batches = StoreBatches(backend, 10)
    first, waiting = await started(batches, "first"), await started(batches, "waiting")
    waiting.cancel()
    backend.gate.set()
    await first
    assert waiting.cancelled()
    assert backend.batches == [["first"]]
    assert not (await backend.info("waiting")).exists


async def test_a_cancelled_store_in_a_batch_being_written_waits_for_it() -> None:
    backend = GatedBatches()
    await backend.create()
    await backend.open()
    batches = StoreBatches(backend, 10)
    writing = await started(batches, "writing")
    await asyncio.sleep(0)
    assert backend.batches == [["writing"]]
    writing.cancel()
    await asyncio.sleep(0.05)
    assert not writing.done()  # the cancellation waits for the batch
    backend.gate.set()
    await asyncio.wait([writing])
    assert writing.cancelled()
    assert await backend.load("writing") == b"writing"


async def test_concurrent_stores_to_a_file_store_each_answered(tmp_path: Path) -> None:
    """Over HTTP, on an append-only file store: a burst of new items and one that exists already, which
    alone is refused (403), whichever batch it lands in."""
    backend = PosixFSBackend(tmp_path / "store", permissions={"": "lrw"})
    with ThreadedServer(backend) as server:
        async with aiohttp.ClientSession(server.url, headers=HEADERS) as session:
            async with session.post("/?cmd=create") as response:
                assert response.status == 200
            async with session.post("/data/exists", data=b"old") as response:
                assert response.status == 200

            async def store(name: str, value: bytes) -> int:
                async with session.post(f"/{name}", data=value) as response:
                    return response.status

            names = [f"data/item{i:03d}" for i in range(100)]
            statuses = await asyncio.gather(*(store(name, name.encode()) for name in [*names, "data/exists"]))
    assert statuses == [200] * 100 + [403]
    assert all((tmp_path / "store" / name).read_bytes() == name.encode() for name in names)
    assert (tmp_path / "store" / "data" / "exists").read_bytes() == b"old"


async def test_a_store_that_comes_as_a_writer_returns_starts_another() -> None:
    """Stores that come one, two, three loop turns apart: none may find the writer that just returned
    still counted, and wait for nobody."""
    backend = GatedBatches()
    backend.gate.set()
    await backend.create()
    await backend.open()
    batches = StoreBatches(backend, 10)
    tasks = []
    for i in range(60):
        tasks.append(asyncio.create_task(batches.store(f"item{i}", b"x")))
        for _ in range(i % 7):
            await asyncio.sleep(0)
    async with asyncio.timeout(10):
        await asyncio.gather(*tasks)
    assert sum(len(batch) for batch in backend.batches) == 60
