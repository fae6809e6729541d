"""Emulated latency of 10 ms per backend call: aiodepot bulk calls vs borgstore used sequentially.

Both run on posixfs with the same emulation (BORGSTORE_LATENCY for borgstore, ``latency=`` for
aiodepot), so the figures show what concurrency does when every call costs a round trip.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile

from aiodepot import Store

from .common import Row, bulk_store_load, names, sequential_store_load

LATENCY = 0.010


def borgstore_sequential(root: str, count: int, value: bytes) -> dict[str, float] | None:
    try:
        from borgstore.store import Store as BorgStore
    except ImportError:
        return None
    os.environ["BORGSTORE_LATENCY"] = str(int(LATENCY * 1e6))
    try:
        store = BorgStore(url=f"file://{root}/borg", config={"data/": {"levels": [1]}})
    finally:
        del os.environ["BORGSTORE_LATENCY"]
    store.create()
    items = names(count)
    with store:
        return sequential_store_load(store, items, value)


def aiodepot_bulk(root: str, count: int, value: bytes) -> dict[str, float]:
    items = names(count)

    async def run() -> dict[str, float]:
        store = Store(f"file://{root}/aiodepot", config={"data/": {"levels": [1]}}, latency=LATENCY)
        await store.create()
        async with store:
            return await bulk_store_load(store, items, value)

    return asyncio.run(run())


def run(count: int = 1000, size: int = 4096) -> list[Row]:
    """Run the scenario: one row per contender and operation."""
    scenario = f"latency {LATENCY * 1000:.0f} ms, {count} x {size // 1024} KiB"
    value = os.urandom(size)
    root = tempfile.mkdtemp(prefix="aiodepot-bench-")
    try:
        results = {"aiodepot bulk": aiodepot_bulk(root, count, value)}
        borg = borgstore_sequential(root, count, value)
        if borg is not None:
            results["borgstore seq"] = borg
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return [
        Row(scenario, op, contender, times[op], f"{count / times[op]:,.0f} items/s")
        for op in ("store", "load")
        for contender, times in results.items()
    ]
