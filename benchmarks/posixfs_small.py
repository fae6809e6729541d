"""posixfs, many small values: aiodepot bulk calls vs borgstore used sequentially vs a raw Python loop.

The raw loop (open/write/close/rename; open/read) is what this machine can do from Python at all.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time

from aiodepot import Store

from .common import Row, bulk_store_load, names, timed


def raw_loop(root: str, count: int, size: int) -> dict[str, float]:
    value = os.urandom(size)
    keys = [f"{i:064x}" for i in range(count)]
    base = os.path.join(root, "raw", "data")

    def write() -> None:
        for k in keys:
            directory = os.path.join(base, k[:2])
            os.makedirs(directory, exist_ok=True)
            path = os.path.join(directory, k)
            with open(path + ".tmp", "wb") as f:
                f.write(value)
            os.replace(path + ".tmp", path)

    def read() -> None:
        for k in keys:
            with open(os.path.join(base, k[:2], k), "rb") as f:
                f.read()

    def listing() -> None:
        for sub in sorted(os.listdir(base)):
            sorted(os.listdir(os.path.join(base, sub)))

    return {"store": timed(write), "load": timed(read), "list": timed(listing)}


def borgstore_sequential(root: str, count: int, size: int) -> dict[str, float] | None:
    try:
        from borgstore.store import Store as BorgStore
    except ImportError:
        return None
    value = os.urandom(size)
    items = names(count)
    store = BorgStore(url=f"file://{root}/borg", config={"data/": {"levels": [1]}})
    store.create()
    with store:

        def write() -> None:
            for name in items:
                store.store(name, value)

        def read() -> None:
            for name in items:
                store.load(name)

        def listing() -> None:
            list(store.list("data"))

        return {"store": timed(write), "load": timed(read), "list": timed(listing)}


def aiodepot_bulk(root: str, count: int, size: int) -> dict[str, float]:
    value = os.urandom(size)
    items = names(count)

    async def run() -> dict[str, float]:
        store = Store(f"file://{root}/aiodepot", config={"data/": {"levels": [1]}})
        await store.create()
        async with store:
            result = await bulk_store_load(store, items, value)
            started = time.perf_counter()
            [info async for info in store.list("data")]
            result["list"] = time.perf_counter() - started
        return result

    return asyncio.run(run())


def run(count: int = 5000, size: int = 4096) -> list[Row]:
    """Run the scenario: one row per contender and operation."""
    scenario = f"posixfs {count} x {size // 1024} KiB"
    root = tempfile.mkdtemp(prefix="aiodepot-bench-")
    try:
        results = {"aiodepot bulk": aiodepot_bulk(root, count, size), "raw loop": raw_loop(root, count, size)}
        borg = borgstore_sequential(root, count, size)
        if borg is not None:
            results["borgstore seq"] = borg
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return [
        Row(scenario, op, contender, times[op], f"{count / times[op]:,.0f} items/s")
        for op in ("store", "load", "list")
        for contender, times in results.items()
    ]
