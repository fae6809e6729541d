"""Reading one big file through fsspec: ``DepotFileSystem.open()`` on a file:// store vs fsspec's local
file system, both read in 4 MiB pieces from a warm page cache, best of three."""

from __future__ import annotations

import os
import shutil
import tempfile

from .common import Row, timed

PIECE = 4 << 20


def _read_all(f: object) -> int:
    total = 0
    while chunk := f.read(PIECE):  # type: ignore[attr-defined]
        total += len(chunk)
    return total


def run(size_mib: int = 256) -> list[Row]:
    """Run the scenario (needs the [fsspec] extra)."""
    import fsspec

    from aiodepot.integrations.fsspec import DepotFileSystem

    root = tempfile.mkdtemp(prefix="aiodepot-bench-fsspec-")
    fs = DepotFileSystem(url=f"file://{root}/depot", skip_instance_cache=True)
    try:
        with fs.open("big.bin", "wb") as f:
            block = os.urandom(1 << 20)
            for _ in range(size_mib):
                f.write(block)
        local_path = os.path.join(root, "local.bin")
        fs.get("big.bin", local_path)
        local = fsspec.filesystem("file")

        def depot() -> None:
            with fs.open("big.bin", "rb", block_size=PIECE) as f:
                assert _read_all(f) == size_mib << 20

        def plain() -> None:
            with local.open(local_path, "rb", block_size=PIECE) as f:
                assert _read_all(f) == size_mib << 20

        ours = min(timed(depot) for _ in range(3))
        theirs = min(timed(plain) for _ in range(3))
    finally:
        fs.close()
        shutil.rmtree(root, ignore_errors=True)
    scenario = f"fsspec open() read of {size_mib} MiB"
    return [
        Row(scenario, "read", "aiodepot DepotFileSystem", ours, f"{size_mib / ours:,.0f} MiB/s"),
        Row(scenario, "read", "fsspec LocalFileSystem", theirs, f"{size_mib / theirs:,.0f} MiB/s"),
    ]
