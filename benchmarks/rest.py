"""REST on loopback, 2000 x 4 KiB: every client/server pair of aiodepot and borgstore 0.7; and one big value
(aiodepot client and server).

aiodepot's client uses its bulk calls (concurrent requests on a keep-alive pool); borgstore's client is
used as borgstore users use it, one call after another. Each pair has its own server (a subprocess on a
file:// store of its own), all four up for the whole run; each row has the client's CPU (this process) and
the server's (its process) per item, or per MB for the big value (stored in one request, loaded as parallel
8 MiB ranges into one buffer). The small values run twice: on the temp directory's file system ("disk")
and on tmpfs, where creating a file costs the kernel next to nothing, so the rows show the servers' and
clients' own costs; the big value on the first.

The small values go in ``ROUNDS`` rounds of a share of the items each, every pair storing then loading its
share, the pairs in the orders of ``balanced_orders``; a row sums a pair's rounds. Whatever else the machine
does (this VM's speed drifts by tens of percent within minutes) then weighs on every pair alike, where one
pair after another gave the first pair's lot to it alone.

No pair deletes its store before every pair has run: on an ext4 without a journal (the reference
machine's) a new file's inode allocation skips, one by one, every inode of its block group deleted in the
last minutes (the kernel's ``recently_deleted()``; a ``perf`` profile of stores right after 16,000 files
were deleted puts a third of the CPU there and another third in threads spinning on the directory lock its
holder keeps meanwhile). A store then costs either server 600-1,200 µs of system time instead of 55-115,
for more than a minute even after ``sync``. Whatever deleted them (the previous run, another scenario, a
test suite), the rounds share that cost out among the pairs.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path

from aiodepot import Store

from .common import (
    Meter,
    MiB,
    Row,
    Usage,
    add_usages,
    balanced_orders,
    local_dirs,
    measured,
    names,
    transfer_rows,
)

CONFIG = {"data/": {"levels": [1]}}
PAIR = "aiodepot client -> aiodepot server"


ROUNDS = 4
"""The small values run in this many rounds (four pairs: each order of ``balanced_orders`` once)."""

SERVERS = ("aiodepot", "borgstore")
CLIENTS = ("aiodepot", "borgstore")


def _aiodepot_client(
    url: str, items: Sequence[str], value: bytes, pid: int, *, create: bool, big: bytes = b""
) -> dict[str, Usage]:
    """aiodepot's bulk calls: ``store_many`` of every item, then ``load_many``; then ``big`` (if any) stored
    and loaded. ``create``: make the store first."""

    async def run() -> dict[str, Usage]:
        store = Store(url, config=CONFIG)
        if create:
            await store.create()
        async with store:
            result = {}
            if items:
                with Meter(pid) as result["store"]:
                    await store.store_many((name, value) for name in items)
                with Meter(pid) as result["load"]:
                    await store.load_many(items)
            if big:
                with Meter(pid) as result["store big"]:
                    await store.store("data/big", big)
                with Meter(pid) as result["load big"]:
                    assert len(await store.load("data/big")) == len(big)
        return result  # no destroy: see the module docs

    return asyncio.run(run())


def _borgstore_client(url: str, items: Sequence[str], value: bytes, pid: int, *, create: bool) -> dict[str, Usage]:
    """borgstore as its users call it: one store, then one load, after another."""
    from borgstore.store import Store as BorgStore

    store = BorgStore(url=url, config=CONFIG)
    if create:
        store.create()
    with store:
        result = {
            "store": measured(lambda: [store.store(name, value) for name in items], pid),
            "load": measured(lambda: [store.load(name) for name in items], pid),
        }
    return result  # no destroy: see the module docs


def _pairs(parent: str, items: list[str], value: bytes, big: bytes) -> dict[str, dict[str, Usage]]:
    """Every pair's sums over the rounds on a store under ``parent``; then ``big`` (if any) through the
    aiodepot pair. The aiodepot pair comes first."""
    from tests.servers.rest import aiodepot_server_process, borgstore_server_process

    launchers: dict[str, Callable[..., AbstractContextManager[str]]] = {
        "aiodepot": aiodepot_server_process,
        "borgstore": borgstore_server_process,
    }
    clients: dict[str, Callable[..., dict[str, Usage]]] = {
        "aiodepot": _aiodepot_client,
        "borgstore": _borgstore_client,
    }
    pairs = [(client, server) for server in SERVERS for client in CLIENTS]
    results: dict[str, dict[str, Usage]] = {f"{c} client -> {s} server": {} for c, s in pairs}
    root = Path(tempfile.mkdtemp(prefix="aiodepot-bench-", dir=parent))
    try:
        with ExitStack() as servers:
            urls, pids = [], []
            for client_name, server_name in pairs:
                found: list[int] = []
                store_dir = root / f"{client_name}-{server_name}"
                urls.append(servers.enter_context(launchers[server_name](store_dir.as_uri(), pids=found)))
                pids.append(found[0])
            orders = balanced_orders(len(pairs))
            for round_ in range(ROUNDS):
                share = items[round_ * len(items) // ROUNDS : (round_ + 1) * len(items) // ROUNDS]
                for place in orders[round_ % len(orders)]:
                    client_name, server_name = pairs[place]
                    usages = clients[client_name](urls[place], share, value, pids[place], create=round_ == 0)
                    add_usages(results[f"{client_name} client -> {server_name} server"], usages)
            if big:
                add_usages(results[PAIR], _aiodepot_client(urls[0], [], value, pids[0], create=False, big=big))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return results


def run(count: int = 2000, size: int = 4096, big_mib: int = 256) -> list[Row]:
    """Run the scenario: one row per client/server pair and operation."""
    value = os.urandom(size)
    big = os.urandom(big_mib * MiB)
    items = names(count)
    rows: list[Row] = []
    for index, (label, parent) in enumerate(local_dirs()):
        results = _pairs(parent, items, value, b"" if index else big)
        small = f"rest loopback {label}, {count} x {size // 1024} KiB"
        large = f"rest loopback {label}, 1 x {big_mib} MiB"
        rows += transfer_rows(small, large, results, count=count, big_mib=big_mib)
    return rows
