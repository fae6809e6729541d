"""The core of [`Store`][aiodepot.Store]: configuration, lifecycle, names → backend names, single items, ranges.

Every operation validates its names before anything is touched, then maps each item name to the
backend name it lives at: the namespace's nesting levels spread keys over directories
(``data/0123…`` → ``data/01/23/0123…``) and a soft-deleted item carries the ``.del`` suffix. A namespace
may list several levels while a store migrates between layouts: an item is found at any of them, new
items go to the last one, and ``move(name, change_level=True)`` migrates an item.

Listing ([`store_listing`][aiodepot.store_listing]), file transfers ([`store_files`][aiodepot.store_files])
and bulk operations ([`store_bulk`][aiodepot.store_bulk]) build on this class; [`Store`][aiodepot.Store]
puts them together.
"""

from __future__ import annotations

import asyncio
import builtins
import datetime
import functools
import logging
import warnings
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Self, TypeVar

from . import hashing
from .backends import backend_from_url, normalize_url, without_secrets
from .backends.base import Backend, FirstRange
from .errors import (
    BackendError,
    InvalidName,
    NotSupported,
    ObjectNotFound,
    ReadRangeError,
    StoreAlreadyOpen,
    StoreNotOpen,
    ValueChanged,
)
from .items import BinaryReader, ItemInfo, Source, StoreInput, validate_sources, validate_value
from .layers.base import Layer
from .layers.meter import Meter
from .layout import internal_names, nests, read_layout, write_layout
from .names import DEL_SUFFIX, ROOTNS, nest, unnest, validate_name, validate_namespace
from .stack import WriteBackOption, build_stack, cache_policies
from .stats import Stats
from .transfer import ByteBudget, ValueBuffer, plan_ranges, run_bounded

if TYPE_CHECKING:
    from .emulation import Emulator
    from .layers.cache import Cache
    from .layers.writeback import WriteBack

__all__ = ["DEFAULT_CONFIG", "MAX_LEVELS", "RANGED_LOAD_TRIES", "StoreBase", "operation"]

T = TypeVar("T")
P = ParamSpec("P")
S = TypeVar("S", bound="StoreBase")

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


