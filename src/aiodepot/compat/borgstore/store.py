"""borgstore's ``Store``, running on [`aiodepot.Store`][aiodepot.Store] through the Portal.

Each public method is one blocking Portal call into a coroutine that does the work on the async core:
names and nesting, soft deletion, listing, ``gather``/``defrag``/``hash``/``quota`` are aiodepot's. This
layer adds what borgstore defines on top: its constructor and config format (levels plus per-namespace cache
policy), its ``ItemInfo``, its statistics, its latency/bandwidth emulation (sleeps in the calling thread,
after the primary backend calls) and its optional second-tier cache (``off``/``mirror``/``writethrough``
per namespace, with ``max_age`` and ``size`` limits kept by an in-memory LRU index per namespace).
"""

from __future__ import annotations

import builtins
import enum
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, Literal, NamedTuple, TypeVar

from ... import Store as AsyncStore
from ...emulation import Emulator
from ...errors import InvalidName, StoreNotOpen
from ...errors import ObjectNotFound as _AsyncObjectNotFound
from ...items import ItemInfo as AsyncItemInfo
from ._bridge import SyncBackendBridge
from ._portal import iterate, run
from .backends._base import BackendBase, ItemInfo, StoreValue, to_item_info, validate_sources, validate_value
from .backends.errors import BackendURLInvalid, NoBackendGiven, ObjectNotFound, ReadRangeError
from .backends.posixfs import get_file_backend
from .backends.rclone import get_rclone_backend
from .backends.rest import get_rest_backend
from .backends.s3 import get_s3_backend
from .backends.sftp import get_sftp_backend
from .constants import DEL_SUFFIX, ROOTNS
from .utils import hashing
from .utils.nesting import nest

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
]

logger = logging.getLogger(__name__)
T = TypeVar("T")

CACHE_RESCAN_DIVISOR = 4
"""A size-limited cache namespace is rescanned after this store put ``size / CACHE_RESCAN_DIVISOR`` bytes in."""


class CacheMode(enum.Enum):
    """How a namespace uses the cache backend."""

    C_OFF = "off"
    C_MIRROR = "mirror"
    C_WRITETHROUGH = "writethrough"

    @classmethod
    def from_str(cls, value: Any) -> CacheMode:
        """Accept a CacheMode or its name in any case (``"mirror"``); anything else raises ``ValueError``."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            try:
                return cls(value.lower())
            except ValueError:
                pass
        raise ValueError(f"unknown CacheMode: {value!r}")


class CachePolicy(NamedTuple):
    """The cache settings of one namespace."""

    mode: CacheMode
    max_age: float | None
    size: int | None


_NO_CACHE = CachePolicy(CacheMode.C_OFF, None, None)
_CACHING = (CacheMode.C_WRITETHROUGH, CacheMode.C_MIRROR)


class _CacheIndex:
    """This store's view of one size- or age-limited cache namespace: nested name -> (size, last use).

    Least recently used first. Other clients sharing the cache backend are seen at the next scan (at open,
    at close, and after ``size / CACHE_RESCAN_DIVISOR`` bytes were inserted).
    """

    def __init__(self, namespace: str, policy: CachePolicy) -> None:
        self.namespace = namespace
        self.policy = policy
        self.entries: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self.total = 0
        self.inserted = 0

    def touch(self, name: str, size: int, used: float) -> None:
        self.drop(name)
        self.entries[name] = (size, used)
        self.total += size

    def drop(self, name: str) -> None:
        entry = self.entries.pop(name, None)
        if entry is not None:
            self.total -= entry[0]

    def rebuild(self, seen: dict[str, tuple[int, float]]) -> None:
        """Adopt a scan's findings; for items this store used more recently, keep its time of use."""
        merged = {name: (size, max(used, self.entries.get(name, (0, 0.0))[1])) for name, (size, used) in seen.items()}
        ordered = sorted(merged.items(), key=lambda item: (item[1][1], item[0]))
        self.entries = OrderedDict(ordered)
        self.total = sum(size for size, _ in self.entries.values())
        self.inserted = 0


