"""Lazy writes: many small values into a write-back backlog, made durable with one ``flush()``.

The store is a directory standing in for a far-away server (every backend call is made 2 ms slow with the
latency emulation). A program that stores values one call after another pays that round trip per value;
through a write-back layer each ``store()`` returns as soon as the value is in the local backlog, reads see
it at once, and ``flush()`` writes the backlog with many writes in flight. The second part keeps the backlog
in a local SQLite file instead of memory: a crash before ``flush()`` then loses nothing acknowledged, since
the next open replays the file. Run it with ``python examples/write_back.py``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import aiodepot

CONFIG = {"data/": {"levels": [1]}}
LATENCY = 0.002
SOURCE = str(Path(aiodepot.__file__).resolve().parents[1])  # this aiodepot, for the writer process
WRITER = """
import asyncio, os, aiodepot

async def write():
    store = aiodepot.Store({remote!r}, config={config!r}, writeback={backlog!r})
    await store.open()
    await store.store("data/" + "ab" * 32, b"acknowledged, not flushed")
    os._exit(1)  # dies here, before any flush

asyncio.run(write())
"""


async def main(workdir: Path) -> None:
    remote = (workdir / "remote").as_uri()
    values = {f"data/{i:064x}": i.to_bytes(4, "big") * 256 for i in range(10_000)}  # 10,000 x 1 KiB

    # 1. the plain way: every store() is a round trip (500 of them, to keep the wait short)
    plain = aiodepot.Store(remote, config=CONFIG, latency=LATENCY)
    await plain.create()
    async with plain:
        started = time.monotonic()
        for name, value in list(values.items())[:500]:
            await plain.store(name, value)
        per_store = (time.monotonic() - started) / 500
    print(f"plain store(): {per_store * 1e3:.2f} ms per value -> {per_store * len(values):.1f} s for 10,000")
    await plain.destroy()

    # 2. write-back: store() lands in a memory backlog; one flush() makes all 10,000 durable
    store = aiodepot.Store(remote, config=CONFIG, latency=LATENCY, writeback=True)
    await store.create()
    async with store:
        started = time.monotonic()
        for name, value in values.items():
            await store.store(name, value)
        acknowledged = time.monotonic() - started
        first = next(iter(values))
        assert await store.load(first) == values[first]  # read-your-writes, before any flush
        assert await store.count("data") == len(values)
        await store.flush()
        durable = time.monotonic() - started
        stats = store.stats
    print(f"write-back: 10,000 stores acknowledged in {acknowledged:.2f} s, durable after flush() in {durable:.2f} s")
    print(f"  {stats['writeback_flushes']} flushes wrote {stats['writeback_written']} changes, 0 pending")
    print(f"  with up to {store.emulator.most_in_flight} writes in flight (the plain loop: 1 at a time)")
    assert plain.emulator.most_in_flight == 1
    assert store.emulator.most_in_flight > 1
    assert stats["writeback_pending"] == 0

    # 3. a backlog on local disk survives the process: a writer dies (os._exit: no flush, no close) right
    #    after its store() was acknowledged; the next open of the same backlog replays and flushes it
    backlog = f"sqlite://{(workdir / 'backlog.db').as_posix()}"
    writer = WRITER.format(remote=remote, backlog=backlog, config=CONFIG)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", writer, env={**os.environ, "PYTHONPATH": SOURCE}
    )
    await process.wait()
    name = f"data/{'ab' * 32}"
    async with aiodepot.Store(remote, config=CONFIG) as direct:
        assert not await direct.exists(name)  # it never reached the store
    async with aiodepot.Store(remote, config=CONFIG, writeback=backlog) as reopened:
        assert await reopened.load(name) == b"acknowledged, not flushed"
    async with aiodepot.Store(remote, config=CONFIG) as direct:
        assert await direct.exists(name)  # replayed and flushed at the open
    print("the backlog left in backlog.db was replayed at the next open")
    await direct.destroy()
    print("done")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(main(Path(tmp)))
