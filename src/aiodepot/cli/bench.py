"""``aiodepot bench``: a quick store/load/delete throughput measurement against any store URL.

The values go into a fresh namespace (``aiodepot-bench-<random>``) that is removed afterwards; where no
store exists at the URL yet, one is created for the run and destroyed after it. Either way the store is
left as it was found, also when the run fails or is interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from ..errors import ObjectNotFound, StoreError, StoreNotFound
from ..store import Store
from .common import (
    ByteSize,
    CliError,
    StoreOptions,
    display_url,
    format_size,
    json_dumps,
    store_options,
    url_argument,
)

__all__ = ["bench"]

MiB = 1024 * 1024
NAMESPACE_PREFIX = "aiodepot-bench-"


async def _remove_tree(store: Store, path: str) -> None:
    """Remove the (now empty) directories of the benchmark namespace, deepest first."""
    try:
        entries = [entry async for entry in store.backend.list(path)]
    except ObjectNotFound:
        return
    for entry in entries:
        if entry.directory:
            await _remove_tree(store, f"{path}/{entry.name}")
    with contextlib.suppress(ObjectNotFound):
        await store.backend.rmdir(path)


async def _measure(store: Store, namespace: str, values: list[bytes]) -> dict[str, float]:
    names = [f"{namespace}/{index:08x}{secrets.token_hex(4)}" for index in range(len(values))]
    seconds: dict[str, float] = {}
    try:
        started = time.perf_counter()
        await store.store_many(zip(names, values, strict=True))
        seconds["store"] = time.perf_counter() - started

        started = time.perf_counter()
        loaded = await store.load_many(names)
        seconds["load"] = time.perf_counter() - started
        if loaded != values:
            bad = sum(1 for mine, theirs in zip(values, loaded, strict=True) if mine != theirs)
            raise CliError(f"verification failed: {bad} of {len(values)} values came back different")

        started = time.perf_counter()
        await store.delete_many(names)
        seconds["delete"] = time.perf_counter() - started
    except BaseException:
        # failed or interrupted: remove what is there, without hiding the reason behind a cleanup error
        await store.delete_many(names, return_exceptions=True)
        with contextlib.suppress(StoreError):
            await _remove_tree(store, namespace)
        raise
    await _remove_tree(store, namespace)
    return seconds


async def _run(url: str, options: StoreOptions, count: int, size: int, nesting: int) -> dict[str, Any]:
    namespace = NAMESPACE_PREFIX + secrets.token_hex(4)
    config = dict(options.config)
    config[namespace + "/"] = {"levels": [nesting]}
    store = StoreOptions(config, options.concurrency).store(url)
    created = False
    try:
        await store.open()
    except StoreNotFound:
        await store.create()
        created = True
        await store.open()
    try:
        blob = await asyncio.to_thread(os.urandom, count * size)
        values = [blob[index * size : (index + 1) * size] for index in range(count)]
        del blob
        seconds = await _measure(store, namespace, values)
    finally:
        await store.close()
        if created:
            with contextlib.suppress(StoreError):
                await store.destroy()
    return {
        "url": display_url(url),
        "backend": type(store.backend).__name__,
        "count": count,
        "size": size,
        "concurrency": store.max_concurrency,
        "fresh_store": created,
        "results": {
            op: {
                "seconds": round(wall, 6),
                "items_per_second": count / wall if wall else None,
                "mib_per_second": count * size / MiB / wall if wall and op != "delete" else None,
            }
            for op, wall in seconds.items()
        },
    }


@click.command(short_help="Measure store/load/delete throughput.")
@url_argument()
@click.option("-n", "--count", type=click.IntRange(min=1), default=1000, show_default=True, help="Number of values.")
@click.option(
    "-s", "--size", type=ByteSize(), default="4k", show_default=True, help="Size of each value (4k, 1M, ...)."
)
@click.option(
    "--nesting", type=click.IntRange(0, 4), default=0, show_default=True, help="Nesting levels of the values."
)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@store_options
def bench(url: str, count: int, size: int, nesting: int, as_json: bool, options: StoreOptions) -> None:
    """Measure bulk store, load and delete throughput of the store at URL.

    COUNT values of SIZE random bytes are stored with store_many, loaded back with load_many (and
    checked), then deleted with delete_many, in a temporary namespace that is removed afterwards. If
    there is no store at URL, one is created for the run and destroyed after it.
    """
    result = asyncio.run(_run(url, options, count, size, nesting))
    if as_json:
        click.echo(json_dumps(result))
        return
    title = f"aiodepot bench: {count} x {format_size(size, human=True)} on {result['url']}"
    table = Table(title=title)
    for column in ("operation", "wall time", "items/s", "throughput"):
        table.add_column(column, justify="left" if column == "operation" else "right")
    for op, figures in result["results"].items():
        throughput = figures["mib_per_second"]
        table.add_row(
            op,
            f"{figures['seconds']:.3f} s",
            f"{figures['items_per_second']:,.0f}" if figures["items_per_second"] else "-",
            f"{throughput:,.1f} MiB/s" if throughput is not None else "",
        )
    console = Console()
    console.print(table)
    where = "a fresh store (destroyed)" if result["fresh_store"] else "a temporary namespace (removed)"
    console.print(f"concurrency {result['concurrency']}, {result['backend']}, in {where}")
