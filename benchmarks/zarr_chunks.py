"""Writing and reading 1,000 zarr chunks (a 1000 x 1000 float32 array in 100 x 10 chunks, 4 KB each) with
zarr's public API: `DepotZarrStore` on memory:// and file:// vs zarr's MemoryStore and LocalStore, and
obstore's local store through zarr's ObjectStore where obstore is installed."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
import uuid
from typing import Any

import numpy as np

from .common import Row


async def _write_read(store: Any, data: np.ndarray[Any, Any]) -> tuple[float, float]:
    import zarr

    started = time.perf_counter()
    array = await zarr.api.asynchronous.create_array(store, name="a", shape=data.shape, chunks=(100, 10), dtype="f4")
    await array.setitem(slice(None), data)
    written = time.perf_counter() - started
    started = time.perf_counter()
    again = await zarr.api.asynchronous.open_array(store=store, path="a")
    back = await again.getitem(slice(None))
    read = time.perf_counter() - started
    assert np.array_equal(back, data)
    return written, read


def run(chunks: int = 1000) -> list[Row]:
    """Run the scenario (needs the [zarr] extra)."""
    import zarr.storage

    import aiodepot
    from aiodepot.integrations.zarr import DepotZarrStore

    data = np.random.default_rng(1).random((1000, chunks), dtype="float32")  # 10 x chunks/10 chunks
    root = tempfile.mkdtemp(prefix="aiodepot-bench-zarr-")
    results: dict[str, tuple[float, float]] = {}

    async def main() -> None:
        for label, make in (
            ("aiodepot memory://", lambda: aiodepot.Store(f"memory://bench-{uuid.uuid4().hex}")),
            ("aiodepot file://", lambda: aiodepot.Store(f"file://{root}/depot")),
        ):
            store = await DepotZarrStore.open(make())
            try:
                results[label] = await _write_read(store, data)
            finally:
                await store.store.close()
                store.close()
        results["zarr MemoryStore"] = await _write_read(zarr.storage.MemoryStore(), data)
        results["zarr LocalStore"] = await _write_read(zarr.storage.LocalStore(f"{root}/local"), data)
        try:
            from obstore.store import LocalStore as ObLocal
        except ImportError:
            return
        ob = zarr.storage.ObjectStore(ObLocal(f"{root}/obstore", mkdir=True))
        results["obstore LocalStore (zarr ObjectStore)"] = await _write_read(ob, data)

    try:
        asyncio.run(main())
    finally:
        shutil.rmtree(root, ignore_errors=True)
    rows = []
    pairs = {"aiodepot memory://": "zarr MemoryStore", "aiodepot file://": "zarr LocalStore"}
    for ours, theirs in pairs.items():
        for index, operation in enumerate(("write", "read")):
            scenario = f"zarr {chunks} chunks, {'memory' if 'memory' in ours else 'local files'}"
            rows.append(Row(scenario, operation, ours, results[ours][index]))
            rows.append(Row(scenario, operation, theirs, results[theirs][index]))
            ob = "obstore LocalStore (zarr ObjectStore)"
            if "file" in ours and ob in results:
                rows.append(Row(scenario, operation, ob, results[ob][index]))
    return rows
