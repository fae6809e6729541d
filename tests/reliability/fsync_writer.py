"""Stores with ``fsync=True`` in every way posixfs offers, for the durability test (run under strace).

``python -m tests.reliability.fsync_writer BASE`` stores one item per write path into the existing posixfs
store at ``BASE`` (the ``data/`` namespace, one nesting level, so directories are made on the way) and
writes ``calling NAME`` before and ``returned NAME`` after each call on stdout, unbuffered: in the trace
these writes mark where each call starts and where it has returned.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from collections.abc import AsyncIterator

from aiodepot import Store
from aiodepot.backends.posixfs import PosixFSBackend

VALUE = b"durable " * 4096
CONFIG = {"data/": {"levels": [1]}}
NAMES = {
    "store": "data/aa01",
    "store_many": "data/bb02",
    "store_chunks": "data/cc03",
    "store_file": "data/dd04",
}
"""The write path → the item it stores."""


def mark(text: str) -> None:
    os.write(1, f"{text}\n".encode())


async def chunks() -> AsyncIterator[bytes]:
    for start in range(0, len(VALUE), 8192):
        yield VALUE[start : start + 8192]


async def main(base: str) -> None:
    """Store ``VALUE`` once per write path, each call between its two marks."""
    backend = PosixFSBackend(base, fsync=True)
    store = Store(backend=backend, config=CONFIG)
    with tempfile.NamedTemporaryFile() as source:
        source.write(VALUE)
        source.flush()
        async with store:
            for path, name in NAMES.items():
                mark(f"calling {name}")
                if path == "store":
                    await store.store(name, VALUE)
                elif path == "store_many":
                    await store.store_many({name: VALUE})
                elif path == "store_chunks":
                    await backend.store_chunks(f"data/{name[5:7]}/{name[5:]}", chunks(), size=len(VALUE))
                else:
                    await store.store_file(name, source.name)
                mark(f"returned {name}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
