"""A store mirrored over two backends, with read repair and a write quorum.

Mirrors a store over a local directory and an in-memory backend, stores a few items (each goes to both
children at once), loses the local copy of one item and reads it back: the mirror finds it on the other
child and copies it back ("read repair"). Then one child refuses writes: with the default quorum (all
children) the store fails and the error names the child; with ``write_quorum=1`` it succeeds.
Run it with ``python examples/mirror_store.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
from pathlib import Path

from aiodepot import Store
from aiodepot.backends.memory import MemoryBackend
from aiodepot.backends.posixfs import PosixFSBackend
from aiodepot.layers import Mirror, MirrorError, ReadOnly

CONFIG = {"config/": {"levels": [0]}, "data/": {"levels": [1]}}


async def main(workdir: Path) -> None:
    local = PosixFSBackend(workdir / "local")
    remote = MemoryBackend("mirror-example")
    mirror = Mirror([local, remote])  # read="ordered": the local copy first
    store = Store(backend=mirror, config=CONFIG)
    await store.create()

    async with store:
        chunks = [f"chunk {i} ".encode() * 100 for i in range(50)]
        items = {"data/" + hashlib.sha256(chunk).hexdigest(): chunk for chunk in chunks}
        await store.store_many(items)
        await store.store("config/main", b"setting=1\n")
        print(f"stored {len(items) + 1} items on both children")

        # the local copy of one item gets lost
        victim = next(iter(items))
        backend_name = await store.find(victim)
        await local.delete(backend_name)
        assert not (await local.info(backend_name)).exists

        assert await store.load(victim) == items[victim]  # found on the memory child
        await mirror.flush_repairs()
        assert await local.load(backend_name) == items[victim]  # and copied back
        print(f"read {victim[:16]}… from the other child, repaired the local copy: {mirror.stats['repairs']} repair")

        listed = [info.name async for info in store.list("data")]
        assert listed == sorted(name.split("/")[1] for name in items)
        print(f"listed {len(listed)} keys: the union of both children, sorted")
    await store.destroy()

    # a child that refuses writes (read-only here; an unreachable server behaves alike)
    shared = MemoryBackend("mirror-example-2")
    await shared.create()
    for quorum in (None, 1):
        child = PosixFSBackend(workdir / f"quorum-{quorum}")
        await child.create()
        mirror = Mirror([child, ReadOnly(shared)], write_quorum=quorum)
        async with Store(backend=mirror, config=CONFIG) as store:
            try:
                await store.store("config/main", b"setting=2\n")
            except MirrorError as exc:
                did_write = exc.succeeded
                print(f"write_quorum=all: {type(exc).__name__}: {exc}")
                assert quorum is None
                assert did_write == [child]  # the local child got the write, the read-only one did not
            else:
                assert quorum == 1
                assert await store.load("config/main") == b"setting=2\n"
                print("write_quorum=1: stored on 1 of 2 children, the store succeeded")
        await child.destroy()
    await shared.destroy()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(main(Path(tmp)))
