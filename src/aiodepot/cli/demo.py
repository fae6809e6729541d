"""``aiodepot demo``: store and load a few thousand objects on a local store and show the figures."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TransferSpeedColumn
from rich.table import Table

from ..store import Store
from ..transfer import Progress as TransferProgress
from ..transfer import ProgressCallback
from .common import ByteSize

__all__ = ["demo"]


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n:.0f} B"
        n /= 1024
    raise AssertionError("unreachable")


async def _run_demo(url: str, count: int, size: int, concurrency: int | None, console: Console) -> None:
    store = Store(url, config={"data/": {"levels": [1]}}, max_concurrency=concurrency)
    await store.create()
    values = {}
    for i in range(count):
        value = os.urandom(size)
        values["data/" + hashlib.sha256(i.to_bytes(8, "big") + value).hexdigest()] = value
    names = list(values)

    columns = (
        TextColumn("{task.description:>6}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
    )
    async with store:
        with Progress(*columns, console=console, transient=False) as bar:

            def tracker(task: TaskID) -> ProgressCallback:
                def update(progress: TransferProgress) -> None:
                    bar.update(task, completed=progress.bytes_done)

                return update

            started = time.perf_counter()
            task = bar.add_task("store", total=count * size)
            await store.store_many(values, progress=tracker(task))
            stored_in = time.perf_counter() - started

            started = time.perf_counter()
            task = bar.add_task("load", total=count * size)
            loaded = await store.load_many(names, progress=tracker(task))
            loaded_in = time.perf_counter() - started

        bad = sum(1 for name, value in zip(names, loaded, strict=True) if values[name] != value)
        listed = [info.name async for info in store.list("data")]
        if bad or len(listed) != count or listed != sorted(listed):
            raise click.ClickException(f"verification failed: {bad} wrong values, {len(listed)} listed")
        stats = store.stats

    table = Table(title=f"aiodepot demo: {count} x {_human(size)} on {url}")
    for column in ("operation", "calls", "volume", "wall time", "throughput", "items/s"):
        table.add_column(column, justify="right" if column != "operation" else "left")
    for op, wall in (("store", stored_in), ("load", loaded_in)):
        volume = stats[f"{op}_volume"]
        table.add_row(
            op,
            str(stats[f"{op}_calls"]),
            _human(volume),
            f"{wall:.3f} s",
            f"{_human(volume / wall)}/s",
            f"{stats[f'{op}_calls'] / wall:,.0f}",
        )
    table.add_row("list", str(stats["list_calls"]), f"{len(listed)} items", f"{stats['list_time']:.3f} s", "", "")
    console.print(table)
    console.print(f"verified: all {count} values read back intact, listing sorted, concurrency {store.max_concurrency}")


@click.command(short_help="Store and load thousands of objects on a local store, with figures.")
@click.argument("path", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("-n", "--count", default=5000, show_default=True, help="Number of objects.")
@click.option(
    "-s", "--size", type=ByteSize(), default="4k", show_default=True, help="Size of each object (4096, 4k, 1M, ...)."
)
@click.option("-c", "--concurrency", type=int, default=None, help="Operations in flight [default: the backend's].")
@click.option("--keep", is_flag=True, help="Keep the store afterwards (a given PATH is always kept).")
def demo(path: Path | None, count: int, size: int, concurrency: int | None, keep: bool) -> None:
    """Create a local store (in a temporary directory, or PATH), store and load COUNT objects concurrently
    with a progress bar, verify them, and print the figures."""
    if count < 1 or size < 0 or (concurrency is not None and concurrency < 1):
        raise click.BadParameter("count and concurrency must be >= 1, size >= 0")
    console = Console()
    workdir = None
    if path is None:
        workdir = Path(tempfile.mkdtemp(prefix="aiodepot-demo-"))
        path = workdir / "store"
    elif path.exists() and any(path.iterdir()):
        raise click.BadParameter(f"{path} is not empty; give a new or empty directory", param_hint="PATH")
    try:
        url = Path(os.path.abspath(path)).as_uri()  # percent-encodes, as file: URLs need
        asyncio.run(_run_demo(url, count, size, concurrency, console))
    finally:
        if workdir is not None and not keep:
            shutil.rmtree(workdir, ignore_errors=True)
        elif workdir is not None:
            console.print(f"store kept at {path}")
