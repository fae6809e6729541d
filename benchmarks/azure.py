"""Azure Blob on a local Azurite: many small values and one big one, aiodepot vs the SDK used plainly.

Both contenders talk to the same ``azurite-blob`` (in memory) on loopback, each in a container of its own:

- aiodepot: ``store_many``/``load_many`` (32 in flight); the big value as 4 MiB blocks staged in parallel
  (8 in flight) with their MD5s, and a load of parallel 4 MiB ranges (32 in flight), each MD5-checked;
- obstore (``AzureStore`` with ``endpoint=`` Azurite's URL and ``allow_http``): the same concurrency (a
  semaphore of 32 around ``put_async``/``get_async``; the big value with ``put_async`` in 4 MiB parts, 8 in
  flight, and ``get_range_async`` over 4 MiB ranges, 32 in flight); obstore checks no MD5 of what it loads;
- azure-storage-blob seq: the asyncio ``BlobClient`` as its samples use it, one ``upload_blob`` or
  ``download_blob(...).readall()`` after the other (the big value with the SDK's defaults: its own
  block upload and chunked download).

Client CPU per operation is the process's user + system time (``getrusage``) over the operations, so it
counts the SDK's pipeline, hashing and aiohttp, not Azurite (another process). Azurite is a Node.js server
on the same two cores, so the figures compare clients under that bound, not Azure's speed.
"""

from __future__ import annotations

import asyncio
import os
import resource
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiodepot import Limits, Store

from .common import Row, names

MiB = 1024 * 1024
CONCURRENCY = 32
PART = 4 * MiB
UPLOAD_CONCURRENCY = 8
CONFIG = {"data/": {"levels": [0]}}

Measure = tuple[float, float]
"""Wall seconds and client CPU seconds."""


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _measure(make: Callable[[], Awaitable[object]]) -> Measure:
    cpu, started = _cpu(), time.perf_counter()
    await make()
    return time.perf_counter() - started, _cpu() - cpu


def _container() -> str:
    return f"bench-{uuid.uuid4().hex[:16]}"


def aiodepot_run(server: Any, count: int, size: int, big: bytes) -> dict[str, Measure]:
    value = os.urandom(size)
    items = names(count)

    async def run() -> dict[str, Measure]:
        store = Store(
            server.url(_container(), "aiodepot"),
            config=CONFIG,
            max_concurrency=CONCURRENCY,
            backend_options={
                "create_container": True,
                "limits": Limits(connections=CONCURRENCY, parts=UPLOAD_CONCURRENCY),
                "part_size": PART,
            },
        )
        await store.create()
        async with store:
            loaded: list[bytes] = []

            async def load_big() -> None:
                loaded.append(await store.load("data/big"))

            times = {
                "store": await _measure(lambda: store.store_many((name, value) for name in items)),
                "load": await _measure(lambda: store.load_many(items)),
                "store big": await _measure(lambda: store.store("data/big", big)),
                "load big": await _measure(load_big),
            }
            assert loaded[0] == big
        await store.destroy()
        return times

    return asyncio.run(run())


def obstore_run(server: Any, count: int, size: int, big: bytes) -> dict[str, Measure] | None:
    try:
        import obstore
        from obstore.store import AzureStore
    except ImportError:
        return None
    from azure.storage.blob.aio import BlobServiceClient
    from tests.servers.azurite import ACCOUNT, KEY

    value = os.urandom(size)
    keys = names(count)
    container = _container()

    async def run() -> dict[str, Measure]:
        credential = {"account_name": ACCOUNT, "account_key": KEY}
        async with BlobServiceClient(server.endpoint, credential=credential) as service:
            await service.get_container_client(container).create_container()
        store = AzureStore(
            container,
            account_name=ACCOUNT,
            account_key=KEY,
            endpoint=server.endpoint,
            client_options={"allow_http": True},
        )
        limit = asyncio.Semaphore(CONCURRENCY)

        async def put(key: str) -> None:
            async with limit:
                await obstore.put_async(store, key, value)

        async def get(key: str) -> bytes:
            async with limit:
                result = await obstore.get_async(store, key)
                return bytes(await result.bytes_async())

        async def get_range(start: int) -> bytes:
            async with limit:
                return bytes(await obstore.get_range_async(store, "data/big", start=start, length=PART))

        loaded: list[bytes] = []

        async def load_big() -> None:
            parts = await asyncio.gather(*(get_range(start) for start in range(0, len(big), PART)))
            loaded.append(b"".join(parts))

        times = {
            "store": await _measure(lambda: asyncio.gather(*(put(key) for key in keys))),
            "load": await _measure(lambda: asyncio.gather(*(get(key) for key in keys))),
            "store big": await _measure(
                lambda: obstore.put_async(store, "data/big", big, chunk_size=PART, max_concurrency=UPLOAD_CONCURRENCY)
            ),
            "load big": await _measure(load_big),
        }
        assert loaded[0] == big
        async with BlobServiceClient(server.endpoint, credential=credential) as service:
            await service.get_container_client(container).delete_container()
        return times

    return asyncio.run(run())


def sdk_sequential(server: Any, count: int, size: int, big: bytes) -> dict[str, Measure]:
    from azure.storage.blob.aio import BlobServiceClient
    from tests.servers.azurite import ACCOUNT, KEY

    value = os.urandom(size)
    keys = names(count)

    async def run() -> dict[str, Measure]:
        credential = {"account_name": ACCOUNT, "account_key": KEY}
        async with BlobServiceClient(server.endpoint, credential=credential) as service:
            container = service.get_container_client(_container())
            await container.create_container()

            async def write() -> None:
                for key in keys:
                    await container.get_blob_client(key).upload_blob(value, overwrite=True)

            async def read() -> None:
                for key in keys:
                    await (await container.get_blob_client(key).download_blob()).readall()

            async def write_big() -> None:
                await container.get_blob_client("data/big").upload_blob(big, overwrite=True)

            async def read_big() -> None:
                assert await (await container.get_blob_client("data/big").download_blob()).readall() == big

            times = {
                "store": await _measure(write),
                "load": await _measure(read),
                "store big": await _measure(write_big),
                "load big": await _measure(read_big),
            }
            await container.delete_container()
            return times

    return asyncio.run(run())


def run(count: int = 2000, size: int = 4096, big_mib: int = 256) -> list[Row]:
    """Run the scenario: one row per contender and operation."""
    from tests.servers.azurite import start_azurite

    big = os.urandom(big_mib * MiB)
    server = start_azurite()
    try:
        results = {"aiodepot": aiodepot_run(server, count, size, big)}
        measured = obstore_run(server, count, size, big)
        if measured is not None:
            results["obstore"] = measured
        results["azure-storage-blob seq"] = sdk_sequential(server, count, size, big)
    finally:
        server.stop()
    small = f"azure azurite {count} x {size // 1024} KiB"
    large = f"azure azurite 1 x {big_mib} MiB"
    rows = [
        Row(
            small,
            op,
            contender,
            times[op][0],
            f"{count / times[op][0]:,.0f} items/s, {count * size / times[op][0] / 1e6:,.1f} MB/s, "
            f"{times[op][1] / count * 1e3:.2f} ms CPU/op",
        )
        for op in ("store", "load")
        for contender, times in results.items()
    ]
    rows += [
        Row(
            large,
            op.removesuffix(" big"),
            contender,
            times[op][0],
            f"{big_mib * MiB / times[op][0] / 1e6:,.0f} MB/s, {times[op][1]:.2f} s CPU",
        )
        for op in ("store big", "load big")
        for contender, times in results.items()
    ]
    return rows