def operation(
    func: Callable[Concatenate[S, P], Awaitable[T]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, T]]:
    """Run a Store method under the store's per-operation ``timeout`` (``TimeoutError`` when it passes)."""

    @functools.wraps(func)
    async def timed(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        if self.timeout is None:
            return await func(self, *args, **kwargs)
        async with asyncio.timeout(self.timeout):
            return await func(self, *args, **kwargs)

    timed.__aiodepot_operation__ = func  # type: ignore[attr-defined]  # Store merges its wrapper with this one
    return timed


_BARE_CHECKED = (
    "_check",
    "_check_load",
    "_check_store",
    "load",
    "store",
    "load_blocking",
    "store_blocking",
    "_may_replace",
)
"""What a Store does itself when it calls a backend bare (see `_bare_backend`): a backend class that overrides
any of these keeps its own version (the calls go through the metering layer)."""


def _bare_backend(calls: Backend) -> Backend | None:
    """The backend right under the Store's metering layer, where nothing else is in between and it keeps
    the base class's checks: single loads and stores then run the backend's open and permission checks and
    its operation themselves, count the backend call in the same step as the Store's, and skip checking
    the name again (the Store made it from a valid name by nesting, which keeps it valid)."""
    inner = calls.inner if isinstance(calls, Meter) else None
    if (
        isinstance(inner, Backend)
        and not isinstance(inner, Layer)
        and all(getattr(type(inner), method) is getattr(Backend, method) for method in _BARE_CHECKED)
    ):
        return inner
    return None


async def next_within(iterator: AsyncIterator[T], seconds: float | None) -> T:
    """``anext(iterator)`` within ``seconds`` (one step of a listing or a stream is one operation)."""
    if seconds is None:
        return await anext(iterator)
    async with asyncio.timeout(seconds):
        return await anext(iterator)


class StoreBase:
    """The core of [`Store`][aiodepot.Store] (see there for the arguments): use `Store`."""

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
        timeout: float | None = None,
        writeback: WriteBackOption = None,
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
        self._url = url if url is None else normalize_url(url)  # with its secrets: to open the store again
        self.url = None if self._url is None else without_secrets(self._url)
        """The store URL with its secrets hidden (``s3:KEY:***@…``), as messages show it; None for a store
        made from a backend instance."""
        self._levels = _parse_config(DEFAULT_CONFIG if config is None else config)
        self._config_given = config is not None  # else: the layout the store remembers, read at open
        self._stats = Stats()
        stack = build_stack(
            backend,
            self._stats,
            config=config or {},
            cache_url=cache_url,
            cache_backend=cache_backend,
            latency=latency,
            bandwidth=bandwidth,
            writeback=writeback,
            max_concurrency=max_concurrency,
        )
        self.backend: Backend = stack.backend
        """The backend (or layer stack) the store runs on; a cache layer the store made is part of it."""
        self._calls = stack.calls  # the top of the layer stack: every backend call goes here
        self._plain = stack.plain or stack.backend  # the store's own files: not counted, not buffered
        self._cache: Cache | None = stack.cache
        self._writeback: WriteBack | None = stack.writeback
        self.emulator: Emulator = stack.emulator
        """The latency/bandwidth emulation in force (false when off)."""
        if max_concurrency is not None and max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        self.max_concurrency = max_concurrency or backend.capabilities.preferred_concurrency
        if gather_gap < 0:
            raise ValueError(f"gather_gap must be >= 0, got {gather_gap}")
        self.gather_gap = gather_gap
        self.budget = ByteBudget(max_bytes_in_flight)
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be None or > 0 seconds, got {timeout!r}")
        self.timeout = timeout
        """Seconds after which one operation is cancelled and raises ``TimeoutError`` (None: no limit)."""
        self._load_counts = self._stats.op("load")
        self._store_counts = self._stats.op("store")
        self._bare = _bare_backend(self._calls)

    def __repr__(self) -> str:
        return f"<Store {self.url or self.backend!r} {'open' if self.opened else 'closed'}>"

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

    @property
    def _levels(self) -> builtins.list[tuple[str, builtins.list[int]]]:
        """(namespace prefix, nesting levels), longest prefix first."""
        return self._namespace_levels

    @_levels.setter
    def _levels(self, levels: builtins.list[tuple[str, builtins.list[int]]]) -> None:
        self._namespace_levels = levels
        # every name lives at itself: no namespace nests (the default config), so single calls skip nesting
        self._flat = any(prefix == "" for prefix, _ in levels) and all(nested == [0] for _, nested in levels)

    def set_levels(self, config: Mapping[str, Mapping[str, Any]]) -> None:
        """Replace the namespace configuration (e.g. to start a migration to other nesting levels).

        Cache keys in ``config`` replace the cache policies too (only while the store is closed); a config
        without them leaves the cache policies alone. The change applies to this store object; to make
        the store remember it for every later ``Store(url)`` without a config, follow it with
        ``await store.save_layout()``.
        """
        levels = _parse_config(config)
        policies = cache_policies(config)
        if any(policy.caching for policy in policies.values()):
            if self._cache is None:
                raise ValueError("the config sets cache policies but the store has no cache (give cache_url=)")
            self._cache.set_policies(policies)
        self._levels = levels
        self._config_given = True

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

    async def create(self, *, remember_layout: bool = True) -> None:
        """Initialize the storage (an empty existing directory is accepted); see [`destroy`][aiodepot.Store.destroy].

        A store given a config that nests a namespace remembers it (see [`aiodepot.layout`][aiodepot.layout]),
        unless ``remember_layout=False`` (the borgstore drop-in makes what borgstore makes).
        """
        if self.backend.opened:
            raise StoreAlreadyOpen("create() needs a closed store")
        await self._calls.create()
        if (
            remember_layout and self._config_given and nests(self._layout())
        ):  # remember it: Store(url) then finds the items
            await self._calls.open()
            try:
                await write_layout(self._plain, self._layout())
            finally:
                await self._calls.close()

    @operation
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
        await run_bounded(names, self._calls.mkdir, max_concurrency=self.max_concurrency)

    async def destroy(self) -> None:
        """Remove the storage and everything in it."""
        if self.backend.opened:
            raise StoreAlreadyOpen("destroy() needs a closed store")
        await self._calls.destroy()

    async def open(self) -> None:
        """Start using the store; without a config, with the nesting levels the store remembers (if any,
        see [`aiodepot.layout`][aiodepot.layout])."""
        with internal_names():  # a backend that indexes its content at open sees the layout file
            await self._calls.open()
        if self._config_given:
            return
        try:
            remembered = await read_layout(self._plain)
        except BaseException:
            await self._calls.close()
            raise
        if remembered:
            remembered.setdefault(ROOTNS, {"levels": [0]})  # names outside the remembered namespaces: flat, as before
            self._levels = _parse_config(remembered)

    @operation
    async def save_layout(self) -> None:
        """Remember the nesting levels in force in the store (its internal ``layout.hid``), for every later
        ``Store(url)`` without a config; ``aiodepot config URL --levels …`` does the same. See
        [`set_levels`][aiodepot.Store.set_levels] to change them first."""
        self._require_open()
        if not await write_layout(self._plain, self._layout()):
            raise NotSupported(
                f"{self.backend.location} does not support save_layout: it keeps internal (.hid) names to itself"
            )
        self._config_given = True

    def _layout(self) -> dict[str, dict[str, builtins.list[int]]]:
        return {prefix: {"levels": levels} for prefix, levels in self._levels}

    async def close(self) -> None:
        """Stop using the store and release its resources."""
        await self._calls.close()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # plumbing --------------------------------------------------------------------------------------------

    @operation
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
        infos = await asyncio.gather(*(self._calls.info(c) for c in candidates))
        for candidate, info in zip(candidates, infos, strict=True):
            if info.exists and not info.directory:
                return candidate
        return candidates[-1]

    # single items ----------------------------------------------------------------------------------------

    @operation
    async def info(self, name: str, *, deleted: bool = False) -> ItemInfo:
        """Describe item ``name`` (``exists=False`` if it is missing); ``info.name`` is ``name``."""
        validate_name(name)
        self._require_open()
        started = self._stats.begin("info")
        try:
            nested = await self._find(name, deleted)
            info = await self._calls.info(nested)
        finally:
            self._stats.end("info", started)
        return info.with_name(name)

    @operation
    async def load(self, name: str, *, offset: int = 0, size: int | None = None, deleted: bool = False) -> bytes:
        """Return the value of ``name``, or ``size`` bytes from ``offset`` (negative: from the end).

        A range past the end comes back short (possibly empty); a missing item raises ``ObjectNotFound``.
        On backends where it pays (``capabilities.parallel_ranges``), a big value is fetched as parallel
        ``part_size`` ranges, within the store's byte budget.
        """
        validate_name(name)
        check_range(offset, size)
        self._require_open()
        counts = self._load_counts
        started = counts.begin()
        data: bytes | None = None
        bare = False
        try:
            nested = name if self._flat and not deleted else await self._find(name, deleted)
            capabilities = self.backend.capabilities
            if capabilities.parallel_ranges and offset >= 0 and (size is None or size > capabilities.part_size):
                data = await self._load_ranges(nested, offset, size, capabilities.part_size)
            elif (backend := self._bare) is not None:  # as the meter and the backend's load would, in one step
                if backend.permissions.restricted:
                    backend.permissions.check(nested, "r")
                data = await backend._load(nested, offset, size)
                bare = True
            else:
                data = await self._calls.load(nested, offset=offset, size=size)
        finally:
            if data is None:
                counts.end(started)
            else:
                counts.end(started, len(data), 1, bare)
        return data

    async def _load_ranges(self, nested: str, offset: int, size: int | None, part: int) -> bytes:
        """Load a big value as parallel ``part``-sized ranges into one buffer.

        The first range doubles as a probe: a value that fits in it costs one request, as a plain load. The
        parts are separate requests, so they must all come from one content: where the backend tags the
        first range with a version, the others are asked on that condition (a replacement meanwhile raises
        ``ValueChanged``); elsewhere the value's size and mtime are read with the first range and again
        after the last. A value replaced meanwhile is loaded again (a few times, then it gives up).
        """
        for _ in range(RANGED_LOAD_TRIES):
            async with self.budget.reserve(part):
                first = await self._calls.load_first(nested, offset, part)
            end = first.size if size is None else min(first.size, offset + size)
            if len(first.data) < part or end <= offset + part:
                return first.data
            try:
                data = await self._load_rest(nested, offset, end, part, first)
            except ValueChanged:
                pass
            else:
                if first.version is not None:
                    return data
                after = await self._calls.info(nested)
                if (after.size, after.mtime) == (first.size, first.mtime):
                    return data
            logger.warning("%s changed while it was loaded in parts; loading it again", nested)
        raise BackendError(f"{nested} kept changing while it was loaded in parts")

    async def _load_rest(self, nested: str, offset: int, end: int, part: int, first: FirstRange) -> bytes:
        """The ranges after ``first``, each loaded into its place in one buffer (``load_into``: a backend
        that can receives straight into it; on the condition of ``first``'s version where it has one),
        returned without a copy."""
        buffer = ValueBuffer(end - offset)
        version = first.version
        with buffer.view() as view:
            view[:part] = first.data
            spans = [(start, min(part, end - start)) for start in range(offset + part, end, part)]
            short_at = end  # where the value turned out to end, if it shrank meanwhile

            async def fetch(span: tuple[int, int]) -> None:
                nonlocal short_at
                start, length = span
                async with self.budget.reserve(length):
                    got = await self._calls.load_into(
                        nested, start, view[start - offset : start - offset + length], version=version
                    )
                if got < length:
                    short_at = min(short_at, start + got)

            await run_bounded(spans, fetch, max_concurrency=self.max_concurrency)
        return buffer.value(short_at - offset)

    @operation
    async def store(self, name: str, value: StoreInput, *, if_absent: bool = False) -> None:
        """Store ``value`` under ``name``, atomically.

        ``value`` is bytes or a C-contiguous buffer (not used after the call returns, so the caller may
        reuse it), or a stream: an async iterable of byte chunks or a binary file object (read in
        ``part_size`` pieces in a worker thread). A stream goes to the backend's streaming upload
        (multipart where the backend has it), so memory stays bounded by the chunk sizes; if the stream
        fails, nothing is stored.

        With ``if_absent=True`` the store only creates: if ``name`` exists it raises
        [`ObjectExists`][aiodepot.errors.ObjectExists] and leaves the item alone. The backend decides
        atomically, so of many writers racing to create one name exactly one wins. A backend that cannot
        decide atomically raises [`NotSupported`][aiodepot.errors.NotSupported] (see
        ``backend.capabilities.atomic_create``). A soft-deleted item does not count as existing.
        """
        validate_name(name)
        chunks = _as_chunks(value, self.backend.capabilities.part_size)
        data = validate_value(value) if chunks is None else b""
        self._require_open()
        counts = self._store_counts
        started = counts.begin()
        size = 0
        bare = False
        try:
            nested = name if self._flat else await self._find(name, False)
            if chunks is None:
                backend = self._bare
                if backend is not None and not if_absent and not backend.permissions.restricted:
                    await backend._store(nested, data, replace=True)  # as the meter and the backend's store would
                    bare = True
                else:
                    await self._calls.store(nested, data, if_absent=if_absent)
                size = len(data)
            else:
                counted = _Counted(chunks)
                try:
                    await self._calls.store_chunks(nested, counted, if_absent=if_absent)
                except Exception:
                    if counted.failure is not None:
                        raise counted.failure from None  # the stream's own error, not a backend's version of it
                    raise
                size = counted.size
        finally:
            counts.end(started, size, 1, bare)

    @operation
    async def url_for(self, name: str, *, expires: float | datetime.timedelta, method: str = "GET") -> str:
        """A presigned URL through which anyone holding it can ``GET`` the value of ``name`` (or ``PUT`` a
        new one) with a plain HTTP client and no credentials, until ``expires`` (seconds from now, or a
        ``timedelta``) has passed.

        Offered by backends that can sign URLs (s3); others raise
        [`NotSupported`][aiodepot.errors.NotSupported], and so do layers that change the stored form
        (encryption, transforms). The URL goes straight to the service: it bypasses this store's
        statistics, cache and permission map (which is checked once, here: ``r`` for ``GET``, ``W`` for
        ``PUT``). Treat the URL as a secret until it expires.
        """
        validate_name(name)
        self._require_open()
        nested = await self._find(name, False)
        return await self._calls.url_for(nested, expires=expires, method=method)

    @operation
    async def exists(self, name: str, *, deleted: bool = False) -> bool:
        """True if item ``name`` exists (a directory of that name is no item)."""
        info = await self.info(name, deleted=deleted)
        return info.exists and not info.directory

    @operation
    async def delete(self, name: str, *, deleted: bool = False) -> None:
        """Delete ``name`` for good (see ``move(name, delete=True)`` for a soft delete)."""
        validate_name(name)
        self._require_open()
        started = self._stats.begin("delete")
        try:
            nested = await self._find(name, deleted)
            await self._calls.delete(nested)
        finally:
            self._stats.end("delete", started)

    @operation
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
                if not (await self._calls.info(src)).exists:
                    raise ObjectNotFound(name)
                return
            await self._calls.move(src, dst)
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
        infos = await asyncio.gather(*(self._calls.info(other) for other in others))
        for other, info in zip(others, infos, strict=True):
            if info.exists and not info.directory:
                return other
        return dst

    @operation
    async def hash(self, name: str, algorithm: str = "sha256", *, deleted: bool = False) -> str:
        """Return the hex digest of the value (any `hashlib` algorithm, or ``"blake3"``)."""
        validate_name(name)
        hashing.check_algorithm(algorithm)
        self._require_open()
        started = self._stats.begin("hash")
        try:
            nested = await self._find(name, deleted)
            return await self._calls.hash(nested, algorithm)
        finally:
            self._stats.end("hash", started)

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

    @operation
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
                fetched = await self._calls.gather(plan.reads)
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

    @operation
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
            result = await self._calls.defrag(
                mapped, target=nested_target, algorithm=algorithm, namespace=prefix.rstrip("/"), levels=levels
            )
        finally:
            self._stats.end("defrag", started)
        return unnest(result, prefix).removeprefix(prefix)

    # store-wide ------------------------------------------------------------------------------------------

    @operation
    async def quota(self) -> dict[str, int]:
        """Return ``{"limit": bytes, "usage": bytes}``; -1 where no quota is set."""
        self._require_open()
        return await self._calls.quota()

    @property
    def stats(self) -> dict[str, Any]:
        """Call counts, times (s), volumes (bytes) and throughputs (bytes/s), with borgstore's keys.

        ``<op>_time`` sums the duration of all calls; ``<op>_busy_time`` is the wall-clock time with at
        least one call running, so ``<op>_busy_throughput`` is what concurrent callers really got.
        """
        figures = self._stats.snapshot()
        if self._cache is not None:
            figures.update(self._cache.stats)
        if self._writeback is not None:
            figures.update(self._writeback.stats)
        return figures

    @operation
    async def flush(self) -> None:
        """Write the backlog of the store's [`WriteBack`][aiodepot.layers.WriteBack] layer to the backend;
        return when all of it is there. Without a write-back layer there is nothing to write: call it
        unconditionally where the data must be durable.

        A failure raises [`WriteBackError`][aiodepot.errors.WriteBackError] (its ``pending`` says how many
        changes are still waiting); they stay in the backlog and the next ``flush()`` retries them.
        """
        self._require_open()
        if self._writeback is not None:
            await self._writeback.flush()

    @operation
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


def _as_chunks(value: object, part_size: int) -> AsyncIterable[bytes] | None:
    """The chunks of a stream given to ``store`` (None for a plain value)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return None
    if isinstance(value, AsyncIterable):
        return value
    if isinstance(value, BinaryReader) and not isinstance(value, str):
        return _read_file(value, part_size)
    return None  # validate_value says what is wrong with it


async def _read_file(file: BinaryReader, part_size: int) -> AsyncIterator[bytes]:
    while True:
        chunk = await asyncio.to_thread(file.read, part_size)
        if not isinstance(chunk, bytes | bytearray | memoryview):
            raise TypeError(f"the file object must be opened in binary mode (read gave {type(chunk).__name__})")
        if not chunk:
            return
        yield bytes(chunk)


class _Counted:
    """Passes chunks through, checking each is bytes-like and counting the bytes (for the statistics).

    An error of the stream itself is kept as ``failure``, so the store raises it as it is, whatever the
    backend made of it on the way.
    """

    def __init__(self, chunks: AsyncIterable[bytes]) -> None:
        self._chunks = chunks
        self.size = 0
        self.failure: Exception | None = None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        source = aiter(self._chunks)
        while True:
            try:
                chunk = await anext(source)
                if isinstance(chunk, str) or not isinstance(chunk, bytes | bytearray | memoryview):
                    raise TypeError(f"a stream given to store must yield bytes, not {type(chunk).__name__}")
            except StopAsyncIteration:
                return
            except Exception as exc:
                self.failure = exc
                raise
            self.size += len(chunk)
            yield chunk


def check_range(offset: object, size: object) -> None:
    if not isinstance(offset, int) or isinstance(offset, bool):
        raise TypeError(f"offset must be an int, got {offset!r}")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise ValueError(f"size must be None or an int >= 0, got {size!r}")
