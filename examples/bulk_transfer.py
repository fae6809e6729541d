"""Bulk transfers: store and load a few thousand items concurrently, with progress reports.

``store_many``/``load_many``/``info_many``/``delete_many`` run one operation per item with at most
``max_concurrency`` in flight, keep the results in the order of the input, and call a progress callback
after every item. Run it with ``python examples/bulk_transfer.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
import time
from pathlib import Path

import aiodepot
from aiodepot import Progress

COUNT = 2000
SIZE = 2048


def progress_printer(label: str) -> aiodepot.ProgressCallback:
    """A callback that prints a line each time another tenth of the items is done."""
    printed = -1

    def report(progress: Progress) -> None:
        nonlocal printed
        tenth = int(progress.fraction * 10)
        if tenth > printed:
            printed = tenth
            moved = f", {progress.bytes_done}/{progress.bytes_total} bytes" if progress.bytes_total else ""
            print(f"  {label}: {progress.items_done:5d}/{progress.items_total} items ({progress.fraction:4.0%}){moved}")

    return report


async def main(workdir: Path) -> None:
    store = aiodepot.Store(
        (workdir / "depot").as_uri(),
        config={"data/": {"levels": [1]}},
        max_concurrency=32,  # the store-wide default for bulk calls
    )
    await store.create()
    values = {}
    for _ in range(COUNT):
        value = os.urandom(SIZE)
        values["data/" + hashlib.sha256(value).hexdigest()] = value
    names = list(values)

    async with store:
        print(f"storing {COUNT} items of {SIZE} bytes")
        started = time.perf_counter()
        results = await store.store_many(values, progress=progress_printer("store"))
        stored_in = time.perf_counter() - started
        assert results == [None] * COUNT  # one entry per item; None means stored

        print("loading them back with at most 64 loads in flight")
        loaded_items = 0

        async def count_loaded(progress: Progress) -> None:  # a coroutine function works as well
            nonlocal loaded_items
            loaded_items = progress.items_done

        started = time.perf_counter()
        loaded = await store.load_many(names, max_concurrency=64, progress=count_loaded)
        loaded_in = time.perf_counter() - started
        assert loaded_items == COUNT
        assert loaded == [values[name] for name in names], "results come back in the order of the names"

        infos = await store.info_many([*names[:10], "data/ffff0000"])
        assert [info.size for info in infos[:10]] == [SIZE] * 10
        assert not infos[-1].exists  # missing items are described, not raised
        print("info_many: 10 items found, one missing item reported with exists=False")

        # by default the first failure cancels the rest and is raised as itself
        try:
            await store.load_many([names[0], "data/ffff0000", names[1]])
        except aiodepot.ObjectNotFound as exc:
            print(f"load_many with a missing name raised ObjectNotFound({exc})")
        else:
            raise AssertionError("a missing item must fail load_many")

        # with return_exceptions=True every item gets its own outcome, in place
        outcome = await store.load_many([names[0], "data/ffff0000", names[1]], return_exceptions=True)
        assert outcome[0] == values[names[0]]
        assert outcome[2] == values[names[1]]
        assert isinstance(outcome[1], aiodepot.ObjectNotFound)
        print("load_many(return_exceptions=True) put the ObjectNotFound in the missing item's place")

        half = names[: COUNT // 2]
        deleted = await store.delete_many(half, progress=progress_printer("delete"))
        assert deleted == [None] * len(half)
        remaining = [info.name async for info in store.list("data")]
        assert remaining == sorted(name.removeprefix("data/") for name in names[COUNT // 2 :])
        print(f"deleted {len(half)} items, {len(remaining)} remain")

        stats = store.stats
        assert stats["store_calls"] == COUNT
        assert stats["store_volume"] == COUNT * SIZE
        # the loads cancelled by the failing load_many may or may not have finished before the cancel
        assert COUNT * SIZE + 2 * SIZE <= stats["load_volume"] <= COUNT * SIZE + 4 * SIZE
        mib = COUNT * SIZE / 2**20
        print(f"store_many: {mib:.1f} MiB in {stored_in:.2f} s ({COUNT / stored_in:,.0f} items/s)")
        print(f"load_many:  {mib:.1f} MiB in {loaded_in:.2f} s ({COUNT / loaded_in:,.0f} items/s)")
        print(f"load throughput while busy: {stats['load_busy_throughput'] / 2**20:.1f} MiB/s")

    await store.destroy()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="aiodepot-example-") as tmp:
        asyncio.run(main(Path(tmp)))
    print("ok")
