"""Migrating a namespace from one nesting level to two, item by item, while it stays in use.

A namespace's ``levels`` list says where its items may be: during a migration it names the old and the
new level. Items are found at either, new items go to the last one, and ``move(name, change_level=True)``
moves one item to the last level. When every item has moved, the old level is dropped from the config.
Run it with ``python examples/multi_level_migration.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from pathlib import Path

import aiodepot

OLD = {"data/": {"levels": [1]}}  # data/01/0123…
DURING = {"data/": {"levels": [1, 2]}}  # items at either level; new ones at level 2
NEW = {"data/": {"levels": [2]}}  # data/01/23/0123…


def key_of(i: int) -> str:
    return hashlib.sha256(b"item %d" % i).hexdigest()


def depth_count(base: Path) -> dict[int, int]:
    """How many item files lie how many directories below data/ (1 or 2 nesting levels)."""
    counts: dict[int, int] = {}
    for directory, _, files in os.walk(base / "data"):
        depth = len(Path(directory).relative_to(base / "data").parts)
        counts[depth] = counts.get(depth, 0) + len(files)
    return {depth: count for depth, count in sorted(counts.items()) if count}


async def main(workdir: Path) -> None:
    base = workdir / "depot"
    url = base.as_uri()

    # 1. an existing store, written with one nesting level
    store = aiodepot.Store(url, config=OLD)
    await store.create()
    keys = [key_of(i) for i in range(200)]
    async with store:
        await store.store_many({"data/" + key: key.encode() for key in keys})
        await store.move("data/" + keys[0], delete=True)  # one soft-deleted item comes along too
        print(f"old layout: {await store.find('data/' + keys[1])}")
    assert depth_count(base) == {1: 200}
    print(f"stored {len(keys)} items at level 1: files per depth {depth_count(base)}")

    # 2. a later program version opens the store with both levels configured
    store = aiodepot.Store(url, config=DURING)
    async with store:
        # everything is still found where it is, and new items already go to the new level
        assert await store.load("data/" + keys[1]) == keys[1].encode()
        newcomer = key_of(1000)
        await store.store("data/" + newcomer, b"new")
        assert await store.find("data/" + newcomer) == f"data/{newcomer[:2]}/{newcomer[2:4]}/{newcomer}"
        print(f"a new item goes to the new level: {await store.find('data/' + newcomer)}")

        # migrate the first half, as a background job of the running application might do
        for key in keys[1:100]:
            await store.move("data/" + key, change_level=True)
        half_way = depth_count(base)
        assert half_way == {1: 101, 2: 100}, half_way
        print(f"half-way: files per depth {half_way}")

        # while the namespace spans two levels, list() merges them: each item once, in key order
        listed = [info.name async for info in store.list("data")]
        assert listed == sorted({*keys[1:], newcomer})
        print(f"list('data') during the migration: {len(listed)} items, each once, sorted")

    # 3. the migration resumes after a restart: the config alone says where to look
    store = aiodepot.Store(url, config=DURING)
    async with store:
        for key in keys[100:]:
            await store.move("data/" + key, change_level=True)
        # soft-deleted items are migrated with deleted=True
        deleted = [info.name async for info in store.list("data", deleted=True)]
        assert deleted == [keys[0]]
        for key in deleted:
            await store.move("data/" + key, change_level=True, deleted=True)
        # moving an item that is already at the last level changes nothing
        await store.move("data/" + newcomer, change_level=True)
    assert depth_count(base) == {2: 201}
    print(f"migration done: files per depth {depth_count(base)}")

    # 4. from now on only the new level is configured: no more lookups at the old one
    store = aiodepot.Store(url, config=NEW)
    async with store:
        listed = [info.name async for info in store.list("data")]
        assert listed == sorted([*keys[1:], newcomer])
        for key in keys[1:]:
            assert await store.load("data/" + key) == key.encode()
        await store.move("data/" + keys[0], undelete=True)
        assert await store.load("data/" + keys[0]) == keys[0].encode()
        print(f"new layout: {await store.find('data/' + keys[1])}; all {len(listed) + 1} items readable")
    await store.destroy()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="aiodepot-example-") as tmp:
        asyncio.run(main(Path(tmp)))
    print("ok")
