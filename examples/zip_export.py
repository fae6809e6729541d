"""Export a store to a zip archive, and import it back.

Fills a file:// store, copies every item into a zip: store (a write-once archive: members are only
added), shows that any zip tool can read the archive, then imports it into a fresh memory store and
checks that nothing changed. Run it with ``python examples/zip_export.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
import zipfile
from pathlib import Path

import aiodepot

CONFIG = {"config/": {"levels": [0]}, "data/": {"levels": [2]}}


async def copy(source: aiodepot.Store, target: aiodepot.Store, namespaces: list[str]) -> int:
    """Copy every item of ``namespaces`` from ``source`` to ``target``; return how many."""
    count = 0
    for namespace in namespaces:
        names = [f"{namespace}/{info.name}" async for info in source.list(namespace)]
        values = await source.load_many(names)
        await target.store_many(zip(names, values, strict=True))
        count += len(names)
    return count


async def main(workdir: Path) -> None:
    source = aiodepot.Store((workdir / "depot").as_uri(), config=CONFIG)
    await source.create()
    async with source:
        chunks = [f"chunk number {i}".encode() for i in range(100)]
        await source.store_many({"data/" + hashlib.sha256(c).hexdigest(): c for c in chunks})
        await source.store("config/main", b"compression=zstd\n")
    print(f"filled {source.url} with {len(chunks)} chunks and config/main")

    archive = workdir / "export.zip"
    export = aiodepot.Store(f"zip://{archive}", config=CONFIG)
    await export.create()
    async with source, export:
        exported = await copy(source, export, ["config", "data"])
        try:
            await export.store("config/main", b"changed")
        except aiodepot.BackendError as exc:
            print(f"as expected: {exc}")
    # close() wrote the archive's table of contents: now any zip tool reads it
    with zipfile.ZipFile(archive) as plain:
        assert plain.testzip() is None
        members, size = len(plain.namelist()), archive.stat().st_size
        print(f"exported {exported} items to {archive.name}: {members} members, {size} bytes")

    imported = aiodepot.Store("memory://", config=CONFIG)
    await imported.create()
    async with aiodepot.Store(f"zip://{archive}", config=CONFIG) as reader, imported, source:
        count = await copy(reader, imported, ["config", "data"])
        for namespace in ("config", "data"):
            async for info in source.list(namespace):
                name = f"{namespace}/{info.name}"
                assert await imported.load(name) == await source.load(name)
        tail = await reader.load("config/main", offset=-5)  # ranged loads read straight from the archive
        print(f"imported {count} items back; all equal to the originals (config/main ends with {tail!r})")
    await imported.destroy()
    await source.destroy()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(main(Path(tmp)))
