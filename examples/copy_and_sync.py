"""Copy and sync whole stores: a file store to SQLite with another nesting, then keep it in step.

``aiodepot.copy_store`` copies every item of the chosen namespaces; ``aiodepot.sync_stores`` copies only
what is new or changed (by size, or by sha256 with ``checksum=True``) and, with ``delete=True``, removes
what the source no longer has. Both report what they did and can show progress. Run it with
``python examples/copy_and_sync.py``.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

import aiodepot
from aiodepot import Progress


def progress_line(progress: Progress) -> None:
    """Print the last progress state of a transfer (called after each item)."""
    if progress.items_done == progress.items_total:
        print(f"  progress: {progress.items_done}/{progress.items_total} items, {progress.bytes_done} bytes")


async def main(workdir: Path) -> None:
    # The source spreads data/ over one level of directories, the copy over two: names stay the same.
    src = aiodepot.Store((workdir / "depot").as_uri(), config={"data/": {"levels": [1]}, "": {"levels": [0]}})
    dst = aiodepot.Store(f"sqlite://{workdir / 'backup.db'}", config={"data/": {"levels": [2]}, "": {"levels": [0]}})
    await src.create()
    await dst.create()
    async with src, dst:
        names = await src.store_many_new("data", [os.urandom(1000 + i) for i in range(200)])
        await src.store_many({"config/main": b"version=1", "config/old": b"stale"})

        report = await aiodepot.copy_store(src, dst, progress=progress_line)
        print(f"copy: {report.copied} items, {report.bytes} bytes in {report.seconds:.2f} s")
        assert report.copied == 202
        assert report.ok
        assert await dst.load(names[0]) == await src.load(names[0])

        # Change the source: a new value, a rewritten one of the same size, one deleted.
        await src.store_new("data", b"brand new")
        await src.store("config/main", b"version=2")  # same size as before
        await src.delete("config/old")

        preview = await aiodepot.sync_stores(src, dst, delete=True, checksum=True, dry_run=True)
        print("sync would copy", [entry.name for entry in preview.plan.copy])
        print("sync would delete", [entry.name for entry in preview.plan.delete])
        assert preview.dry_run
        assert (preview.copied, preview.deleted) == (2, 1)
        assert await dst.load("config/main") == b"version=1"  # a dry run changes nothing

        by_size = await aiodepot.sync_stores(src, dst, delete=True)
        print(f"sync by size: copied {by_size.copied}, deleted {by_size.deleted}, unchanged {by_size.skipped}")
        assert (by_size.copied, by_size.deleted) == (1, 1)  # the same-size rewrite goes unnoticed

        by_hash = await aiodepot.sync_stores(src, dst, delete=True, checksum=True)
        print(f"sync by checksum: copied {by_hash.copied}, unchanged {by_hash.skipped}")
        assert by_hash.copied == 1
        assert await dst.load("config/main") == b"version=2"
        assert (await aiodepot.sync_stores(src, dst, checksum=True)).copied == 0  # in step now
    print("done")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="aiodepot-example-") as directory:
        asyncio.run(main(Path(directory)))
