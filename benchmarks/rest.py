"""REST on loopback, 2000 x 4 KiB: every client/server pair of aiodepot and borgstore 0.7.

aiodepot's client uses its bulk calls (concurrent requests on a keep-alive pool); borgstore's client is
used as borgstore users use it, one call after another. Servers run as subprocesses on file:// stores.
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

from .common import Row, bulk_store_load, names, sequential_store_load

CONFIG = {"data/": {"levels": [1]}}


def _aiodepot_client(url: str, items: list[str], value: bytes) -> dict[str, float]:
    async def run() -> dict[str, float]:
        store = Store(url, config=CONFIG)
        await store.create()
        async with store:
            result = await bulk_store_load(store, items, value)
        await store.destroy()
        return result

    return asyncio.run(run())


def _borgstore_client(url: str, items: list[str], value: bytes) -> dict[str, float]:
    from borgstore.store import Store as BorgStore

    store = BorgStore(url=url, config=CONFIG)
    store.create()
    with store:
        result = sequential_store_load(store, items, value)
    store.destroy()
    return result


def run(count: int = 2000, size: int = 4096) -> list[Row]:
    """Run the scenario: one row per client/server pair and operation."""
    from tests.servers.rest import aiodepot_server_process, borgstore_server_process

    servers: dict[str, Callable[[str], AbstractContextManager[str]]] = {
        "aiodepot": aiodepot_server_process,
        "borgstore": borgstore_server_process,
    }
    clients = {"aiodepot": _aiodepot_client, "borgstore": _borgstore_client}
    value = os.urandom(size)
    items = names(count)
    results: dict[str, dict[str, float]] = {}
    root = Path(tempfile.mkdtemp(prefix="aiodepot-bench-"))
    try:
        for server_name, launch in servers.items():
            for client_name, client in clients.items():
                store_dir = root / f"{client_name}-{server_name}"
                with launch(store_dir.as_uri()) as url:
                    results[f"{client_name} client -> {server_name} server"] = client(url, items, value)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    order = sorted(results, key=lambda pair: not pair.startswith("aiodepot client -> aiodepot"))
    scenario = f"rest loopback, {count} x {size // 1024} KiB"
    return [
        Row(scenario, op, pair, results[pair][op], f"{count / results[pair][op]:,.0f} items/s")
        for op in ("store", "load")
        for pair in order
    ]
