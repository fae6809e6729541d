"""GCS on a local fake-gcs-server: many small values and one big one, aiodepot vs gcloud-aio-storage.

Every contender talks to the same fake-gcs-server (in memory, plain HTTP) on loopback, each in a bucket
of its own:

- aiodepot: ``store_many``/``load_many`` (32 in flight, a CRC32C on every upload and whole GET); the big
  value as a resumable upload in 8 MiB chunks, and a load of parallel 8 MiB ranges (32 in flight);
- gcloud-aio-storage used plainly: one ``upload``/``download`` after the other (the big value as its one
  resumable PUT and one GET);
- google-cloud-storage (the official sync client), one call after the other, if it is installed;
- obstore (``GCSStore`` with a service account file of ``gcs_base_url`` and ``disable_oauth``, as its docs
  say for an emulator): loads only, with the same concurrency (32 ``get_async`` in flight; the big value as
  ``get_range_async`` over 8 MiB ranges, 32 in flight). Its stores cannot run here: obstore writes through
  GCS's XML API (``PUT /BUCKET/OBJECT``), which fake-gcs-server does not implement (it answers
  ``400 invalid uploadType``; it has the JSON upload API only), so the values it loads are put there by
  plain JSON API uploads first, and the store rows say so.

Client CPU is this process's user + system time (``getrusage``) over the operations, the emulator's own CPU
left out (it is another process). fake-gcs-server is a Go program on the same two cores,
so the figures compare the clients' overheads under its bound, not GCS's speed.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

from aiodepot import Limits, Store

from .common import MiB, ObstoreCalls, Row, Usage, ameasured, measured, names, transfer_rows

CONCURRENCY = 32
PART = 8 * MiB
CONFIG = {"data/": {"levels": [0]}}


def _bucket() -> str:
    return f"bench-{uuid.uuid4().hex[:16]}"


def aiodepot_run(endpoint: str, count: int, size: int, big: bytes) -> dict[str, Usage]:
    value = os.urandom(size)
    items = names(count)

    async def run() -> dict[str, Usage]:
        store = Store(
            f"gs://{_bucket()}/aiodepot?endpoint={endpoint}",
            config=CONFIG,
            max_concurrency=CONCURRENCY,
            backend_options={"create_bucket": True, "limits": Limits(connections=CONCURRENCY), "part_size": PART},
        )
        await store.create()
        async with store:
            times = {
                "store": await ameasured(lambda: store.store_many((name, value) for name in items)),
                "load": await ameasured(lambda: store.load_many(items)),
                "store big": await ameasured(lambda: store.store("data/big", big)),
            }
            loaded: list[bytes] = []

            async def load_big() -> None:
                loaded.append(await store.load("data/big"))

            times["load big"] = await ameasured(load_big)
            assert loaded[0] == big
        await store.destroy()
        return times

    return asyncio.run(run())


def gcloud_aio_sequential(endpoint: str, count: int, size: int, big: bytes) -> dict[str, Usage]:
    import aiohttp
    from gcloud.aio.storage import Storage

    value = os.urandom(size)
    keys = names(count)
    bucket = _bucket()

    async def run() -> dict[str, Usage]:
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{endpoint}/storage/v1/b", params={"project": "bench"}, json={"name": bucket}):
                pass
            storage = Storage(session=session, api_root=endpoint)  # type: ignore[arg-type]

            async def write() -> None:
                for key in keys:
                    await storage.upload(bucket, key, value)

            async def read() -> None:
                for key in keys:
                    await storage.download(bucket, key)

            async def read_big() -> None:
                assert await storage.download(bucket, "data/big", timeout=600) == big

            return {
                "store": await ameasured(write),
                "load": await ameasured(read),
                "store big": await ameasured(lambda: storage.upload(bucket, "data/big", big, timeout=600)),
                "load big": await ameasured(read_big),
            }

    return asyncio.run(run())


def google_cloud_storage_sequential(endpoint: str, count: int, size: int, big: bytes) -> dict[str, Usage] | None:
    try:
        from google.auth.credentials import AnonymousCredentials  # type: ignore[import-not-found]
        from google.cloud import storage  # type: ignore[import-not-found]
    except ImportError:
        return None
    client = storage.Client(
        project="bench", credentials=AnonymousCredentials(), client_options={"api_endpoint": endpoint}
    )
    bucket = client.create_bucket(_bucket())
    value = os.urandom(size)
    keys = names(count)

    def write() -> None:
        for key in keys:
            bucket.blob(key).upload_from_string(value)

    def read() -> None:
        for key in keys:
            bucket.blob(key).download_as_bytes()

    def read_big() -> None:
        assert bucket.blob("data/big").download_as_bytes() == big

    return {
        "store": measured(write),
        "load": measured(read),
        "store big": measured(lambda: bucket.blob("data/big").upload_from_string(big)),
        "load big": measured(read_big),
    }


OBSTORE_CANNOT_STORE = "cannot run: obstore PUTs via the XML API, fake-gcs-server answers 400 invalid uploadType"


def obstore_loads(endpoint: str, count: int, size: int, big: bytes) -> dict[str, Usage] | None:
    """obstore's loads (its stores cannot reach fake-gcs-server; see the module's docstring)."""
    try:
        from obstore.store import GCSStore
    except ImportError:
        return None
    import json

    import aiohttp

    value = os.urandom(size)
    keys = names(count)
    bucket = _bucket()
    account = {"gcs_base_url": endpoint, "disable_oauth": True, "client_email": "", "private_key": ""}
    store = GCSStore(
        bucket, service_account_key=json.dumps({**account, "private_key_id": ""}), client_options={"allow_http": True}
    )

    async def run() -> dict[str, Usage]:
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{endpoint}/storage/v1/b", params={"project": "bench"}, json={"name": bucket}):
                pass
            limit = asyncio.Semaphore(CONCURRENCY)

            async def upload(key: str, data: bytes) -> None:  # the JSON API: what fake-gcs-server takes
                async with limit:
                    url = f"{endpoint}/upload/storage/v1/b/{bucket}/o"
                    async with session.post(url, params={"uploadType": "media", "name": key}, data=data) as reply:
                        reply.raise_for_status()

            await asyncio.gather(*(upload(key, value) for key in keys), upload("data/big", big))

        calls = ObstoreCalls(store, concurrency=CONCURRENCY, part=PART)
        loaded: list[bytes] = []

        async def load_big() -> None:
            loaded.append(await calls.get_big("data/big", len(big)))

        times = {"load": await ameasured(lambda: calls.get_all(keys)), "load big": await ameasured(load_big)}
        assert loaded[0] == big
        return times

    return asyncio.run(run())


def run(count: int = 2000, size: int = 4096, big_mib: int = 256) -> list[Row]:
    """Run the scenario: one row per contender and operation."""
    from tests.servers.gcs import start_fake_gcs_server

    big = os.urandom(big_mib * MiB)
    server = start_fake_gcs_server()
    try:
        results: dict[str, dict[str, Usage]] = {}
        for label, contender in (
            ("aiodepot", aiodepot_run),
            ("gcloud-aio seq", gcloud_aio_sequential),
            ("google-cloud-storage seq", google_cloud_storage_sequential),
            ("obstore", obstore_loads),
        ):
            times: Any = contender(server.endpoint, count, size, big)
            if times is not None:
                results[label] = times
    finally:
        server.stop()
    small, large = f"gcs fake-gcs-server {count} x {size // 1024} KiB", f"gcs fake-gcs-server 1 x {big_mib} MiB"
    return transfer_rows(small, large, results, count=count, big_mib=big_mib, missing=OBSTORE_CANNOT_STORE)
