"""Listing a Store's namespaces: one sorted stream through all nesting levels, merged with a heap."""

from __future__ import annotations

import builtins
import heapq
import itertools
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from .errors import ObjectNotFound
from .items import ItemInfo
from .names import DEL_SUFFIX, ROOTNS, validate_namespace
from .store_base import StoreBase

if TYPE_CHECKING:
    pass

__all__ = ["Listing"]


class Listing(StoreBase):
    """[`Store.list`][aiodepot.Store.list] and the walk through nesting directories behind it."""

    # listing ---------------------------------------------------------------------------------------------

    async def list(self, name: str = ROOTNS, *, deleted: bool = False) -> AsyncIterator[ItemInfo]:
        """Yield the items of namespace ``name``, sorted, through all nesting levels.

        Items carry their key (the last name element) as ``info.name``. Soft-deleted items are skipped,
        or, with ``deleted=True``, are the only ones yielded (without the ``.del`` suffix). A configured
        namespace that nothing was stored in yet lists empty; any other missing one raises
        ``ObjectNotFound``.
        """
        namespace = validate_namespace(name)
        self._require_open()
        self._stats.add("list_calls")
        configured = any(prefix.rstrip("/") == namespace for prefix, _ in self._levels)
        walk = self._walk(namespace, deleted)
        try:
            first = await anext(walk, None)
        except ObjectNotFound:
            if configured:
                return  # a configured namespace nothing was stored in yet is empty, not missing
            raise
        if first is None:
            return
        yield first
        async for info in walk:
            yield info

    async def _list_dir(self, path: str) -> AsyncIterator[ItemInfo]:
        """One backend directory listing; its backend time is added to ``list_time``."""
        listing = self._calls.list(path).__aiter__()
        while True:
            started = time.perf_counter_ns()
            try:
                info = await anext(listing)
            except StopAsyncIteration:
                return
            finally:
                self._stats.add("list_time", time.perf_counter_ns() - started)
            yield info

    async def _walk(self, path: str, deleted: bool, key_prefix: str = "") -> AsyncIterator[ItemInfo]:
        # A nesting directory holds the keys that start with the names of the nesting directories above
        # it and its own (data/ab/cd/ holds abcd...), so it is merged among the keys by that prefix, not by
        # its own name: while a namespace migrates, one directory holds both keys (level 1: abf0...) and
        # nesting directories (level 2: cd/ with abcd...). A directory is opened only when the merge reaches
        # its prefix, so with one nesting level at a time this streams. Namespace directories hold unrelated
        # keys: they are opened at once and their sorted streams merged.
        tiebreak = itertools.count()
        heap: builtins.list[tuple[str, int, ItemInfo, AsyncIterator[ItemInfo] | None]] = []
        async for entry in self._list_dir(path):
            if entry.directory:
                sub_path = f"{path}/{entry.name}" if path else entry.name
                sort_key = "" if self._is_namespace_dir(sub_path) else key_prefix + entry.name
                heap.append((sort_key, next(tiebreak), entry, None))
            elif entry.name.endswith(DEL_SUFFIX) == deleted:
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
                await advance(self._walk_subdir(sub_path, deleted, sort_key))
                continue
            yield item.with_name(item.name.removesuffix(DEL_SUFFIX)) if deleted else item
            if stream is not None:
                await advance(stream)

    def _is_namespace_dir(self, path: str) -> bool:
        """True for a directory of a configured namespace (or a parent of one), not one of key nesting."""
        return any(prefix.startswith(path + "/") for prefix, _ in self._levels)

    async def _walk_subdir(self, path: str, deleted: bool, key_prefix: str) -> AsyncIterator[ItemInfo]:
        try:
            async for info in self._walk(path, deleted, key_prefix):
                yield info
        except ObjectNotFound:
            return  # removed while we were listing
