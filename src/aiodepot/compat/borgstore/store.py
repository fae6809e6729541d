"""borgstore's ``Store``, running on [`aiodepot.Store`][aiodepot.Store] through the Portal.

Each public method is one blocking Portal call into the async core (``info``, ``load``, ``store`` and
``delete`` of a file store without cache or emulation run in the caller's thread instead, see
`aiodepot.store_direct`): names and nesting, soft deletion,
listing, ``gather``/``defrag``/``hash``/``quota``, statistics, the cache and the latency/bandwidth emulation
are aiodepot's. The layers are composed as borgstore has them:

```
 async Store ──► [Cache] ──► Meter ──► [Emulate] ──► primary backend (a SyncBackendBridge)
                  optional     counts     optional
                               backend calls (cache hits are not counted, as in borgstore)
```

This module adds what borgstore defines on top: its constructor and config format (levels plus
per-namespace cache policy, see ``_config``), its ``ItemInfo`` and its statistics keys (``_stats``).
"""

from __future__ import annotations

import builtins
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator
from types import TracebackType
from typing import Any, Literal, ParamSpec, TypeVar

from ... import Store as AsyncStore
from ...backends.base import Backend
from ...errors import InvalidName, StoreNotOpen
from ...layers.cache import Cache
from ...layers.emulate import Emulate
from ...layers.meter import Meter
from ...stats import Stats
from ._bridge import SyncBackendBridge
from ._config import CacheMode, CachePolicy, core_policy, parse_namespace_config
from ._emulation import CallerThreadEmulator, Sleeps
from ._portal import direct, iterate
from ._portal import run as _portal_run
from ._stats import BorgStats, figures, raw_counters
from .backends._base import BackendBase, ItemInfo, StoreValue, to_item_info, validate_sources, validate_value
from .backends.errors import BackendMustBeOpen, BackendURLInvalid, NoBackendGiven, ObjectNotFound, ReadRangeError
from .backends.posixfs import get_file_backend
from .backends.rclone import get_rclone_backend
from .backends.rest import get_rest_backend
from .backends.s3 import get_s3_backend
from .backends.sftp import get_sftp_backend
from .constants import DEL_SUFFIX, ROOTNS
from .utils import hashing
from .utils.nesting import nest, unnest

__all__ = [
    "BackendBase",
    "BackendURLInvalid",
    "CacheMode",
    "CachePolicy",
    "ItemInfo",
    "NoBackendGiven",
    "ObjectNotFound",
    "ReadRangeError",
    "Store",
    "StoreValue",
    "get_backend",
    "unnest",
]

P = ParamSpec("P")
T = TypeVar("T")


