"""Shared helpers for the benchmark scenarios."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import resource
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

CORES = os.cpu_count() or 1
MiB = 1024 * 1024
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclasses.dataclass
class Row:
    """One measurement: a contender doing one operation of a scenario."""

    scenario: str
    operation: str
    contender: str
    seconds: float
    note: str = ""
    client_cpu: float | None = None
    """CPU seconds of the benchmark's process (every thread) during the measurement, if measured."""
    server_cpu: float | None = None
    """CPU seconds of the server's process during the measurement, if it runs in one of its own."""
    work: float = 0.0
    """How many ``unit`` the measurement did: the divisor of the CPU columns."""
    unit: str = "op"
    """``"op"`` (CPU shown in µs per op) or ``"MB"`` (ms per MB)."""
    machine_cpu: float | None = None
    """CPU seconds every process of the machine used during the measurement (``/proc/stat``)."""

    def per_unit(self, cpu: float | None) -> str:
        """``cpu`` seconds per unit of work, as the table shows it."""
        if cpu is None or not self.work:
            return ""
        if self.unit == "MB":
            return f"{cpu / self.work * 1e3:,.2f} ms/MB"
        return f"{cpu / self.work * 1e6:,.0f} µs/{self.unit}"

    def bound(self) -> str:
        """Which CPU bounded the measurement: the client's event loop, or the whole machine."""
        if self.client_cpu is None:
            return ""
        ours = self.client_cpu + (self.server_cpu or 0.0)
        busy = max(ours, self.machine_cpu or 0.0)
        if busy >= 0.8 * self.seconds * CORES:
            others = busy - ours
            shared = f", others {others / self.seconds:.1f}" if others >= 0.1 * self.seconds else ""
            return f"machine CPU ({busy / self.seconds:.1f}/{CORES} cores busy{shared})"
        if self.client_cpu >= 0.85 * self.seconds:
            return f"client CPU ({self.client_cpu / self.seconds:.2f} core)"
        if self.server_cpu is not None and self.server_cpu >= 0.85 * self.seconds:
            return f"server CPU ({self.server_cpu / self.seconds:.2f} core)"
        return ""


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used, from ``/proc/<pid>/stat``."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime: fields 14 and 15 of the line


