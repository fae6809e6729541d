"""Listing a Store's namespaces: one sorted stream through all nesting levels, merged with a heap."""

from __future__ import annotations

import builtins
import heapq
import itertools
import time
from collections.abc import AsyncGenerator, AsyncIterator

from .errors import ObjectNotFound
from .items import ItemInfo
from .names import DEL_SUFFIX, ROOTNS, validate_namespace
from .store_base import StoreBase, next_within, operation

__all__ = ["Listing"]


class Listing(StoreBase):
    """[`Store.list`][aiodepot.Store.list] and the walk through nesting directories behind it."""

    # listing ---------------------------------------------------------------------------------------------

    async def list(
        self,
        name: str = ROOTNS,
        *,
        prefix: str | None = None,
        start_after: str | None = None,
        deleted: bool = False,
    ) -> AsyncIterator[ItemInfo]:
        """Yield the items of namespace ``name``, sorted, through all nesting levels.

        Items carry their key (the last name element) as ``info.name``. Soft-deleted items are skipped,
        or, with ``deleted=True``, are the only ones yielded (without the ``.del`` suffix). A configured
        namespace that nothing was stored in yet lists empty; any other missing one raises
        ``ObjectNotFound``.

        ``prefix`` keeps only the keys that start with it; ``start_after`` only the keys after it, so a
        listing resumes after the last key it gave. Nesting directories that cannot hold such keys are
        not opened, and the listing stops at the first key past the prefix. Each step of the iteration
        is one operation for the store's ``timeout``.
        """
        namespace = validate_namespace(name)
        if prefix is not None and not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, not {type(prefix).__name__}")
        if start_after is not None and not isinstance(start_after, str):
            raise TypeError(f"start_after must be a str, not {type(start_after).__name__}")
        self._require_open()
        self._stats.add("list_calls")
        configured = any(p.rstrip("/") == namespace for p, _ in self._levels)
        bounds = _Bounds(prefix or "", start_after)
        walk = self._walk(namespace, deleted, bounds=bounds)
        try:
            first = await next_within(walk, self.timeout)
        except StopAsyncIteration:
            return
        except ObjectNotFound:
            if configured:
                return  # a configured namespace nothing was stored in yet is empty, not missing
            raise
        try:
            item: ItemInfo | None = first
            while item is not None:
                if item.name.startswith(bounds.prefix):
                    yield item
                elif item.name > bounds.prefix:
                    return  # sorted: nothing after this key starts with the prefix
                try:
                    item = await next_within(walk, self.timeout)
                except StopAsyncIteration:
                    item = None
        finally:
            await walk.aclose()

    @operation
    async def count(self, name: str = ROOTNS, *, deleted: bool = False) -> int:
        """The number of items in namespace ``name`` (through all nesting levels), without loading values.

        It counts what [`list`][aiodepot.Store.list] would yield: soft-deleted items are left out, or, with
        ``deleted=True``, are the only ones counted. The backend counts the cheapest way it has (a
        directory walk, ``SELECT count(*)``, a key scan, listing pages). A configured namespace that nothing
        was stored in yet counts 0; any other missing one raises ``ObjectNotFound``.
        """
        namespace = validate_namespace(name)
        self._require_open()
        started = self._stats.begin("count")
        try:
            return await self._calls.count(namespace, deleted=deleted)
        except ObjectNotFound:
            if any(p.rstrip("/") == namespace for p, _ in self._levels):
                return 0
            raise
        finally:
            self._stats.end("count", started)

    async def _list_dir(self, path: str, bounds: _Bounds | None = None) -> AsyncIterator[ItemInfo]:
        """One backend directory listing; its backend time is added to ``list_time``.

        ``bounds`` are passed to the backend as hints (object stores list from the start key, by prefix).
        """
        if bounds is None or not (bounds.prefix or bounds.start_after):
            listing = self._calls.list(path).__aiter__()
        else:
            listing = self._calls.list_range(path, prefix=bounds.prefix, start_after=bounds.start_after).__aiter__()
        while True:
            started = time.perf_counter_ns()
            try:
                info = await anext(listing)
            except StopAsyncIteration:
                return
            finally:
                self._stats.add("list_time", time.perf_counter_ns() - started)
            yield info

    async def _walk(
        self, path: str, deleted: bool, key_prefix: str = "", *, bounds: _Bounds | None = None
    ) -> AsyncGenerator[ItemInfo, None]:
        # A nesting directory holds the keys that start with the names of the nesting directories above
        # it and its own (data/ab/cd/ holds abcd...), so it is merged among the keys by that prefix, not by
        # its own name: while a namespace migrates, one directory holds both keys (level 1: abf0...) and
        # nesting directories (level 2: cd/ with abcd...). A directory is opened only when the merge reaches
        # its prefix, so with one nesting level at a time this streams. Namespace directories hold unrelated
        # keys: they are opened at once and their sorted streams merged.
        tiebreak = itertools.count()
        heap: builtins.list[tuple[str, int, ItemInfo, AsyncIterator[ItemInfo] | None]] = []
        hints = bounds if bounds is not None and not key_prefix and self._holds_keys_only(path) else None
        async for entry in self._list_dir(path, hints):
            if entry.directory:
                sub_path = f"{path}/{entry.name}" if path else entry.name
                if self._is_namespace_dir(sub_path):
                    heap.append(("", next(tiebreak), entry, None))
                elif bounds is None or bounds.may_hold(key_prefix + entry.name):
                    heap.append((key_prefix + entry.name, next(tiebreak), entry, None))
            elif entry.name.endswith(DEL_SUFFIX) == deleted:
                key = entry.name.removesuffix(DEL_SUFFIX) if deleted else entry.name
                if bounds is None or bounds.admits(key):
                    heap.append((entry.name, next(tiebreak), entry, None))
        heapq.heapify(heap)

        async def advance(stream: AsyncIterator[ItemInfo]) -> None:
            item = await anext(stream, None)
            if item is not None:
                heapq.heappush(heap, (item.name, next(tiebreak), item, stream))

        while heap:
            sort_key, _, item, stream = heapq.heappop(heap)
            if stream is None and item.directory:
                sub_path = f"{path}/{item.name}" if path else item.name
                await advance(self._walk_subdir(sub_path, deleted, sort_key, bounds))
                continue
            yield item.with_name(item.name.removesuffix(DEL_SUFFIX)) if deleted else item
            if stream is not None:
                await advance(stream)

    def _holds_keys_only(self, path: str) -> bool:
        """True for the directory of a namespace configured without nesting (levels ``[0]``) and without a
        configured namespace below it: every entry is a key (or a soft-deleted one), so a backend may list
        it from the start key and by the prefix of the keys."""
        if [levels for prefix, levels in self._levels if prefix.rstrip("/") == path] != [[0]]:
            return False
        below = path + "/" if path else ""
        return not any(prefix.rstrip("/") != path and prefix.startswith(below) for prefix, _ in self._levels)

    def _is_namespace_dir(self, path: str) -> bool:
        """True for a directory of a configured namespace (or a parent of one), not one of key nesting."""
        return any(prefix.startswith(path + "/") for prefix, _ in self._levels)

    async def _walk_subdir(
        self, path: str, deleted: bool, key_prefix: str, bounds: _Bounds | None
    ) -> AsyncIterator[ItemInfo]:
        try:
            async for info in self._walk(path, deleted, key_prefix, bounds=bounds):
                yield info
        except ObjectNotFound:
            return  # removed while we were listing


class _Bounds:
    """Which keys a listing wants: those starting with ``prefix`` and sorting after ``start_after``."""

    __slots__ = ("prefix", "start_after")

    def __init__(self, prefix: str, start_after: str | None) -> None:
        self.prefix = prefix
        self.start_after = start_after

    def admits(self, key: str) -> bool:
        """True if ``key`` itself is wanted."""
        return key.startswith(self.prefix) and (self.start_after is None or key > self.start_after)

    def may_hold(self, key_prefix: str) -> bool:
        """True if a nesting directory whose keys all start with ``key_prefix`` may hold a wanted key."""
        if not (key_prefix.startswith(self.prefix) or self.prefix.startswith(key_prefix)):
            return False
        # every key below sorts before start_after unless start_after runs on inside this directory
        after = self.start_after
        return after is None or key_prefix > after or after.startswith(key_prefix)
