"""posixfs operations while libfiu makes system calls fail, for the storage-fault tests.

Run under ``fiu-run -x -f ""`` (libfiu's POSIX preload): ``python -m tests.reliability.fault_writer BASE``.
Each scenario turns one failure point on (with a fixed errno) just around one operation and off again, and
records what the operation raised; the results go to stdout as JSON once every fault is off again (while a
write fault is on, the process cannot print). The test checks the store on disk afterwards.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiodepot.backends.posixfs import PosixFSBackend

MiB = 1024 * 1024
BIG = bytes(range(256)) * (4 * 4096)  # 4 MiB, streamed in 1 MiB chunks
SMALL = b"small value " * 100

_fiu = ctypes.CDLL("libfiu.so.0")
_fiu.fiu_enable.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_uint]
_fiu.fiu_disable.argtypes = [ctypes.c_char_p]

WRITE = "posix/io/rw/write"
FSYNC = "posix/io/sync/fsync"
PREAD = "posix/io/rw/pread"


def enable(point: str, code: int) -> None:
    """Make every call behind ``point`` fail with errno ``code`` (libfiu returns it as failinfo)."""
    if _fiu.fiu_enable(point.encode(), 1, code, 0) != 0:
        raise RuntimeError(f"libfiu could not enable {point}")


def disable(point: str) -> None:
    _fiu.fiu_disable(point.encode())


def outcome(error: BaseException | None) -> dict[str, Any]:
    if error is None:
        return {"error": None}
    return {"error": type(error).__name__, "message": str(error), "mro": [c.__name__ for c in type(error).__mro__]}


async def faulty(point: str, code: int, operation: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
    """Run ``operation`` with ``point`` failing; what it raised (or None)."""
    enable(point, code)
    try:
        await operation()
    except Exception as exc:  # the test judges what came out
        return outcome(exc)
    finally:
        disable(point)
    return outcome(None)


async def fail_half_way(code: int) -> AsyncIterator[bytes]:
    """The first MiB goes through; from the second chunk on, every write fails."""
    for start in range(0, len(BIG), MiB):
        if start == MiB:
            enable(WRITE, code)
        yield BIG[start : start + MiB]


async def main(base: str) -> None:
    """Run the scenarios against the posixfs store at ``base`` (which holds ``kept`` already)."""
    # libfiu fails pread(), not the preadv2() of the inline page-cache read (whose errors the seam in
    # tests/backends/test_posixfs_inline.py covers): loads take the thread here
    plain = PosixFSBackend(base, inline_reads=False)
    durable = PosixFSBackend(base, fsync=True)
    await plain.open()
    await durable.open()
    results: dict[str, Any] = {}
    try:
        results["store_enospc"] = await faulty(WRITE, errno.ENOSPC, lambda: plain.store("s/enospc", SMALL))
        results["store_eio"] = await faulty(WRITE, errno.EIO, lambda: plain.store("s/eio", SMALL))
        results["overwrite_enospc"] = await faulty(WRITE, errno.ENOSPC, lambda: plain.store("kept", SMALL))
        batch = await faulty_batch(plain)
        results["store_batch_enospc"] = batch
        for code, label in ((errno.ENOSPC, "enospc"), (errno.EIO, "eio")):
            try:
                await plain.store_chunks(f"s/stream_{label}", fail_half_way(code), size=len(BIG))
            except Exception as exc:
                results[f"stream_{label}"] = outcome(exc)
            else:
                results[f"stream_{label}"] = outcome(None)
            finally:
                disable(WRITE)
        results["fsync_eio"] = await faulty(FSYNC, errno.EIO, lambda: durable.store("s/fsync", SMALL))
        results["load_eio"] = await faulty(PREAD, errno.EIO, lambda: plain.load("kept"))
        await plain.store("s/after", SMALL)  # the faults are gone: storing works again
        results["after"] = outcome(None)
    finally:
        disable(WRITE)
        await plain.close()
        await durable.close()
    print(json.dumps(results), flush=True)


async def faulty_batch(backend: PosixFSBackend) -> dict[str, Any]:
    enable(WRITE, errno.ENOSPC)
    try:
        errors = await backend.store_batch([(f"s/batch{i}", SMALL) for i in range(3)])
    finally:
        disable(WRITE)
    return {"errors": [outcome(error) for error in errors]}


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
