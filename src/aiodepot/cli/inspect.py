"""Commands that look at a store without changing it: ``ls``, ``info``, ``hash``, ``du`` (also ``stats``)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Sequence
from typing import Any

import click

from .. import hashing
from ..errors import ObjectNotFound
from ..names import validate_name, validate_namespace
from ..store import Store
from ..transfer import run_bounded
from .common import (
    EXIT_FAILURE,
    CliError,
    StoreOptions,
    display_url,
    format_size,
    format_time,
    json_dumps,
    namespace_label,
    open_store,
    report,
    store_options,
    url_argument,
    warn_strays,
)
from .stdio import LineOutput
from .walk import Entry, top_namespaces, walk

__all__ = ["du", "hash_", "info", "ls"]


def _entry_json(entry: Entry) -> dict[str, Any]:
    # every entry has every documented field: a namespace's size is 0, its mtime what the storage says (0:
    # unknown), and it is never deleted
    kind = "namespace" if entry.is_namespace else "item"
    return {"name": entry.name, "type": kind, "size": entry.size, "mtime": entry.mtime, "deleted": entry.deleted}


def _entry_line(entry: Entry, *, long: bool, human: bool) -> str:
    if not long:
        return entry.name
    if entry.is_namespace:
        return f"{'-':>12}  {'-':<19}  {entry.name}"
    return f"{format_size(entry.size, human=human):>12}  {format_time(entry.mtime)}  {entry.name}"


@click.command(short_help="List items and namespaces.")
@url_argument()
@click.argument("namespace", metavar="[NAMESPACE]", default="")
@click.option("-l", "--long", is_flag=True, help="Show size and modification time.")
@click.option("-H", "--human", is_flag=True, help="Sizes in KiB, MiB, ... (with -l).")
@click.option("-R", "--recursive", is_flag=True, help="Also list the items of sub-namespaces (not the namespaces).")
@click.option("--deleted", is_flag=True, help="List soft-deleted items instead of live ones.")
@click.option("--json", "as_json", is_flag=True, help="A JSON array of {name, type, size, mtime, deleted}.")
@store_options
def ls(
    url: str,
    namespace: str,
    long: bool,
    human: bool,
    recursive: bool,
    deleted: bool,
    as_json: bool,
    options: StoreOptions,
) -> None:
    """List the items of NAMESPACE (default: the store's root) by full name, sorted.

    Sub-namespaces are shown as NAME/ (with -R, their items instead). The directories that nesting
    levels create are looked through: give --levels for a store written with nesting. If NAMESPACE
    names an item instead, that item is shown.
    """
    bare = validate_namespace(namespace.strip("/"))
    strays: list[str] = []

    async def run() -> None:
        out = LineOutput()
        count = 0
        async with open_store(url, options) as store:
            try:
                async for entry in walk(store, bare, recursive=recursive, deleted=deleted, strays=strays):
                    if recursive and entry.is_namespace:
                        continue
                    if as_json:
                        await out.line(("[" if not count else ",") + json.dumps(_entry_json(entry)))
                    else:
                        await out.line(_entry_line(entry, long=long, human=human))
                    count += 1
            except ObjectNotFound as exc:
                item = await store.info(bare, deleted=deleted) if bare else None
                if item is None or not item.exists or item.directory:
                    raise CliError(f"{bare}: no such namespace or item") from exc
                entry = Entry(bare, item.size, item.mtime, deleted)
                line = "[" + json.dumps(_entry_json(entry)) if as_json else _entry_line(entry, long=long, human=human)
                await out.line(line)
                count = 1
            if as_json:
                await out.line("]" if count else "[]")
            await out.flush()

    asyncio.run(run())
    warn_strays(strays)


@dataclasses.dataclass
class _Usage:
    items: int = 0
    bytes: int = 0
    deleted_items: int = 0
    deleted_bytes: int = 0

    def add(self, entry: Entry) -> None:
        if entry.deleted:
            self.deleted_items += 1
            self.deleted_bytes += entry.size
        else:
            self.items += 1
            self.bytes += entry.size

    def merge(self, other: _Usage) -> None:
        self.items += other.items
        self.bytes += other.bytes
        self.deleted_items += other.deleted_items
        self.deleted_bytes += other.deleted_bytes


async def _usage(store: Store, namespaces: Sequence[str], strays: list[str]) -> dict[str, _Usage]:
    usage: dict[str, _Usage] = {}
    for namespace in namespaces:
        usage.setdefault(namespace, _Usage())
        try:
            async for entry in walk(store, namespace, deleted=None, strays=strays):
                if entry.is_namespace:
                    usage.setdefault(entry.name.rstrip("/"), _Usage())
                else:
                    usage.setdefault(entry.namespace, _Usage()).add(entry)
        except ObjectNotFound as exc:
            raise CliError(f"{namespace}: no such namespace") from exc
    return dict(sorted(usage.items()))


@click.command(short_help="Items and bytes per namespace.")
@url_argument()
@click.argument("namespaces", metavar="[NAMESPACE...]", nargs=-1)
@click.option("-H", "--human", is_flag=True, help="Sizes in KiB, MiB, ...")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: per namespace, total and quota.")
@store_options
def du(url: str, namespaces: tuple[str, ...], human: bool, as_json: bool, options: StoreOptions) -> None:
    """Count the items and bytes of each namespace (default: all of the store), soft-deleted ones apart.

    Each row counts the items directly in its namespace; sub-namespaces have rows of their own, and the
    last row is the total.
    """
    bare = top_namespaces(namespaces)

    strays: list[str] = []

    async def run() -> tuple[dict[str, _Usage], dict[str, int]]:
        async with open_store(url, options) as store:
            return await _usage(store, bare, strays), await store.quota()

    usage, quota = asyncio.run(run())
    warn_strays(strays)
    total = _Usage()
    for row in usage.values():
        total.merge(row)
    if as_json:
        document = {
            "namespaces": {namespace: dataclasses.asdict(row) for namespace, row in usage.items()},
            "total": dataclasses.asdict(total),
            "quota": quota,
        }
        click.echo(json_dumps(document))
        return
    click.echo(f"{'items':>10} {'bytes':>12} {'deleted':>10} {'del. bytes':>12}  namespace")
    rows = [(namespace_label(namespace), row) for namespace, row in usage.items()]
    for label, row in [*rows, ("total", total)]:
        click.echo(
            f"{row.items:>10} {format_size(row.bytes, human=human):>12} "
            f"{row.deleted_items:>10} {format_size(row.deleted_bytes, human=human):>12}  {label}"
        )
    if quota.get("limit", -1) >= 0:
        click.echo(
            f"quota: {format_size(quota['usage'], human=human)} of {format_size(quota['limit'], human=human)} used"
        )


@click.command("hash", short_help="Print digests of items.")
@url_argument()
@click.argument("names", metavar="NAME...", nargs=-1, required=True)
@click.option("-a", "--algorithm", default="sha256", show_default=True, help="Any hashlib algorithm, or blake3.")
@click.option("--deleted", is_flag=True, help="Hash soft-deleted items.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object {name: digest}.")
@store_options
def hash_(
    url: str, names: tuple[str, ...], algorithm: str, deleted: bool, as_json: bool, options: StoreOptions
) -> None:
    """Print the hex digest of each item, as sha256sum does (where the backend can, it hashes server-side)."""
    try:
        hashing.check_algorithm(algorithm)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--algorithm") from None
    checked = [validate_name(name) for name in names]

    async def run() -> list[Any]:
        async with open_store(url, options) as store:

            async def digest(name: str) -> str:
                return await store.hash(name, algorithm, deleted=deleted)

            return await run_bounded(checked, digest, max_concurrency=store.max_concurrency, return_exceptions=True)

    outcomes = asyncio.run(run())
    digests: dict[str, str] = {}
    ok = True
    for name, outcome in zip(checked, outcomes, strict=True):
        if isinstance(outcome, ObjectNotFound):
            report(f"{name}: no such item")
            ok = False
        elif isinstance(outcome, BaseException):
            report(f"{name}: {outcome}")
            ok = False
        else:
            digests[name] = outcome
    if as_json:
        click.echo(json_dumps(digests))
    else:
        for name, value in digests.items():
            click.echo(f"{value}  {name}")
    if not ok:
        raise click.exceptions.Exit(EXIT_FAILURE)


def _store_document(store: Store, url: str, quota: dict[str, int]) -> dict[str, Any]:
    return {
        "url": display_url(url),
        "backend": type(store.backend).__name__,
        "levels": store.levels,
        "max_concurrency": store.max_concurrency,
        "capabilities": dataclasses.asdict(store.backend.capabilities),
        "quota": quota,
    }


def _item_document(name: str, size: int, atime: float, mtime: float) -> dict[str, Any]:
    return {"name": name, "size": size, "atime": atime, "mtime": mtime}


@click.command(short_help="Describe the store or items.")
@url_argument()
@click.argument("names", metavar="[NAME...]", nargs=-1)
@click.option("--deleted", is_flag=True, help="Describe soft-deleted items.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@store_options
def info(url: str, names: tuple[str, ...], deleted: bool, as_json: bool, options: StoreOptions) -> None:
    """Describe the store (backend, capabilities, nesting, quota), or the items NAME... (size, times)."""
    checked = [validate_name(name) for name in names]

    async def run() -> tuple[dict[str, Any] | None, list[dict[str, Any]], list[str]]:
        async with open_store(url, options) as store:
            if not checked:
                return _store_document(store, url, await store.quota()), [], []
            infos = await store.info_many(checked, deleted=deleted)
            found = [
                _item_document(item.name, item.size, item.atime, item.mtime)
                for item in infos
                if item.exists and not item.directory
            ]
            missing = [item.name for item in infos if not item.exists or item.directory]
            return None, found, missing

    document, items, missing = asyncio.run(run())
    for name in missing:
        report(f"{name}: no such item")
    if document is not None:
        if as_json:
            click.echo(json_dumps(document))
        else:
            quota = document["quota"]
            click.echo(f"url:             {document['url']}")
            click.echo(f"backend:         {document['backend']}")
            levels = ", ".join(f"{namespace_label(ns.rstrip('/'))}={lv}" for ns, lv in document["levels"].items())
            click.echo(f"levels:          {levels}")
            click.echo(f"concurrency:     {document['max_concurrency']}")
            used = "none" if quota["limit"] < 0 else f"{quota['usage']} of {quota['limit']} bytes used"
            click.echo(f"quota:           {used}")
            capabilities = ", ".join(f"{key}={value}" for key, value in document["capabilities"].items())
            click.echo(f"capabilities:    {capabilities}")
    elif as_json:
        click.echo(json_dumps(items))
    else:
        for index, item in enumerate(items):
            if index:
                click.echo("")
            click.echo(f"name:  {item['name']}")
            click.echo(f"size:  {item['size']}")
            click.echo(f"mtime: {format_time(item['mtime'])}")
            click.echo(f"atime: {format_time(item['atime'])}")
    if missing:
        raise click.exceptions.Exit(EXIT_FAILURE)
