"""One big value on posixfs: ``store_file``/``load_file`` vs a raw file copy, each with its peak RSS.

Each contender runs in a fresh subprocess, so its peak resident memory (``ru_maxrss``) is its own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

from .common import Row

_CHILD = r"""
import asyncio, json, os, resource, sys, time
mode, root = sys.argv[1], sys.argv[2]
src = os.path.join(root, "source.bin")
if mode != "raw":
    from aiodepot import Store
started = time.perf_counter()
if mode == "raw":
    with open(src, "rb") as f, open(os.path.join(root, "raw-copy.bin"), "wb") as g:
        while chunk := f.read(8 << 20):
            g.write(chunk)
else:
    async def main():
        store = Store("file://" + os.path.join(root, "store"))
        if mode == "store_file":
            await store.create()
        async with store:
            if mode == "store_file":
                await store.store_file("big", src)
            else:
                await store.load_file("big", os.path.join(root, "loaded.bin"))
    asyncio.run(main())
elapsed = time.perf_counter() - started
print(json.dumps({"seconds": elapsed, "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def _child(mode: str, root: str) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", _CHILD, mode, root], capture_output=True, text=True, check=True)
    result: dict[str, float] = json.loads(done.stdout)
    return result


def run(size_mib: int = 512) -> list[Row]:
    """Run the scenario: store_file, load_file and a raw 8 MiB-buffer copy loop."""
    root = tempfile.mkdtemp(prefix="aiodepot-bench-")
    try:
        with open(os.path.join(root, "source.bin"), "wb") as f:
            block = os.urandom(1 << 20)
            for _ in range(size_mib):
                f.write(block)
        results = {mode: _child(mode, root) for mode in ("raw", "store_file", "load_file")}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    scenario = f"posixfs one {size_mib} MiB value"

    def row(operation: str, contender: str, result: dict[str, float]) -> Row:
        note = f"{size_mib / result['seconds']:,.0f} MiB/s, peak RSS {result['maxrss_kib'] / 1024:.0f} MiB"
        return Row(scenario, operation, contender, result["seconds"], note)

    return [
        row("store_file", "aiodepot", results["store_file"]),
        row("store_file", "raw copy", results["raw"]),
        row("load_file", "aiodepot", results["load_file"]),
        row("load_file", "raw copy", results["raw"]),
    ]
