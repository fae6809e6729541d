"""zarr arrays in an aiodepot store.

Writes a chunked 2-D array into a file:// store through `DepotZarrStore` with zarr's public API, reads a
slice back (only the chunks it touches), then opens the same store read-only and shows that writes are
refused. Needs ``pip install 'aiodepot[zarr]'``. Run it with ``python examples/zarr_arrays.py``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import zarr

import aiodepot
from aiodepot.integrations.zarr import DepotZarrStore


def main(workdir: Path) -> None:
    url = f"file://{workdir / 'arrays'}"
    store = DepotZarrStore(aiodepot.Store(url))  # created and opened on first use
    try:
        data = np.random.default_rng(7).normal(size=(400, 600)).astype("float32")
        array = zarr.create_array(store, name="temperature", shape=data.shape, chunks=(100, 100), dtype="f4")
        array[:] = data
        print(f"wrote {array.shape} as {array.nchunks} chunks into {url}")
        part = zarr.open_array(store, path="temperature", mode="r")[150:250, 420:480]
        assert np.array_equal(part, data[150:250, 420:480])
        print(f"read a {part.shape} slice back")
    finally:
        store.close()

    reader = DepotZarrStore(aiodepot.Store(url), read_only=True)
    try:
        array = zarr.open_array(reader, path="temperature", mode="r")
        try:
            array[0, 0] = 1.0
        except ValueError as exc:
            print("read-only store refuses writes:", exc)
        print("mean of the stored array:", round(float(array[:].mean()), 4))
    finally:
        reader.close()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        main(Path(tmp))
