"""The async Store: names, namespaces and nesting, soft deletion, statistics and emulation over a backend.

```python
store = aiodepot.Store("file:///srv/depot", config={"data/": {"levels": [2]}, "config/": {"levels": [0]}})
await store.create()
async with store:
    await store.store("data/" + key, value)
    value = await store.load("data/" + key)
```

Every operation validates its names before anything is touched, then maps each item name to the
backend name it lives at: the namespace's nesting levels spread keys over directories
(``data/0123…`` → ``data/01/23/0123…``) and a soft-deleted item carries the ``.del`` suffix. A namespace
may list several levels while a store migrates between layouts: an item is found at any of them, new
items go to the last one, and ``move(name, change_level=True)`` migrates an item.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable, Coroutine
from typing import Any

from .errors import StoreError
from .store_base import DEFAULT_CONFIG
from .store_bulk import BulkOperations
from .store_direct import DirectCalls, name_the_store
from .store_files import FileTransfers
from .store_listing import Listing
from .store_streams import Streams

__all__ = ["DEFAULT_CONFIG", "Store"]


class Store(DirectCalls, BulkOperations, FileTransfers, Listing, Streams):
    """An async key/value store over a backend.

    Args:
        url: a store URL such as ``file:///srv/depot`` or ``memory://scratch`` (or give ``backend``).
        backend: a backend instance instead of a URL.
        config: namespace → ``{"levels": [...]}``; the longest matching namespace applies to a name.
            Default: the whole store flat (``{"": {"levels": [0]}}``).
        permissions: a permission map or shortcut, for backends that enforce them (file, memory).
        quota: a byte limit, for backends that track one (file, memory).
        latency: emulated extra latency per backend call, in seconds (default: ``BORGSTORE_LATENCY``,
            which is in microseconds).
        bandwidth: emulated link speed in bits per second (default: ``BORGSTORE_BANDWIDTH``).
        max_concurrency: operations in flight in bulk calls (default: what the backend prefers).
        backend_options: further keyword arguments for the backend (e.g. ``{"fsync": True}``).
        gather_gap: ``gather`` reads ranges of one item that are at most this many bytes apart as one.
        max_bytes_in_flight: the most bytes that ranged transfers (``load_file``, ``store_file``) hold in
            memory at once, across all calls on this store.
        cache_url: a store URL for the cache backend of namespaces whose config sets ``"cache"`` (``"off"``,
            ``"mirror"`` or ``"writethrough"``), ``"max_age"`` (s) and ``"size"`` (bytes); see
            [`Cache`][aiodepot.layers.cache.Cache]. ``memory://`` keeps the cache in process memory.
        cache_backend: a cache backend instance instead of ``cache_url``.
        timeout: seconds after which one operation is cancelled and raises ``TimeoutError`` (default:
            none). A bulk call is one operation; for ``list`` and ``open_reader`` each step is one.
        writeback: buffer stores, deletes and moves in a local backlog until [`flush`][aiodepot.Store.flush]
            (or ``close``): True keeps it in memory (a crash loses it), a store URL such as
            ``sqlite:///var/tmp/backlog.db`` or a backend keeps it on local disk (replayed after a crash).
            Namespaces whose config sets ``"cache": "writeback"`` are then the only ones buffered (their
            ``size`` and ``max_age`` bound the backlog); such a config alone means a memory backlog. See
            [`WriteBack`][aiodepot.layers.WriteBack].

    Its parts live in modules by concern: [`store_base`][aiodepot.store_base] (configuration, lifecycle,
    single items, ranges), [`store_listing`][aiodepot.store_listing], [`store_files`][aiodepot.store_files],
    [`store_streams`][aiodepot.store_streams], [`store_bulk`][aiodepot.store_bulk] and
    `store_direct` (the sync facade's calls in the caller's thread).
    """


def _naming_the_store(method: Callable[..., Coroutine[Any, Any, Any]]) -> Callable[..., Coroutine[Any, Any, Any]]:
    """``method`` with the store's URL put on a [`StoreError`][aiodepot.errors.StoreError] that leaves it
    without one (``exc.store``), so a message can say which store failed when a program has several.

    A method that runs under the store's ``timeout`` (``store_base.operation``) gets one wrapper doing both
    rather than a wrapper around a wrapper: every awaited call pays for each coroutine frame.
    """
    timed = getattr(method, "__aiodepot_operation__", None)
    if timed is None:

        @functools.wraps(method)
        async def named(self: Store, *args: Any, **kwargs: Any) -> Any:
            try:
                return await method(self, *args, **kwargs)
            except StoreError as exc:
                name_the_store(self, exc)
                raise

        return named
    inner: Callable[..., Coroutine[Any, Any, Any]] = timed

    @functools.wraps(method)
    async def named_timed(self: Store, *args: Any, **kwargs: Any) -> Any:
        try:
            if self.timeout is None:
                return await inner(self, *args, **kwargs)
            async with asyncio.timeout(self.timeout):
                return await inner(self, *args, **kwargs)
        except StoreError as exc:
            name_the_store(self, exc)
            raise

    return named_timed


for _name, _method in inspect.getmembers(Store, inspect.iscoroutinefunction):
    if not _name.startswith("_"):
        setattr(Store, _name, _naming_the_store(_method))
del _name, _method
