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
import builtins
import contextlib
import heapq
import itertools
import logging
import os
import secrets
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self, TypeVar, overload

from . import hashing, keygen
from .backends import backend_from_url, normalize_url
from .backends.base import Backend
from .errors import (
    BackendError,
    InvalidName,
    ObjectNotFound,
    ReadRangeError,
    StoreAlreadyOpen,
    StoreError,
    StoreNotOpen,
)
from .items import ItemInfo, Source, StoreValue, validate_sources, validate_value
from .layers.base import Layer
from .layers.cache import SERVED_FROM_CACHE, Cache, CachePolicy
from .names import DEL_SUFFIX, ROOTNS, nest, unnest, validate_name, validate_namespace
from .stats import Emulator, Stats
from .transfer import ByteBudget, ProgressCallback, ProgressTracker, plan_ranges, run_bounded

if TYPE_CHECKING:
    from .mapping import AsyncStoreMapping

__all__ = ["DEFAULT_CONFIG", "Store"]

T = TypeVar("T")

DEFAULT_CONFIG: Mapping[str, Mapping[str, Any]] = {ROOTNS: {"levels": [0]}}
"""Used when no config is given: one flat namespace for the whole store."""

MAX_LEVELS = 4
RANGED_LOAD_TRIES = 3
"""How often a big ranged load starts over when the value changes under it."""
logger = logging.getLogger(__name__)
_CONFIG_KEYS = frozenset({"levels", "cache", "max_age", "size"})


def _parse_config(config: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, list[int]]]:
    """Check a namespace config; return ``(prefix, levels)`` pairs, longest prefix first."""
    if not isinstance(config, Mapping) or not config:
        raise ValueError("config must be a non-empty mapping of namespace -> {'levels': [...]}")
    parsed: dict[str, list[int]] = {}
    for namespace, ns_config in config.items():
        bare = validate_namespace(namespace.rstrip("/") if isinstance(namespace, str) else namespace)
        if not isinstance(ns_config, Mapping):
            raise ValueError(f"config for namespace {namespace!r} must be a mapping, got {ns_config!r}")
        unknown = set(ns_config) - _CONFIG_KEYS
        if unknown:
            raise ValueError(f"unknown config keys for namespace {namespace!r}: {sorted(unknown)}")
        levels = ns_config.get("levels")
        if (
            not isinstance(levels, list | tuple)
            or not levels
            or not all(isinstance(lv, int) and not isinstance(lv, bool) and 0 <= lv <= MAX_LEVELS for lv in levels)
        ):
            raise ValueError(
                f"'levels' of namespace {namespace!r} must be a non-empty list of ints 0..{MAX_LEVELS}, got {levels!r}"
            )
        prefix = bare + "/" if bare else ROOTNS
        if prefix in parsed:
            raise ValueError(f"namespace {bare!r} is configured twice")
        parsed[prefix] = list(levels)
    return sorted(parsed.items(), key=lambda item: len(item[0]), reverse=True)


def _parse_cache_config(config: Mapping[str, Mapping[str, Any]]) -> dict[str, CachePolicy]:
    """The cache policies of a (checked) namespace config: prefix -> policy (``off`` where a namespace sets
    none, so the longest configured namespace decides); empty if no namespace sets any cache key."""
    if not any(key in ns_config for ns_config in config.values() for key in ("cache", "max_age", "size")):
        return {}
    policies: dict[str, CachePolicy] = {}
    for namespace, ns_config in config.items():
        bare = namespace.rstrip("/")
        policies[bare + "/" if bare else ROOTNS] = CachePolicy.from_config(namespace, ns_config)
    return policies


def _find_cache(backend: Backend) -> Cache | None:
    """The cache layer in a stack of layers, if there is one."""
    while isinstance(backend, Layer):
        if isinstance(backend, Cache):
            return backend
        backend = backend.inner
    return None


