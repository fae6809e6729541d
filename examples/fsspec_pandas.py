"""pandas and fsspec on an aiodepot store.

Opens a file:// store in a temporary directory as an fsspec file system (protocol ``aiodepot``), writes a
pandas DataFrame as Parquet through a streamed file object, reads it back (pyarrow reads byte ranges),
lists and globs the files, and copies a local directory in with ``put``. File names keep their case and
blanks: the store holds them under escaped keys. Needs ``pip install 'aiodepot[fsspec]' pandas pyarrow``.
Run it with ``python examples/fsspec_pandas.py``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import fsspec
import pandas as pd

from aiodepot.integrations.fsspec import DepotFileSystem  # registers the protocol (an entry point does too)


def main(workdir: Path) -> None:
    url = f"file://{workdir / 'depot'}"
    fs = fsspec.filesystem("aiodepot", url=url)
    assert isinstance(fs, DepotFileSystem)
    try:
        frame = pd.DataFrame({"Station": ["Bern", "Basel", "Chur"] * 100, "Reading": range(300)})
        with fs.open("Weather/2026 readings.parquet", "wb") as f:  # lands whole at close, or not at all
            frame.to_parquet(f)
        with fs.open("Weather/2026 readings.parquet", "rb") as f:
            back = pd.read_parquet(f)
        pd.testing.assert_frame_equal(back, frame)
        print(f"wrote and read {len(back)} rows as Parquet through {url}")

        local = workdir / "local"
        local.mkdir()
        for i in range(3):
            (local / f"Part {i}.csv").write_text(frame.iloc[i * 100 : (i + 1) * 100].to_csv(index=False))
        fs.put(str(local), "Weather/csv", recursive=True)  # in parallel, max_concurrency at a time
        print("ls Weather:", fs.ls("Weather", detail=False))
        print("glob:", fs.glob("Weather/csv/*.csv"))
        assert pd.read_csv(fs.open("Weather/csv/Part 2.csv")).equals(frame.iloc[200:].reset_index(drop=True))
        print("cat_file with a range:", fs.cat_file("Weather/csv/Part 0.csv", start=0, end=15))
        stored = sorted(p.name for p in (workdir / "depot").iterdir())
        print("what the store holds:", stored[0], "…")
    finally:
        fs.close()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        main(Path(tmp))
