"""Walk a store's namespaces with full item names, in sorted order.

[`Store.list`][aiodepot.Store.list] yields the keys of one namespace (the last name element) and descends
into every directory below it. Copying, syncing, dict-style views and the command line need full names
(``data/0123…``) and must tell apart the directories that nesting made (``data/01/``), which are looked
through, from sub-namespaces (``data/sub/``), which are walked as namespaces of their own. So this walker
reads backend listings itself and decides, as the Store does, from the store's namespace configuration: a
directory is a nesting directory if its namespace is configured with nesting deeper than the directory, its
name is two characters long, and it is not (the parent of) a configured namespace. A file where the Store
would not look for it (at a depth that is not one of its namespace's levels) is not yielded but reported as
a stray: the Store could not address it under its name.

Entries come sorted by full name, so two walks can be merged (see [`aiodepot.replicate`][aiodepot.replicate]).
Only the directories on the current path are held open, merged with a heap as the Store's own listing does.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
from collections.abc import AsyncIterator, Iterable

from .errors import ObjectNotFound
from .names import DEL_SUFFIX, ROOTNS, validate_namespace
from .store import Store

__all__ = ["Entry", "top_namespaces", "walk"]


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    """An item (by full name) or a namespace (full name ending in ``/``) found by [`walk`][aiodepot.walk.walk]."""

    name: str
    size: int = 0
    mtime: float = 0.0
    deleted: bool = False
    """A soft-deleted item (its name is shown without the ``.del`` suffix)."""

    @property
    def is_namespace(self) -> bool:
        """True for a namespace."""
        return self.name.endswith("/")

    @property
    def namespace(self) -> str:
        """The namespace the entry is in (``""`` for the root)."""
        return self.name.rstrip("/").rpartition("/")[0]


# heap rows: (sort key, tiebreak, entry to yield or None, directory to open or None, stream it came from);
# a directory to open is (namespace, path, nesting depth or -1 for a sub-namespace, key prefix so far)
_Row = tuple[str, int, Entry | None, tuple[str, str, int, str] | None, AsyncIterator[Entry] | None]


class _Walker:
    def __init__(self, store: Store, *, recursive: bool, deleted: bool | None, strays: list[str] | None) -> None:
        self.store = store
        self.recursive = recursive
        self.deleted = deleted
        self.strays = strays
        self.prefixes = sorted(store.levels.items(), key=lambda item: len(item[0]), reverse=True)
        self.tiebreak = itertools.count()

    def levels(self, namespace: str) -> list[int]:
        probe = f"{namespace}/key" if namespace else "key"
        for prefix, levels in self.prefixes:
            if probe.startswith(prefix):
                return levels
        return [0]

    def is_namespace_dir(self, path: str) -> bool:
        return any(prefix.startswith(path + "/") for prefix, _ in self.prefixes if prefix)

    async def namespace(self, namespace: str) -> AsyncIterator[Entry]:
        levels = self.levels(namespace)
        async for entry in self.directory(namespace, namespace, 0, levels, ""):
            yield entry

    async def directory(
        self, namespace: str, path: str, depth: int, levels: list[int], key_prefix: str
    ) -> AsyncIterator[Entry]:
        # A nesting directory holds keys that start with the nesting names above it plus its own, so it
        # is sorted in by that prefix and opened only when the merge reaches it; a sub-namespace sorts
        # as "name/". Everything a directory yields sorts at or after its own key, so the heap stays right.
        ns_prefix = f"{namespace}/" if namespace else ""
        max_depth = max(levels)
        heap: list[_Row] = []
        async for info in self.store.backend.list(path):
            sub = f"{path}/{info.name}" if path else info.name
            if info.directory:
                if depth < max_depth and len(info.name) == 2 and not self.is_namespace_dir(sub):
                    nested_prefix = key_prefix + info.name
                    nesting_job = (namespace, sub, depth + 1, nested_prefix)
                    heap.append((ns_prefix + nested_prefix, next(self.tiebreak), None, nesting_job, None))
                else:
                    found = Entry(sub + "/", mtime=info.mtime)
                    namespace_job = (sub, sub, -1, "") if self.recursive else None
                    heap.append((found.name, next(self.tiebreak), found, namespace_job, None))
                continue
            deleted = info.name.endswith(DEL_SUFFIX)
            if self.deleted is not None and deleted != self.deleted:
                continue
            if depth not in levels or not info.name.startswith(key_prefix):
                # the Store would not look for it here: not addressable under this configuration
                if self.strays is not None:
                    self.strays.append(sub)
                continue
            item = Entry(ns_prefix + info.name.removesuffix(DEL_SUFFIX), info.size, info.mtime, deleted)
            heap.append((item.name, next(self.tiebreak), item, None, None))
        heapq.heapify(heap)

        while heap:
            _, _, entry, job, stream = heapq.heappop(heap)
            if entry is not None:
                yield entry
            if job is not None:
                sub_namespace, sub_path, sub_depth, nested_prefix = job
                if sub_depth < 0:  # a sub-namespace
                    await self.advance(heap, self.guarded(self.namespace(sub_namespace)))
                else:
                    nested = self.directory(sub_namespace, sub_path, sub_depth, levels, nested_prefix)
                    await self.advance(heap, self.guarded(nested))
            if stream is not None:
                await self.advance(heap, stream)

    async def advance(self, heap: list[_Row], stream: AsyncIterator[Entry]) -> None:
        entry = await anext(stream, None)
        if entry is not None:
            heapq.heappush(heap, (entry.name, next(self.tiebreak), entry, None, stream))

    @staticmethod
    async def guarded(entries: AsyncIterator[Entry]) -> AsyncIterator[Entry]:
        try:
            async for entry in entries:
                yield entry
        except ObjectNotFound:
            return  # removed while we were listing


async def walk(
    store: Store,
    namespace: str = ROOTNS,
    *,
    recursive: bool = True,
    deleted: bool | None = False,
    strays: list[str] | None = None,
) -> AsyncIterator[Entry]:
    """Yield the items and sub-namespaces of ``namespace``, sorted by full name.

    Args:
        store: an open store.
        namespace: where to start (``""``: the whole store).
        recursive: also walk the sub-namespaces (their entries still come first, then their content).
        deleted: False: live items only; True: soft-deleted items only; None: both.
        strays: if given, collects the backend names of files at a nesting depth their namespace is not
            configured for. They are not yielded: the Store would not find them under their names.

    A missing namespace raises ``ObjectNotFound``, unless it is configured (then it is empty, as with
    [`Store.list`][aiodepot.Store.list]).
    """
    bare = validate_namespace(namespace.strip("/"))
    walker = _Walker(store, recursive=recursive, deleted=deleted, strays=strays)
    configured = any(prefix.rstrip("/") == bare for prefix, _ in walker.prefixes if prefix)
    entries = walker.namespace(bare)
    try:
        first = await anext(entries, None)
    except ObjectNotFound:
        if configured:
            return
        raise
    if first is None:
        return
    yield first
    async for entry in entries:
        yield entry


def top_namespaces(namespaces: Iterable[str]) -> list[str]:
    """The namespaces to walk for command arguments: checked, sorted, without duplicates and without those
    inside another one given (a walk covers its sub-namespaces); none given means the whole store."""
    bare = sorted({validate_namespace(namespace.strip("/")) for namespace in namespaces}) or [ROOTNS]
    if ROOTNS in bare:
        return [ROOTNS]
    top: list[str] = []
    for namespace in bare:
        if not any(namespace.startswith(parent + "/") for parent in top):
            top.append(namespace)
    return top