class _Call:
    """Per-operation bookkeeping: the emulation sleeps owed once the Portal call has returned."""

    __slots__ = ("sleeps",)

    def __init__(self) -> None:
        self.sleeps: builtins.list[float] = []


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


def _parse_namespace_config(ns_config: Any) -> tuple[builtins.list[int], CachePolicy]:
    if not isinstance(ns_config, dict):
        raise ValueError(f"Invalid namespace config: expected a dict, got {type(ns_config).__name__!r}.")
    unknown = set(ns_config) - {"levels", "cache", "max_age", "size"}
    if unknown:
        raise ValueError(f"Invalid namespace config keys: {sorted(unknown)!r}")
    levels = ns_config.get("levels")
    if not levels or not isinstance(levels, list):
        raise ValueError("'levels' is required and must be a non-empty list of ints.")
    if ns_config.get("cache") is None:
        return levels, _NO_CACHE
    mode = CacheMode.from_str(ns_config["cache"])
    max_age = ns_config.get("max_age")
    if max_age is not None:
        if isinstance(max_age, bool) or not isinstance(max_age, int | float) or max_age < 0:
            raise ValueError(f"Invalid cache max_age value: {max_age!r}")
        max_age = float(max_age)
    size = ns_config.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise ValueError(f"Invalid cache size value: {size!r}")
    return levels, CachePolicy(mode, max_age, size)


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

    A Store may be shared between threads; its operations run on the Portal's event loop.
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
            levels[namespace], policies[namespace] = _parse_namespace_config(ns_config)
        if cache_url is not None and cache_backend is not None:
            raise ValueError("Only one of cache_url and cache_backend can be given.")
        if any(policy.mode is not CacheMode.C_OFF for policy in policies.values()) and (
            cache_url is None and cache_backend is None
        ):
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
        self._cache_disabled = False
        self._cache_indexes: dict[str, _CacheIndex] = {}
        self._stats: Counter[str] = Counter()
        emulator = Emulator.from_environment()  # BORGSTORE_LATENCY (µs), BORGSTORE_BANDWIDTH (bit/s)
        self.latency = emulator.latency
        self.bandwidth = emulator.bandwidth / 8  # bytes per second
        self._bridge = SyncBackendBridge(backend)
        self._cache_bridge = SyncBackendBridge(cache_backend) if cache_backend is not None else None
        # the emulation happens here, in the caller's thread, as borgstore does it
        self.async_store = AsyncStore(backend=self._bridge, config=self._async_config(levels), latency=0, bandwidth=0)
        """The [`aiodepot.Store`][aiodepot.Store] doing the work."""
        self.set_levels(levels)

    def __repr__(self) -> str:
        backend = type(self.backend).__name__
        if self.cache_backend is not None:
            return f"<Store(backend={backend!r}, cache_backend={type(self.cache_backend).__name__!r})>"
        return f"<Store(backend={backend!r})>"

    # plumbing --------------------------------------------------------------------------------------------

    @staticmethod
    def _async_config(levels: dict[str, builtins.list[int]]) -> dict[str, dict[str, Any]]:
        return {namespace: {"levels": list(lv)} for namespace, lv in levels.items()}

    def _run(self, func: Callable[[_Call], Awaitable[T]]) -> T:
        """One Portal call; afterwards sleep what the latency/bandwidth emulation asks for."""
        call = _Call()

        async def body() -> T:
            return await func(call)

        try:
            return run(body)
        finally:
            for seconds in call.sleeps:
                time.sleep(seconds)

    async def _timed(self, op: str, call: _Call, work: Callable[[], Awaitable[T]]) -> T:
        """Count an operation and add its duration (ns) to ``<op>_time``, as borgstore's stats do."""
        started = time.perf_counter_ns()
        try:
            return await work()
        finally:
            self._stats[f"{op}_calls"] += 1
            self._stats[f"{op}_time"] += time.perf_counter_ns() - started

    async def _primary(
        self, call: _Call, key: str | None, work: Awaitable[T], volume: Callable[[T], int] | int = 0
    ) -> T:
        """Await one operation of the primary backend: count it and note the emulated delay it owes."""
        if key is not None:
            self._stats[f"backend_{key}_calls"] += 1
        started = time.perf_counter_ns()
        result = await work
        elapsed = (time.perf_counter_ns() - started) / 1e9
        moved = volume(result) if callable(volume) else volume
        if key is not None:
            self._stats[f"backend_{key}_volume"] += moved
        emulated = self.latency + (moved / self.bandwidth if self.bandwidth else 0.0)
        if emulated - elapsed > 0:
            call.sleeps.append(emulated - elapsed)
        return result

    def _get_levels(self, name: str) -> builtins.list[int]:
        for namespace, levels in self.levels:
            if name.startswith(namespace):
                return levels
        raise KeyError(f"no matching namespace found for: {name}")

    def _cache_policy_for(self, name: str) -> CachePolicy:
        for namespace, policy in self.cache_namespaces:
            if name.startswith(namespace):
                return policy
        return _NO_CACHE

    def _cache_index_for(self, name: str) -> _CacheIndex | None:
        for namespace, _ in self.cache_namespaces:
            if name.startswith(namespace):
                return self._cache_indexes.get(namespace)
        return None

    def _caching(self, name: str) -> bool:
        return (
            self._cache_bridge is not None
            and not self._cache_disabled
            and self._cache_policy_for(name).mode in _CACHING
        )

    # configuration and lifecycle -------------------------------------------------------------------------

    def set_levels(self, levels: dict[str, builtins.list[int]], create: bool = False) -> None:
        """Set the nesting levels per namespace (``{"data/": [2]}``); ``create=True`` also runs ``create_levels``."""
        if not levels or not isinstance(levels, dict):
            raise ValueError("No or invalid levels configuration given.")
        self.async_store.set_levels(self._async_config(levels))
        self.levels = sorted(levels.items(), key=lambda item: len(item[0]), reverse=True)
        if create:
            self.create_levels()

    def create_levels(self) -> None:
        """Create all namespace and nesting directories in advance (opens the store for that if it is closed)."""
        was_open = self.async_store.opened
        if not was_open:
            self.open()
        try:
            self._run(self._create_levels)
        finally:
            if not was_open:
                self.close()

    async def _create_levels(self, call: _Call) -> None:
        await self._primary(call, None, self.async_store.create_levels())
        cache = self._cache_bridge
        if cache is None or self._cache_disabled:
            return
        for namespace, levels in self.levels:
            if not self._caching(namespace.rstrip("/") + "/"):
                continue
            bare, level = namespace.rstrip("/"), max(levels)
            if level == 0:
                await cache.mkdir(bare)
                continue
            for i in range(256**level):
                key = i.to_bytes(level, "big").hex()
                await cache.mkdir(nest(f"{bare}/{key}" if bare else key, level)[: -2 * level - 1])

    def create(self) -> None:
        """Initialize the storage (and the cache storage, if there is one)."""

        async def create(call: _Call) -> None:
            await self._primary(call, None, self.async_store.create())
            if self._cache_bridge is not None and not self._cache_disabled:
                await self._cache_bridge.create()

        self._run(create)
        if getattr(self.backend, "precreate_dirs", False):
            self.create_levels()

    def destroy(self) -> None:
        """Remove the storage (and the cache storage) with everything in it."""

        async def destroy(call: _Call) -> None:
            await self._primary(call, None, self.async_store.destroy())
            if self._cache_bridge is not None:
                await self._cache_bridge.destroy()

        self._run(destroy)

    def open(self) -> None:
        """Start using the store; a cache backend that does not open disables the cache (with a warning)."""
        self._run(self._open)

    async def _open(self, call: _Call) -> None:
        await self._primary(call, None, self.async_store.open())
        cache = self._cache_bridge
        if cache is None or self._cache_disabled:
            return
        try:
            await cache.open()
        except Exception as exc:
            logger.warning(f"aiodepot.compat.borgstore: cache open failed, disabling the cache: {exc!r}")
            self._cache_disabled = True
            return
        self._cache_indexes = {
            namespace: _CacheIndex(namespace, policy)
            for namespace, policy in self.cache_namespaces
            if policy.max_age is not None or policy.size is not None
        }
        await self._cache_cleanup()

    def close(self) -> None:
        """Stop using the store (cleaning up size- and age-limited cache namespaces first)."""
        self._run(self._close)

    async def _close(self, call: _Call) -> None:
        await self._primary(call, None, self.async_store.close())
        cache = self._cache_bridge
        if cache is None:
            return
        if not self._cache_disabled:
            await self._cache_cleanup()
        self._cache_indexes = {}
        try:
            await cache.close()
        except Exception as exc:
            logger.warning(f"aiodepot.compat.borgstore: cache close failed: {exc!r}")

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
        self._get_levels(name)
        if len(self._get_levels(name)) == 1:  # pure computation, no need for the event loop
            return nest(name, self._get_levels(name)[0], add_suffix=DEL_SUFFIX if deleted else None)
        return self._run(lambda call: self._primary(call, None, self.async_store.find(name, deleted=deleted)))

    def info(self, name: str, *, deleted: bool = False) -> Any:
        """Return the ``ItemInfo`` of ``name``; its ``name`` is the backend's last name element.

        ``info("")`` describes the store's root directory.
        """
        self._get_levels(name)
        if name == ROOTNS and not deleted:
            return self._run(self._root_info)

        async def info(call: _Call) -> Any:
            async def work() -> Any:
                nested = await self.async_store.find(name, deleted=deleted)
                found = await self._primary(call, None, self.async_store.info(name, deleted=deleted))
                return to_item_info(found)._replace(name=nested.rpartition("/")[2])

            return await self._timed("info", call, work)

        return self._run(info)

    async def _root_info(self, call: _Call) -> Any:
        async def work() -> Any:
            if not self.async_store.opened:
                raise StoreNotOpen("the store is not open")
            try:
                found = await self._primary(call, None, self._bridge.info(ROOTNS))
            except InvalidName:  # backends that have no name for their root: it exists while the store is open
                return ItemInfo(ROOTNS, True, 0, True)
            return to_item_info(found)

        return await self._timed("info", call, work)

    def load(self, name: str, *, size: int | None = None, offset: int = 0, deleted: bool = False) -> bytes:
        """Return the value of ``name``, or ``size`` bytes from ``offset`` (negative: from the end)."""
        self._get_levels(name)

        async def load(call: _Call) -> bytes:
            async def work() -> bytes:
                mode = self._cache_policy_for(name).mode
                if self._caching(name):
                    nested = await self.async_store.find(name, deleted=deleted)
                    data = await self._cached_load(call, name, nested, mode, deleted, size=size, offset=offset)
                else:
                    data = await self._primary(
                        call, "load", self.async_store.load(name, offset=offset, size=size, deleted=deleted), len
                    )
                self._stats["load_volume"] += len(data)
                return data

            return await self._timed("load", call, work)

        return self._run(load)

    def store(self, name: str, value: StoreValue) -> None:
        """Store ``value`` (bytes or a C-contiguous memoryview) under ``name``; the buffer is not kept."""
        self._get_levels(name)
        value = validate_value(value)

        async def store(call: _Call) -> None:
            async def work() -> None:
                await self._primary(call, "store", self.async_store.store(name, value), len(value))
                if self._caching(name):
                    await self._cache_store(await self.async_store.find(name), value)
                self._stats["store_volume"] += len(value)

            await self._timed("store", call, work)

        self._run(store)

    def delete(self, name: str, *, deleted: bool = False) -> None:
        """Delete ``name`` for good (see ``move(name, delete=True)`` for a soft delete)."""
        self._get_levels(name)

        async def delete(call: _Call) -> None:
            async def work() -> None:
                nested = await self.async_store.find(name, deleted=deleted) if self._caching(name) else None
                await self._primary(call, "delete", self.async_store.delete(name, deleted=deleted))
                if nested is not None:
                    await self._cache_delete(nested)

            await self._timed("delete", call, work)

        self._run(delete)

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

        async def move(call: _Call) -> None:
            async def work() -> None:
                store = self.async_store
                if delete:
                    src = await store.find(name)
                    dst = src + DEL_SUFFIX
                    moving = store.move(name, delete=True)
                elif undelete:
                    src = await store.find(name, deleted=True)
                    dst = src.removesuffix(DEL_SUFFIX)
                    moving = store.move(name, undelete=True)
                elif change_level:
                    src = await store.find(name, deleted=deleted)
                    dst = nest(name, self._get_levels(name)[-1], add_suffix=DEL_SUFFIX if deleted else None)
                    moving = store.move(name, change_level=True, deleted=deleted)
                else:
                    assert new_name is not None
                    src = await store.find(name, deleted=deleted)
                    dst = await store.find(new_name, deleted=deleted)
                    moving = store.move(name, new_name, deleted=deleted)
                await self._primary(call, None, moving)
                if self._caching(name):
                    await self._cache_move(src, dst)

            await self._timed("move", call, work)

        self._run(move)

    def hash(self, name: str, algorithm: str = "sha256", *, deleted: bool = False) -> str:
        """Return the hex digest of the value of ``name`` (any `hashlib` algorithm or ``"blake3"``)."""
        self._get_levels(name)
        hashing.new(algorithm)  # borgstore's error for an unknown algorithm

        async def digest(call: _Call) -> str:
            return await self._timed(
                "hash",
                call,
                lambda: self._primary(call, None, self.async_store.hash(name, algorithm, deleted=deleted)),
            )

        return self._run(digest)

    # listing ---------------------------------------------------------------------------------------------

    def list(self, name: str, deleted: bool = False) -> Iterator[Any]:
        """Yield the ``ItemInfo`` of every item in namespace ``name`` (a generator; bypasses the cache).

        With ``deleted=True`` only soft-deleted items are yielded (without their ``.del`` suffix).
        """
        self._stats["list_calls"] += 1

        def fetched(nanoseconds: int) -> None:
            self._stats["list_time"] += nanoseconds

        for info in iterate(lambda: self._list(name, deleted), on_fetch=fetched):
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
            if "/" in item:
                raise ValueError(f"item name must not contain '/' (namespace is given separately): {item!r}")
        prefix = f"{namespace}/" if namespace else ""

        async def gather(call: _Call) -> bytes:
            async def work() -> bytes:
                if self._caching(prefix):
                    mode = self._cache_policy_for(prefix).mode
                    parts = []
                    for item, offset, size in checked:
                        nested = await self.async_store.find(prefix + item, deleted=deleted)
                        part = await self._cached_load(
                            call, prefix + item, nested, mode, deleted, size=size, offset=offset
                        )
                        if len(part) != size:
                            raise ReadRangeError(
                                f"Read range error from {nested} "
                                f"(requested {size} bytes at offset {offset}, got {len(part)})"
                            )
                        parts.append(part)
                    data = b"".join(parts)
                elif checked:
                    data = await self._primary(
                        call,
                        "gather",
                        self.async_store.gather(checked, namespace=namespace, deleted=deleted),
                        len,
                    )
                else:
                    data = b""
                self._stats["gather_volume"] += len(data)
                return data

            return await self._timed("gather", call, work)

        return self._run(gather)

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

        Without ``target`` the name is the ``algorithm`` hex digest of the content. Sources stay; the cache
        is not touched.
        """
        checked = validate_sources(sources)
        for item, _, _ in checked:
            if "/" in item:
                raise ValueError(f"item name must not contain '/' (namespace is given separately): {item!r}")
        if target is not None and "/" in target:
            raise ValueError(f"item name must not contain '/' (namespace is given separately): {target!r}")
        if target is None and algorithm is None:
            raise ValueError("Either target or algorithm must be given for defrag")
        if algorithm is not None:
            hashing.new(algorithm)

        async def defrag(call: _Call) -> str:
            return await self._primary(
                call,
                None,
                self.async_store.defrag(
                    checked, target=target, algorithm=algorithm, namespace=namespace, deleted=deleted
                ),
            )

        return self._run(defrag)

    # store-wide ------------------------------------------------------------------------------------------

    def quota(self) -> dict[str, int]:
        """Return ``{"limit": bytes, "usage": bytes}`` (-1: not set or not tracked)."""
        return self._run(lambda call: self._primary(call, None, self.async_store.quota()))

    @property
    def stats(self) -> dict[str, Any]:
        """Call counts, times [s], volumes [bytes] and throughputs [bytes/s], with borgstore's keys."""
        figures: dict[str, Any] = dict(self._stats)
        for op in ("info", "load", "store", "delete", "move", "list", "gather"):
            figures[f"{op}_calls"] = figures.get(f"{op}_calls", 0)
            figures[f"{op}_time"] = figures.get(f"{op}_time", 0) / 1e9
        for op in ("load", "store", "gather"):
            volume, spent = figures.get(f"{op}_volume", 0), figures[f"{op}_time"]
            figures[f"{op}_throughput"] = volume / spent if spent else 0
        for op in ("load", "gather", "store", "delete"):
            figures[f"backend_{op}_calls"] = figures.get(f"backend_{op}_calls", 0)
        for op in ("load", "gather", "store"):
            figures[f"backend_{op}_volume"] = figures.get(f"backend_{op}_volume", 0)
        figures["cache_disabled"] = self._cache_disabled
        hits, misses = figures.get("cache_hits", 0), figures.get("cache_misses", 0)
        figures["cache_hits"], figures["cache_misses"] = hits, misses
        figures["cache_hit_ratio"] = hits / (hits + misses) if hits + misses else 0
        for key in ("errors", "load_calls", "store_calls", "delete_calls", "load_volume", "store_volume"):
            figures[f"cache_{key}"] = figures.get(f"cache_{key}", 0)
        return figures

    # the cache -------------------------------------------------------------------------------------------

    def cache_invalidate(self, name: str, *, deleted: bool = False) -> None:
        """Drop cached items: all (``name=""``), a cached namespace's, or one item's."""
        if self._cache_bridge is None or self._cache_disabled:
            return

        async def invalidate(call: _Call) -> None:
            if name == ROOTNS:
                targets = [namespace for namespace, _ in self.cache_namespaces]
            else:
                targets = [ns for ns, _ in self.cache_namespaces if ns.rstrip("/") == name.rstrip("/")]
            if not targets:
                await self._cache_delete(await self.async_store.find(name, deleted=deleted))
                return
            for namespace in targets:
                async for info in self._cache_walk(namespace.rstrip("/")):
                    if not info.directory:
                        await self._cache_delete(info.name)

        self._run(invalidate)

    async def _cache_walk(self, path: str, *, dirs: bool = False) -> AsyncIterator[AsyncItemInfo]:
        """Everything cached below ``path``, recursively, under full backend names (missing: nothing)."""
        cache = self._cache_bridge
        assert cache is not None
        try:
            entries = [entry async for entry in cache.list(path)]
        except _AsyncObjectNotFound:
            return
        for entry in entries:
            full = f"{path}/{entry.name}" if path else entry.name
            if entry.directory:
                if dirs:
                    yield entry._replace(name=full)
                async for below in self._cache_walk(full, dirs=dirs):
                    yield below
            else:
                yield entry._replace(name=full)

    def _cache_failed(self, what: str, exc: BaseException) -> None:
        logger.warning(f"aiodepot.compat.borgstore: cache {what} failed: {exc!r}")
        self._stats["cache_errors"] += 1

    async def _cache_load(self, nested: str, *, size: int | None, offset: int) -> bytes | None:
        cache = self._cache_bridge
        if cache is None or self._cache_disabled:
            return None
        self._stats["cache_load_calls"] += 1
        index = self._cache_index_for(nested)
        try:
            value = await cache.load(nested, offset=offset, size=size)
        except _AsyncObjectNotFound:
            self._stats["cache_misses"] += 1
            if index is not None:
                index.drop(nested)
            return None
        except Exception as exc:
            self._cache_failed(f"load of {nested!r}", exc)
            return None
        self._stats["cache_hits"] += 1
        self._stats["cache_load_volume"] += len(value)
        if index is not None:
            known = index.entries.get(nested)
            if known is not None:
                item_size = known[0]
            else:  # cached by another client; the value may be a range of it
                try:
                    item_size = (await cache.info(nested)).size
                except Exception:
                    item_size = len(value)
            index.touch(nested, item_size, time.time())
        return value

    async def _cached_load(
        self, call: _Call, name: str, nested: str, mode: CacheMode, deleted: bool, *, size: int | None, offset: int
    ) -> bytes:
        if mode is CacheMode.C_WRITETHROUGH:
            cached = await self._cache_load(nested, size=size, offset=offset)
            if cached is not None:
                return cached
        whole = await self._primary(call, "load", self.async_store.load(name, deleted=deleted), len)
        await self._cache_store(nested, whole)
        start = max(len(whole) + offset, 0) if offset < 0 else offset
        return whole[start : None if size is None else start + size]

    async def _cache_store(self, nested: str, value: StoreValue) -> None:
        cache = self._cache_bridge
        if cache is None or self._cache_disabled:
            return
        index = self._cache_index_for(nested)
        if index is not None:
            limit = index.policy.size
            if limit is not None and len(value) > limit:
                await self._cache_delete(nested)  # can never fit; and no stale older value may stay
                return
            if limit is not None and index.inserted > limit / CACHE_RESCAN_DIVISOR:
                await self._cache_scan(index)
            index.drop(nested)
            await self._cache_evict(index, needed=len(value))
        self._stats["cache_store_calls"] += 1
        try:
            await cache.store(nested, value)
        except Exception as exc:
            self._cache_failed(f"store of {nested!r}", exc)
            return
        self._stats["cache_store_volume"] += len(value)
        if index is not None:
            index.touch(nested, len(value), time.time())
            index.inserted += len(value)

    async def _cache_delete(self, nested: str) -> None:
        cache = self._cache_bridge
        if cache is None or self._cache_disabled:
            return
        self._stats["cache_delete_calls"] += 1
        index = self._cache_index_for(nested)
        if index is not None:
            index.drop(nested)  # even if deleting fails: the next scan finds it again if it is still there
        try:
            await cache.delete(nested)
        except _AsyncObjectNotFound:
            pass
        except Exception as exc:
            self._cache_failed(f"delete of {nested!r}", exc)

    async def _cache_move(self, src: str, dst: str) -> None:
        cache = self._cache_bridge
        if cache is None or self._cache_disabled:
            return
        old_index = self._cache_index_for(src)
        known = old_index.entries.get(src) if old_index is not None else None
        try:
            await cache.move(src, dst)
        except _AsyncObjectNotFound:
            if old_index is not None:
                old_index.drop(src)
            return
        except Exception as exc:
            self._cache_failed(f"move {src!r} -> {dst!r}", exc)
            return
        if old_index is not None:
            old_index.drop(src)
        new_index = self._cache_index_for(dst)
        if new_index is not None:
            if known is not None:
                new_index.touch(dst, known[0], time.time())
            else:
                new_index.drop(dst)

    async def _cache_scan(self, index: _CacheIndex) -> None:
        """List the namespace in the cache backend and bring the index in line with it."""
        seen: dict[str, tuple[int, float]] = {}
        try:
            async for info in self._cache_walk(index.namespace.rstrip("/")):
                seen[info.name] = (info.size, info.atime or info.mtime)
        except Exception as exc:
            self._cache_failed(f"scan of namespace {index.namespace!r}", exc)
            index.inserted = 0  # do not retry on every store
            return
        index.rebuild(seen)

    async def _cache_evict(self, index: _CacheIndex, *, needed: int = 0) -> None:
        """Evict what is older than ``max_age``, then the least recently used until ``needed`` bytes fit."""
        policy = index.policy
        if policy.max_age is not None:
            now = time.time()
            while index.entries:
                oldest, (_, used) = next(iter(index.entries.items()))
                if used and now - used <= policy.max_age:
                    break
                await self._cache_delete(oldest)
        if policy.size is not None:
            while index.entries and index.total + needed > policy.size:
                await self._cache_delete(next(iter(index.entries)))

    async def _cache_cleanup(self) -> None:
        for index in builtins.list(self._cache_indexes.values()):
            await self._cache_scan(index)
            await self._cache_evict(index)
