"""REST on loopback, 2000 x 4 KiB: every client/server pair of aiodepot and borgstore 0.7; and one big value
(aiodepot client and server).

aiodepot's client uses its bulk calls (concurrent requests on a keep-alive pool); borgstore's client is
used as borgstore users use it, one call after another. Servers run as subprocesses on file:// stores; each
row has the client's CPU (this process) and the server's (its process) per item, or per MB for the big
value (stored in one request, loaded as parallel 8 MiB ranges into one buffer). The small values run
twice: on the temp directory's file system ("disk") and on tmpfs, where creating a file costs the
kernel next to nothing, so the rows show the servers' and clients' own costs; the big value on the first.

No pair deletes its store before every pair has run: on an ext4 without a journal (the reference
machine's) each new file's inode allocation skips every inode of its block group deleted in the last
60-360 s, one by one (the kernel's ``recently_deleted``), so 2,000 deletions by one pair made each store
of the pairs after it cost hundreds of µs more system time than the first pair's.
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

from .common import Meter, MiB, Row, Usage, local_dirs, measured, names, transfer_rows

CONFIG = {"data/": {"levels": [1]}}
PAIR = "aiodepot client -> aiodepot server"


def _aiodepot_client(url: str, items: list[str], value: bytes, pid: int, big: bytes = b"") -> dict[str, Usage]:
    """aiodepot's bulk calls: ``store_many`` of every item, then ``load_many``; then ``big`` (if any) stored
    and loaded."""

    async def run() -> dict[str, Usage]:
        store = Store(url, config=CONFIG)
        await store.create()
        async with store:
            with Meter(pid) as stored:
                await store.store_many((name, value) for name in items)
            with Meter(pid) as loaded:
                await store.load_many(items)
            result = {"store": stored, "load": loaded}
            if big:
                with Meter(pid) as result["store big"]:
                    await store.store("data/big", big)
                with Meter(pid) as result["load big"]:
                    assert len(await store.load("data/big")) == len(big)
        return result  # no destroy: see the module docs

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
    return result  # no destroy: see the module docs


def run(count: int = 2000, size: int = 4096, big_mib: int = 256) -> list[Row]:
    """Run the scenario: one row per client/server pair and operation."""
    from tests.servers.rest import aiodepot_server_process, borgstore_server_process

    servers: dict[str, Callable[..., AbstractContextManager[str]]] = {
        "aiodepot": aiodepot_server_process,
        "borgstore": borgstore_server_process,
    }
    clients = {"aiodepot": _aiodepot_client, "borgstore": _borgstore_client}
    value = os.urandom(size)
    big = os.urandom(big_mib * MiB)
    items = names(count)
    rows: list[Row] = []
    for index, (label, parent) in enumerate(local_dirs()):
        results: dict[str, dict[str, Usage]] = {}
        root = Path(tempfile.mkdtemp(prefix="aiodepot-bench-", dir=parent))
        try:
            for server_name, launch in servers.items():
                for client_name, client in clients.items():
                    store_dir = root / f"{client_name}-{server_name}"
                    pids: list[int] = []
                    with launch(store_dir.as_uri(), pids=pids) as url:
                        if client_name == server_name == "aiodepot":  # the big value once, on the first
                            results[PAIR] = _aiodepot_client(url, items, value, pids[0], b"" if index else big)
                        else:
                            pair = f"{client_name} client -> {server_name} server"
                            results[pair] = client(url, items, value, pids[0])
        finally:
            shutil.rmtree(root, ignore_errors=True)
        order = sorted(results, key=lambda pair: not pair.startswith("aiodepot client -> aiodepot"))
        small = f"rest loopback {label}, {count} x {size // 1024} KiB"
        large = f"rest loopback {label}, 1 x {big_mib} MiB"
        rows += transfer_rows(small, large, {pair: results[pair] for pair in order}, count=count, big_mib=big_mib)
    return rows
