"""Dict-style views of one namespace: [`StoreMapping`][aiodepot.mapping.StoreMapping] (a
``MutableMapping[str, bytes]`` over a [`SyncStore`][aiodepot.SyncStore]) and its async twin
[`AsyncStoreMapping`][aiodepot.mapping.AsyncStoreMapping] over a [`Store`][aiodepot.Store].

```python
with aiodepot.SyncStore("file:///srv/depot") as store:
    cache = store.mapping("cache")
    cache["answer"] = b"42"              # stores cache/answer
    "answer" in cache                    # one info() call, no load
    for key in cache.keys(prefix="a"):   # a lazy, sorted listing
        ...
```

Keys are item names inside the namespace, without the namespace prefix (``"answer"``, or
``"sub/item"`` for an item of a sub-namespace); values are bytes. Every operation goes to the store:
nothing is cached, so two views (or two processes) see each other's changes. Iteration is a sorted,
lazy walk of the namespace and its sub-namespaces; ``len()`` walks it too (it costs a listing, not a
counter). ``items()`` and ``values()`` load in bulk batches; ``update()`` and ``clear()`` store and
delete in bulk. A key that breaks the name rules raises [`InvalidName`][aiodepot.errors.InvalidName]
(a ``ValueError``); ``in`` answers False for it, and for anything that is not a str. As in the store
itself, a key cannot also be the sub-namespace of another (``"a"`` and ``"a/b"``), and in a namespace
with nesting levels a key must be long enough to nest.
"""

from __future__ import annotations

import builtins
import itertools
from collections.abc import AsyncIterator, ItemsView, Iterable, Iterator, KeysView, Mapping, MutableMapping, ValuesView
from typing import TYPE_CHECKING, Any, TypeVar, overload

from .blocking_iter import BlockingIterator
from .errors import InvalidName, ObjectNotFound
from .items import ItemInfo, StoreValue, validate_value
from .names import ROOTNS, validate_name, validate_namespace
from .walk import walk

if TYPE_CHECKING:
    from _typeshed import SupportsKeysAndGetItem

    from .store import Store
    from .sync import SyncStore

__all__ = ["AsyncStoreMapping", "StoreMapping"]

T = TypeVar("T")

LOAD_BATCH = 64
"""Values loaded per ``load_many`` call while iterating ``items()``/``values()``."""
DELETE_BATCH = 1024
"""Keys deleted per ``delete_many`` call in ``clear()``."""


