"""Write-back: many small values stored one call after another, then made durable — through a
[`WriteBack`][aiodepot.layers.WriteBack] layer (memory backlog) plus one ``flush()``, against direct stores.

Contenders, on a ``file://`` directory, on S3 (a local moto server) and on FTP (a local pyftpdlib server,
as the tests start it; ``examples/ftp_store.py`` is the same comparison as a script):

- aiodepot WriteBack + flush: a ``store()`` loop into the memory backlog (a background flush starts when
  half of ``max_items`` is reached), then ``flush()``; the time is until everything is durable in the store.
- direct store() loop: the same ``store()`` loop on a plain Store, each call written through.
- direct store_many: one bulk call with the same concurrency the flush uses (what a program that can
  batch its writes itself would do).

moto closes every connection after one response, so the S3 figures compare the clients under that bound;
pyftpdlib is one single-threaded Python process, and the ftp backend's pool has 4 connections (one
operation each at a time), so the FTP figures compare the clients under those bounds.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiodepot import Limits, Store

from .common import Row, names

CONCURRENCY = 32
CONFIG = {"data/": {"levels": [1]}}


async def _contenders(make: Callable[..., Store], count: int, size: int) -> dict[str, float]:
    value = os.urandom(size)
    items = names(count)
    times: dict[str, float] = {}

    store = make(writeback=True)
    await store.create()
    async with store:
        started = time.perf_counter()
        for name in items:
            await store.store(name, value)
        acknowledged = time.perf_counter() - started
        await store.flush()
        times["aiodepot WriteBack + flush"] = time.perf_counter() - started
        times["acknowledged"] = acknowledged
    await store.destroy()

    store = make()
    await store.create()
    async with store:
        started = time.perf_counter()
        for name in items:
            await store.store(name, value)
        times["direct store() loop"] = time.perf_counter() - started
    await store.destroy()

    store = make()
    await store.create()
    async with store:
        started = time.perf_counter()
        await store.store_many((name, value) for name in items)
        times["direct store_many"] = time.perf_counter() - started
    await store.destroy()
    return times


def posixfs(count: int, size: int) -> dict[str, float]:
    root = tempfile.mkdtemp(prefix="aiodepot-bench-")
    runs = iter(range(100))

    def make(**options: Any) -> Store:
        return Store(f"file://{root}/{next(runs)}", config=CONFIG, max_concurrency=CONCURRENCY, **options)

    try:
        return asyncio.run(_contenders(make, count, size))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def s3(count: int, size: int) -> dict[str, float]:
    from tests.servers.moto import start_moto_server

    server = start_moto_server()

    def make(**options: Any) -> Store:
        return Store(
            server.url(f"bench-{uuid.uuid4().hex[:16]}", "aiodepot"),
            config=CONFIG,
            max_concurrency=CONCURRENCY,
            backend_options={"create_bucket": True, "limits": Limits(connections=CONCURRENCY)},
            **options,
        )

    try:
        return asyncio.run(_contenders(make, count, size))
    finally:
        server.stop()


def ftp(count: int, size: int) -> dict[str, float]:
    from tests.servers.ftp import ftp_server

    runs = iter(range(100))

    with tempfile.TemporaryDirectory(prefix="aiodepot-bench-") as root, ftp_server(Path(root)) as server:

        def make(**options: Any) -> Store:
            return Store(server.url(f"run{next(runs)}"), config=CONFIG, max_concurrency=CONCURRENCY, **options)

        return asyncio.run(_contenders(make, count, size))


def run(count: int = 10_000, size: int = 4096) -> list[Row]:
    """Run the scenario: one row per backend and contender."""
    rows = []
    for where, runner in (("file://", posixfs), ("s3 moto", s3), ("ftp pyftpdlib", ftp)):
        scenario = f"write-back {where} {count} x {size // 1024} KiB"
        times = runner(count, size)
        acknowledged = times.pop("acknowledged")
        for contender, seconds in times.items():
            rows.append(Row(scenario, "store, durable", contender, seconds, f"{count / seconds:,.0f} items/s"))
        rate = f"{count / acknowledged:,.0f} items/s"
        rows.append(Row(scenario, "store, acknowledged", "aiodepot WriteBack", acknowledged, rate))
    return rows
