"""S3 on a local moto server: many small values and one big one, aiodepot vs obstore, boto3 and borgstore.

Every contender talks to the same ``python -m moto.server`` on loopback, each in a bucket of its own:

- aiodepot: ``store_many``/``load_many`` (32 in flight); the big value as a multipart upload of 8 MiB parts
  (8 in flight) and a load of parallel 8 MiB ranges (32 in flight) — the default configuration;
- aiodepot 1 stream: the big value only, with ``part_size`` above its size, so one PUT and one GET (no parts,
  no ranges), as boto3 sends it: moto reads the whole object for every ranged GET, so on moto one stream
  loads faster than parallel ranges, which pay on a real service;
- obstore: the same concurrency (a semaphore around ``put_async``/``get_async``; ``put_async`` with 8 MiB
  parts, 8 in flight; ``get_range_async`` over 8 MiB ranges, 32 in flight), SHA-256 checksums as aiodepot;
- boto3: one call after the other (``put_object``/``get_object``; the big value as one PUT and one GET);
- borgstore: its S3 backend (boto3), one call after the other.

moto is a Python server, so it bounds everybody's throughput; the figures compare the clients' overheads
under that bound, not S3's speed. moto (werkzeug's development server) closes every connection after one
response, so each request opens a new one, which S3 does not ask for; the small values run a second time
against the same app kept alive between requests (``tests/servers/moto_keepalive.py``), rows labelled
"keep-alive". The big value runs against the default server only. Each server first gets 300 unmeasured
PUT/GET/HEAD rounds, so its warm-up is charged to nobody. moto runs in a process of its own: each
row has the benchmark process's CPU time (the client's, every thread: obstore's Rust runtime included) and
moto's, per item or per MB.

The small values run in four rounds of a quarter of the items each, the contenders in turn, in the four
orders of a Williams design (A B D C, B C A D, C D B A, D A C B: every contender in every place once, after
every other contender once), each row the sum of a contender's rounds: moto's CPU per request drifts over a
run (its heap grows and shrinks with what it holds, a big value before a contender's turn changes what the
next one pays), and a contender that always ran first or last took that drift as its own — the same code
measured 0.7x to 1.1x obstore's throughput from run to run. Plain turns with every other round reversed
(A B C D D C B A …) left aiodepot always after obstore or itself, and obstore always after aiodepot or
boto3: with obstore listed first, aiodepot's stores went from 0.96x obstore's rate to 1.04x. The big values
run after them, behind one unmeasured multipart upload and load of the big value.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiodepot import Limits, Store

from .common import Meter, Row, Usage, add_usages, balanced_orders, measured, names, transfer_rows

MiB = 1024 * 1024
CONCURRENCY = 32
PART = 8 * MiB
UPLOAD_CONCURRENCY = 8
CONFIG = {"data/": {"levels": [0]}}


async def _measured_async(make: Callable[[], Awaitable[object]], pid: int) -> Usage:
    with Meter(pid) as usage:
        await make()
    return usage


def aiodepot_run(
    server: Any, count: int, size: int, big: bytes | None, *, one_stream: bool = False
) -> dict[str, Usage]:
    """``count`` small values in bulk (none for 0) and the big value (if any) in parts and ranges;
    ``one_stream``: the big value in one PUT and one GET (``part_size`` above its size)."""
    value = os.urandom(size)
    items = names(count)
    pid = server.process.pid
    part = max(len(big or b"") + 1, PART) if one_stream else PART

    async def run() -> dict[str, Usage]:
        store = Store(
            server.url(_bucket(), "aiodepot"),
            config=CONFIG,
            max_concurrency=CONCURRENCY,
            backend_options={
                "create_bucket": True,
                "limits": Limits(connections=CONCURRENCY, parts=UPLOAD_CONCURRENCY),
                "part_size": part,
            },
        )
        await store.create()
        async with store:
            times: dict[str, Usage] = {}
            if count:
                times["store"] = await _measured_async(lambda: store.store_many((name, value) for name in items), pid)
                times["load"] = await _measured_async(lambda: store.load_many(items), pid)
            if big is not None:
                times["store big"] = await _measured_async(lambda: store.store("data/big", big), pid)
                with Meter(pid) as times["load big"]:
                    loaded = await store.load("data/big")
                assert loaded == big
        await store.destroy()
        return times

    return asyncio.run(run())


def obstore_run(server: Any, count: int, size: int, big: bytes | None) -> dict[str, Usage] | None:
    try:
        import obstore
        from obstore.store import S3Store
    except ImportError:
        return None
    bucket = _bucket()
    _boto3_client(server).create_bucket(Bucket=bucket)
    store = S3Store(
        bucket,
        endpoint=server.endpoint_url,
        access_key_id=server.access_key,
        secret_access_key=server.secret_key,
        region="us-east-1",
        virtual_hosted_style_request=False,
        checksum_algorithm="sha256",
        client_options={"allow_http": True},
    )
    value = os.urandom(size)
    keys = names(count)
    pid = server.process.pid

    async def run() -> dict[str, Usage]:
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

        times = {}
        if count:
            times["store"] = await _measured_async(lambda: asyncio.gather(*(put(key) for key in keys)), pid)
            times["load"] = await _measured_async(lambda: asyncio.gather(*(get(key) for key in keys)), pid)
        if big is None:
            return times
        times["store big"] = await _measured_async(
            lambda: obstore.put_async(store, "data/big", big, chunk_size=PART, max_concurrency=UPLOAD_CONCURRENCY),
            pid,
        )
        with Meter(pid) as times["load big"]:
            parts = await asyncio.gather(*(get_range(start) for start in range(0, len(big), PART)))
        assert b"".join(parts) == big
        return times

    times = asyncio.run(run())
    _empty_bucket(server, bucket)
    return times


def boto3_sequential(server: Any, count: int, size: int, big: bytes | None) -> dict[str, Usage]:
    client = _boto3_client(server)
    bucket = _bucket()
    client.create_bucket(Bucket=bucket)
    value = os.urandom(size)
    keys = names(count)

    def write() -> None:
        for key in keys:
            client.put_object(Bucket=bucket, Key=key, Body=value)

    def read() -> None:
        for key in keys:
            client.get_object(Bucket=bucket, Key=key)["Body"].read()

    def write_big() -> None:
        client.put_object(Bucket=bucket, Key="data/big", Body=big)

    def read_big() -> None:
        assert client.get_object(Bucket=bucket, Key="data/big")["Body"].read() == big

    pid = server.process.pid
    times = {"store": measured(write, pid), "load": measured(read, pid)} if count else {}
    if big is not None:
        times["store big"] = measured(write_big, pid)
        times["load big"] = measured(read_big, pid)
    _empty_bucket(server, bucket)
    return times


def borgstore_sequential(server: Any, count: int, size: int, big: bytes | None) -> dict[str, Usage] | None:
    try:
        from borgstore.store import Store as BorgStore
    except ImportError:
        return None
    bucket = _bucket()
    _boto3_client(server).create_bucket(Bucket=bucket)
    store = BorgStore(url=server.url(bucket, "borgstore"), config=CONFIG)
    store.create()
    value = os.urandom(size)
    items = names(count)
    with store:

        def write() -> None:
            for name in items:
                store.store(name, value)

        def read() -> None:
            for name in items:
                store.load(name)

        def read_big() -> None:
            assert store.load("data/big") == big

        pid = server.process.pid
        times = {"store": measured(write, pid), "load": measured(read, pid)} if count else {}
        if big is not None:
            times["store big"] = measured(lambda: store.store("data/big", big), pid)
            times["load big"] = measured(read_big, pid)
    store.destroy()
    return times


def _warm_up(server: Any, count: int = 300) -> None:
    """Some unmeasured PUTs, GETs and deletes first: a fresh moto process spends more CPU on its first
    requests (lazy imports, caches), which would be charged to whichever contender runs first."""
    client = _boto3_client(server)
    bucket = _bucket()
    client.create_bucket(Bucket=bucket)
    for key in names(count):
        client.put_object(Bucket=bucket, Key=key, Body=b"warm-up")
        client.get_object(Bucket=bucket, Key=key)["Body"].read()
        client.head_object(Bucket=bucket, Key=key)
    _empty_bucket(server, bucket)


def _warm_up_big(server: Any, big: bytes) -> None:
    """An unmeasured multipart upload and load of the big value: moto's first big transfer after the small
    values cost it up to 1.8x the CPU per MB of the next ones (its heap grows), charged to whoever came first."""
    import io

    from boto3.s3.transfer import TransferConfig

    client = _boto3_client(server)
    bucket = _bucket()
    client.create_bucket(Bucket=bucket)
    config = TransferConfig(multipart_threshold=PART, multipart_chunksize=PART, max_concurrency=UPLOAD_CONCURRENCY)
    client.upload_fileobj(io.BytesIO(big), bucket, "data/big", Config=config)
    client.download_fileobj(bucket, "data/big", io.BytesIO(), Config=config)
    _empty_bucket(server, bucket)


def _bucket() -> str:
    return f"bench-{uuid.uuid4().hex[:16]}"


def _boto3_client(server: Any) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=server.endpoint_url,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        region_name="us-east-1",
    )


def _empty_bucket(server: Any, bucket: str) -> None:
    """Delete what a contender left, so the server's memory holds one contender's data at a time."""
    client = _boto3_client(server)
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": entry["Key"]} for entry in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})


def run(count: int = 2000, size: int = 4096, big_mib: int = 256) -> list[Row]:
    """Run the scenario: one row per contender and operation; the small values against moto as it runs (a
    connection per request) and kept alive, the big value against moto as it runs."""
    big = os.urandom(big_mib * MiB)
    count -= count % ROUNDS
    rows = _rows(_contenders(count, size, big, keep_alive=False), count, size, big_mib, "s3 moto")
    rows += _rows(_contenders(count, size, None, keep_alive=True), count, size, big_mib, "s3 moto keep-alive")
    return rows


ROUNDS = 4
"""The small values run in this many rounds, the contenders in the orders of ``balanced_orders`` (with four
contenders, four rounds take each order once)."""

_CONTENDERS: tuple[tuple[str, Callable[[Any, int, int, bytes | None], dict[str, Usage] | None]], ...] = (
    ("aiodepot", aiodepot_run),
    ("obstore", obstore_run),
    ("boto3 seq", boto3_sequential),
    ("borgstore seq", borgstore_sequential),
)


def _contenders(count: int, size: int, big: bytes | None, *, keep_alive: bool) -> dict[str, dict[str, Usage]]:
    """Every contender's measurements against one moto server: ``count`` small values in ``ROUNDS`` rounds
    (the orders of ``balanced_orders``), then the big value (if any) once each, ``aiodepot 1 stream`` after
    ``aiodepot``."""
    from tests.servers.moto import start_moto_server

    server = start_moto_server(keep_alive=keep_alive)
    results: dict[str, dict[str, Usage]] = {label: {} for label, _ in _CONTENDERS}
    if big is not None:
        results = {"aiodepot": {}, "aiodepot 1 stream": {}, **results}
    try:
        _warm_up(server)
        orders = balanced_orders(len(_CONTENDERS))
        for round_ in range(ROUNDS):
            for place in orders[round_ % len(orders)]:
                label, contender = _CONTENDERS[place]
                add_usages(results[label], contender(server, count // ROUNDS, size, None))
        if big is not None:
            _warm_up_big(server, big)
            for label, contender in _CONTENDERS:
                add_usages(results[label], contender(server, 0, size, big))
                if label == "aiodepot":
                    add_usages(results["aiodepot 1 stream"], aiodepot_run(server, 0, size, big, one_stream=True))
    finally:
        server.stop()
    return {label: usages for label, usages in results.items() if usages}


def _rows(results: dict[str, dict[str, Usage]], count: int, size: int, big_mib: int, server: str) -> list[Row]:
    return transfer_rows(
        f"{server} {count} x {size // 1024} KiB", f"{server} 1 x {big_mib} MiB", results, count=count, big_mib=big_mib
    )
