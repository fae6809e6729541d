"""Commands that move items between two stores: ``cp`` and ``sync``.

Both walk the source (and ``sync`` the destination too, merging the two sorted walks), then copy in
batches: ``load_many`` of one batch runs while ``store_many`` writes the previous one, each bounded by
the stores' concurrency, and a batch holds at most ``--batch-size`` items and about ``BATCH_BYTES``.
Values bigger than ``BIG_VALUE`` go one by one through a temporary file (``load_file`` then
``store_file``), so memory stays bounded whatever the sizes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Coroutine, Sequence
from typing import Any

import click

from ..errors import ObjectNotFound, StoreNotFound
from ..store import Store
from ..transfer import run_bounded
from .common import (
    CliError,
    ProgressDisplay,
    StoreOptions,
    display_url,
    dst_store_options,
    format_size,
    json_dumps,
    open_store,
    store_options,
    url_argument,
    wants_progress,
    warn_strays,
)
from .stdio import LineOutput
from .walk import Entry, top_namespaces, walk

__all__ = ["BATCH_BYTES", "BIG_VALUE", "cp", "sync"]

MiB = 1024 * 1024
BIG_VALUE = 64 * MiB
"""Values bigger than this are copied one at a time through a temporary file."""
BATCH_BYTES = 32 * MiB
"""A batch of small values closes once it holds this many bytes."""


@dataclasses.dataclass
class _Plan:
    copy: list[Entry] = dataclasses.field(default_factory=list)
    delete: list[str] = dataclasses.field(default_factory=list)
    unchanged: int = 0

    @property
    def copy_bytes(self) -> int:
        return sum(entry.size for entry in self.copy)


async def _items(store: Store | None, namespace: str, strays: list[str], *, missing_ok: bool) -> AsyncIterator[Entry]:
    """The live items of ``namespace`` (with sub-namespaces); a missing namespace is empty or an error."""
    if store is None:
        return
    try:
        async for entry in walk(store, namespace, strays=strays):
            if not entry.is_namespace:
                yield entry
    except ObjectNotFound as exc:
        if not missing_ok:
            raise CliError(f"{namespace}: no such namespace at the source") from exc


async def _source_entries(store: Store, namespace: str, strays: list[str]) -> list[Entry]:
    """The items to copy for one argument: a namespace, or else a single item of that name."""
    try:
        return [entry async for entry in _items(store, namespace, strays, missing_ok=False)]
    except CliError:
        if namespace:
            item = await store.info(namespace)
            if item.exists and not item.directory:
                return [Entry(namespace, item.size, item.mtime)]
        raise


async def _checked(entries: AsyncIterator[Entry], side: str) -> AsyncIterator[Entry]:
    """Pass entries on, making sure they come sorted: the merge in sync relies on it."""
    previous = ""
    async for entry in entries:
        if entry.name <= previous:
            raise CliError(f"the {side} listing is out of order at {entry.name!r}; refusing to sync")
        previous = entry.name
        yield entry


async def _plan_sync(
    src: Store, dst: Store | None, namespaces: Sequence[str], strays: list[str], *, delete: bool, checksum: bool
) -> _Plan:
    plan = _Plan()
    same_size: list[Entry] = []
    for namespace in namespaces:
        source = _checked(_items(src, namespace, strays, missing_ok=False), "source")
        target = _checked(_items(dst, namespace, strays, missing_ok=True), "destination")
        here = await anext(source, None)
        there = await anext(target, None)
        while here is not None or there is not None:
            if there is None or (here is not None and here.name < there.name):
                assert here is not None
                plan.copy.append(here)
                here = await anext(source, None)
            elif here is None or there.name < here.name:
                if delete:
                    plan.delete.append(there.name)
                there = await anext(target, None)
            else:
                if here.size != there.size:
                    plan.copy.append(here)
                elif checksum:
                    same_size.append(here)
                else:
                    plan.unchanged += 1
                here, there = await anext(source, None), await anext(target, None)
    if same_size:
        assert dst is not None

        async def differs(entry: Entry) -> bool:
            ours, theirs = await asyncio.gather(src.hash(entry.name), dst.hash(entry.name))
            return ours != theirs

        limit = min(src.max_concurrency, dst.max_concurrency)
        outcomes = await run_bounded(same_size, differs, max_concurrency=limit)
        for entry, changed in zip(same_size, outcomes, strict=True):
            if changed:
                plan.copy.append(entry)
            else:
                plan.unchanged += 1
        plan.copy.sort(key=lambda entry: entry.name)
    return plan


def _batches(entries: Sequence[Entry], max_items: int) -> list[list[Entry]]:
    batches: list[list[Entry]] = []
    current: list[Entry] = []
    held = 0
    for entry in entries:
        if current and (len(current) >= max_items or held + entry.size > BATCH_BYTES):
            batches.append(current)
            current, held = [], 0
        current.append(entry)
        held += entry.size
    if current:
        batches.append(current)
    return batches


async def _together(*coroutines: Coroutine[Any, Any, None]) -> None:
    """Run coroutines as sibling tasks; the first failure cancels the others and is raised as itself."""
    try:
        async with asyncio.TaskGroup() as group:
            for coroutine in coroutines:
                group.create_task(coroutine)
    except BaseExceptionGroup as failures:
        raise failures.exceptions[0] from None


async def _copy(src: Store, dst: Store, entries: Sequence[Entry], display: ProgressDisplay, batch_size: int) -> int:
    """Copy the items; return the bytes moved."""
    small = [entry for entry in entries if entry.size <= BIG_VALUE]
    big = [entry for entry in entries if entry.size > BIG_VALUE]
    moved = 0
    queue: asyncio.Queue[tuple[list[str], list[bytes]] | None] = asyncio.Queue(maxsize=1)

    async def load() -> None:
        for batch in _batches(small, batch_size):
            names = [entry.name for entry in batch]
            await queue.put((names, await src.load_many(names)))
        await queue.put(None)

    async def store() -> None:
        nonlocal moved
        while (job := await queue.get()) is not None:
            names, values = job
            await dst.store_many(zip(names, values, strict=True), progress=display.callback())
            nbytes = sum(len(value) for value in values)
            display.advance(len(names), nbytes)
            moved += nbytes

    await _together(load(), store())
    if big:
        directory = await asyncio.to_thread(tempfile.mkdtemp, prefix="aiodepot-copy-")
        try:
            path = os.path.join(directory, "value")
            for entry in big:
                nbytes = await src.load_file(entry.name, path)
                await dst.store_file(entry.name, path)
                await asyncio.to_thread(os.unlink, path)
                display.advance(1, nbytes)
                moved += nbytes
        finally:
            await asyncio.to_thread(shutil.rmtree, directory, True)
    return moved


@contextlib.asynccontextmanager
async def _destination(url: str, options: StoreOptions, *, dry_run: bool) -> AsyncIterator[Store | None]:
    """The destination store, created if missing; in a dry run a missing one is None (empty)."""
    if not dry_run:
        async with open_store(url, options, create=True) as store:
            yield store
        return
    store = options.store(url)
    try:
        await store.open()
    except StoreNotFound:
        yield None
        return
    try:
        yield store
    finally:
        await store.close()


async def _report_plan(plan: _Plan, *, dry_run: bool, as_json: bool, quiet: bool) -> None:
    if not dry_run or as_json or quiet:
        return
    out = LineOutput()
    for entry in plan.copy:
        await out.line(f"copy {entry.name}")
    for name in plan.delete:
        await out.line(f"delete {name}")
    await out.flush()


def _summary(plan: _Plan, *, moved: int, seconds: float, dry_run: bool, as_json: bool) -> str:
    if as_json:
        document: dict[str, Any] = {
            "copied": len(plan.copy),
            "bytes": moved if not dry_run else plan.copy_bytes,
            "deleted": len(plan.delete),
            "unchanged": plan.unchanged,
            "seconds": round(seconds, 6),
            "dry_run": dry_run,
        }
        if dry_run:
            document["copy"] = [entry.name for entry in plan.copy]
            document["delete"] = plan.delete
        return json_dumps(document)
    size = format_size(plan.copy_bytes if dry_run else moved, human=True)
    items = f"{len(plan.copy)} item{'' if len(plan.copy) == 1 else 's'} ({size})"
    if dry_run:
        return f"dry run: would copy {items}, delete {len(plan.delete)}; {plan.unchanged} unchanged"
    return f"copied {items} in {seconds:.2f} s, deleted {len(plan.delete)}; {plan.unchanged} unchanged"


def _transfer_options(func: Any) -> Any:
    for decorator in (
        click.option("--progress/--no-progress", default=None, help="Show a progress bar [default: on a terminal]."),
        click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors."),
        click.option("--json", "as_json", is_flag=True, help="Print a JSON summary."),
        click.option("-n", "--dry-run", is_flag=True, help="Show what would be done; change nothing."),
        click.option(
            "--batch-size",
            type=click.IntRange(min=1),
            default=1024,
            show_default=True,
            help="Items per load_many/store_many batch.",
        ),
    ):
        func = decorator(func)
    return func


async def _execute(
    src_url: str,
    dst_url: str,
    namespaces: Sequence[str],
    options: StoreOptions,
    dst_options: StoreOptions,
    *,
    sync: bool,
    delete: bool,
    checksum: bool,
    dry_run: bool,
    batch_size: int,
    progress: bool,
    quiet: bool,
    as_json: bool,
) -> tuple[str, list[str]]:
    """Plan and (unless a dry run) carry out a copy or sync; return the summary and the stray items seen."""
    started = time.perf_counter()
    strays: list[str] = []
    async with open_store(src_url, options) as src, _destination(dst_url, dst_options, dry_run=dry_run) as dst:
        if sync:
            plan = await _plan_sync(src, dst, namespaces, strays, delete=delete, checksum=checksum)
        else:
            plan = _Plan()
            for namespace in namespaces:
                plan.copy.extend(await _source_entries(src, namespace, strays))
        await _report_plan(plan, dry_run=dry_run, as_json=as_json, quiet=quiet)
        moved = 0
        if not dry_run and dst is not None:
            description = "sync" if sync else "copy"
            display = ProgressDisplay(
                enabled=progress and not quiet,
                description=description,
                items_total=len(plan.copy),
                bytes_total=plan.copy_bytes,
            )
            async with display.shown():
                moved = await _copy(src, dst, plan.copy, display, batch_size)
            if plan.delete:
                await dst.delete_many(plan.delete)
    summary = _summary(plan, moved=moved, seconds=time.perf_counter() - started, dry_run=dry_run, as_json=as_json)
    return summary, strays


def _same_store(src_url: str, dst_url: str) -> None:
    if src_url == dst_url:
        raise CliError(f"source and destination are the same store: {display_url(src_url)}", 2)


@click.command(short_help="Copy items from one store to another.")
@url_argument("src_url", "SRC")
@url_argument("dst_url", "DST")
@click.argument("namespaces", metavar="[NAMESPACE...]", nargs=-1)
@_transfer_options
@store_options
@dst_store_options
def cp(
    src_url: str,
    dst_url: str,
    namespaces: tuple[str, ...],
    batch_size: int,
    dry_run: bool,
    as_json: bool,
    quiet: bool,
    progress: bool | None,
    options: StoreOptions,
    dst_options: StoreOptions,
) -> None:
    """Copy the items of the NAMESPACEs (default: the whole store) from store SRC to store DST.

    Items keep their names; items at DST are replaced. A NAMESPACE may also name a single item. DST is
    created if it does not exist. Give --dst-levels to write DST with other nesting than SRC.
    """
    _same_store(src_url, dst_url)
    summary, strays = asyncio.run(
        _execute(
            src_url,
            dst_url,
            top_namespaces(namespaces),
            options,
            dst_options,
            sync=False,
            delete=False,
            checksum=False,
            dry_run=dry_run,
            batch_size=batch_size,
            progress=wants_progress(progress),
            quiet=quiet,
            as_json=as_json,
        )
    )
    warn_strays(strays)
    if as_json or not quiet:
        click.echo(summary)


@click.command(short_help="Make one store like another.")
@url_argument("src_url", "SRC")
@url_argument("dst_url", "DST")
@click.argument("namespaces", metavar="[NAMESPACE...]", nargs=-1)
@click.option("--delete", is_flag=True, help="Remove items from DST that SRC does not have.")
@click.option("--checksum", is_flag=True, help="Compare items of equal size by their sha256, not by size alone.")
@_transfer_options
@store_options
@dst_store_options
def sync(
    src_url: str,
    dst_url: str,
    namespaces: tuple[str, ...],
    delete: bool,
    checksum: bool,
    batch_size: int,
    dry_run: bool,
    as_json: bool,
    quiet: bool,
    progress: bool | None,
    options: StoreOptions,
    dst_options: StoreOptions,
) -> None:
    """Make the NAMESPACEs (default: the whole store) of store DST like those of store SRC.

    Copies the items DST lacks or holds with another size (or, with --checksum, other content); with
    --delete, removes the items SRC does not have. Soft-deleted items are left alone. DST is created
    if it does not exist.
    """
    _same_store(src_url, dst_url)
    summary, strays = asyncio.run(
        _execute(
            src_url,
            dst_url,
            top_namespaces(namespaces),
            options,
            dst_options,
            sync=True,
            delete=delete,
            checksum=checksum,
            dry_run=dry_run,
            batch_size=batch_size,
            progress=wants_progress(progress),
            quiet=quiet,
            as_json=as_json,
        )
    )
    warn_strays(strays)
    if as_json or not quiet:
        click.echo(summary)
