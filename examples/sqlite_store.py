"""A store in one SQLite database file.

Creates a sqlite: store in a temporary directory, stores a few hundred items in one batch, reads whole
values and byte ranges (a range reads only those bytes of the blob), lists a nested namespace, and
shows that a second store on the same file sees the data. Needs ``pip install 'aiodepot[sqlite]'``.
Run it with ``python examples/sqlite_store.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
from pathlib import Path

import aiodepot

CONFIG = {"config/": {"levels": [0]}, "data/": {"levels": [1]}}


async def main(workdir: Path) -> None:
    url = f"sqlite://{workdir / 'depot.db'}"  # sqlite:///tmp/…/depot.db
    store = aiodepot.Store(url, config=CONFIG, quota=10_000_000)
    print(f"creating {url}")
    await store.create()

    async with store:
        chunks = [f"chunk number {i} ".encode() * 50 for i in range(300)]
        items = {"data/" + hashlib.sha256(chunk).hexdigest(): chunk for chunk in chunks}
        await store.store_many(items)  # one transaction for each batch of 256 items
        await store.store("config/main", b"compression=zstd\n")
        print(f"stored {len(items)} chunks and config/main")

        first = next(iter(items))
        assert await store.load(first) == items[first]
        assert await store.load(first, offset=6, size=6) == b"number"  # through SQLite's blob API
        assert await store.load(first, offset=-2) == items[first][-2:]
        listed = [info.name async for info in store.list("data")]
        assert listed == sorted(name.split("/")[1] for name in items)
        print(f"listed data/: {len(listed)} keys, sorted, through 1 nesting level")
        print(f"quota: {await store.quota()}")

    reader = aiodepot.Store(url, config=CONFIG)  # another store on the same file: another connection
    async with reader:
        assert await reader.load("config/main") == b"compression=zstd\n"
        print("a second store on the same file reads the same data")
    await store.destroy()
    print("destroyed the store (the database file and its WAL files are gone)")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(main(Path(tmp)))
