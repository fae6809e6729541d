"""A store remembers its nesting levels: give the config once, at create; open it later with just the URL.

``Store(url, config=…).create()`` writes the levels into the store's internal ``layout.hid`` (borgstore
and every listing ignore it). ``Store(url)`` without a config reads them back, so code that only knows
the URL (and the ``aiodepot`` command without ``--levels``) finds every item where it was written.
``set_levels`` + ``save_layout`` change them for good, e.g. to start a migration.
Run it with ``python examples/remembered_layout.py``.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import aiodepot


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "depot"
        writer = aiodepot.Store(str(path), config={"data/": {"levels": [2]}})  # a plain path works too
        await writer.create()
        async with writer:
            await writer.store("data/8f3a0c2e", b"chunk")
        print("on disk:", sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()))

        async with aiodepot.Store(str(path)) as reader:  # no config: the store's own
            print("levels read back:", reader.levels)
            print("value:", await reader.load("data/8f3a0c2e"))
            print("listed:", [info.name async for info in reader.list("data")])
            reader.set_levels({"data/": {"levels": [2, 3]}, "": {"levels": [0]}})  # start a migration
            await reader.save_layout()
            await reader.store("data/0123abcd", b"new")  # new items go to the last level

        async with aiodepot.Store(path.as_uri()) as later:
            print("levels now:", later.levels)
            print("items:", [info.name async for info in later.list("data")])
            print("at:", await later.find("data/0123abcd"))


if __name__ == "__main__":
    asyncio.run(main())
