"""How fast Ctrl-C stops a big bulk call of a SyncStore, and whether anything runs on afterwards.

For each local backend and bulk operation: SIGINT reaches the main thread, blocked in the call, once a
third of the items are done (sent from the progress callback, on the portal's thread). Measured: the
time from the signal to the ``KeyboardInterrupt`` in the caller (the goal is under 100 ms), whether
the item count still changes in the 0.5 s after, and how long the next call takes. Sizes are those of
issue 18's report: 1.2 million items on ``memory://``; ``file://`` writes real files, so fewer.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
import threading
import time
import uuid

from aiodepot import Progress, SyncStore

from .common import Row


def _interrupted(store: SyncStore, operation: str, items: dict[str, bytes]) -> tuple[float, str]:
    main = threading.main_thread().ident
    assert main is not None
    sent: list[float] = []
    trigger = len(items) // 3

    def progress(done: Progress) -> None:
        if done.items_done >= trigger and not sent:
            sent.append(time.perf_counter())
            signal.pthread_kill(main, signal.SIGINT)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        try:
            if operation == "store_many":
                store.store_many(items, progress=progress)
            elif operation == "load_many":
                store.load_many(list(items), progress=progress)
            else:
                store.delete_many(list(items), progress=progress)
        except KeyboardInterrupt:
            latency = time.perf_counter() - sent[0]
        else:
            return float("nan"), "finished before the interrupt"
    finally:
        signal.signal(signal.SIGINT, previous)
    before = (store.count(), store.stats["backend_load_calls"])
    time.sleep(0.5)
    after = (store.count(), store.stats["backend_load_calls"])
    started = time.perf_counter()
    store.store("after", b"ok")
    next_call = time.perf_counter() - started
    still = "nothing ran on" if before == after else f"work ran on: {before} -> {after}"
    return latency, f"{still}; next call {next_call * 1e3:.1f} ms; {before[0]} items at the catch"


def run(memory_items: int = 1_200_000, file_items: int = 20_000) -> list[Row]:
    """Interrupt store_many, load_many and delete_many on memory:// and file:// once each."""
    root = tempfile.mkdtemp(prefix="aiodepot-bench-")
    rows = []
    try:
        for scheme, count in (("memory", memory_items), ("file", file_items)):
            scenario = f"Ctrl-C a bulk call of {count} items, {scheme}://"
            items = {f"k{i:07d}": b"v" for i in range(count)}
            for operation in ("store_many", "load_many", "delete_many"):
                url = f"memory://bench-{uuid.uuid4().hex}" if scheme == "memory" else f"file://{root}/{operation}"
                store = SyncStore(url)
                store.create()
                with store:
                    if operation != "store_many":
                        store.store_many(items)
                    latency, note = _interrupted(store, operation, items)
                store.destroy()
                rows.append(Row(scenario, operation, "aiodepot SyncStore", latency, f"interrupt latency; {note}"))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return rows
