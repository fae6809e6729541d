"""Commands that move items between two stores: ``cp`` and ``sync``.

Both are thin shells around the library's engine, [`aiodepot.replicate`][aiodepot.replicate]: a plan
(``plan_copy``/``plan_sync``) walks the stores, is shown in a dry run, and ``apply_plan`` carries it out
in overlapped ``load_many``/``store_many`` batches, big values one by one through a temporary file.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import click

from ..errors import InvalidName, ObjectNotFound, QuotaExceeded, StoreError, StoreNotFound
from ..replicate import DEFAULT_MAX_BYTES_IN_FLIGHT, Plan, Report, apply_plan, plan_copy, plan_sync
from ..store import Store
from .common import (
    EXIT_FAILURE,
    CliError,
    ProgressDisplay,
    StoreOptions,
    about_store,
    display_url,
    dst_store_options,
    format_size,
    json_dumps,
    open_store,
    report,
    store_options,
    translate_error,
    url_argument,
    wants_progress,
    warn_strays,
)
from .encoded import Encoded, decoded_path, encode, is_encoded, read_file, write_file
from .foreign import Unreachable, unreachable_files
from .stdio import LineOutput
from .walk import top_namespaces

__all__ = ["MAX_BYTES_IN_FLIGHT", "cp", "sync"]

MAX_BYTES_IN_FLIGHT = DEFAULT_MAX_BYTES_IN_FLIGHT
"""Values held in memory at once; a value above half of it is copied alone through a temporary file."""


@contextlib.asynccontextmanager
async def _existing(url: str, options: StoreOptions) -> AsyncIterator[Store | None]:
    """The destination store if it exists, else None (an empty one: nothing is created before the plan
    stands, so a copy that cannot start leaves nothing behind)."""
    store = options.store(url)
    try:
        await store.open()
    except StoreNotFound:
        yield None
        return
    except StoreError as exc:
        raise about_store(url, exc) from exc
    try:
        yield store
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def _created(url: str, options: StoreOptions, store: Store | None) -> AsyncIterator[Store]:
    """``store``, or a new store at ``url`` once there is something to copy into it."""
    if store is not None:
        yield store
        return
    async with open_store(url, options, create=True) as created:
        yield created


async def _report_plan(plan: Plan, *, dry_run: bool, as_json: bool, quiet: bool) -> None:
    if not dry_run or as_json or quiet:
        return
    out = LineOutput()
    for entry in plan.copy:
        await out.line(f"copy {entry.name}")
    for entry in plan.delete:
        await out.line(f"delete {entry.name}")
    await out.flush()


def _summary(report: Report, *, as_json: bool) -> str:
    plan = report.plan
    if as_json:
        document: dict[str, Any] = {
            "copied": report.copied,
            "bytes": report.bytes,
            "deleted": report.deleted,
            "unchanged": report.skipped,
            "seconds": round(report.seconds, 6),
            "dry_run": report.dry_run,
        }
        if report.dry_run:
            document["copy"] = [entry.name for entry in plan.copy]
            document["delete"] = [entry.name for entry in plan.delete]
        return json_dumps(document)
    size = format_size(report.bytes, human=True)
    items = f"{report.copied} item{'' if report.copied == 1 else 's'} ({size})"
    if report.dry_run:
        return f"dry run: would copy {items}, delete {report.deleted}; {report.skipped} unchanged"
    return f"copied {items} in {report.seconds:.2f} s, deleted {report.deleted}; {report.skipped} unchanged"


def _transfer_options(func: Any) -> Any:
    for decorator in (
        click.option("--progress/--no-progress", default=None, help="Show a progress bar [default: on a terminal]."),
        click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors."),
        click.option("--json", "as_json", is_flag=True, help="Print a JSON summary."),
        click.option("-n", "--dry-run", is_flag=True, help="Show what would be done; change nothing."),
        click.option(
            "--skip-invalid",
            is_flag=True,
            help="From a local directory: copy what has valid names, skip (and count) the files that have not.",
        ),
        click.option(
            "--keep-going",
            is_flag=True,
            help="Go on past an item that fails; list the failures at the end (exit 1 if any).",
        ),
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
    keep_going: bool = False,
    skip_invalid: bool = False,
    encode_names: bool = False,
) -> tuple[Report, list[str]]:
    """Plan and (unless a dry run) carry out a copy or sync; return the report and the stray items seen."""
    started = time.perf_counter()
    dst_base = _local_base(dst_options.store(dst_url)) if encode_names else None
    async with open_store(src_url, options) as src, _existing(dst_url, dst_options) as existing:
        try:
            if sync:
                plan = await plan_sync(src, existing, namespaces, delete=delete, checksum=checksum)
            else:
                plan = await plan_copy(src, existing, namespaces)
        except ObjectNotFound as exc:
            raise CliError(f"{display_url(src_url)}: {exc}") from exc
        encoded = await _check_unreachable(
            src, src_url, namespaces, skip_invalid=skip_invalid, encode_names=encode_names
        )
        escaped = _take_escaped(plan, encoded, dst_base) if encode_names else []
        await _report_plan(plan, dry_run=dry_run, as_json=as_json, quiet=quiet)
        for entry in encoded if dry_run and not (as_json or quiet) else ():
            click.echo(f"copy {entry.path} as {entry.key}")
        for name in escaped if dry_run and not (as_json or quiet) else ():
            click.echo(f"copy {name} as {decoded_path(name)}")
        if dry_run:
            report = Report.dry(plan)
            report.copied += len(encoded) + len(escaped)
        else:
            display = ProgressDisplay(
                enabled=progress and not quiet,
                description="sync" if sync else "copy",
                items_total=len(plan.copy) + len(plan.delete),
                bytes_total=plan.copy_bytes,
            )
            async with _created(dst_url, dst_options, existing) as dst:
                with _full_means(dst_url), _resume_hint(src_url, dst_url, sync=sync):
                    async with display.shown():
                        report = await apply_plan(
                            src,
                            dst,
                            plan,
                            max_bytes_in_flight=MAX_BYTES_IN_FLIGHT,
                            batch_size=batch_size,
                            progress=display.callback(),
                            collect_errors=keep_going,
                        )
                        await _copy_encoded(src, dst, encoded, escaped, report)
    report.seconds = time.perf_counter() - started
    return report, plan.strays


@contextlib.contextmanager
def _resume_hint(src_url: str, dst_url: str, *, sync: bool) -> Iterator[None]:
    """On an interruption or a failure of ``cp``, say that what was copied is whole, and how to copy only
    the rest (in the error's one line)."""
    if sync:  # running sync again is the resume
        yield
        return
    hint = (
        f"the items copied so far are complete; to copy only the rest: aiodepot sync "
        f"{display_url(src_url)} {display_url(dst_url)}"
    )
    try:
        yield
    except (KeyboardInterrupt, asyncio.CancelledError):
        report(f"interrupted: {hint}")
        raise
    except (StoreError, OSError) as exc:
        error = translate_error(exc)
        raise CliError(f"{error.message} ({hint})", error.exit_code) from exc


@contextlib.contextmanager
def _full_means(dst_url: str) -> Iterator[None]:
    """A full store is the destination (reading does not fill one): say so in the message."""
    try:
        yield
    except QuotaExceeded as exc:
        if exc.store is None:
            exc.store = dst_url
        raise


_SHOWN_NAMES = 3
"""Files with invalid names shown by name (the rest are counted)."""


def _local_base(store: Store) -> str | None:
    """The directory of a ``file://`` store (whose files may have any name), else None."""
    from ..backends.posixfs import PosixFSBackend  # only now: the command line starts faster without it

    return store.backend.base if isinstance(store.backend, PosixFSBackend) else None


async def _check_unreachable(
    src: Store, src_url: str, namespaces: Sequence[str], *, skip_invalid: bool, encode_names: bool = False
) -> list[Encoded]:
    """Refuse (or with ``skip_invalid`` warn about) files of a local source that no item name reaches; with
    ``encode_names``, return those that an escaped key can hold (the rest are still refused or skipped)."""
    base = _local_base(src)
    if base is None:
        return []
    found = await asyncio.to_thread(unreachable_files, base, list(namespaces))
    encoded: list[Encoded] = []
    if encode_names:
        unencodable = []
        for entry in found:
            try:
                if entry.reason.startswith("a symbolic link"):
                    raise InvalidName(entry.reason)
                encoded.append(encode(entry.path))
            except InvalidName as exc:
                unencodable.append(Unreachable(entry.path, str(exc)))
        found = unencodable
    if not found:
        return encoded
    examples = ", ".join(f"{entry.path} ({entry.reason})" for entry in found[:_SHOWN_NAMES])
    more = f" and {len(found) - _SHOWN_NAMES} more" if len(found) > _SHOWN_NAMES else ""
    what = f"{len(found)} file(s) whose names no store item can have: {examples}{more}"
    if skip_invalid:
        report(f"warning: {display_url(src_url)}: skipped {what}")
        return encoded
    hint = "" if encode_names else " or --encode-names to store them under escaped names"
    raise CliError(
        f"{display_url(src_url)}: has {what}; nothing was copied (give --skip-invalid to copy the other files{hint}; "
        "item names are lowercase ASCII without blanks, see docs/concepts.md#names)"
    )


def _take_escaped(plan: Plan, encoded: list[Encoded], dst_base: str | None) -> list[str]:
    """Take the items that ``--encode-names`` copies itself out of ``plan``.

    A copy from a local directory that holds files to encode (``encoded``) goes into a store: its valid
    names that hold a ``%`` are encoded too (``50%.txt`` → ``50%25.txt``), so they come back unchanged.
    Any other copy into a local directory decodes: the items with escaped names are returned (checked to
    stand for paths inside the directory) to be written to their original paths.
    """
    if not encoded and dst_base is None:
        return []
    escaped: list[str] = []
    kept = []
    for entry in plan.copy:
        if entry.deleted or not is_encoded(entry.name):
            kept.append(entry)
        elif encoded:
            encoded.append(encode(entry.name))
        else:
            decoded_path(entry.name)  # a name that would leave the directory fails before anything is copied
            escaped.append(entry.name)
    plan.copy[:] = kept
    return escaped


async def _copy_encoded(src: Store, dst: Store, encoded: list[Encoded], escaped: list[str], report: Report) -> None:
    """Copy what ``--encode-names`` maps: files under escaped keys, escaped items to their paths."""
    src_base, dst_base = _local_base(src), _local_base(dst)
    for entry in encoded:
        assert src_base is not None
        data = await asyncio.to_thread(read_file, src_base, entry.path)
        await dst.store(entry.key, data)
        report.copied += 1
        report.bytes += len(data)
    for name in escaped:
        assert dst_base is not None
        data = await src.load(name)
        await asyncio.to_thread(write_file, dst_base, decoded_path(name), data)
        report.copied += 1
        report.bytes += len(data)


def _same_store(src_url: str, dst_url: str) -> None:
    if src_url == dst_url:
        raise CliError(f"source and destination are the same store: {display_url(src_url)}", 2)


def _run(
    src_url: str,
    dst_url: str,
    namespaces: tuple[str, ...],
    options: StoreOptions,
    dst_options: StoreOptions,
    *,
    sync: bool,
    delete: bool,
    checksum: bool,
    dry_run: bool,
    batch_size: int,
    progress: bool | None,
    quiet: bool,
    as_json: bool,
    keep_going: bool,
    skip_invalid: bool,
    encode_names: bool = False,
) -> None:
    """What ``cp`` and ``sync`` share: run the transfer, warn about strays, print the summary."""
    _same_store(src_url, dst_url)
    result, strays = asyncio.run(
        _execute(
            src_url,
            dst_url,
            top_namespaces(namespaces),
            options,
            dst_options,
            sync=sync,
            delete=delete,
            checksum=checksum,
            dry_run=dry_run,
            batch_size=batch_size,
            progress=wants_progress(progress),
            quiet=quiet,
            as_json=as_json,
            keep_going=keep_going,
            skip_invalid=skip_invalid,
            encode_names=encode_names,
        )
    )
    warn_strays(strays)
    for failure in result.errors[:_SHOWN_ERRORS]:
        report(f"{failure.action} {failure.name}: {failure.error}")
    if len(result.errors) > _SHOWN_ERRORS:
        report(f"… and {len(result.errors) - _SHOWN_ERRORS} more items that failed")
    if as_json or not quiet:
        click.echo(_summary(result, as_json=as_json))
    if result.errors:
        raise click.exceptions.Exit(EXIT_FAILURE)


_SHOWN_ERRORS = 10
"""With --keep-going, the failures listed one by one (the rest are counted)."""


@click.command(short_help="Copy items from one store to another.")
@url_argument("src_url", "SRC")
@url_argument("dst_url", "DST")
@click.argument("namespaces", metavar="[NAMESPACE...]", nargs=-1)
@_transfer_options
@click.option(
    "--encode-names",
    is_flag=True,
    help="From a local directory with files whose names no item can have: store them under %xx-escaped "
    "names; otherwise, into a local directory: write items with escaped names to their original paths.",
)
@store_options
@dst_store_options
def cp(
    src_url: str,
    dst_url: str,
    namespaces: tuple[str, ...],
    batch_size: int,
    dry_run: bool,
    keep_going: bool,
    skip_invalid: bool,
    encode_names: bool,
    as_json: bool,
    quiet: bool,
    progress: bool | None,
    options: StoreOptions,
    dst_options: StoreOptions,
) -> None:
    """Copy the items of the NAMESPACEs (default: the whole store) from store SRC to store DST.

    Items keep their names; items at DST are replaced. A NAMESPACE may also name a single item. DST is
    created if it does not exist. Give --dst-levels to write DST with other nesting than SRC.

    With --encode-names, a copy from a local directory into a store and back restores every file name:
    README.md is stored as %52%45%41%44%4d%45.md and written back as README.md.
    """
    _run(
        src_url,
        dst_url,
        namespaces,
        options,
        dst_options,
        sync=False,
        delete=False,
        checksum=False,
        dry_run=dry_run,
        batch_size=batch_size,
        progress=progress,
        quiet=quiet,
        as_json=as_json,
        keep_going=keep_going,
        skip_invalid=skip_invalid,
        encode_names=encode_names,
    )


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
    keep_going: bool,
    skip_invalid: bool,
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
    _run(
        src_url,
        dst_url,
        namespaces,
        options,
        dst_options,
        sync=True,
        delete=delete,
        checksum=checksum,
        dry_run=dry_run,
        batch_size=batch_size,
        progress=progress,
        quiet=quiet,
        as_json=as_json,
        keep_going=keep_going,
        skip_invalid=skip_invalid,
    )