class AsyncStoreMapping:
    """A dict-like async view of one namespace of a [`Store`][aiodepot.Store] (see ``Store.mapping``).

    Args:
        store: the store (open it before use).
        namespace: the namespace the keys live in (``""``: the whole store).
        soft_delete: ``delete`` soft-deletes items (``move(name, delete=True)``) instead of removing them.
    """

    def __init__(self, store: Store, namespace: str = ROOTNS, *, soft_delete: bool = False) -> None:
        self.store = store
        self.namespace = validate_namespace(namespace.strip("/") if isinstance(namespace, str) else namespace)
        self.prefix = self.namespace + "/" if self.namespace else ROOTNS
        self.soft_delete = soft_delete

    def __repr__(self) -> str:
        return f"<AsyncStoreMapping {self.store!r} namespace={self.namespace!r}>"

    def name(self, key: object) -> str:
        """The full item name of ``key``; raises ``TypeError``/``InvalidName`` for a key that cannot be one."""
        if not isinstance(key, str):
            raise TypeError(f"keys are str, not {type(key).__name__}")
        if not key:
            raise InvalidName("a key must not be empty")
        return validate_name(self.prefix + key)

    async def load(self, key: str) -> bytes:
        """The value of ``key``; raises [`ObjectNotFound`][aiodepot.errors.ObjectNotFound] (a KeyError) if missing."""
        name = self.name(key)
        try:
            return await self.store.load(name)
        except ObjectNotFound as exc:
            raise ObjectNotFound(key) from exc

    async def get(self, key: str, default: T | None = None) -> bytes | T | None:
        """The value of ``key``, or ``default`` if it is missing."""
        try:
            return await self.load(key)
        except ObjectNotFound:
            return default

    async def set(self, key: str, value: StoreValue) -> None:
        """Store ``value`` under ``key``."""
        await self.store.store(self.name(key), value)

    async def delete(self, key: str) -> None:
        """Remove ``key`` (soft-delete it, for a view made with ``soft_delete=True``); KeyError if missing."""
        name = self.name(key)
        try:
            if self.soft_delete:
                await self.store.move(name, delete=True)
            else:
                await self.store.delete(name)
        except ObjectNotFound as exc:
            raise ObjectNotFound(key) from exc

    async def contains(self, key: object) -> bool:
        """True if ``key`` is an item of the namespace (one ``info`` call, no load)."""
        try:
            info = await self.store.info(self.name(key))
        except (TypeError, InvalidName):  # not a name, or one this namespace cannot hold (too short to nest)
            return False
        return info.exists and not info.directory

    async def infos(self, prefix: str = "") -> AsyncIterator[ItemInfo]:
        """Yield an [`ItemInfo`][aiodepot.items.ItemInfo] per key that starts with ``prefix``, sorted.

        ``info.name`` is the key (the name inside the namespace).
        """
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, not {type(prefix).__name__}")
        # A prefix with a "/" lies inside a sub-namespace: start the walk there. Walks are sorted by full
        # name, so the keys with a prefix are consecutive: stop at the first one past them.
        directory = prefix.rpartition("/")[0]
        start = (self.prefix + directory).strip("/") if directory else self.namespace
        wanted = self.prefix + prefix
        try:
            async for entry in walk(self.store, start):
                if entry.is_namespace:
                    continue
                if entry.name.startswith(wanted):
                    yield ItemInfo.for_file(entry.name.removeprefix(self.prefix), entry.size, mtime=entry.mtime)
                elif entry.name > wanted:
                    return
        except (ObjectNotFound, InvalidName):
            return  # no such sub-namespace (or none could have that name): no keys

    async def keys(self, prefix: str = "") -> AsyncIterator[str]:
        """Yield the keys that start with ``prefix``, sorted."""
        async for info in self.infos(prefix):
            yield info.name

    def __aiter__(self) -> AsyncIterator[str]:
        return self.keys()

    async def items(self, prefix: str = "") -> AsyncIterator[tuple[str, bytes]]:
        """Yield ``(key, value)`` for the keys that start with ``prefix``, loading values in bulk batches.

        A key removed between listing and loading is skipped.
        """
        batch: builtins.list[str] = []
        async for key in self.keys(prefix):
            batch.append(key)
            if len(batch) >= LOAD_BATCH:
                for pair in await self._load_batch(batch):
                    yield pair
                batch = []
        if batch:
            for pair in await self._load_batch(batch):
                yield pair

    async def _load_batch(self, keys: builtins.list[str]) -> builtins.list[tuple[str, bytes]]:
        values = await self.store.load_many([self.prefix + key for key in keys], return_exceptions=True)
        pairs = []
        for key, value in zip(keys, values, strict=True):
            if isinstance(value, ObjectNotFound):
                continue
            if isinstance(value, Exception):
                raise value
            pairs.append((key, value))
        return pairs

    async def values(self, prefix: str = "") -> AsyncIterator[bytes]:
        """Yield the values of the keys that start with ``prefix``, in key order (see ``items``)."""
        async for _, value in self.items(prefix):
            yield value

    async def count(self, prefix: str = "") -> int:
        """The number of keys that start with ``prefix`` (walks the listing)."""
        return sum([1 async for _ in self.infos(prefix)])

    async def update(self, other: Mapping[str, StoreValue] | Iterable[tuple[str, StoreValue]] = (), /) -> None:
        """Store many keys at once, through ``store_many`` (a later pair for the same key wins)."""
        pairs = other.items() if isinstance(other, Mapping) else other
        merged = {self.name(key): validate_value(value) for key, value in pairs}
        if merged:
            await self.store.store_many(merged)

    async def clear(self) -> None:
        """Remove every key (soft-delete them, with ``soft_delete=True``), in bulk batches."""
        keys = [key async for key in self.keys()]
        for start in range(0, len(keys), DELETE_BATCH):
            names = [self.prefix + key for key in keys[start : start + DELETE_BATCH]]
            if self.soft_delete:
                for name in names:
                    try:
                        await self.store.move(name, delete=True)
                    except ObjectNotFound:
                        continue
            else:
                outcomes = await self.store.delete_many(names, return_exceptions=True)
                for outcome in outcomes:
                    if isinstance(outcome, Exception) and not isinstance(outcome, ObjectNotFound):
                        raise outcome


