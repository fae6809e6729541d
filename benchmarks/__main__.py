"""Run the benchmark scenarios, print a table and write JSON.

``python -m benchmarks [--count N] [--size BYTES] [--json PATH]``. Ratios are "times faster than":
``vs_raw`` 0.9 means aiodepot reaches 90 % of the raw loop's speed.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from . import posixfs_small


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--count", type=int, default=5000, help="values per scenario")
    parser.add_argument("--size", type=int, default=4096, help="bytes per value")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/latest.json"), help="output file")
    args = parser.parse_args()

    rows = posixfs_small.run(args.count, args.size)

    table = Table(title="aiodepot benchmarks (times in s; ratios: x faster than the other)")
    for column in ("scenario", "operation", "aiodepot", "raw loop", "borgstore", "vs raw", "vs borgstore"):
        table.add_column(column, justify="left" if column in ("scenario", "operation") else "right")

    def fmt(value: float | None, spec: str) -> str:
        return "n/a" if value is None else format(value, spec)

    for row in rows:
        table.add_row(
            row["scenario"],
            row["operation"],
            fmt(row["aiodepot_s"], ".3f"),
            fmt(row["raw_loop_s"], ".3f"),
            fmt(row["borgstore_s"], ".3f"),
            fmt(row["vs_raw"], ".2f"),
            fmt(row["vs_borgstore"], ".2f"),
        )
    Console().print(table)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    meta = {"time": time.time(), "python": platform.python_version(), "machine": platform.machine()}
    args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"results written to {args.json}")


if __name__ == "__main__":
    main()
