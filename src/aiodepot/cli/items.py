"""Commands on items: ``create`` (a store to put them in), ``config`` (its remembered levels), ``cat``,
``get``, ``put``, ``rm``, ``undelete``, ``mv``."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
import secrets
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from typing import BinaryIO

import click

from ..errors import ObjectNotFound, QuotaExceeded, StoreError, StoreExists, StoreNotFound
from ..items import ItemInfo
from ..names import validate_name
from ..store import Store
from ..transfer import run_bounded
from .common import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    ByteSize,
    CliError,
    StoreOptions,
    about_store,
    display_url,
    json_dumps,
    open_store,
    report,
    store_options,
    url_argument,
    warn_strays,
)
from .stdio import BinaryInput, BinaryOutput, in_daemon_thread
from .walk import top_namespaces, walk

__all__ = ["cat", "config", "create", "get", "mv", "put", "rm", "undelete"]

MiB = 1024 * 1024
SPOOL_LIMIT = 32 * MiB
"""``put`` from stdin keeps up to this much in memory; a longer input is spooled to a temporary file."""

URL = url_argument()


def _chunk_size(store: Store) -> int:
    # Whole ranges of part_size each, two per chunk, so backends with parallel ranges fetch in parallel.
    return max(4 * MiB, 2 * store.backend.capabilities.part_size)


async def copy_value(
    store: Store,
    name: str,
    write: Callable[[bytes], Awaitable[object]],
    *,
    offset: int = 0,
    size: int | None = None,
    deleted: bool = False,
) -> int:
    """Pass the value of ``name`` (or ``size`` bytes from ``offset``) to ``write`` in chunks; return the bytes.

    The next chunk loads while the current one is written, so memory stays at two chunks.
    """
    if offset < 0:  # a tail: one ranged load
        data = await store.load(name, offset=offset, size=size, deleted=deleted)
        await write(data)
        return len(data)
    chunk = _chunk_size(store)
    end = None if size is None else offset + size

    async def load(position: int) -> tuple[bytes, int]:
        want = chunk if end is None else min(chunk, end - position)
        return await store.load(name, offset=position, size=want, deleted=deleted), want

    position = offset
    pending: asyncio.Task[tuple[bytes, int]] | None = asyncio.create_task(load(position))
    try:
        while pending is not None:
            data, want = await pending
            pending = None
            position += len(data)
            if len(data) == want and want and (end is None or position < end):
                pending = asyncio.create_task(load(position))
            await write(data)
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StoreError):
                await pending
    return position - offset


def _check_names(names: Sequence[str]) -> list[str]:
    return [validate_name(name) for name in names]


_BUCKET_OPTIONS = {"s3": "create_bucket", "b2": "create_bucket", "gs": "create_bucket", "azure": "create_container"}
"""The backend option that lets ``create()`` make the bucket (or container) a URL of the scheme names."""


@click.command(short_help="Create an empty store.")
@URL
@click.option(
    "--bucket",
    is_flag=True,
    help="Also create the bucket (s3:, b2:, gs:) or container (azure:) the URL names, if it does not exist.",
)
@store_options
def create(url: str, bucket: bool, options: StoreOptions) -> None:
    """Create an empty store at URL (an existing empty directory is fine).

    Commands that write into a store (put, rm, mv) need an existing one; cp and sync create their
    destination themselves. With --levels/--config that nest a namespace, the store remembers them
    (see the config command): later commands need no --levels.
    """
    scheme = url.partition(":")[0].lower()
    backend_options: dict[str, bool] = {}
    if bucket:
        if scheme not in _BUCKET_OPTIONS:
            raise CliError(f"--bucket is for s3:, b2:, gs: and azure: URLs, not {scheme}: ones", EXIT_USAGE)
        backend_options[_BUCKET_OPTIONS[scheme]] = True

    async def run() -> None:
        try:
            await options.store(url, **backend_options).create()
        except StoreExists as exc:
            raise CliError(f"{display_url(url)}: a store exists already ({display_url(str(exc))})") from exc
        except StoreNotFound as exc:
            if scheme not in _BUCKET_OPTIONS:
                raise about_store(url, exc) from exc
            # the bucket or container is missing: say so (the backend names it) and how to make it here
            missing = re.sub(r"\s*\(backend option [^)]*\)", "", display_url(str(exc))).removeprefix("the store: ")
            raise CliError(f"{display_url(url)}: {missing} (aiodepot create --bucket creates it)") from exc
        except (StoreError, OSError) as exc:
            raise about_store(url, exc) from exc
        if url.startswith("memory:"):
            report(f"note: {url} lives only inside this process: it is gone when this command ends")

    asyncio.run(run())


@click.command(short_help="Show or change the nesting levels a store remembers.")
@URL
@store_options
def config(url: str, options: StoreOptions) -> None:
    """Show the nesting levels the store at URL remembers (JSON), or with --levels/--config, remember those.

    A store created with --levels remembers them, so later commands need no --levels. Changing them
    starts a migration: items are still found at the levels listed before the last one, new items go to
    the last one (e.g. --levels data=1,2 while moving from one level to two).
    """

    async def run() -> None:
        async with open_store(url, options) as store:
            if options.given:
                await store.save_layout()
            else:
                click.echo(json_dumps({prefix: {"levels": levels} for prefix, levels in store.levels.items()}))

    asyncio.run(run())


@click.command(short_help="Write values of items to stdout.")
@URL
@click.argument("names", metavar="NAME...", nargs=-1, required=True)
@click.option(
    "-o", "--offset", type=ByteSize(allow_negative=True), default=0, help="Start here (negative: from the end)."
)
@click.option("-s", "--size", type=ByteSize(), default=None, help="Bytes to read [default: to the end].")
@click.option("--deleted", is_flag=True, help="Read soft-deleted items.")
@store_options
def cat(url: str, names: tuple[str, ...], offset: int, size: int | None, deleted: bool, options: StoreOptions) -> None:
    """Write the values of items to stdout, one after the other.

    A missing item is reported and the others are still written; the exit code is then 1.
    """
    checked = _check_names(names)

    async def run() -> list[str]:
        output = BinaryOutput()
        missing = []
        async with open_store(url, options) as store:
            for name in checked:
                try:
                    await copy_value(store, name, output.write, offset=offset, size=size, deleted=deleted)
                except ObjectNotFound:
                    missing.append(name)
        return missing

    missing = asyncio.run(run())
    for name in missing:
        report(f"{name}: no such item")
    if missing:
        raise click.exceptions.Exit(EXIT_FAILURE)


async def _write_file(path: str, chunks: Callable[[Callable[[bytes], Awaitable[object]]], Awaitable[int]]) -> int:
    """Write what ``chunks(write)`` produces to ``path``: to a temporary file, renamed into place when complete."""
    tmp = f"{path}.{secrets.token_hex(6)}.part"
    handle = await asyncio.to_thread(open, tmp, "xb")
    try:
        try:

            async def write(data: bytes) -> None:
                await asyncio.to_thread(handle.write, data)

            written = await chunks(write)
        finally:
            await asyncio.to_thread(handle.close)
        await asyncio.to_thread(os.replace, tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return written


@click.command(short_help="Copy an item's value into a local file.")
@URL
@click.argument("name", metavar="NAME")
@click.argument("dest", metavar="[DEST]", required=False, type=click.Path(dir_okay=True, allow_dash=True))
@click.option(
    "-o", "--offset", type=ByteSize(allow_negative=True), default=0, help="Start here (negative: from the end)."
)
@click.option("-s", "--size", type=ByteSize(), default=None, help="Bytes to read [default: to the end].")
@click.option("--deleted", is_flag=True, help="Read a soft-deleted item.")
@store_options
def get(
    url: str, name: str, dest: str | None, offset: int, size: int | None, deleted: bool, options: StoreOptions
) -> None:
    """Copy the value of item NAME into the local file DEST, or to stdout if DEST is -.

    DEST defaults to the item's key (the last part of NAME) in the current directory; an existing
    directory gets a file of that name inside it. The file appears complete or not at all. A whole
    value is loaded as parallel ranges straight into the file (Store.load_file).
    """
    validate_name(name)
    key = name.rpartition("/")[2]
    target = key if dest is None else dest
    if target != "-" and os.path.isdir(target):
        target = os.path.join(target, key)
    elif target != "-" and target.endswith(os.sep):
        raise CliError(f"{target}: No such directory")
    if target != "-" and not os.path.isdir(os.path.dirname(os.path.abspath(target))):
        raise CliError(f"{os.path.dirname(target)}: No such directory")

    async def run() -> None:
        async with open_store(url, options) as store:
            try:
                if target == "-":
                    output = BinaryOutput()
                    await copy_value(store, name, output.write, offset=offset, size=size, deleted=deleted)
                elif offset == 0 and size is None:
                    await store.load_file(name, target, deleted=deleted)
                else:

                    def chunks(write: Callable[[bytes], Awaitable[object]]) -> Awaitable[int]:
                        return copy_value(store, name, write, offset=offset, size=size, deleted=deleted)

                    await _write_file(target, chunks)
            except ObjectNotFound as exc:
                raise CliError(f"{name}: no such item") from exc
            except OSError as exc:  # name the user's file, not the temporary file it was written to first
                raise CliError(f"{target}: {exc.strerror or exc}") from exc
            except QuotaExceeded as exc:  # reading cannot fill a store: the local file system is full
                cause = exc.__cause__
                raise CliError(f"{target}: {getattr(cause, 'strerror', None) or 'No space left on device'}") from exc

    asyncio.run(run())


async def _store_stream(store: Store, name: str, source: BinaryInput) -> int:
    """Store all of a stream under ``name``: from memory, or spooled to a temporary file once it is long."""
    parts: list[bytes] = []
    held = 0
    while held <= SPOOL_LIMIT:
        data = await source.read(MiB)
        if not data:
            value = b"".join(parts)
            await store.store(name, value)
            return len(value)
        parts.append(data)
        held += len(data)
    directory = await asyncio.to_thread(tempfile.mkdtemp, prefix="aiodepot-put-")
    path = os.path.join(directory, "value")
    try:
        handle = await asyncio.to_thread(open, path, "wb")
        try:
            for part in parts:
                await asyncio.to_thread(handle.write, part)
            parts.clear()
            while data := await source.read(MiB):
                await asyncio.to_thread(handle.write, data)
        finally:
            await asyncio.to_thread(handle.close)
        return await store.store_file(name, path)
    finally:
        with contextlib.suppress(OSError):
            await asyncio.to_thread(os.unlink, path)
        with contextlib.suppress(OSError):
            await asyncio.to_thread(os.rmdir, directory)


def _open_unbuffered(path: str) -> BinaryIO:
    return open(path, "rb", buffering=0)


@click.command(short_help="Store a local file or stdin as an item.")
@URL
@click.argument("name", metavar="NAME")
@click.argument("source", metavar="[SOURCE]", default="-", type=click.Path(dir_okay=False, allow_dash=True))
@store_options
def put(url: str, name: str, source: str, options: StoreOptions) -> None:
    """Store the content of the local file SOURCE (default: stdin) as item NAME, atomically.

    A file is streamed, never read into memory whole (Store.store_file). A pipe (or stdin) is held in
    memory up to 32 MiB and spooled to a temporary file beyond. An existing item is replaced.
    """
    validate_name(name)
    if source != "-" and not os.path.exists(source):
        raise CliError(f"{source}: No such file or directory")

    async def store_it(store: Store) -> None:
        if source == "-":
            await _store_stream(store, name, BinaryInput())
        elif await asyncio.to_thread(os.path.isfile, source):
            await store.store_file(name, source)
        else:  # a pipe or device, e.g. <(command)
            # opening a FIFO waits for its writer: in a daemon thread, so that Ctrl-C is not held up
            handle = await in_daemon_thread(functools.partial(_open_unbuffered, source))
            try:
                await _store_stream(store, name, BinaryInput(handle))
            finally:
                await asyncio.to_thread(handle.close)

    before: list[tuple[bool, int, float]] = []

    async def run() -> None:
        async with open_store(url, options) as store:
            before.append(_state(await store.info(name)))
            try:
                await store_it(store)
            except ObjectNotFound as exc:  # the storage found an item where a namespace of the name would go
                raise CliError(f"{name}: cannot store there: a part of the name is an item, not a namespace") from exc

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        _after_interrupt(url, name, options, before[0] if before else None)


def _state(info: ItemInfo) -> tuple[bool, int, float]:
    return info.exists, info.size, info.mtime


def _after_interrupt(url: str, name: str, options: StoreOptions, before: tuple[bool, int, float] | None) -> None:
    """Say whether an interrupted ``put`` stored its item (stores are atomic: all of it, or nothing changed);
    exit 130 only if nothing changed."""

    async def now() -> tuple[bool, int, float]:
        async with open_store(url, options) as store:
            return _state(await store.info(name))

    if before is not None and asyncio.run(now()) != before:
        report(f"interrupted, but {name} was stored completely")
        return
    report(f"interrupted: {name} was not stored (nothing changed)")
    raise click.exceptions.Exit(EXIT_INTERRUPTED)


async def _each(store: Store, names: Sequence[str], action: Callable[[str], Awaitable[object]]) -> list[object]:
    """Run ``action`` on every name (bounded by the store's concurrency); return the outcomes."""
    return await run_bounded(names, action, max_concurrency=store.max_concurrency, return_exceptions=True)


def _report(names: Sequence[str], outcomes: Sequence[object], *, missing_ok: bool) -> bool:
    """Report the failures among the ``outcomes`` of a bulk call on ``names``; True if there were none."""
    ok = True
    for name, outcome in zip(names, outcomes, strict=True):
        if isinstance(outcome, ObjectNotFound):
            if not missing_ok:
                report(f"{name}: no such item")
                ok = False
        elif isinstance(outcome, StoreError | OSError):
            text = str(outcome)
            report(text if text.startswith(f"{name}:") else f"{name}: {text}")
            ok = False
        elif isinstance(outcome, BaseException):
            raise outcome
    return ok


async def _namespace_items(store: Store, namespaces: Sequence[str], deleted: bool, strays: list[str]) -> list[str]:
    names: list[str] = []
    for namespace in namespaces:
        try:
            async for entry in walk(store, namespace, deleted=deleted, strays=strays):
                if not entry.is_namespace:
                    names.append(entry.name)
        except ObjectNotFound as exc:
            raise CliError(f"{namespace}: no such namespace") from exc
    return names


@click.command(short_help="Remove items (or soft-delete them).")
@URL
@click.argument("names", metavar="NAME...", nargs=-1, required=True)
@click.option("--soft", is_flag=True, help="Soft-delete: keep the item as deleted (see undelete).")
@click.option("--deleted", is_flag=True, help="Remove soft-deleted items for good.")
@click.option("-r", "--recursive", is_flag=True, help="The NAMEs are namespaces: remove all items in them.")
@click.option("-f", "--force", is_flag=True, help="Missing items are no error.")
@store_options
def rm(
    url: str,
    names: tuple[str, ...],
    soft: bool,
    deleted: bool,
    recursive: bool,
    force: bool,
    options: StoreOptions,
) -> None:
    """Remove items, for good or (--soft) as soft-deleted items that undelete brings back."""
    if soft and deleted:
        raise click.UsageError("--soft and --deleted exclude each other")
    checked = top_namespaces(names) if recursive else _check_names(names)
    strays: list[str] = []

    async def run() -> tuple[list[str], list[object]]:
        async with open_store(url, options) as store:
            targets = await _namespace_items(store, checked, deleted, strays) if recursive else checked
            if soft:

                async def soft_delete(name: str) -> None:
                    await store.move(name, delete=True)

                return targets, await _each(store, targets, soft_delete)
            return targets, list(await store.delete_many(targets, return_exceptions=True, deleted=deleted))

    targets, outcomes = asyncio.run(run())
    warn_strays(strays)
    if not _report(targets, outcomes, missing_ok=force):
        raise click.exceptions.Exit(EXIT_FAILURE)


@click.command(short_help="Bring back soft-deleted items.")
@URL
@click.argument("names", metavar="NAME...", nargs=-1, required=True)
@store_options
def undelete(url: str, names: tuple[str, ...], options: StoreOptions) -> None:
    """Bring back soft-deleted items (see rm --soft)."""
    checked = _check_names(names)

    async def run() -> list[object]:
        async with open_store(url, options) as store:

            async def restore(name: str) -> None:
                await store.move(name, undelete=True)

            return await _each(store, checked, restore)

    if not _report(checked, asyncio.run(run()), missing_ok=False):
        raise click.exceptions.Exit(EXIT_FAILURE)


@click.command(short_help="Rename an item.")
@URL
@click.argument("src", metavar="SRC")
@click.argument("dst", metavar="DST")
@click.option("--deleted", is_flag=True, help="Rename a soft-deleted item (it stays deleted).")
@store_options
def mv(url: str, src: str, dst: str, deleted: bool, options: StoreOptions) -> None:
    """Rename item SRC to DST within the store at URL (an existing DST is replaced)."""
    _check_names([src, dst])

    async def run() -> None:
        async with open_store(url, options) as store:
            try:
                await store.move(src, dst, deleted=deleted)
            except ObjectNotFound as exc:
                raise CliError(f"{src}: no such item") from exc

    asyncio.run(run())
