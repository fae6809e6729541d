"""Single calls: sequential 4 KiB loads and stores, one call after another, through every API.

For each storage (``file://`` on the disk and on tmpfs, ``memory://``, ``sqlite://``) the same calls run
through ``await Store``, ``SyncStore``, the borgstore drop-in (``aiodepot.compat.borgstore``), borgstore
itself (where it has the backend), the aiodepot backend's blocking twins called directly (the floor under
the sync facade's direct path) and the same work without any library (a raw open/read loop, a dict,
plain ``sqlite3``). On ``file://``, two rows show what leaving the event loop costs whatever the library:
the raw loop's calls each awaited through ``asyncio.to_thread``, and that and ``await Store`` again in a
process held to one CPU (where a hand-off between threads wakes no other CPU). Each figure is the best of
``repeats`` runs, each on fresh names (see `Rounds`); the note gives
µs per call, CPU µs per call (``getrusage``: every thread of the process, so a hand-off to another thread
counts) and the ratio to borgstore's µs/call (``memory://``: to ``MemoryBackend``'s blocking code, as a
dict lookup is no yardstick; ``sqlite://``: to ``SQLiteBackend``'s blocking code, with plain ``sqlite3``
beside it).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import multiprocessing
import os
import resource
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Sequence

from aiodepot import Store, SyncStore
from aiodepot.backends.base import Backend
from aiodepot.backends.memory import MemoryBackend
from aiodepot.backends.posixfs import PosixFSBackend
from aiodepot.backends.sqlite import SQLiteBackend

from .common import Row, local_dirs, names

VALUE_SIZE = 4096
_UPSERT = "INSERT INTO items (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value"


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


Rounds = Sequence[Sequence[str]]
"""The names of each repeat: fresh ones every time, so a store creates an item as Borg's do (its chunks are
content-addressed, so new), rather than replacing one (on ext4 that costs the kernel 50 to 250 µs more per
call, growing from pass to pass, and swamped every library's own cost)."""


def _best(run: Callable[[int], None], repeats: int) -> tuple[float, float]:
    """The best wall-clock seconds of ``repeats`` runs of ``run(repeat)``, and the CPU seconds of that run."""
    best = (float("inf"), 0.0)
    for repeat in range(repeats):
        cpu = _cpu()
        started = time.perf_counter()
        run(repeat)
        wall = time.perf_counter() - started
        best = min(best, (wall, _cpu() - cpu))
    return best


Timings = dict[str, tuple[float, float]]  # operation -> (wall s, cpu s)


def _sync_calls(store: object, rounds: Rounds, value: bytes) -> Timings:
    store_one = store.store  # type: ignore[attr-defined]
    load_one = store.load  # type: ignore[attr-defined]

    def stores(repeat: int) -> None:
        for name in rounds[repeat]:
            store_one(name, value)

    def loads(repeat: int) -> None:
        for name in rounds[repeat]:
            load_one(name)

    return {"store": _best(stores, len(rounds)), "load": _best(loads, len(rounds))}


def _async_calls(url: str, rounds: Rounds, value: bytes) -> Timings:
    async def main() -> Timings:
        store = Store(url)
        await store.create()
        async with store:
            timings: Timings = {}
            for op in ("store", "load"):
                best = (float("inf"), 0.0)
                for repeat in range(len(rounds)):
                    cpu = _cpu()
                    started = time.perf_counter()
                    if op == "store":
                        for name in rounds[repeat]:
                            await store.store(name, value)
                    else:
                        for name in rounds[repeat]:
                            await store.load(name)
                    best = min(best, (time.perf_counter() - started, _cpu() - cpu))
                timings[op] = best
            return timings

    return asyncio.run(main())


def _syncstore_calls(url: str, rounds: Rounds, value: bytes) -> Timings:
    store = SyncStore(url)
    store.create()
    with store:
        return _sync_calls(store, rounds, value)


def _compat_calls(url: str, rounds: Rounds, value: bytes) -> Timings:
    from aiodepot.compat.borgstore.store import Store as CompatStore

    store = CompatStore(url=url, config={"": {"levels": [0]}})
    store.create()
    with store:
        return _sync_calls(store, rounds, value)


def _borgstore_calls(url: str, rounds: Rounds, value: bytes) -> Timings | None:
    try:
        from borgstore.store import Store as BorgStore
    except ImportError:
        return None
    store = BorgStore(url=url, config={"": {"levels": [0]}})
    store.create()
    with store:
        return _sync_calls(store, rounds, value)


def _backend_blocking(backend: Backend, rounds: Rounds, value: bytes) -> Timings:
    """The backend's blocking twins called directly: the floor under the Store's direct path."""

    async def start() -> None:
        await backend.create()
        await backend.open()

    asyncio.run(start())
    try:
        return _sync_calls(_Twins(backend), rounds, value)
    finally:
        asyncio.run(backend.close())


class _Twins:
    def __init__(self, backend: Backend) -> None:
        self.load = backend.load_blocking
        self.store = backend.store_blocking


def _raw_paths(root: str, rounds: Rounds) -> list[list[str]]:
    os.makedirs(root)
    return [[os.path.join(root, name.replace("/", "_")) for name in names] for names in rounds]


def _raw_store(path: str, value: bytes) -> None:
    """What a program does without any library to store: write a temp file and rename it."""
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        os.write(fd, value)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _raw_load(path: str) -> bytes:
    """What a program does without any library to load: open, read, close."""
    with open(path, "rb") as f:
        return f.read()


def _raw_files(root: str, rounds: Rounds, value: bytes) -> Timings:
    """The raw loop: `_raw_store` and `_raw_load` one after another."""
    paths = _raw_paths(root, rounds)

    def stores(repeat: int) -> None:
        for path in paths[repeat]:
            _raw_store(path, value)

    def loads(repeat: int) -> None:
        for path in paths[repeat]:
            _raw_load(path)

    return {"store": _best(stores, len(rounds)), "load": _best(loads, len(rounds))}


def _raw_files_to_thread(root: str, rounds: Rounds, value: bytes) -> Timings:
    """The raw loop's calls, each awaited through ``asyncio.to_thread``: what an asyncio program pays
    for a blocking call in a thread, with no library (the floor under ``await Store`` where a call must
    leave the event loop)."""
    paths = _raw_paths(root, rounds)
    store_one = functools.partial(_raw_store, value=value)
    load_one = _raw_load

    async def main() -> Timings:
        timings: Timings = {}
        for op, call in (("store", store_one), ("load", load_one)):
            best = (float("inf"), 0.0)
            for repeat in range(len(rounds)):
                cpu = _cpu()
                started = time.perf_counter()
                for path in paths[repeat]:
                    await asyncio.to_thread(call, path)
                best = min(best, (time.perf_counter() - started, _cpu() - cpu))
            timings[op] = best
        return timings

    return asyncio.run(main())


def _on_one_cpu(function: Callable[..., Timings], *args: object) -> Timings | None:
    """``function(*args)`` in a fresh process held to one CPU, so that the event loop's thread and the
    worker threads share it: a hand-off between threads then never wakes another (virtual) CPU. None
    where the process may use only one CPU anyway, or affinity cannot be set."""
    if not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2:
        return None
    cpu = min(os.sched_getaffinity(0))
    with concurrent.futures.ProcessPoolExecutor(
        1, mp_context=multiprocessing.get_context("spawn"), initializer=os.sched_setaffinity, initargs=(0, {cpu})
    ) as pool:
        return pool.submit(function, *args).result()


def _raw_dict(rounds: Rounds, value: bytes) -> Timings:
    data: dict[str, bytes] = {}

    def stores(repeat: int) -> None:
        for name in rounds[repeat]:
            data[name] = bytes(value)

    def loads(repeat: int) -> None:
        for name in rounds[repeat]:
            data.get(name)

    return {"store": _best(stores, len(rounds)), "load": _best(loads, len(rounds))}


def _raw_sqlite(path: str, rounds: Rounds, value: bytes) -> Timings:
    """Plain sqlite3, WAL, one autocommitted upsert per store and one select per load."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE items (name TEXT PRIMARY KEY, value BLOB NOT NULL)")

        def stores(repeat: int) -> None:
            for name in rounds[repeat]:
                db.execute(_UPSERT, (name, value))

        def loads(repeat: int) -> None:
            for name in rounds[repeat]:
                db.execute("SELECT value FROM items WHERE name = ?", (name,)).fetchone()

        return {"store": _best(stores, len(rounds)), "load": _best(loads, len(rounds))}
    finally:
        db.close()


def _rows(scenario: str, results: dict[str, Timings | None], calls: int, reference: str) -> list[Row]:
    rows = []
    for contender, timings in results.items():
        if timings is None:
            continue
        for op in ("load", "store"):
            wall, cpu = timings[op]
            note = f"{wall / calls * 1e6:.1f} µs/call, CPU {cpu / calls * 1e6:.1f} µs"
            ref = results.get(reference)
            if ref is not None and contender != reference:
                note += f", {wall / ref[op][0]:.2f}x {reference}"
            rows.append(Row(scenario, op, contender, wall, note))
    return rows


def run(calls: int = 5000, repeats: int = 3) -> list[Row]:
    """Time ``calls`` sequential 4 KiB stores, then loads, through each API on each local storage."""
    value = os.urandom(VALUE_SIZE)
    rounds = [names(calls, f"data{repeat}") for repeat in range(repeats)]
    load_avg = f"{os.getloadavg()[0]:.1f}"
    rows: list[Row] = []
    for label, parent in local_dirs():
        root = tempfile.mkdtemp(prefix="aiodepot-single-", dir=parent)
        try:
            results: dict[str, Timings | None] = {
                "aiodepot await Store": _async_calls(f"file://{root}/async", rounds, value),
                "aiodepot SyncStore": _syncstore_calls(f"file://{root}/sync", rounds, value),
                "aiodepot compat.borgstore": _compat_calls(f"file://{root}/compat", rounds, value),
                "borgstore": _borgstore_calls(f"file://{root}/borg", rounds, value),
                "PosixFSBackend blocking": _backend_blocking(PosixFSBackend(f"{root}/twins"), rounds, value),
                "raw open/read": _raw_files(f"{root}/raw", rounds, value),
                "raw open/read via to_thread": _raw_files_to_thread(f"{root}/raw-thread", rounds, value),
                "aiodepot await Store, 1 CPU": _on_one_cpu(_async_calls, f"file://{root}/one-cpu", rounds, value),
                "raw open/read via to_thread, 1 CPU": _on_one_cpu(
                    _raw_files_to_thread, f"{root}/raw-thread-one-cpu", rounds, value
                ),
            }
            reference = "borgstore" if results["borgstore"] is not None else "raw open/read"
            scenario = f"single calls, file:// {label} (load {load_avg})"
            rows += _rows(scenario, results, calls, reference)
        finally:
            shutil.rmtree(root, ignore_errors=True)

    memory: dict[str, Timings | None] = {
        "aiodepot await Store": _async_calls("memory://bench-single-async", rounds, value),
        "aiodepot SyncStore": _syncstore_calls("memory://bench-single-sync", rounds, value),
        "MemoryBackend blocking": _backend_blocking(MemoryBackend(), rounds, value),
        "raw dict": _raw_dict(rounds, value),
    }
    rows += _rows("single calls, memory://", memory, calls, "MemoryBackend blocking")

    root = tempfile.mkdtemp(prefix="aiodepot-single-")
    try:
        sqlite: dict[str, Timings | None] = {
            "aiodepot await Store": _async_calls(f"sqlite://{root}/async.db", rounds, value),
            "aiodepot SyncStore": _syncstore_calls(f"sqlite://{root}/sync.db", rounds, value),
            "SQLiteBackend blocking": _backend_blocking(SQLiteBackend(f"{root}/twins.db"), rounds, value),
            "raw sqlite3": _raw_sqlite(f"{root}/raw.db", rounds, value),
        }
        rows += _rows("single calls, sqlite://", sqlite, calls, "SQLiteBackend blocking")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return rows
