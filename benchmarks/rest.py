"""REST on loopback, 2000 x 4 KiB: every client/server pair of aiodepot and borgstore 0.7.

aiodepot's client uses its bulk calls (concurrent requests on a keep-alive pool); borgstore's client is
used as borgstore users use it, one call after another. Servers run as subprocesses on file:// stores; each
row has the client's CPU (this process) and the server's (its process) per item.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from aiodepot import Store

from .common import Meter, Row, Usage, measured, names, usage_row

CONFIG = {"data/": {"levels": [1]}}


def _aiodepot_client(url: str, items: list[str], value: bytes, pid: int) -> dict[str, Usage]:
    """aiodepot's bulk calls: ``store_many`` of every item, then ``load_many``."""

    async def run() -> dict[str, Usage]:
        store = Store(url, config=CONFIG)
        await store.create()
        async with store:
            with Meter(pid) as stored:
                await store.store_many((name, value) for name in items)
            with Meter(pid) as loaded:
                await store.load_many(items)
        await store.destroy()
        return {"store": stored, "load": loaded}

    return asyncio.run(run())


def _borgstore_client(url: str, items: list[str], value: bytes, pid: int) -> dict[str, Usage]:
    """borgstore as its users call it: one store, then one load, after another."""
    from borgstore.store import Store as BorgStore

    store = BorgStore(url=url, config=CONFIG)
    store.create()
    with store:
        result = {
            "store": measured(lambda: [store.store(name, value) for name in items], pid),
            "load": measured(lambda: [store.load(name) for name in items], pid),
        }
    store.destroy()
    return result


def run(count: int = 2000, size: int = 4096) -> list[Row]:
    """Run the scenario: one row per client/server pair and operation."""
    from tests.servers.rest import aiodepot_server_process, borgstore_server_process

    servers: dict[str, Callable[..., AbstractContextManager[str]]] = {
        "aiodepot": aiodepot_server_process,
        "borgstore": borgstore_server_process,
    }
    clients = {"aiodepot": _aiodepot_client, "borgstore": _borgstore_client}
    value = os.urandom(size)
    items = names(count)
    results: dict[str, dict[str, Usage]] = {}
    root = Path(tempfile.mkdtemp(prefix="aiodepot-bench-"))
    try:
        for server_name, launch in servers.items():
            for client_name, client in clients.items():
                store_dir = root / f"{client_name}-{server_name}"
                pids: list[int] = []
                with launch(store_dir.as_uri(), pids=pids) as url:
                    results[f"{client_name} client -> {server_name} server"] = client(url, items, value, pids[0])
    finally:
        shutil.rmtree(root, ignore_errors=True)
    order = sorted(results, key=lambda pair: not pair.startswith("aiodepot client -> aiodepot"))
    scenario = f"rest loopback, {count} x {size // 1024} KiB"
    return [
        usage_row(scenario, op, pair, usage, count, "op", f"{count / usage.seconds:,.0f} items/s")
        for op in ("store", "load")
        for pair in order
        for usage in [results[pair][op]]
    ]