class StoreMapping(MutableMapping[str, bytes]):
    """A ``MutableMapping[str, bytes]`` over one namespace of a [`SyncStore`][aiodepot.SyncStore].

    Made by [`SyncStore.mapping`][aiodepot.SyncStore.mapping]; see the module docs for the semantics.
    Each operation is one blocking store call (``in`` is an ``info``, not a load); iteration fetches keys a
    batch at a time.
    """

    def __init__(self, store: SyncStore, namespace: str = ROOTNS, *, soft_delete: bool = False) -> None:
        self.sync_store = store
        self.view = AsyncStoreMapping(store.async_store, namespace, soft_delete=soft_delete)

    @property
    def namespace(self) -> str:
        """The namespace of the keys."""
        return self.view.namespace

    def __repr__(self) -> str:
        return f"<StoreMapping {self.sync_store!r} namespace={self.namespace!r}>"

    def __getitem__(self, key: str) -> bytes:
        if not isinstance(key, str):
            raise KeyError(key)
        return self.sync_store._run(self.view.load, key)

    def __setitem__(self, key: str, value: bytes) -> None:
        self.sync_store._run(self.view.set, key, value)

    def __delitem__(self, key: str) -> None:
        if not isinstance(key, str):
            raise KeyError(key)
        self.sync_store._run(self.view.delete, key)

    def __contains__(self, key: object) -> bool:
        return self.sync_store._run(self.view.contains, key)

    def __iter__(self) -> Iterator[str]:
        return (info.name for info in self._infos(""))

    def __len__(self) -> int:
        return self.sync_store._run(self.view.count)

    def _infos(self, prefix: str) -> Iterator[ItemInfo]:
        return BlockingIterator(self.sync_store.portal, self.view.infos(prefix), timeout=self.sync_store.timeout)

    def keys(self, prefix: str = "") -> _Keys:
        """The keys, or those that start with ``prefix``: a live, lazily listed view."""
        return _Keys(self, prefix)

    def items(self, prefix: str = "") -> _Items:
        """``(key, value)`` pairs (of the keys with ``prefix``), values loaded in bulk batches while iterating."""
        return _Items(self, prefix)

    def values(self, prefix: str = "") -> _Values:
        """The values (of the keys with ``prefix``), in key order, loaded in bulk batches while iterating."""
        return _Values(self, prefix)

    def _pairs(self, prefix: str) -> Iterator[tuple[str, bytes]]:
        keys = (info.name for info in self._infos(prefix))
        while batch := builtins.list(itertools.islice(keys, LOAD_BATCH)):
            yield from self.sync_store._run(self.view._load_batch, batch)

    @overload
    def update(self, other: SupportsKeysAndGetItem[str, bytes], /, **kwargs: bytes) -> None: ...

    @overload
    def update(self, other: Iterable[tuple[str, bytes]], /, **kwargs: bytes) -> None: ...

    @overload
    def update(self, /, **kwargs: bytes) -> None: ...

    def update(self, other: Any = (), /, **kwargs: bytes) -> None:
        """Store many keys at once, through ``store_many`` (as ``dict.update``: a mapping, pairs, keywords)."""
        keys = other.keys() if hasattr(other, "keys") else None  # the protocol dict.update follows
        pairs = [(key, other[key]) for key in keys] if keys is not None else builtins.list(other)
        self.sync_store._run(self.view.update, pairs + builtins.list(kwargs.items()))

    def clear(self) -> None:
        """Remove every key, in bulk batches."""
        self.sync_store._run(self.view.clear)


class _Keys(KeysView[str]):
    _mapping: StoreMapping

    def __init__(self, mapping: StoreMapping, prefix: str) -> None:
        super().__init__(mapping)
        self._prefix = prefix

    def __iter__(self) -> Iterator[str]:
        return (info.name for info in self._mapping._infos(self._prefix))

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.startswith(self._prefix) and key in self._mapping

    def __len__(self) -> int:
        return self._mapping.sync_store._run(self._mapping.view.count, self._prefix)


class _Items(ItemsView[str, bytes]):
    _mapping: StoreMapping

    def __init__(self, mapping: StoreMapping, prefix: str) -> None:
        super().__init__(mapping)
        self._prefix = prefix

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        return self._mapping._pairs(self._prefix)

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, tuple) or len(item) != 2:
            return False
        key, value = item
        if not isinstance(key, str) or not key.startswith(self._prefix):
            return False
        try:
            return bool(self._mapping[key] == value)
        except (KeyError, InvalidName):
            return False

    def __len__(self) -> int:
        return self._mapping.sync_store._run(self._mapping.view.count, self._prefix)


class _Values(ValuesView[bytes]):
    _mapping: StoreMapping

    def __init__(self, mapping: StoreMapping, prefix: str) -> None:
        super().__init__(mapping)
        self._prefix = prefix

    def __iter__(self) -> Iterator[bytes]:
        return (value for _, value in self._mapping._pairs(self._prefix))

    def __len__(self) -> int:
        return self._mapping.sync_store._run(self._mapping.view.count, self._prefix)
