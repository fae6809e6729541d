"""A writer that stops in the middle of a streamed store, for the temp-file cleanup tests.

``python -m tests.reliability.inflight_writer BASE NAME`` opens the posixfs store at ``BASE``, streams the
first half of :data:`VALUE` into ``NAME`` and prints ``inflight``; once a line arrives on stdin it streams
the rest, prints ``stored`` when the store call returned, and exits. The temp file it writes meanwhile is
a live writer's: no other process's ``open`` may remove it. Killed instead, it leaves that temp file behind.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

from aiodepot.backends.posixfs import PosixFSBackend

VALUE = bytes(range(256)) * 4096
"""1 MiB, streamed in two halves."""


async def chunks() -> AsyncIterator[bytes]:
    yield VALUE[: len(VALUE) // 2]
    # asked for the next chunk: the first half is in the temp file now
    print("inflight", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    yield VALUE[len(VALUE) // 2 :]


async def main(base: str, name: str) -> None:
    """Store ``VALUE`` under ``name``, pausing half-way until told to go on."""
    backend = PosixFSBackend(base)
    await backend.open()
    try:
        await backend.store_chunks(name, chunks(), size=len(VALUE))
        print("stored", flush=True)
    finally:
        await backend.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
