"""Create only if new: ``store(name, value, if_absent=True)``, and presigned URLs.

Sixteen workers race to take one lock item on a file:// store: the store decides atomically (the value
is hard-linked into place, and a link never replaces an entry), so exactly one wins and the others get
``ObjectExists``. Then the loser's retry after the winner releases the lock, and ``url_for``, which the
local filesystem cannot sign (``NotSupported``; s3 stores return a presigned URL).
Run it with ``python examples/conditional_create.py``.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import aiodepot


async def take_lock(store: aiodepot.Store, worker: int) -> bool:
    try:
        await store.store("locks/nightly", f"owner=worker-{worker}".encode(), if_absent=True)
    except aiodepot.ObjectExists:
        return False
    return True


async def main(workdir: Path) -> None:
    store = aiodepot.Store(f"file://{workdir / 'depot'}")
    await store.create()
    async with store:
        print(f"atomic create offered: {store.backend.capabilities.atomic_create}")
        won = await asyncio.gather(*(take_lock(store, worker) for worker in range(16)))
        winner = won.index(True)
        assert won.count(True) == 1
        owner = await store.load("locks/nightly")
        assert owner == f"owner=worker-{winner}".encode()
        print(f"16 workers raced for locks/nightly: worker {winner} won, {won.count(False)} got ObjectExists")

        await store.delete("locks/nightly")  # the winner releases the lock
        assert await take_lock(store, 99)
        print("after the release, worker 99 took the lock")

        try:
            await store.url_for("locks/nightly", expires=60)
        except aiodepot.NotSupported as exc:
            print(f"url_for on file://: NotSupported ({exc})")
    await store.destroy()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(main(Path(tmp)))
