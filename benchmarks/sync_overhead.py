"""Per-call cost of the sync facade: SyncStore vs awaiting Store directly vs borgstore, 4 KiB loads."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time

from aiodepot import Store, SyncStore

from .common import Row, timed


def run(calls: int = 5000) -> list[Row]:
    """Time ``calls`` sequential loads of one small item through each API on posixfs."""
    value = os.urandom(4096)
    root = tempfile.mkdtemp(prefix="aiodepot-bench-")
    rows = []
    scenario = f"per-call overhead, {calls} sequential 4 KiB loads"
    try:
        sync_store = SyncStore(f"file://{root}/sync")
        sync_store.create()
        with sync_store:
            sync_store.store("item", value)
            seconds = timed(lambda: [sync_store.load("item") for _ in range(calls)])
            rows.append(Row(scenario, "load", "aiodepot SyncStore", seconds, f"{seconds / calls * 1e6:.0f} µs/call"))

        async def direct() -> float:
            store = Store(f"file://{root}/async")
            await store.create()
            async with store:
                await store.store("item", value)
                started = time.perf_counter()
                for _ in range(calls):
                    await store.load("item")
                return time.perf_counter() - started

        seconds = asyncio.run(direct())
        rows.append(Row(scenario, "load", "aiodepot Store", seconds, f"{seconds / calls * 1e6:.0f} µs/call"))
        try:
            from borgstore.store import Store as BorgStore
        except ImportError:
            return rows
        borg = BorgStore(url=f"file://{root}/borg", config={"": {"levels": [0]}})
        borg.create()
        with borg:
            borg.store("item", value)
            seconds = timed(lambda: [borg.load("item") for _ in range(calls)])
        rows.append(Row(scenario, "load", "borgstore", seconds, f"{seconds / calls * 1e6:.0f} µs/call"))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return rows