def machine_cpu() -> float:
    """CPU seconds every process of the machine has used (every core's non-idle time, ``/proc/stat``)."""
    with open("/proc/stat") as stat:
        fields = [int(field) for field in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / _TICKS  # user nice system idle iowait irq softirq steal


def own_cpu() -> float:
    """CPU seconds (user + system) this process has used, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclasses.dataclass
class Usage:
    """Wall time and CPU of one measured phase (see [`Meter`][benchmarks.common.Meter])."""

    seconds: float = 0.0
    client_cpu: float = 0.0
    server_cpu: float | None = None
    machine_cpu: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        """Both phases' time and CPU together (a measurement run in rounds)."""
        server = None if self.server_cpu is None or other.server_cpu is None else self.server_cpu + other.server_cpu
        return Usage(
            self.seconds + other.seconds,
            self.client_cpu + other.client_cpu,
            server,
            self.machine_cpu + other.machine_cpu,
        )


class Meter:
    """``with Meter(server_pid) as usage:`` measures wall time, this process's CPU and the server's."""

    def __init__(self, server_pid: int | None = None) -> None:
        self.server_pid = server_pid
        self.usage = Usage()

    def __enter__(self) -> Usage:
        self._server = process_cpu(self.server_pid) if self.server_pid is not None else None
        self._cpu = own_cpu()
        self._machine = machine_cpu()
        self._started = time.perf_counter()
        return self.usage

    def __exit__(self, *exc: object) -> None:
        self.usage.seconds = time.perf_counter() - self._started
        self.usage.client_cpu = own_cpu() - self._cpu
        self.usage.machine_cpu = machine_cpu() - self._machine
        if self.server_pid is not None and self._server is not None:
            self.usage.server_cpu = process_cpu(self.server_pid) - self._server


def add_usages(into: dict[str, Usage], usages: Mapping[str, Usage] | None) -> None:
    """Add one round's measurements (operation -> usage) to a contender's sums; nothing if ``usages`` is
    None (a contender that is not installed)."""
    for op, usage in (usages or {}).items():
        into[op] = into[op] + usage if op in into else usage


def measured(func: Callable[[], object], server_pid: int | None = None) -> Usage:
    """Wall time and CPU of ``func()``."""
    with Meter(server_pid) as usage:
        func()
    return usage


def usage_row(scenario: str, operation: str, contender: str, usage: Usage, work: float, unit: str, note: str) -> Row:
    """A row with the CPU columns filled from ``usage``."""
    return Row(
        scenario,
        operation,
        contender,
        usage.seconds,
        note,
        client_cpu=usage.client_cpu,
        server_cpu=usage.server_cpu,
        machine_cpu=usage.machine_cpu,
        work=work,
        unit=unit,
    )


async def ameasured(make: Callable[[], Awaitable[object]], server_pid: int | None = None) -> Usage:
    """Wall time and CPU of ``await make()``."""
    with Meter(server_pid) as usage:
        await make()
    return usage


def transfer_rows(
    small: str,
    large: str,
    results: Mapping[str, Mapping[str, Usage]],
    *,
    count: int,
    big_mib: int,
    missing: str | None = None,
) -> list[Row]:
    """The rows of a many-small-values-and-one-big-one scenario: per contender, ``store`` and ``load`` of
    ``count`` values (scenario ``small``, CPU per op) and ``store big`` and ``load big`` of one ``big_mib`` MiB
    value (scenario ``large``, CPU per MB). An operation a contender's results lack has no row, or with
    ``missing`` a row without a time, ``missing`` its note."""
    megabytes = big_mib * MiB / 1e6
    rows = []
    for scenario, ops, work, unit in (
        (small, ("store", "load"), count, "op"),
        (large, ("store big", "load big"), megabytes, "MB"),
    ):
        for op in ops:
            for contender, usages in results.items():
                name = op.removesuffix(" big")
                usage = usages.get(op)
                if usage is None:
                    if missing is not None:
                        rows.append(Row(scenario, name, contender, math.nan, missing))
                    continue
                rate = (
                    f"{count / usage.seconds:,.0f} items/s"
                    if unit == "op"
                    else f"{megabytes / usage.seconds:,.0f} MB/s"
                )
                rows.append(usage_row(scenario, name, contender, usage, work, unit, rate))
    return rows


class ObstoreCalls:
    """obstore's async calls on one of its stores, as the cloud scenarios run them: at most ``concurrency``
    requests in flight; a big value put in ``part``-sized parts and got as parallel ``part``-sized ranges."""

    def __init__(self, store: Any, *, concurrency: int, part: int) -> None:
        import obstore

        self._obstore = obstore
        self.store = store
        self.part = part
        self._limit = asyncio.Semaphore(concurrency)

    async def put_all(self, keys: Sequence[str], value: bytes) -> None:
        """``put_async`` of ``value`` under every key."""

        async def put(key: str) -> None:
            async with self._limit:
                await self._obstore.put_async(self.store, key, value)

        await asyncio.gather(*(put(key) for key in keys))

    async def get_all(self, keys: Sequence[str]) -> list[bytes]:
        """``get_async`` of every key."""

        async def get(key: str) -> bytes:
            async with self._limit:
                result = await self._obstore.get_async(self.store, key)
                return bytes(await result.bytes_async())

        return await asyncio.gather(*(get(key) for key in keys))

    async def put_big(self, key: str, value: bytes, *, max_concurrency: int) -> None:
        """One ``put_async`` in ``part``-sized parts, ``max_concurrency`` of them in flight."""
        await self._obstore.put_async(self.store, key, value, chunk_size=self.part, max_concurrency=max_concurrency)

    async def get_big(self, key: str, size: int) -> bytes:
        """The ``size`` bytes of ``key`` as parallel ``get_range_async`` calls, joined."""

        async def get_range(start: int) -> bytes:
            async with self._limit:
                return bytes(await self._obstore.get_range_async(self.store, key, start=start, length=self.part))

        return b"".join(await asyncio.gather(*(get_range(start) for start in range(0, size, self.part))))


def balanced_orders(count: int) -> list[list[int]]:
    """Orders of ``count`` contenders for rounds in turn, a Williams design: over the orders, every contender
    takes every place once and follows every other contender once (``count`` orders; twice as many for an
    odd ``count``). A server's state after one contender (its heap, its threads, what it just did) then weighs
    on every contender alike; in plain turns (A B C D D C B A) A always followed B or itself.
    """
    first = [0]
    low, high = 1, count - 1
    while len(first) < count:
        first.append(low)
        low += 1
        if len(first) < count:
            first.append(high)
            high -= 1
    orders = [[(place + shift) % count for place in first] for shift in range(count)]
    if count % 2:
        orders += [order[::-1] for order in orders]
    return orders


def timed(func: Callable[[], object]) -> float:
    """Seconds ``func()`` takes."""
    started = time.perf_counter()
    func()
    return time.perf_counter() - started


def names(count: int, namespace: str = "data") -> list[str]:
    """``count`` realistic 64-hex-digit item names."""
    return [f"{namespace}/{i:064x}" for i in range(count)]


def sequential_store_load(store: Any, items: Sequence[str], value: bytes) -> dict[str, float]:
    """Seconds to store, then load, every item one call after another (how borgstore is used)."""
    return {
        "store": timed(lambda: [store.store(name, value) for name in items]),
        "load": timed(lambda: [store.load(name) for name in items]),
    }


async def bulk_store_load(store: Any, items: Sequence[str], value: bytes) -> dict[str, float]:
    """Seconds for aiodepot's ``store_many`` of every item, then ``load_many`` of them, on an open Store."""
    started = time.perf_counter()
    await store.store_many((name, value) for name in items)
    stored = time.perf_counter() - started
    started = time.perf_counter()
    await store.load_many(items)
    return {"store": stored, "load": time.perf_counter() - started}


def local_dirs() -> list[tuple[str, str]]:
    """(label, directory) of the file systems to run on: the temp dir's, and tmpfs if it is another."""
    dirs = [("disk" if not is_tmpfs(tempfile.gettempdir()) else "tmpfs", tempfile.gettempdir())]
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) and dirs[0][0] != "tmpfs":
        dirs.append(("tmpfs", "/dev/shm"))
    return dirs


def is_tmpfs(path: str) -> bool:
    """Whether ``path`` lies on a tmpfs mount (the longest mount point of /proc/mounts that holds it)."""
    try:
        with open("/proc/mounts") as f:
            mounts = [line.split() for line in f]
    except OSError:
        return False
    real = os.path.realpath(path)
    best = ("", "")
    for fields in mounts:
        if len(fields) > 2 and (real == fields[1] or real.startswith(fields[1].rstrip("/") + "/")):
            best = max(best, (fields[1], fields[2]), key=lambda m: len(m[0]))
    return best[1] == "tmpfs"