def run(func: Callable[P, Coroutine[Any, Any, T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """One Portal call; then the calling thread sleeps the delays the latency/bandwidth emulation owes
    (``time.sleep``, as borgstore does)."""
    sleeps = Sleeps()

    async def operation() -> T:
        CallerThreadEmulator.collecting(sleeps)
        return await func(*args, **kwargs)

    try:
        return _portal_run(operation)
    finally:
        for seconds in sleeps:
            time.sleep(seconds)


def get_backend(url: str, permissions: Any = None, quota: int | None = None) -> BackendBase | None:
    """Make the borgstore-style backend for a store URL (None if no backend knows the URL)."""
    backend = get_file_backend(url, permissions=permissions, quota=quota)
    if backend is not None:
        return backend
    if permissions is not None:
        raise ValueError("Permissions are only supported for the 'file:' backend.")
    if quota is not None:
        raise ValueError("Quota is only supported for the 'file:' backend.")
    for factory in (get_sftp_backend, get_rclone_backend, get_s3_backend, get_rest_backend):
        found: BackendBase | None = factory(url)
        if found is not None:
            return found
    return None


def _no_slash(name: str) -> None:
    if "/" in name:
        raise ValueError(f"item name must not contain '/' (namespace is given separately): {name!r}")


class Store:
    """borgstore's high-level key/value store, on aiodepot's async core.

    Args:
        url: a store URL (``file:///path``, ``sftp://…``, ``s3:…``, ``http[s]://…``, ``rest://…``, ``rclone:…``).
        backend: a backend object instead of a URL: one of this package's backends, or any borgstore-style
            ``BackendBase`` (those are called in a worker thread, one call at a time).
        config: namespace → ``{"levels": [...], "cache": "off"|"mirror"|"writethrough", "max_age": s, "size": bytes}``.
        permissions: a permission map for the ``file:`` backend.
        cache_url: a store URL for the cache backend (needed when a namespace caches).
        cache_backend: a cache backend object instead of ``cache_url``.

    ``BORGSTORE_LATENCY`` (µs) and ``BORGSTORE_BANDWIDTH`` (bit/s) emulate a slow primary backend. A Store may
    be shared between threads; its operations run on the Portal's event loop.
    """

    def __init__(
        self,
        url: str | None = None,
        backend: Any = None,
        config: dict[str, Any] | None = None,
        permissions: Any = None,
        *,
        cache_url: str | None = None,
        cache_backend: Any = None,
    ) -> None:
        self.url = url
        if backend is None and url is not None:
            backend = get_backend(url, permissions=permissions)
            if backend is None:
                raise BackendURLInvalid(f"Invalid or unsupported Backend Storage URL: {url}")
        if backend is None:
            raise NoBackendGiven("You need to give a backend instance or a backend url.")
        self.backend = backend
        if not config or not isinstance(config, dict):
            raise ValueError("No or invalid config given.")
        levels: dict[str, builtins.list[int]] = {}
        policies: dict[str, CachePolicy] = {}
        for namespace, ns_config in config.items():
            levels[namespace], policies[namespace] = parse_namespace_config(ns_config)
        if cache_url is not None and cache_backend is not None:
            raise ValueError("Only one of cache_url and cache_backend can be given.")
        caching = any(policy.mode is not CacheMode.C_OFF for policy in policies.values())
        if caching and cache_url is None and cache_backend is None:
            raise ValueError("cache_url or cache_backend is required for cache modes other than C_OFF.")
        if cache_backend is None and cache_url is not None:
            cache_backend = get_backend(cache_url)
            if cache_backend is None:
                raise BackendURLInvalid(f"Invalid or unsupported Cache Backend URL: {cache_url}")
        self.cache_backend = cache_backend
        self.cache_namespaces: builtins.list[tuple[str, CachePolicy]] = sorted(
            ((ns, policy) for ns, policy in policies.items() if policy.mode is not CacheMode.C_OFF),
            key=lambda item: len(item[0]),
            reverse=True,
        )
        emulator = CallerThreadEmulator.from_environment()  # BORGSTORE_LATENCY (µs), BORGSTORE_BANDWIDTH (bit/s)
        self.latency = emulator.latency
        """The emulated latency of the primary backend [s]."""
        self.bandwidth = emulator.bandwidth / 8
        """The emulated bandwidth of the primary backend [bytes/s] (0: unlimited)."""
        self._bridge = SyncBackendBridge(backend)
        self._meter_stats = Stats()
        # the Emulate layer stands for the slow link to the primary; the Meter counts what crosses it
        below: Backend = Meter(Emulate(self._bridge, emulator) if emulator else self._bridge, self._meter_stats)
        self._cache: Cache | None = None
        if cache_backend is not None:
            namespaces = {namespace: core_policy(policy) for namespace, policy in policies.items()}
            self._cache = below = Cache(below, SyncBackendBridge(cache_backend), namespaces)
        # emulation and cache are in the stack already: the async Store adds neither
        self.async_store = AsyncStore(backend=below, config=self._levels_config(levels), latency=0, bandwidth=0)
        """The [`aiodepot.Store`][aiodepot.Store] doing the work."""
        self._stats: BorgStats = BorgStats(self._raw_counters)
        """borgstore's raw counters (times in ns), a live view; ``stats`` gives the figures."""
        self.set_levels(levels)

    def __repr__(self) -> str:
        backend = type(self.backend).__name__
        if self.cache_backend is not None:
            return f"<Store(backend={backend!r}, cache_backend={type(self.cache_backend).__name__!r})>"
        return f"<Store(backend={backend!r})>"

    @staticmethod
    def _levels_config(levels: dict[str, builtins.list[int]]) -> dict[str, dict[str, Any]]:
        return {namespace: {"levels": list(lv)} for namespace, lv in levels.items()}

    def _get_levels(self, name: str) -> builtins.list[int]:
        for namespace, levels in self.levels:
            if name.startswith(namespace):
                return levels
        raise KeyError(f"no matching namespace found for: {name}")

    # configuration and lifecycle -------------------------------------------------------------------------

    def set_levels(self, levels: dict[str, builtins.list[int]], create: bool = False) -> None:
        """Set the nesting levels per namespace (``{"data/": [2]}``); ``create=True`` also runs ``create_levels``."""
        if not levels or not isinstance(levels, dict):
            raise ValueError("No or invalid levels configuration given.")
        self.async_store.set_levels(self._levels_config(levels))
        self.levels = sorted(levels.items(), key=lambda item: len(item[0]), reverse=True)
        if create:
            self.create_levels()

    def create_levels(self) -> None:
        """Create all namespace and nesting directories in advance (opens the store for that if it is closed)."""
        was_open = self.async_store.opened
        if not was_open:
            self.open()
        try:
            run(self.async_store.create_levels)
        finally:
            if not was_open:
                self.close()

    def create(self) -> None:
        """Initialize the storage (and the cache storage, if there is one)."""
        run(self.async_store.create, remember_layout=False)  # borgstore writes no layout.hid
        if getattr(self.backend, "precreate_dirs", False):
            self.create_levels()

    def destroy(self) -> None:
        """Remove the storage (and the cache storage) with everything in it."""
        run(self.async_store.destroy)

    def open(self) -> None:
        """Start using the store; a cache backend that does not open disables the cache (with a warning)."""
        run(self.async_store.open)

    def close(self) -> None:
        """Stop using the store (cleaning up size- and age-limited cache namespaces first); as in borgstore,
        closing a closed store raises ``BackendMustBeOpen``."""
        if not self.async_store.opened:
            raise BackendMustBeOpen("Backend must be open")
        run(self.async_store.close)

    def __enter__(self) -> Store:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Literal[False]:
        self.close()
        return False

    # single items ----------------------------------------------------------------------------------------

    def find(self, name: str, *, deleted: bool = False) -> str:
        """Return the backend name of ``name``: where it is, or (if missing) where it goes on the last level."""
        levels = self._get_levels(name)
        if len(levels) == 1:  # pure computation, no need for the event loop
            return nest(name, levels[0], add_suffix=DEL_SUFFIX if deleted else None)
        return run(self.async_store.find, name, deleted=deleted)

    def info(self, name: str, *, deleted: bool = False) -> Any:
        """Return the ``ItemInfo`` of ``name``; its ``name`` is the backend's last name element.

        ``info("")`` describes the store's root directory.
        """
        self._get_levels(name)
        if name == ROOTNS and not deleted:
            return run(self._root_info)

        store = self.async_store
        if store._direct_ok("info"):

            def info_here() -> Any:
                found = store._info_direct(name, deleted=deleted)  # checks the name first
                nested = store._find_blocking(name, deleted)
                return to_item_info(found)._replace(name=nested.rpartition("/")[2])

            return direct(info_here)

        async def info() -> Any:
            nested = await store.find(name, deleted=deleted)
            found = await store.info(name, deleted=deleted)
            return to_item_info(found)._replace(name=nested.rpartition("/")[2])

        return run(info)

    async def _root_info(self) -> Any:
        if not self.async_store.opened:
            raise StoreNotOpen("the store is not open")
        try:
            found = await self._bridge.info(ROOTNS)
        except InvalidName:  # backends that have no name for their root: it exists while the store is open
            return ItemInfo(ROOTNS, True, 0, True)
        return to_item_info(found)

    def load(self, name: str, *, size: int | None = None, offset: int = 0, deleted: bool = False) -> bytes:
        """Return the value of ``name``, or ``size`` bytes from ``offset`` (negative: from the end)."""
        self._get_levels(name)
        store = self.async_store
        if store._direct_ok("load"):  # a file store without cache or emulation: in this thread, as borgstore
            return direct(store._load_direct, name, offset=offset, size=size, deleted=deleted)
        return run(store.load, name, offset=offset, size=size, deleted=deleted)

    def store(self, name: str, value: StoreValue) -> None:
        """Store ``value`` (bytes or a C-contiguous memoryview) under ``name``; the buffer is not kept."""
        self._get_levels(name)
        store = self.async_store
        if store._direct_ok("store"):
            direct(store._store_direct, name, validate_value(value))
        else:
            run(store.store, name, validate_value(value))

    def delete(self, name: str, *, deleted: bool = False) -> None:
        """Delete ``name`` for good (see ``move(name, delete=True)`` for a soft delete)."""
        self._get_levels(name)
        store = self.async_store
        if store._direct_ok("delete"):
            direct(store._delete_direct, name, deleted=deleted)
        else:
            run(store.delete, name, deleted=deleted)

    def move(
        self,
        name: str,
        new_name: str | None = None,
        *,
        delete: bool = False,
        undelete: bool = False,
        change_level: bool = False,
        deleted: bool = False,
    ) -> None:
        """Soft-delete (``delete=True``), undelete, change the nesting level of, or rename an item."""
        self._get_levels(name)
        if not (delete or undelete or change_level):
            if not new_name:
                raise ValueError("Generic move requires new_name to be given.")
            self._get_levels(new_name)
        run(
            self.async_store.move,
            name,
            new_name,
            delete=delete,
            undelete=undelete,
            change_level=change_level,
            deleted=deleted,
        )

    def hash(self, name: str, algorithm: str = "sha256", *, deleted: bool = False) -> str:
        """Return the hex digest of the value of ``name`` (any `hashlib` algorithm or ``"blake3"``)."""
        self._get_levels(name)
        hashing.new(algorithm)  # borgstore's error for an unknown algorithm
        return run(self.async_store.hash, name, algorithm, deleted=deleted)

    # listing ---------------------------------------------------------------------------------------------

    def list(self, name: str, deleted: bool = False) -> Iterator[Any]:
        """Yield the ``ItemInfo`` of every item in namespace ``name`` (a generator; bypasses the cache).

        With ``deleted=True`` only soft-deleted items are yielded (without their ``.del`` suffix).
        """
        for info in iterate(lambda: self._list(name, deleted)):
            yield to_item_info(info)

    async def _list(self, name: str, deleted: bool) -> AsyncIterator[Any]:
        async for info in self.async_store.list(name, deleted=deleted):
            yield info

    # ranges ----------------------------------------------------------------------------------------------

    def gather(self, sources: Iterable[Any], *, namespace: str | None = None, deleted: bool = False) -> bytes:
        """Read ``(name, offset, size)`` ranges of items in ``namespace``; return them concatenated.

        A short range raises ``ReadRangeError``. In a cached namespace the ranges are read as ``load`` would.
        """
        checked = validate_sources(sources)
        for item, _, _ in checked:
            _no_slash(item)
        return run(self.async_store.gather, checked, namespace=namespace, deleted=deleted)

    def defrag(
        self,
        sources: Iterable[Any],
        *,
        target: str | None = None,
        algorithm: str | None = None,
        namespace: str | None = None,
        deleted: bool = False,
    ) -> str:
        """Write a new item in ``namespace`` from ranges of its items; return its name (without namespace).

        Without ``target`` the name is the ``algorithm`` hex digest of the content. Sources stay; an older
        cached value of the target is dropped.
        """
        checked = validate_sources(sources)
        for item, _, _ in checked:
            _no_slash(item)
        if target is not None:
            _no_slash(target)
        if target is None and algorithm is None:
            raise ValueError("Either target or algorithm must be given for defrag")
        if algorithm is not None:
            hashing.new(algorithm)
        return run(
            self.async_store.defrag, checked, target=target, algorithm=algorithm, namespace=namespace, deleted=deleted
        )

    # store-wide ------------------------------------------------------------------------------------------

    def quota(self) -> dict[str, int]:
        """Return ``{"limit": bytes, "usage": bytes}`` (-1: not set or not tracked)."""
        return run(self.async_store.quota)

    def _raw_counters(self) -> dict[str, int]:
        cache = self._cache.stats if self._cache is not None else {}
        return raw_counters(self.async_store.stats, self._meter_stats.snapshot(), cache)

    @property
    def stats(self) -> dict[str, Any]:
        """Call counts, times [s], volumes [bytes] and throughputs [bytes/s], with borgstore's keys."""
        return figures(self._stats, self._cache.stats if self._cache is not None else {})

    def cache_invalidate(self, name: str, *, deleted: bool = False) -> None:
        """Drop cached items: all (``name=""``), a cached namespace's, or one item's."""
        if self._cache is None or self._cache.disabled:
            return
        run(self.async_store.cache_invalidate, name, deleted=deleted)
