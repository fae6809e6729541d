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

Client CPU is the process's user + system time (``getrusage``) over the operations, so it counts the SDK's
pipeline, hashing and aiohttp; server CPU is Azurite's process. Azurite is a Node.js server
on the same two cores, so the figures compare clients under that bound, not Azure's speed.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

from aiodepot import Limits, Store

from .common import MiB, ObstoreCalls, Row, Usage, ameasured, names, transfer_rows

CONCURRENCY = 32
PART = 4 * MiB
UPLOAD_CONCURRENCY = 8
CONFIG = {"data/": {"levels": [0]}}


def _container() -> str:
    return f"bench-{uuid.uuid4().hex[:16]}"


def aiodepot_run(server: Any, count: int, size: int, big: bytes) -> dict[str, Usage]:
    value = os.urandom(size)
    items = names(count)
    pid = server.process.pid

    async def run() -> dict[str, Usage]:
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
                "store": await ameasured(lambda: store.store_many((name, value) for name in items), pid),
                "load": await ameasured(lambda: store.load_many(items), pid),
                "store big": await ameasured(lambda: store.store("data/big", big), pid),
                "load big": await ameasured(load_big, pid),
            }
            assert loaded[0] == big
        await store.destroy()
        return times

    return asyncio.run(run())


def obstore_run(server: Any, count: int, size: int, big: bytes) -> dict[str, Usage] | None:
    try:
        from obstore.store import AzureStore
    except ImportError:
        return None
    from azure.storage.blob.aio import BlobServiceClient
    from tests.servers.azurite import ACCOUNT, KEY

    value = os.urandom(size)
    keys = names(count)
    container = _container()
    pid = server.process.pid

    async def run() -> dict[str, Usage]:
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
        calls = ObstoreCalls(store, concurrency=CONCURRENCY, part=PART)
        loaded: list[bytes] = []

        async def load_big() -> None:
            loaded.append(await calls.get_big("data/big", len(big)))

        times = {
            "store": await ameasured(lambda: calls.put_all(keys, value), pid),
            "load": await ameasured(lambda: calls.get_all(keys), pid),
            "store big": await ameasured(
                lambda: calls.put_big("data/big", big, max_concurrency=UPLOAD_CONCURRENCY), pid
            ),
            "load big": await ameasured(load_big, pid),
        }
        assert loaded[0] == big
        async with BlobServiceClient(server.endpoint, credential=credential) as service:
            await service.get_container_client(container).delete_container()
        return times

    return asyncio.run(run())


def sdk_sequential(server: Any, count: int, size: int, big: bytes) -> dict[str, Usage]:
    from azure.storage.blob.aio import BlobServiceClient
    from tests.servers.azurite import ACCOUNT, KEY

    value = os.urandom(size)
    keys = names(count)
    pid = server.process.pid

    async def run() -> dict[str, Usage]:
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
                "store": await ameasured(write, pid),
                "load": await ameasured(read, pid),
                "store big": await ameasured(write_big, pid),
                "load big": await ameasured(read_big, pid),
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
    small, large = f"azure azurite {count} x {size // 1024} KiB", f"azure azurite 1 x {big_mib} MiB"
    return transfer_rows(small, large, results, count=count, big_mib=big_mib)
