"""Load on aiodepot's REST server: 32 concurrent clients x 500 mixed operations, values of 1 KiB to 1 MiB.

Reports errors (the goal is none), p50/p99 latency per operation and the server's peak RSS.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from aiodepot import Limits, ObjectNotFound, RetryPolicy, Store
from aiodepot.backends.rest import RestBackend

from .common import Row


async def _client(url: str, number: int, operations: int, latencies: dict[str, list[float]], errors: list[str]) -> None:
    rng = random.Random(number)
    store = Store(backend=RestBackend(url, limits=Limits(connections=4), retry=RetryPolicy(attempts=1)))
    mine: list[str] = []
    async with store:
        for i in range(operations):
            roll = rng.random()
            if roll < 0.35 or not mine:
                op, name = "store", f"c{number:02d}i{i:04d}"
                size = int(1024 * 1024 ** rng.random())  # log-uniform 1 KiB .. 1 MiB
                call = store.store(name, os.urandom(size))
                mine.append(name)
            elif roll < 0.75:
                op, call = "load", store.load(rng.choice(mine))
            elif roll < 0.9:
                op, call = "info", store.info(rng.choice(mine))
            elif roll < 0.97:
                op = "delete"
                call = store.delete(mine.pop(rng.randrange(len(mine))))
            else:
                op, call = "list", _drain(store)
            started = time.perf_counter()
            try:
                await call
            except ObjectNotFound as exc:  # never expected: each client touches only its own items
                errors.append(f"{op}: {exc!r}")
            except Exception as exc:
                errors.append(f"{op}: {exc!r}")
            latencies.setdefault(op, []).append(time.perf_counter() - started)


async def _drain(store: Store) -> None:
    async for _ in store.list():
        pass


def _peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run(clients: int = 32, operations: int = 500) -> list[Row]:
    """Run the load; one row per operation kind plus a total row."""
    from tests.servers import free_port, start_process, stop_process, wait_for_port

    root = Path(tempfile.mkdtemp(prefix="aiodepot-bench-"))
    port = free_port()
    command = ["python", "-m", "aiodepot.server", "--backend", (root / "store").as_uri(), "--port", str(port)]
    process = start_process([*command, "--no-auth", "--log-level", "WARNING"])
    latencies: dict[str, list[float]] = {}
    errors: list[str] = []
    try:
        wait_for_port(port, process=process)
        url = f"http://127.0.0.1:{port}"

        async def main() -> float:
            await Store(backend=RestBackend(url)).create()
            started = time.perf_counter()
            await asyncio.gather(*(_client(url, n, operations, latencies, errors) for n in range(clients)))
            return time.perf_counter() - started

        elapsed = asyncio.run(main())
        peak = _peak_rss_mib(process.pid)
    finally:
        stop_process(process)
        shutil.rmtree(root, ignore_errors=True)
    scenario = f"server load, {clients} clients x {operations} ops"
    rows = []
    for op, values in sorted(latencies.items()):
        p50 = statistics.median(values) * 1000
        p99 = statistics.quantiles(values, n=100)[98] * 1000 if len(values) > 1 else p50
        rows.append(
            Row(scenario, op, "aiodepot server", sum(values), f"{len(values)} ops, p50 {p50:.1f} ms, p99 {p99:.1f} ms")
        )
    total = sum(len(v) for v in latencies.values())
    note = f"{total / elapsed:,.0f} ops/s, {len(errors)} errors, server peak RSS {peak:.0f} MiB"
    rows.append(Row(scenario, "all", "aiodepot server", elapsed, note))
    if errors:
        rows.append(Row(scenario, "errors", "aiodepot server", 0.0, "; ".join(errors[:5])))
    return rows
