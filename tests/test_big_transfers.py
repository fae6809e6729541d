"""Big values stay within the memory bound: peak RSS of load_file/store_file, measured in a subprocess.

What the code holds is measured with tracemalloc (every Python allocation, bytes objects included): its peak
must stay below the store's byte budget plus 32 MiB. Peak RSS is checked too, with more room: glibc keeps
freed multi-MiB blocks mapped once its dynamic mmap threshold has risen, so RSS overstates what is live.
CI runs 128 MiB values; the ``slow`` marker runs the 1 GiB case. Each transfer runs twice: through
posixfs's in-kernel copy and through the generic ranged path (Backend's default read_into/store_file) that
network backends use.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BUDGET = 32 * 1024 * 1024
SLACK = 32 * 1024 * 1024

_CHILD = r"""
import asyncio, hashlib, json, os, resource, sys, tracemalloc
from aiodepot import Store
from aiodepot.backends.base import Backend
from aiodepot.backends.posixfs import PosixFSBackend

class GenericPath(PosixFSBackend):
    capabilities = PosixFSBackend.capabilities.replace(part_size=4 * 1024 * 1024)
    _read_into = Backend._read_into
    _store_file = Backend._store_file

root, mode, budget = sys.argv[1], sys.argv[2], int(sys.argv[3])
src = os.path.join(root, "source.bin")
backend_class = GenericPath if mode == "generic" else PosixFSBackend
store = Store(backend=backend_class(os.path.join(root, mode)), max_bytes_in_flight=budget, max_concurrency=64)

async def main():
    await store.create()
    async with store:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        tracemalloc.start()
        await store.store_file("big", src)
        await store.load_file("big", os.path.join(root, mode + ".out"))
        traced_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    await store.destroy()
    with open(os.path.join(root, mode + ".out"), "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    print(json.dumps({"growth": after - before, "traced_peak": traced_peak, "sha256": digest}))

asyncio.run(main())
"""


def _run(tmp_path: Path, size_mib: int) -> None:
    source = tmp_path / "source.bin"
    block = bytes(range(256)) * 4096  # 1 MiB
    with source.open("wb") as f:
        for i in range(size_mib):
            f.write(block[i % 256 :] + block[: i % 256])
    import hashlib

    with source.open("rb") as f:
        expected = hashlib.file_digest(f, "sha256").hexdigest()
    for mode in ("kernel", "generic"):
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, str(tmp_path), mode, str(BUDGET)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert result["sha256"] == expected, mode
        traced, growth = result["traced_peak"] / 2**20, result["growth"] / 2**20
        assert result["traced_peak"] < BUDGET + SLACK, f"{mode}: {traced:.0f} MiB held at the peak"
        assert result["growth"] < 2 * BUDGET + 2 * SLACK, f"{mode}: peak RSS grew {growth:.0f} MiB"
        (tmp_path / f"{mode}.out").unlink()


def test_big_transfer_memory_is_bounded(tmp_path: Path) -> None:
    _run(tmp_path, 128)


@pytest.mark.slow
def test_one_gib_transfer_memory_is_bounded(tmp_path: Path) -> None:
    _run(tmp_path, 1024)
