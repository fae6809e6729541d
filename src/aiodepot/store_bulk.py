"""Bulk operations of a Store (``load_many``, ``store_many``, …), generated keys and mapping views.

Every bulk call runs its items through ``_run_many``: one by one (each a full single-item call, bounded by
``max_concurrency``), or, where the backend does many items in one round trip or thread job
(``capabilities.batch_ops``), in batches of ``capabilities.batch_size``.

A bulk call of a million items must stay cancellable: its name checks and the work itself give the event
loop back every few milliseconds (see [`aiodepot.transfer`][aiodepot.transfer]), so Ctrl-C in a blocking
caller or a timeout stops it promptly, and no item is written after the cancellation went through.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, cast, overload

from . import keygen
from .items import ItemInfo, StoreValue, validate_value
from .names import DEL_SUFFIX, ROOTNS, nest, validate_name, validate_namespace
from .store_base import StoreBase
from .transfer import LoopShare, ProgressCallback, ProgressTracker, map_pausing, run_bounded

if TYPE_CHECKING:
    from .mapping import AsyncStoreMapping
    from .store import Store

__all__ = ["BulkOperations"]


def _checked_pair(pair: tuple[str, StoreValue]) -> tuple[str, bytes | memoryview]:
    name, value = pair
    return validate_name(name), validate_value(value)


class BulkOperations(StoreBase):
    """The ``…_many`` calls, ``store_new``/``store_many_new`` and ``mapping``."""

    # bulk ------------------------------------------------------------------------------------------------
    #
    # Every bulk call runs its items through _run_many: one by one (each a full single-item call, bounded
    # by max_concurrency), or, where the backend does many items in one round trip or thread job
    # (capabilities.batch_ops), in batches of capabilities.batch_size.

    async def _names(self, names: Iterable[str]) -> builtins.list[str]:
        checked = await map_pausing(validate_name, names)
        self._require_open()
        return checked

    async def _batchable(self, names: Sequence[str], deleted: bool) -> builtins.list[str] | None:
        """The backend names for a batched bulk call, or None where items must go one by one."""
        if not self.backend.capabilities.batch_ops or len(names) < 2:
            return None
        suffix = DEL_SUFFIX if deleted else None
        nested = []
        share = LoopShare()
        for index, name in enumerate(names):
            levels = self._levels_for(name)
            if len(levels) != 1:
                return None  # a namespace between two levels: finding each item costs lookups
            nested.append(nest(name, levels[0], add_suffix=suffix))
            if not index % 512:
                await share.pause()
        return nested

    async def _run_many(
        self,
        op: str,
        count: int,
        *,
        single: Callable[[int], Awaitable[Any]],
        nested: Sequence[str] | None,
        batch: Callable[[Sequence[int], builtins.list[str]], Awaitable[builtins.list[Any]]],
        max_concurrency: int | None,
        return_exceptions: bool,
        progress: ProgressCallback | None,
        bytes_total: int | None = None,
        bytes_of: Callable[[int, Any], int] | None = None,
    ) -> builtins.list[Any]:
        limit = max_concurrency or self.max_concurrency
        if limit < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {limit}")
        if nested is None:
            return await run_bounded(
                range(count),
                single,
                max_concurrency=limit,
                return_exceptions=return_exceptions,
                progress=progress,
                bytes_total=bytes_total,
                bytes_of=bytes_of,
            )
        tracker = ProgressTracker(progress, count, bytes_total)
        size = min(self.backend.capabilities.batch_size, limit)  # items in flight stay <= limit
        chunks = [range(start, min(start + size, count)) for start in range(0, count, size)]

        async def run_chunk(indices: range) -> builtins.list[Any]:
            started = self._stats.begin(op)
            volume = 0
            try:
                outcomes = await batch(indices, [nested[i] for i in indices])
                moved = [
                    0 if isinstance(outcome, Exception) or bytes_of is None else bytes_of(index, outcome)
                    for index, outcome in zip(indices, outcomes, strict=True)
                ]
                for outcome, nbytes in zip(outcomes, moved, strict=True):
                    if isinstance(outcome, Exception):
                        if not return_exceptions:
                            raise outcome
                        await tracker.step(0)
                        continue
                    volume += nbytes
                    await tracker.step(nbytes)
            finally:
                self._stats.end(op, started, volume, calls=len(indices))
            return outcomes

        parts = await run_bounded(chunks, run_chunk, max_concurrency=max(1, limit // size))
        return [outcome for part in parts for outcome in part]

    @overload
    async def load_many(
        self,
        names: Iterable[str],
        *,
        max_concurrency: int | None = ...,
        return_exceptions: Literal[False] = ...,
        progress: ProgressCallback | None = ...,
        deleted: bool = ...,
    ) -> builtins.list[bytes]: ...

    @overload
    async def load_many(
        self,
        names: Iterable[str],
        *,
        max_concurrency: int | None = ...,
        return_exceptions: Literal[True],
        progress: ProgressCallback | None = ...,
        deleted: bool = ...,
    ) -> builtins.list[bytes | Exception]: ...

    async def load_many(
        self,
        names: Iterable[str],
        *,
        max_concurrency: int | None = None,
        return_exceptions: bool = False,
        progress: ProgressCallback | None = None,
        deleted: bool = False,
    ) -> builtins.list[bytes] | builtins.list[bytes | Exception]:
        """Load many values concurrently; the result list is in the order of ``names``.

        The first failure cancels the rest and is raised as itself, unless ``return_exceptions=True``
        puts each failure in the result list in its item's place.
        """
        checked = await self._names(names)

        async def single(index: int) -> bytes:
            return await self.load(checked[index], deleted=deleted)

        async def batch(_: Sequence[int], nested: builtins.list[str]) -> builtins.list[Any]:
            return await self._calls.load_batch(nested)

        return await self._run_many(
            "load",
            len(checked),
            single=single,
            nested=await self._batchable(checked, deleted),
            batch=batch,
            max_concurrency=max_concurrency,
            return_exceptions=return_exceptions,
            progress=progress,
            bytes_of=lambda _, data: len(data),
        )

    async def store_many(
        self,
        items: Mapping[str, StoreValue] | Iterable[tuple[str, StoreValue]],
        *,
        max_concurrency: int | None = None,
        return_exceptions: bool = False,
        progress: ProgressCallback | None = None,
    ) -> builtins.list[Exception | None]:
        """Store many values concurrently (a mapping or ``(name, value)`` pairs).

        Returns one entry per item: None, or with ``return_exceptions=True`` the item's exception.
        """
        pairs = items.items() if isinstance(items, Mapping) else items
        checked = await map_pausing(_checked_pair, pairs)
        self._require_open()
        batched = self.backend.capabilities.batch_ops and len(checked) > 1

        async def single(index: int) -> None:
            await self.store(*checked[index])

        async def batch(indices: Sequence[int], nested: builtins.list[str]) -> builtins.list[Any]:
            return await self._calls.store_batch(
                [(name, checked[index][1]) for index, name in zip(indices, nested, strict=True)]
            )

        return await self._run_many(
            "store",
            len(checked),
            single=single,
            nested=await self._batchable([name for name, _ in checked], False) if batched else None,
            batch=batch,
            max_concurrency=max_concurrency,
            return_exceptions=return_exceptions,
            progress=progress,
            bytes_total=None if progress is None else sum(len(value) for _, value in checked),
            bytes_of=lambda index, _: len(checked[index][1]),
        )

    async def delete_many(
        self,
        names: Iterable[str],
        *,
        max_concurrency: int | None = None,
        return_exceptions: bool = False,
        progress: ProgressCallback | None = None,
        deleted: bool = False,
    ) -> builtins.list[Exception | None]:
        """Delete many items concurrently; returns None per item (or its exception, see ``store_many``)."""
        checked = await self._names(names)

        async def single(index: int) -> None:
            await self.delete(checked[index], deleted=deleted)

        async def batch(_: Sequence[int], nested: builtins.list[str]) -> builtins.list[Any]:
            return await self._calls.delete_batch(nested)

        return await self._run_many(
            "delete",
            len(checked),
            single=single,
            nested=await self._batchable(checked, deleted),
            batch=batch,
            max_concurrency=max_concurrency,
            return_exceptions=return_exceptions,
            progress=progress,
        )

    async def info_many(
        self,
        names: Iterable[str],
        *,
        max_concurrency: int | None = None,
        progress: ProgressCallback | None = None,
        deleted: bool = False,
    ) -> builtins.list[ItemInfo]:
        """Describe many items concurrently, in the order of ``names`` (missing ones: ``exists=False``)."""
        checked = await self._names(names)

        async def single(index: int) -> ItemInfo:
            return await self.info(checked[index], deleted=deleted)

        async def batch(indices: Sequence[int], nested: builtins.list[str]) -> builtins.list[Any]:
            infos = await self._calls.info_batch(nested)
            return [
                info.with_name(checked[index]) if isinstance(info, ItemInfo) else info
                for index, info in zip(indices, infos, strict=True)
            ]

        return await self._run_many(
            "info",
            len(checked),
            single=single,
            nested=await self._batchable(checked, deleted),
            batch=batch,
            max_concurrency=max_concurrency,
            return_exceptions=False,
            progress=progress,
        )

    # generated keys and dict-style views ------------------------------------------------------------------

    async def store_new(self, namespace: str, value: StoreValue, *, key: str = "sha256") -> str:
        """Store ``value`` under a generated key in ``namespace``; return the item's full name.

        ``key`` is a hash algorithm (any hashlib name, or ``"blake3"``): the key is the value's hex digest,
        and an item already stored under it is trusted to hold the same content and left alone (storing
        the same content twice stores it once; two writers racing both write identical bytes atomically).
        ``key="uuid"`` gives a random key (a uuid4 as 32 hex digits). See [`aiodepot.keygen`][aiodepot.keygen].
        """
        return (await self.store_many_new(namespace, [value], key=key))[0]

    async def store_many_new(
        self,
        namespace: str,
        values: Iterable[StoreValue],
        *,
        key: str = "sha256",
        max_concurrency: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> builtins.list[str]:
        """[`store_new`][aiodepot.Store.store_new] for many values at once; the names come back in order.

        Content keys are looked up with one ``info_many`` and only the missing values are stored, once
        each (a value given twice is stored once), with one ``store_many``.
        """
        keygen.check_key_method(key)
        checked = [validate_value(value) for value in values]
        validate_namespace(namespace.strip("/") if isinstance(namespace, str) else namespace)
        self._require_open()
        if sum(len(value) for value in checked) > keygen.HASH_INLINE_LIMIT:
            keys = await asyncio.to_thread(lambda: [keygen.key_for(value, key) for value in checked])
        else:
            keys = [keygen.key_for(value, key) for value in checked]
        names = [keygen.full_name(namespace, new_key) for new_key in keys]
        todo = dict(zip(names, checked, strict=True))  # one store per distinct name
        if key != keygen.UUID:
            infos = await self.info_many(todo, max_concurrency=max_concurrency)
            for info in infos:
                if info.exists and not info.directory:
                    del todo[info.name]
        await self.store_many(todo, max_concurrency=max_concurrency, progress=progress)
        return names

    def mapping(self, namespace: str = ROOTNS, *, soft_delete: bool = False) -> AsyncStoreMapping:
        """A dict-like async view of ``namespace``: ``await m.get(key)``, ``await m.set(key, value)``, ``async for``.

        See [`AsyncStoreMapping`][aiodepot.mapping.AsyncStoreMapping]; with ``soft_delete=True`` its
        ``delete`` soft-deletes.
        """
        from .mapping import AsyncStoreMapping

        return AsyncStoreMapping(cast("Store", self), namespace, soft_delete=soft_delete)