def _env_float(name: str, scale: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return 0.0
    try:
        return float(raw) * scale
    except ValueError:
        raise ValueError(f"environment variable {name} must be a number, got {raw!r}") from None


class Store:
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
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        backend: Backend | None = None,
        config: Mapping[str, Mapping[str, Any]] | None = None,
        permissions: str | Mapping[str, str] | None = None,
        quota: int | None = None,
        latency: float | None = None,
        bandwidth: float | None = None,
        max_concurrency: int | None = None,
        backend_options: Mapping[str, Any] | None = None,
        gather_gap: int = 64 * 1024,
        max_bytes_in_flight: int = 256 * 1024 * 1024,
        cache_url: str | None = None,
        cache_backend: Backend | None = None,
    ) -> None:
        if (url is None) == (backend is None):
            raise ValueError("give either a store URL or a backend instance")
        options = dict(backend_options or {})
        if permissions is not None:
            options["permissions"] = permissions
        if quota is not None:
            options["quota"] = quota
        if backend is None:
            assert url is not None
            try:
                backend = backend_from_url(url, **options)
            except TypeError as exc:
                scheme = url.partition(":")[0]
                raise ValueError(f"the {scheme}: backend does not take these options: {sorted(options)}") from exc
        elif options:
            raise ValueError(f"{sorted(options)} are backend options: pass them to the backend instance")
        if not isinstance(backend, Backend):
            raise TypeError(f"backend must be an aiodepot Backend, not {type(backend).__name__}")
        self.url = url if url is None else normalize_url(url)
        self._levels = _parse_config(DEFAULT_CONFIG if config is None else config)
        backend, self._cache = self._with_cache(backend, config or {}, cache_url, cache_backend)
        self.backend = backend
        self.emulator = Emulator(
            _env_float("BORGSTORE_LATENCY", 1e-6) if latency is None else latency,
            _env_float("BORGSTORE_BANDWIDTH", 1.0) if bandwidth is None else bandwidth,
        )
        if max_concurrency is not None and max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        self.max_concurrency = max_concurrency or backend.capabilities.preferred_concurrency
        if gather_gap < 0:
            raise ValueError(f"gather_gap must be >= 0, got {gather_gap}")
        self.gather_gap = gather_gap
        self.budget = ByteBudget(max_bytes_in_flight)
        self._stats = Stats()

    def __repr__(self) -> str:
        return f"<Store {self.url or self.backend!r} {'open' if self.opened else 'closed'}>"

    @staticmethod
    def _with_cache(
        backend: Backend,
        config: Mapping[str, Mapping[str, Any]],
        cache_url: str | None,
        cache_backend: Backend | None,
    ) -> tuple[Backend, Cache | None]:
        """Wrap ``backend`` in a cache layer if the arguments ask for one; return it and the cache layer."""
        policies = _parse_cache_config(config)
        if cache_url is not None and cache_backend is not None:
            raise ValueError("give either cache_url or cache_backend, not both")
        existing = _find_cache(backend)
        if existing is not None:
            if policies or cache_url is not None or cache_backend is not None:
                raise ValueError("the backend has a Cache layer already: set its policies there, not in config")
            return backend, existing
        if cache_url is not None:
            cache_backend = backend_from_url(cache_url)
        if cache_backend is None:
            caching = sorted(prefix for prefix, policy in policies.items() if policy.caching)
            if caching:
                raise ValueError(f"namespaces {caching} use the cache: give cache_url= or cache_backend=")
            return backend, None
        layer = Cache(backend, cache_backend, policies)
        return layer, layer

    def __del__(self) -> None:
        if getattr(self, "backend", None) is not None and self.backend.opened:
            warnings.warn(f"{self!r} was not closed", ResourceWarning, stacklevel=2)

    # configuration ---------------------------------------------------------------------------------------

    @property
    def opened(self) -> bool:
        """True between ``open()`` and ``close()``."""
        return self.backend.opened

    @property
    def levels(self) -> dict[str, builtins.list[int]]:
        """The namespace → nesting levels configuration in force."""
        return {prefix: list(levels) for prefix, levels in self._levels}

    def set_levels(self, config: Mapping[str, Mapping[str, Any]]) -> None:
        """Replace the namespace configuration (e.g. to start a migration to other nesting levels).

        Cache keys in ``config`` replace the cache policies too (only while the store is closed); a config
        without them leaves the cache policies alone.
        """
        levels = _parse_config(config)
        policies = _parse_cache_config(config)
        if policies:
            if self._cache is None:
                raise ValueError("the config sets cache policies but the store has no cache (give cache_url=)")
            self._cache.set_policies(policies)
        self._levels = levels

    def _levels_for(self, name: str) -> builtins.list[int]:
        for prefix, levels in self._levels:
            if name.startswith(prefix):
                return levels
        configured = ", ".join(repr(prefix) for prefix, _ in self._levels)
        raise InvalidName(f"no namespace is configured for {name!r} (configured: {configured})")

    # lifecycle -------------------------------------------------------------------------------------------

    def _require_open(self) -> None:
        if not self.backend.opened:
            raise StoreNotOpen("the store is not open: call open() or use 'async with store'")

    async def create(self) -> None:
        """Initialize the storage (an empty existing directory is accepted); see [`destroy`][aiodepot.Store.destroy]."""
        if self.backend.opened:
            raise StoreAlreadyOpen("create() needs a closed store")
        await self.backend.create()

    async def create_levels(self) -> None:
        """Create every nesting directory in advance (saves a mkdir on first store, costs time now)."""
        self._require_open()
        names: builtins.list[str] = []
        for prefix, levels in self._levels:
            level = max(levels)
            namespace = prefix.rstrip("/")
            if not level:
                if namespace:
                    names.append(namespace)
                continue
            for i in range(256**level):
                key = i.to_bytes(level, "big").hex()
                names.append(nest(f"{prefix}{key}", level).rpartition("/")[0])
        await run_bounded(names, self.backend.mkdir, max_concurrency=self.max_concurrency)

    async def destroy(self) -> None:
        """Remove the storage and everything in it."""
        if self.backend.opened:
            raise StoreAlreadyOpen("destroy() needs a closed store")
        await self.backend.destroy()

    async def open(self) -> None:
        """Start using the store."""
        await self.backend.open()

    async def close(self) -> None:
        """Stop using the store and release its resources."""
        await self.backend.close()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # plumbing --------------------------------------------------------------------------------------------

    async def _call(self, key: str | None, call: Awaitable[T], volume: Callable[[T], int] | int = 0) -> T:
        """Await one backend call: count it, and stretch it to the emulated latency and bandwidth.

        A load answered by a cache layer is not stretched: the emulation stands for a far-away primary.
        """
        started = time.monotonic()
        marker = SERVED_FROM_CACHE.set(False)
        try:
            result = await call
        except StoreError as exc:  # say which store: a command may have two open
            if exc.store is None:
                exc.store = self.url or repr(self.backend)
            raise
        finally:
            served_from_cache = SERVED_FROM_CACHE.get()
            SERVED_FROM_CACHE.reset(marker)
        moved = volume(result) if callable(volume) else volume
        if key is not None:
            self._stats.add(f"backend_{key}_calls")
            if moved:
                self._stats.add(f"backend_{key}_volume", moved)
        if self.emulator and not served_from_cache:
            await self.emulator.delay(started, moved)
        return result

    async def find(self, name: str, *, deleted: bool = False) -> str:
        """Return the backend name of item ``name``: where it is, or where a new one would go."""
        return await self._find(validate_name(name), deleted)

    async def _find(self, name: str, deleted: bool) -> str:
        levels = self._levels_for(name)
        suffix = DEL_SUFFIX if deleted else None
        if len(levels) == 1:
            return nest(name, levels[0], add_suffix=suffix)
        self._require_open()
        candidates = [nest(name, level, add_suffix=suffix) for level in levels]
        infos = await asyncio.gather(*(self._call(None, self.backend.info(c)) for c in candidates))
        for candidate, info in zip(candidates, infos, strict=True):
            if info.exists and not info.directory:
                return candidate
        return candidates[-1]

    # single items ----------------------------------------------------------------------------------------

    async def info(self, name: str, *, deleted: bool = False) -> ItemInfo:
        """Describe item ``name`` (``exists=False`` if it is missing); ``info.name`` is ``name``."""
        validate_name(name)
        self._require_open()
        started = self._stats.begin("info")
        try:
            nested = await self._find(name, deleted)
            info = await self._call(None, self.backend.info(nested))
        finally:
            self._stats.end("info", started)
        return info.with_name(name)

    async def load(self, name: str, *, offset: int = 0, size: int | None = None, deleted: bool = False) -> bytes:
        """Return the value of ``name``, or ``size`` bytes from ``offset`` (negative: from the end).

        A range past the end comes back short (possibly empty); a missing item raises ``ObjectNotFound``.
        On backends where it pays (``capabilities.parallel_ranges``), a big value is fetched as parallel
        ``part_size`` ranges, within the store's byte budget.
        """
        validate_name(name)
        _check_range(offset, size)
        self._require_open()
        started = self._stats.begin("load")
        data = b""
        try:
            nested = await self._find(name, deleted)
            part = self.backend.capabilities.part_size
            if self.backend.capabilities.parallel_ranges and offset >= 0 and (size is None or size > part):
                data = await self._load_ranges(nested, offset, size, part)
            else:
                data = await self._call("load", self.backend.load(nested, offset=offset, size=size), len)
        finally:
            self._stats.end("load", started, len(data))
        return data

    async def _load_ranges(self, nested: str, offset: int, size: int | None, part: int) -> bytes:
        """Load a big value as parallel ``part``-sized ranges into one buffer.

        The first range doubles as a probe: a value that fits in it costs one request, as a plain load. The
        parts are separate requests, so the value's size and mtime are read before and after them; if the
        value was replaced meanwhile, the load starts over (a few times, then it gives up).
        """
        for _ in range(RANGED_LOAD_TRIES):
            async with self.budget.reserve(part):
                first = await self._call("load", self.backend.load(nested, offset=offset, size=part), len)
            if len(first) < part:
                return first
            before = await self._call(None, self.backend.info(nested))
            end = before.size if size is None else offset + size
            if end <= offset + part:
                return first
            data = await self._load_rest(nested, offset, end, part, first)
            after = await self._call(None, self.backend.info(nested))
            if (after.size, after.mtime) == (before.size, before.mtime):
                return data
            logger.warning("%s changed while it was loaded in parts; loading it again", nested)
        raise BackendError(f"{nested} kept changing while it was loaded in parts")

    async def _load_rest(self, nested: str, offset: int, end: int, part: int, first: bytes) -> bytes:
        buffer = bytearray(end - offset)
        buffer[:part] = first
        spans = [(start, min(part, end - start)) for start in range(offset + part, end, part)]
        short_at = end  # where the value turned out to end, if it shrank meanwhile

        async def fetch(span: tuple[int, int]) -> None:
            nonlocal short_at
            start, length = span
            async with self.budget.reserve(length):
                data = await self._call("load", self.backend.load(nested, offset=start, size=length), len)
                buffer[start - offset : start - offset + len(data)] = data
            if len(data) < length:
                short_at = min(short_at, start + len(data))

        await run_bounded(spans, fetch, max_concurrency=self.max_concurrency)
        return bytes(buffer) if short_at == end else bytes(buffer[: short_at - offset])

    async def store(self, name: str, value: StoreValue) -> None:
        """Store ``value`` (bytes or a C-contiguous buffer) under ``name``, atomically.

        The buffer is not used after the call returns, so the caller may reuse it.
        """
        validate_name(name)
        data = validate_value(value)
        self._require_open()
        started = self._stats.begin("store")
        size = 0
        try:
            nested = await self._find(name, False)
            await self._call("store", self.backend.store(nested, data), len(data))
            size = len(data)
        finally:
            self._stats.end("store", started, size)

    async def delete(self, name: str, *, deleted: bool = False) -> None:
        """Delete ``name`` for good (see ``move(name, delete=True)`` for a soft delete)."""
        validate_name(name)
        self._require_open()
        started = self._stats.begin("delete")
        try:
            nested = await self._find(name, deleted)
            await self._call("delete", self.backend.delete(nested))
        finally:
            self._stats.end("delete", started)

    async def move(
        self,
        name: str,
        new_name: str | None = None,
        *,
        delete: bool = False,
        undelete: bool = False,
        change_level: bool = False,
        deleted: bool = False,
    ) -> None:
        """Rename an item, or soft-delete, undelete or migrate it to the namespace's last nesting level.

        Exactly one of ``new_name``, ``delete=True``, ``undelete=True`` and ``change_level=True`` is given.
        ``deleted=True`` makes a rename or level change act on a soft-deleted item.
        """
        validate_name(name)
        modes = (new_name is not None) + delete + undelete + change_level
        if modes != 1:
            raise ValueError("move needs exactly one of new_name, delete=True, undelete=True, change_level=True")
        if new_name is not None:
            validate_name(new_name)
        self._require_open()
        started = self._stats.begin("move")
        try:
            if delete or undelete:
                src = await self._find(name, undelete)
                dst = src + DEL_SUFFIX if delete else src.removesuffix(DEL_SUFFIX)  # the same level, as borgstore
                dst = await self._other_form(name, dst, deleted=delete)
            elif change_level:
                src = await self._find(name, deleted)
                dst = nest(name, self._levels_for(name)[-1], add_suffix=DEL_SUFFIX if deleted else None)
            else:
                assert new_name is not None
                src, dst = await asyncio.gather(self._find(name, deleted), self._find(new_name, deleted))
            if src == dst:
                if not (await self._call(None, self.backend.info(src))).exists:
                    raise ObjectNotFound(name)
                return
            await self._call(None, self.backend.move(src, dst))
        finally:
            self._stats.end("move", started)

    async def _other_form(self, name: str, dst: str, *, deleted: bool) -> str:
        """Where a soft delete (``deleted``) or undelete of ``name`` must land: ``dst``, unless the namespace
        is between levels and the other form of the item is at another one. That copy is replaced, or it
        would come back once this one is gone."""
        levels = self._levels_for(name)
        if len(levels) == 1:
            return dst
        others = [nest(name, level, add_suffix=DEL_SUFFIX if deleted else None) for level in levels]
        others = [other for other in others if other != dst]
        infos = await asyncio.gather(*(self._call(None, self.backend.info(other)) for other in others))
        for other, info in zip(others, infos, strict=True):
            if info.exists and not info.directory:
                return other
        return dst

    async def hash(self, name: str, algorithm: str = "sha256", *, deleted: bool = False) -> str:
        """Return the hex digest of the value (any `hashlib` algorithm, or ``"blake3"``)."""
        validate_name(name)
        hashing.check_algorithm(algorithm)
        self._require_open()
        started = self._stats.begin("hash")
        try:
            nested = await self._find(name, deleted)
            return await self._call(None, self.backend.hash(nested, algorithm))
        finally:
            self._stats.end("hash", started)

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
        listing = self.backend.list(path).__aiter__()
        if self.emulator.latency:
            await asyncio.sleep(self.emulator.latency)  # one round trip per listing, not per entry
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

    # ranges ----------------------------------------------------------------------------------------------

    async def _find_sources(
        self, sources: Iterable[Source], namespace: str | None, deleted: bool
    ) -> tuple[str, builtins.list[Source]]:
        checked = validate_sources(sources)
        bare = validate_namespace((namespace or ROOTNS).rstrip("/"))
        prefix = bare + "/" if bare else ROOTNS
        unique = list(dict.fromkeys(name for name, _, _ in checked))
        for name in unique:
            if "/" in name:
                raise InvalidName(f"source names must not contain '/' (give the namespace separately): {name!r}")
            validate_name(prefix + name)
        self._require_open()
        found = await asyncio.gather(*(self._find(prefix + name, deleted) for name in unique))
        nested = dict(zip(unique, found, strict=True))
        return prefix, [(nested[name], offset, size) for name, offset, size in checked]

    async def gather(self, sources: Iterable[Source], *, namespace: str | None = None, deleted: bool = False) -> bytes:
        """Read byte ranges ``(name, offset, size)`` of items in ``namespace``; return them concatenated.

        Ranges of one item that overlap or lie within ``store.gather_gap`` bytes of each other are fetched
        as one read; the reads run in parallel where the backend allows. Every range must be complete: a
        short one raises [`ReadRangeError`][aiodepot.errors.ReadRangeError].
        """
        _, mapped = await self._find_sources(sources, namespace, deleted)
        started = self._stats.begin("gather")
        data = b""
        try:
            if mapped:
                plan = plan_ranges(mapped, self.gather_gap)
                fetched = await self._call("gather", self.backend.gather(plan.reads), len)
                blobs, position = [], 0
                view = memoryview(fetched)
                for _, _, size in plan.reads:
                    blobs.append(view[position : position + size])
                    position += size
                data = plan.assemble(blobs)
                expected = sum(size for _, _, size in mapped)
                if len(data) != expected or position != len(fetched):
                    raise ReadRangeError(f"gather returned {len(data)} bytes, expected {expected}")
        finally:
            self._stats.end("gather", started, len(data))
        return data

    async def defrag(
        self,
        sources: Iterable[Source],
        *,
        target: str | None = None,
        algorithm: str | None = None,
        namespace: str | None = None,
        deleted: bool = False,
    ) -> str:
        """Write a new item from byte ranges of items in ``namespace``; return its name (without namespace).

        Without ``target``, the name is the ``algorithm`` hex digest of the new content. The sources are
        left alone: deleting them is the caller's next step.
        """
        if target is None and algorithm is None:
            raise ValueError("defrag needs a target name or a hash algorithm")
        if algorithm is not None:
            hashing.check_algorithm(algorithm)
        prefix, mapped = await self._find_sources(sources, namespace, deleted)
        nested_target = None
        if target is not None:
            if "/" in target:
                raise InvalidName(f"the target must not contain '/' (give the namespace separately): {target!r}")
            nested_target = await self._find(validate_name(prefix + target), deleted)
        levels = self._levels_for(prefix + "key")[-1]  # the levels of any key in that namespace
        started = self._stats.begin("defrag")
        try:
            result = await self._call(
                None,
                self.backend.defrag(
                    mapped,
                    target=nested_target,
                    algorithm=algorithm,
                    namespace=prefix.rstrip("/"),
                    levels=levels,
                ),
            )
        finally:
            self._stats.end("defrag", started)
        return unnest(result, prefix).removeprefix(prefix)

    # files -----------------------------------------------------------------------------------------------

    async def load_file(
        self,
        name: str,
        path: str | os.PathLike[str],
        *,
        deleted: bool = False,
        max_concurrency: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> int:
        """Write the value of ``name`` into the local file ``path``; return its size.

        The value is split into ``part_size`` ranges (from the backend's capabilities) that are copied in
        parallel straight into their place in the file, never more than ``max_bytes_in_flight`` in memory.
        The file appears complete or not at all: it is written under a temporary name and renamed.
        """
        validate_name(name)
        target = os.fspath(path)
        self._require_open()
        started = self._stats.begin("load")
        size = 0
        try:
            nested = await self._find(name, deleted)
            info = await self._call(None, self.backend.info(nested))
            if not info.exists or info.directory:
                raise ObjectNotFound(name)
            part = self.backend.capabilities.part_size
            ranges = [(offset, min(part, info.size - offset)) for offset in range(0, info.size, part)]
            tmp = f"{target}.{secrets.token_hex(6)}.part"
            fd = await asyncio.to_thread(os.open, tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
            try:
                try:
                    await asyncio.to_thread(os.ftruncate, fd, info.size)

                    async def copy(span: tuple[int, int]) -> None:
                        offset, length = span
                        async with self.budget.reserve(length):
                            await self._call(
                                "load", self.backend.read_into(nested, fd, offset=offset, size=length), length
                            )

                    await run_bounded(
                        ranges,
                        copy,
                        max_concurrency=max_concurrency or self.max_concurrency,
                        progress=progress,
                        bytes_total=info.size,
                        bytes_of=lambda span, _: span[1],
                    )
                finally:
                    await asyncio.to_thread(os.close, fd)
                await asyncio.to_thread(os.replace, tmp, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            size = info.size
        finally:
            self._stats.end("load", started, size)
        return size

    async def store_file(
        self,
        name: str,
        path: str | os.PathLike[str],
        *,
        progress: ProgressCallback | None = None,
    ) -> int:
        """Store the content of the local file ``path`` under ``name``, atomically; return its size.

        The file is streamed (or copied inside the kernel, on posixfs), never read into memory whole.
        """
        validate_name(name)
        source = os.fspath(path)
        self._require_open()
        started = self._stats.begin("store")
        size = 0
        try:
            st = await asyncio.to_thread(os.stat, source)
            nested = await self._find(name, False)
            async with self.budget.reserve(min(st.st_size, self.backend.capabilities.part_size)):
                await self._call("store", self.backend.store_file(nested, source, size=st.st_size), st.st_size)
            size = st.st_size
            if progress is not None:
                await ProgressTracker(progress, 1, size).step(size)
        finally:
            self._stats.end("store", started, size)
        return size

    # store-wide ------------------------------------------------------------------------------------------

    async def quota(self) -> dict[str, int]:
        """Return ``{"limit": bytes, "usage": bytes}``; -1 where no quota is set."""
        self._require_open()
        return await self.backend.quota()

    @property
    def stats(self) -> dict[str, Any]:
        """Call counts, times (s), volumes (bytes) and throughputs (bytes/s), with borgstore's keys.

        ``<op>_time`` sums the duration of all calls; ``<op>_busy_time`` is the wall-clock time with at
        least one call running, so ``<op>_busy_throughput`` is what concurrent callers really got.
        """
        figures = self._stats.snapshot()
        if self._cache is not None:
            figures.update(self._cache.stats)
        return figures

    async def cache_invalidate(self, name: str = ROOTNS, *, deleted: bool = False) -> int:
        """Drop cached copies: all (``""``), a namespace's (``"data"``) or one item's; return how many.

        The primary storage is not touched. Without a cache this does nothing (and returns 0).
        """
        self._require_open()
        if self._cache is None:
            return 0
        if name == ROOTNS:
            return await self._cache.invalidate(ROOTNS)
        bare = validate_namespace(name.rstrip("/"))
        if any(prefix.rstrip("/") == bare for prefix, _ in self._levels) or bare + "/" in self._cache.policies:
            return await self._cache.invalidate(bare)
        return await self._cache.invalidate(await self._find(validate_name(name), deleted))

    # bulk ------------------------------------------------------------------------------------------------
    #
    # Every bulk call runs its items through _run_many: one by one (each a full single-item call, bounded
    # by max_concurrency), or, where the backend does many items in one round trip or thread job
    # (capabilities.batch_ops), in batches of capabilities.batch_size.

    def _names(self, names: Iterable[str]) -> builtins.list[str]:
        checked = [validate_name(name) for name in names]
        self._require_open()
        return checked

    def _batchable(self, names: Sequence[str], deleted: bool) -> builtins.list[str] | None:
        """The backend names for a batched bulk call, or None where items must go one by one."""
        if not self.backend.capabilities.batch_ops or len(names) < 2:
            return None
        suffix = DEL_SUFFIX if deleted else None
        nested = []
        for name in names:
            levels = self._levels_for(name)
            if len(levels) != 1:
                return None  # a namespace between two levels: finding each item costs lookups
            nested.append(nest(name, levels[0], add_suffix=suffix))
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
            sent = time.monotonic()
            volume = 0
            try:
                outcomes = await batch(indices, [nested[i] for i in indices])
                moved = [
                    0 if isinstance(outcome, Exception) or bytes_of is None else bytes_of(index, outcome)
                    for index, outcome in zip(indices, outcomes, strict=True)
                ]
                if self.emulator:  # each item is its own emulated round trip; they overlap as parallel calls
                    await asyncio.gather(*(self.emulator.delay(sent, nbytes) for nbytes in moved))
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
                self._stats.add(f"backend_{op}_calls", len(indices))
                if volume:
                    self._stats.add(f"backend_{op}_volume", volume)
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
        checked = self._names(names)

        async def single(index: int) -> bytes:
            return await self.load(checked[index], deleted=deleted)

        async def batch(_: Sequence[int], nested: builtins.list[str]) -> builtins.list[Any]:
            return await self.backend.load_batch(nested)

        return await self._run_many(
            "load",
            len(checked),
            single=single,
            nested=self._batchable(checked, deleted),
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
        checked = [(validate_name(name), validate_value(value)) for name, value in pairs]
        self._require_open()

        async def single(index: int) -> None:
            await self.store(*checked[index])

        async def batch(indices: Sequence[int], nested: builtins.list[str]) -> builtins.list[Any]:
            return await self.backend.store_batch(
                [(name, checked[index][1]) for index, name in zip(indices, nested, strict=True)]
            )

        return await self._run_many(
            "store",
            len(checked),
            single=single,
            nested=self._batchable([name for name, _ in checked], False),
            batch=batch,
            max_concurrency=max_concurrency,
            return_exceptions=return_exceptions,
            progress=progress,
            bytes_total=sum(len(value) for _, value in checked),
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
        checked = self._names(names)

        async def single(index: int) -> None:
            await self.delete(checked[index], deleted=deleted)

        async def batch(_: Sequence[int], nested: builtins.list[str]) -> builtins.list[Any]:
            return await self.backend.delete_batch(nested)

        return await self._run_many(
            "delete",
            len(checked),
            single=single,
            nested=self._batchable(checked, deleted),
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
        checked = self._names(names)

        async def single(index: int) -> ItemInfo:
            return await self.info(checked[index], deleted=deleted)

        async def batch(indices: Sequence[int], nested: builtins.list[str]) -> builtins.list[Any]:
            infos = await self.backend.info_batch(nested)
            return [
                info.with_name(checked[index]) if isinstance(info, ItemInfo) else info
                for index, info in zip(indices, infos, strict=True)
            ]

        return await self._run_many(
            "info",
            len(checked),
            single=single,
            nested=self._batchable(checked, deleted),
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

        return AsyncStoreMapping(self, namespace, soft_delete=soft_delete)


def _check_range(offset: object, size: object) -> None:
    if not isinstance(offset, int) or isinstance(offset, bool):
        raise TypeError(f"offset must be an int, got {offset!r}")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise ValueError(f"size must be None or an int >= 0, got {size!r}")
