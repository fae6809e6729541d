"""An async application on a local aiodepot store.

Creates a file:// store in a temporary directory with two namespaces -- ``config/`` flat, ``data/``
nested two levels deep -- then stores, loads, lists, soft-deletes, undeletes and deletes items, and
prints the store's statistics. Run it with ``python examples/async_app.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
from pathlib import Path

import aiodepot

CONFIG = {
    "config/": {"levels": [0]},  # a few named items: keep them flat
    "data/": {"levels": [2]},  # many content-addressed items: data/01/23/0123…
}


def content_key(value: bytes) -> str:
    """Name a value by its content, as backup tools do: the hex digest nests well."""
    return hashlib.sha256(value).hexdigest()


async def main(workdir: Path) -> None:
    url = (workdir / "depot").as_uri()  # file:///tmp/…/depot
    store = aiodepot.Store(url, config=CONFIG)
    print(f"creating {url}")
    await store.create()

    async with store:
        # store and load -------------------------------------------------------------------------------
        await store.store("config/main", b"compression=zstd\n")
        chunks = [f"chunk number {i}".encode() for i in range(20)]
        keys = [content_key(chunk) for chunk in chunks]
        for key, chunk in zip(keys, chunks, strict=True):
            await store.store("data/" + key, chunk)
        print(f"stored config/main and {len(chunks)} chunks under data/")

        assert await store.load("config/main") == b"compression=zstd\n"
        assert await store.load("data/" + keys[0]) == chunks[0]
        assert await store.load("data/" + keys[0], offset=-2) == b" 0"  # the last two bytes
        assert await store.load("data/" + keys[0], offset=6, size=6) == b"number"
        print("loaded whole values and byte ranges")

        # where nesting put an item, and what info() says about it
        backend_name = await store.find("data/" + keys[0])
        assert backend_name == f"data/{keys[0][:2]}/{keys[0][2:4]}/{keys[0]}"
        info = await store.info("data/" + keys[0])
        assert info.exists
        assert info.size == len(chunks[0])
        assert not info.directory
        print(f"data/{keys[0][:12]}… lives at {backend_name[:17]}…, {info.size} bytes")

        # the server-side hash matches a local one
        assert await store.hash("data/" + keys[0]) == keys[0]

        # listing is recursive over the nesting levels and sorted by key
        listed = [item.name async for item in store.list("data")]
        assert listed == sorted(keys), "list() yields every key once, in key order"
        print(f"list('data') yielded {len(listed)} keys in sorted order")

        # soft delete, undelete, delete ----------------------------------------------------------------
        victim = "data/" + keys[3]
        await store.move(victim, delete=True)
        assert not (await store.info(victim)).exists
        assert [item.name async for item in store.list("data", deleted=True)] == [keys[3]]
        assert await store.load(victim, deleted=True) == chunks[3]  # still readable on purpose
        print(f"soft-deleted {victim[:17]}…: hidden from list(), still there with deleted=True")

        await store.move(victim, undelete=True)
        assert await store.load(victim) == chunks[3]
        print("undeleted it")

        await store.delete("config/main")
        try:
            await store.load("config/main")
        except aiodepot.ObjectNotFound:  # also a KeyError
            print("deleted config/main for good: loading it raises ObjectNotFound")
        else:
            raise AssertionError("config/main should be gone")

        # a bad name is refused before anything is touched
        try:
            await store.store("data/Not-Lowercase", b"x")
        except aiodepot.InvalidName as exc:  # also a ValueError
            print(f"refused a bad name: {exc}")
        else:
            raise AssertionError("an upper-case name must be refused")

        # statistics -----------------------------------------------------------------------------------
        stats = store.stats
        assert stats["store_calls"] == 1 + len(chunks)
        assert stats["store_volume"] == len(b"compression=zstd\n") + sum(map(len, chunks))
        assert stats["list_calls"] == 2
        print(
            f"stats: {stats['store_calls']} stores ({stats['store_volume']} bytes), "
            f"{stats['load_calls']} loads ({stats['load_volume']} bytes), "
            f"{stats['move_calls']} moves, {stats['list_calls']} listings"
        )

    await store.destroy()
    assert not (workdir / "depot").exists()
    print("destroyed the store")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="aiodepot-example-") as tmp:
        asyncio.run(main(Path(tmp)))
    print("ok")
