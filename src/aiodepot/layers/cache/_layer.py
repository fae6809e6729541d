"""The [`Cache`][aiodepot.layers.cache.Cache] layer: borgstore's cache modes over any two backends."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import functools
import logging
import time
from collections import Counter
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from typing import Any

from ...backends.base import Backend, Capabilities
from ...errors import ObjectNotFound, ReadRangeError, StoreError, StoreExists, StoreNotFound
from ...items import ItemInfo, Source, StoreValue, validate_value
from ...names import is_internal
from ..base import Layer
from ._index import CACHE_RESCAN_DIVISOR, Fill, Index
from ._policy import NO_CACHE, CacheMode, CachePolicy, prefix_of

__all__ = ["Cache"]

logger = logging.getLogger("aiodepot.layers.cache")


class Cache(Layer):
    """Keep copies of the items of selected namespaces in a second backend.

    Args:
        inner: the primary backend (the truth).
        cache: the cache backend; the layer creates, opens, closes and destroys it with the primary. A
            missing cache storage is created at ``open``.
        policies: backend namespace prefix (``"data/"``, ``""`` for everything) → a
            [`CachePolicy`][aiodepot.layers.cache.CachePolicy], a mode name, or a mapping with the keys
            ``cache``, ``max_age`` and ``size`` (a Store config entry works as is). The longest matching
            prefix applies to a name; names no prefix matches bypass the cache.

    ```python
    layer = Cache(PosixFSBackend("/srv/depot"), MemoryBackend(), {"data/": {"cache": "writethrough", "size": 2**30}})
    store = Store(backend=layer, config={"data/": {"levels": [2]}})
    ```

    Streaming reads (``read_chunks``, ``read_into``: ``Store.load_file``), ``info``, ``list`` and ``hash``
    always go to the primary. Loads in a cached namespace fetch whole values (a partial load on a miss
    loads and caches the whole value), so the layer does not offer ``parallel_ranges``.
    """

    def __init__(
        self,
        inner: Backend,
        cache: Backend,
        policies: Mapping[str, CachePolicy | CacheMode | str | Mapping[str, Any]],
    ) -> None:
        if not isinstance(cache, Backend):
            raise TypeError(f"the cache must be a Backend, not {type(cache).__name__}")
        if cache is inner:
            raise ValueError("the cache backend must not be the primary backend itself")
        self.cache = cache
        self._policies: builtins.list[tuple[str, CachePolicy]] = []
        super().__init__(inner)
        self.set_policies(policies)
        self._counts: Counter[str] = Counter()
        self._disabled = False
        self._cache_open = False
        self._indexes: dict[str, Index] = {}
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self._fills: dict[str, builtins.list[Fill]] = {}
        self._inflight: dict[str, asyncio.Task[bytes]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    @classmethod
    def in_memory(
        cls,
        inner: Backend,
        size: int,
        *,
        mode: CacheMode | str = CacheMode.WRITETHROUGH,
        max_age: float | None = None,
        namespace: str = "",
    ) -> Cache:
        """A bounded in-memory LRU cache: at most ``size`` bytes of values of ``namespace`` (default: all)."""
        from ...backends.memory import MemoryBackend

        policy = CachePolicy.from_config(namespace, {"cache": mode, "max_age": max_age, "size": size})
        return cls(inner, MemoryBackend(), {namespace: policy})

    def __repr__(self) -> str:
        state = "open" if self.opened else "closed"
        return f"<Cache {state} over {self.inner!r} in {self.cache!r}>"

    def _capabilities(self, inner: Capabilities) -> Capabilities:
        return inner

    # configuration -------------------------------------------------------------------------------------

    @property
    def policies(self) -> dict[str, CachePolicy]:
        """Namespace prefix → policy, as in force."""
        return dict(self._policies)

    def set_policies(self, policies: Mapping[str, CachePolicy | CacheMode | str | Mapping[str, Any]]) -> None:
        """Replace the per-namespace policies (only while the layer is closed)."""
        self._require_closed()
        if not isinstance(policies, Mapping):
            raise TypeError(f"policies must be a mapping of namespace -> policy, got {policies!r}")
        parsed: dict[str, CachePolicy] = {}
        for namespace, config in policies.items():
            prefix = prefix_of(namespace)
            if prefix in parsed:
                raise ValueError(f"namespace {prefix!r} has two cache policies")
            parsed[prefix] = CachePolicy.from_config(prefix, config)
        self._policies = sorted(parsed.items(), key=lambda item: len(item[0]), reverse=True)
        caching = any(policy.caching for policy in parsed.values())
        base = self.inner.capabilities
        object.__setattr__(
            self, "capabilities", base.replace(parallel_ranges=False) if caching else self._capabilities(base)
        )

    def policy_for(self, name: str) -> CachePolicy:
        """The policy of backend name ``name`` (longest matching namespace prefix)."""
        for prefix, policy in self._policies:
            if name.startswith(prefix):
                return policy
        return NO_CACHE

    def _namespace_of(self, name: str) -> str | None:
        for prefix, _ in self._policies:
            if name.startswith(prefix):
                return prefix
        return None

    def _caching(self, name: str) -> bool:
        # the store's own files (its remembered layout) go to the primary only
        return self._cache_open and not self._disabled and self.policy_for(name).caching and not is_internal(name)

    def _index_for(self, name: str) -> Index | None:
        namespace = self._namespace_of(name)
        return None if namespace is None else self._indexes.get(namespace)

    @property
    def disabled(self) -> bool:
        """True while the cache is off because its backend failed (until the layer is opened again)."""
        return self._disabled

    @property
    def stats(self) -> dict[str, Any]:
        """Cache figures with borgstore's keys (``cache_hits``, ``cache_misses``, ``cache_hit_ratio``,
        ``cache_errors``, ``cache_disabled``, ``cache_{load,store,delete}_calls``,
        ``cache_{load,store}_volume``) and more: ``cache_evictions``, ``cache_evicted_volume``,
        ``cache_skipped`` (values too big for their namespace), ``cache_scans``, and the items and bytes
        this layer knows of in limited namespaces (``cache_items``, ``cache_bytes``)."""
        counts = self._counts
        keys = (
            "hits",
            "misses",
            "errors",
            "load_calls",
            "store_calls",
            "delete_calls",
            "load_volume",
            "store_volume",
            "evictions",
            "evicted_volume",
            "skipped",
            "scans",
        )
        result: dict[str, Any] = {f"cache_{key}": counts.get(key, 0) for key in keys}
        lookups = result["cache_hits"] + result["cache_misses"]
        result["cache_hit_ratio"] = result["cache_hits"] / lookups if lookups else 0
        result["cache_disabled"] = self._disabled
        result["cache_items"] = sum(len(index.entries) for index in self._indexes.values())
        result["cache_bytes"] = sum(index.total for index in self._indexes.values())
        return result

    # failure handling ----------------------------------------------------------------------------------

    def _failed(self, what: str, exc: Exception) -> None:
        """A cache backend call failed: count it; the first failure turns the cache off with a warning."""
        self._counts["errors"] += 1
        if not self._disabled:
            self._disabled = True
            logger.warning("aiodepot cache: %s failed, the cache is off until the store is opened again: %r", what, exc)

    async def _guarded(self, what: str, call: Awaitable[Any]) -> bool:
        """Await a cache backend call; False if it failed (missing items count as done)."""
        try:
            await call
        except ObjectNotFound:
            return True
        except Exception as exc:
            self._failed(what, exc)
            return False
        return True

    # per-name serialization ----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _writing(self, names: Iterable[str], *, void: bool = True) -> AsyncIterator[None]:
        """Hold the write locks of ``names`` (in sorted order: no deadlocks) and void loads in flight.

        A write holds its names' locks across the primary call and the cache update, so cache and primary
        change in the same order; a load that read the primary before the write began does not put its
        (older) value into the cache afterwards (``void=False``: the caller is that load's own fill).
        """
        ordered = sorted({name for name in names if self.policy_for(name).caching})
        for name in ordered:
            lock, users = self._locks.get(name) or (asyncio.Lock(), 0)
            self._locks[name] = (lock, users + 1)
        held: builtins.list[asyncio.Lock] = []
        try:
            for name in ordered:
                lock = self._locks[name][0]
                await lock.acquire()
                held.append(lock)
                if void:
                    self._void_loads(name)
            yield
        finally:
            for lock in held:
                lock.release()
            for name in ordered:
                lock, users = self._locks[name]
                if users <= 1:
                    del self._locks[name]
                else:
                    self._locks[name] = (lock, users - 1)

    def _void_loads(self, name: str) -> None:
        for fill in self._fills.get(name, ()):
            fill.stale = True
        self._inflight.pop(name, None)  # later loads start a fresh primary read

    # index maintenance ---------------------------------------------------------------------------------

    async def _walk(self, path: str, skip: frozenset[str]) -> AsyncIterator[ItemInfo]:
        """Every item below ``path`` in the cache backend, with its full name; ``skip``: directories not to enter."""
        try:
            entries = [entry async for entry in self.cache.list(path)]
        except ObjectNotFound:
            return
        for entry in entries:
            full = f"{path}/{entry.name}" if path else entry.name
            if entry.directory:
                if full + "/" not in skip:
                    async for below in self._walk(full, skip):
                        yield below
            else:
                yield entry.with_name(full)

    def _other_namespaces(self, prefix: str) -> frozenset[str]:
        """Longer configured prefixes below ``prefix``: their items belong to their own namespace."""
        return frozenset(other for other, _ in self._policies if other != prefix and other.startswith(prefix))

    async def _scan(self, index: Index) -> None:
        """List the namespace in the cache backend and bring the index in line with it."""
        if index.scanning:
            return
        index.scanning, index.inserted = True, 0
        self._counts["scans"] += 1
        seen: dict[str, tuple[int, float]] = {}
        try:
            async for info in self._walk(index.namespace.rstrip("/"), self._other_namespaces(index.namespace)):
                # without an atime the mtime (when it was cached) is the best guess of the last use
                seen[info.name] = (info.size, info.atime or info.mtime)
        except Exception as exc:
            index.scanning, index.changed = False, set()
            self._failed(f"scan of namespace {index.namespace!r}", exc)
            return
        index.merge_scan(seen)

    async def _evict(self, index: Index, needed: int = 0) -> None:
        """Evict what is older than ``max_age``, then the least recently used until ``needed`` more bytes fit."""
        policy = index.policy
        victims: builtins.list[tuple[str, int]] = []
        if policy.max_age is not None:
            now = time.time()
            while index.entries:
                name, (size, used) = next(iter(index.entries.items()))
                if used and now - used <= policy.max_age:
                    break
                index.remove(name)
                victims.append((name, size))
        if policy.size is not None:
            while index.entries and index.total + needed > policy.size:
                name, (size, _) = index.entries.popitem(last=False)
                index.total -= size
                if index.scanning:
                    index.changed.add(name)
                victims.append((name, size))
        for name, size in victims:
            self._counts["delete_calls"] += 1
            if not await self._guarded(f"eviction of {name!r}", self.cache.delete(name)):
                return
            self._counts["evictions"] += 1
            self._counts["evicted_volume"] += size

    async def _cleanup(self) -> None:
        for index in builtins.list(self._indexes.values()):
            if self._disabled:
                return
            await self._scan(index)
            await self._evict(index)

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        # the coroutine is the task's own: cancelled before it started (a close right after), it is closed,
        # where a wrapper's cancellation would leave it never awaited
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # cache operations (never raise) --------------------------------------------------------------------

    async def _cache_load(self, name: str, offset: int, size: int | None) -> bytes | None:
        self._counts["load_calls"] += 1
        index = self._index_for(name)
        try:
            value = await self.cache.load(name, offset=offset, size=size)
        except ObjectNotFound:
            self._counts["misses"] += 1
            if index is not None:
                index.remove(name)  # evicted by another client
            return None
        except Exception as exc:
            self._failed(f"load of {name!r}", exc)
            return None
        self._counts["hits"] += 1
        self._counts["load_volume"] += len(value)
        if index is not None:
            known = index.entries.get(name)
            if known is None:  # cached by another client; the value may be a range of it
                try:
                    item_size = (await self.cache.info(name)).size
                except Exception:
                    item_size = len(value)
            else:
                item_size = known[0]
            index.add(name, item_size, time.time())
        return value

    async def _cache_put(self, name: str, size: int, write: Callable[[], Awaitable[None]]) -> None:
        """Put a value of ``size`` bytes into the cache with ``write()``, making room first."""
        if not self._caching(name):
            return
        index = self._index_for(name)
        if index is not None:
            limit = index.policy.size
            if limit is not None and size > limit:
                self._counts["skipped"] += 1
                await self._cache_drop(name)  # it can never fit, and no older value may stay
                return
            if limit is not None and index.inserted > limit / CACHE_RESCAN_DIVISOR and not index.scanning:
                self._spawn(self._scan(index))
            index.remove(name)
            index.reserve(name, size)
        try:
            if index is not None:
                await self._evict(index, needed=0)
            self._counts["store_calls"] += 1
            stored = not self._disabled and await self._guarded(f"store of {name!r}", write())
        finally:
            if index is not None:
                index.release(name, size)
        if stored:
            self._counts["store_volume"] += size
            if index is not None:
                index.add(name, size, time.time())
                index.inserted += size

    async def _cache_drop(self, name: str) -> None:
        if not (self._cache_open and not self._disabled):
            return
        index = self._index_for(name)
        if index is not None:
            index.remove(name)  # also if deleting fails: the next scan finds it again
        self._counts["delete_calls"] += 1
        await self._guarded(f"delete of {name!r}", self.cache.delete(name))

    async def _cache_move(self, src: str, dst: str) -> None:
        old_index, new_index = self._index_for(src), self._index_for(dst)
        known = old_index.entries.get(src) if old_index is not None else None
        if old_index is not None:
            old_index.remove(src)
        if not self._caching(dst):  # moved out of the cached namespaces
            await self._cache_drop(src)
            return
        try:
            await self.cache.move(src, dst)
        except ObjectNotFound:
            await self._cache_drop(dst)  # the primary's dst has src's value now; an old cached dst is stale
            return
        except Exception as exc:
            self._failed(f"move of {src!r} to {dst!r}", exc)
            return
        if new_index is not None:
            if known is not None:
                new_index.add(dst, known[0], time.time())  # moving counts as using it
            else:
                new_index.remove(dst)  # size unknown: the next scan or hit adds it

    # lifecycle -----------------------------------------------------------------------------------------

    async def create(self) -> None:
        """Create the primary storage, and the cache storage unless it exists already (it may be shared)."""
        await super().create()
        try:
            await self.cache.create()
        except StoreExists:
            pass
        except Exception as exc:
            logger.warning("aiodepot cache: creating the cache storage failed (it is created at open): %r", exc)

    async def destroy(self) -> None:
        """Destroy the primary storage and the cache storage."""
        await super().destroy()
        try:
            await self.cache.destroy()
        except StoreNotFound:
            pass
        except Exception as exc:
            logger.warning("aiodepot cache: destroying the cache storage failed: %r", exc)

    async def open(self) -> None:
        """Open the primary, then the cache (created if missing); a failing cache is turned off with a warning."""
        await super().open()
        self._disabled = False
        try:
            try:
                await self.cache.open()
            except StoreNotFound:
                await self.cache.create()
                await self.cache.open()
        except Exception as exc:
            self._failed("open", exc)
            return
        self._cache_open = True
        self._indexes = {prefix: Index(prefix, policy) for prefix, policy in self._policies if policy.limited}
        await self._cleanup()

    async def close(self) -> None:
        """Finish background work, clean up limited namespaces, close the cache, then the primary."""
        if not self.opened:  # closing twice, or a layer never opened: nothing to do
            return
        try:
            pending = builtins.list(self._tasks) + builtins.list(self._inflight.values())
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            if self._cache_open:
                if not self._disabled:
                    await self._cleanup()
                self._cache_open = False
                try:
                    await self.cache.close()
                except Exception as exc:
                    logger.warning("aiodepot cache: closing the cache failed: %r", exc)
        finally:
            self._indexes, self._inflight = {}, {}
            await super().close()

    # loads ---------------------------------------------------------------------------------------------

    async def load(self, name: str, *, offset: int = 0, size: int | None = None) -> bytes:
        """Load through the cache in a cached namespace (see the class docs), else from the primary."""
        if not self._caching(name):
            return await self.inner.load(name, offset=offset, size=size)
        if self.policy_for(name).mode is CacheMode.WRITETHROUGH:
            cached = await self._cache_load(name, offset, size)
            if cached is not None:
                return cached
        whole = await self._load_whole(name)
        start = max(len(whole) + offset, 0) if offset < 0 else offset
        return whole[start : None if size is None else start + size]

    async def _load_whole(self, name: str) -> bytes:
        """Load ``name`` from the primary and cache it; concurrent loads of one name share one primary read."""
        task = self._inflight.get(name)
        if task is None:
            task = asyncio.ensure_future(self._fetch(name))
            self._inflight[name] = task

            def done(finished: asyncio.Task[bytes]) -> None:
                if self._inflight.get(name) is finished:
                    del self._inflight[name]
                if not finished.cancelled():
                    finished.exception()  # retrieved: a failure is raised to the callers, not logged as lost

            task.add_done_callback(done)
        return await asyncio.shield(task)

    async def _fetch(self, name: str) -> bytes:
        fill = Fill()
        self._fills.setdefault(name, []).append(fill)
        try:
            value = await self.inner.load(name)
            if not fill.stale and self._caching(name):
                async with self._writing([name], void=False):  # waits for writes that began meanwhile
                    if not fill.stale:
                        await self._cache_put(name, len(value), lambda: self.cache.store(name, value))
            return value
        finally:
            fills = self._fills[name]
            fills.remove(fill)
            if not fills:
                del self._fills[name]

    async def load_batch(self, names: Sequence[str]) -> builtins.list[bytes | Exception]:
        """Cached names one by one (concurrently) through the cache, the others as one primary batch."""
        cached = [i for i, name in enumerate(names) if self._caching(name)]
        if not cached:
            return await self.inner.load_batch(names)
        results: builtins.list[bytes | Exception] = [b""] * len(names)
        others = [i for i in range(len(names)) if not self._caching(names[i])]

        async def one(name: str) -> bytes | Exception:
            try:
                return await self.load(name)
            except StoreError as exc:
                return exc

        loaded = await asyncio.gather(*(one(names[i]) for i in cached))
        for i, outcome in zip(cached, loaded, strict=True):
            results[i] = outcome
        if others:
            for i, outcome in zip(others, await self.inner.load_batch([names[i] for i in others]), strict=True):
                results[i] = outcome
        return results

    async def gather(self, sources: Iterable[Source]) -> bytes:
        """Ranges in cached namespaces are read as ``load`` reads them; the rest in one primary ``gather``."""
        reads = builtins.list(sources)
        cached = [i for i, (name, _, _) in enumerate(reads) if self._caching(name)]
        if not cached:
            return await self.inner.gather(reads)
        parts: builtins.list[bytes] = [b""] * len(reads)

        async def one(name: str, offset: int, size: int) -> bytes:
            part = await self.load(name, offset=offset, size=size)
            if len(part) != size:
                raise ReadRangeError(f"{name}: asked for {size} bytes at offset {offset}, got {len(part)}")
            return part

        loaded = await asyncio.gather(*(one(*reads[i]) for i in cached))
        for i, part in zip(cached, loaded, strict=True):
            parts[i] = part
        others = [i for i in range(len(reads)) if i not in set(cached)]
        if others:
            blob = await self.inner.gather([reads[i] for i in others])
            position = 0
            for i in others:
                size = reads[i][2]
                parts[i] = blob[position : position + size]
                position += size
        return b"".join(parts)

    # writes --------------------------------------------------------------------------------------------

    async def store(self, name: str, value: StoreValue, *, if_absent: bool = False) -> None:
        """Store in the primary, then (in a cached namespace) in the cache; with ``if_absent`` the primary
        decides (an existing item there raises ``ObjectExists`` and the cache is left alone)."""
        if not self._caching(name):
            await self.inner.store(name, value, if_absent=if_absent)
            return
        data = validate_value(value)
        async with self._writing([name]):
            await self.inner.store(name, data, if_absent=if_absent)
            await self._cache_put(name, len(data), lambda: self.cache.store(name, data))

    async def store_batch(self, items: Sequence[tuple[str, StoreValue]]) -> builtins.list[Exception | None]:
        """One primary batch; then the stored values of cached namespaces go into the cache."""
        if not any(self._caching(name) for name, _ in items):
            return await self.inner.store_batch(items)
        checked = [(name, validate_value(value)) for name, value in items]
        async with self._writing(name for name, _ in checked):
            outcomes = await self.inner.store_batch(checked)
            latest: dict[str, bytes | memoryview] = {}
            for (name, data), outcome in zip(checked, outcomes, strict=True):
                if outcome is None and self._caching(name):
                    latest[name] = data  # the last one of a name is the primary's value
            for name, data in latest.items():
                await self._cache_put(name, len(data), functools.partial(self.cache.store, name, data))
        return outcomes

    async def store_file(self, name: str, path: str, *, size: int) -> None:
        """Store the file in the primary, then copy it into the cache too (in a cached namespace)."""
        if not self._caching(name):
            await self.inner.store_file(name, path, size=size)
            return
        async with self._writing([name]):
            await self.inner.store_file(name, path, size=size)
            await self._cache_put(name, size, lambda: self.cache.store_file(name, path, size=size))

    async def store_chunks(
        self, name: str, chunks: AsyncIterable[bytes], *, size: int | None = None, if_absent: bool = False
    ) -> None:
        """Stream into the primary; a cached copy of an older value is dropped (the chunks are gone)."""
        if not self._caching(name):
            await self.inner.store_chunks(name, chunks, size=size, if_absent=if_absent)
            return
        async with self._writing([name]):
            try:
                await self.inner.store_chunks(name, chunks, size=size, if_absent=if_absent)
            finally:
                await self._cache_drop(name)

    async def delete(self, name: str) -> None:
        """Delete from the primary and from the cache."""
        if not self._caching(name):
            await self.inner.delete(name)
            return
        async with self._writing([name]):
            try:
                await self.inner.delete(name)
            finally:
                await self._cache_drop(name)

    async def delete_batch(self, names: Sequence[str]) -> builtins.list[Exception | None]:
        """One primary batch; the names of cached namespaces are dropped from the cache."""
        if not any(self._caching(name) for name in names):
            return await self.inner.delete_batch(names)
        async with self._writing(names):
            try:
                return await self.inner.delete_batch(names)
            finally:
                for name in dict.fromkeys(names):
                    if self._caching(name):
                        await self._cache_drop(name)

    async def move(self, src: str, dst: str) -> None:
        """Move in the primary, then the same in the cache (soft delete, undelete, level changes, renames)."""
        if not (self._caching(src) or self._caching(dst)):
            await self.inner.move(src, dst)
            return
        async with self._writing([src, dst]):
            try:
                await self.inner.move(src, dst)
            except BaseException:
                await self._cache_drop(src)  # it may be gone from the primary
                await self._cache_drop(dst)
                raise
            if self._caching(src):
                await self._cache_move(src, dst)
            else:
                await self._cache_drop(dst)

    async def defrag(
        self,
        sources: Iterable[Source],
        *,
        target: str | None = None,
        algorithm: str | None = None,
        namespace: str | None = None,
        levels: int = 0,
    ) -> str:
        """Forwarded (the sources stay); an older cached value of the target is dropped."""
        result = await self.inner.defrag(
            sources, target=target, algorithm=algorithm, namespace=namespace, levels=levels
        )
        if self._caching(result):
            async with self._writing([result]):
                await self._cache_drop(result)
        return result

    # invalidation --------------------------------------------------------------------------------------

    async def invalidate(self, name: str = "") -> int:
        """Drop cached copies below backend name ``name``: one item, a directory (recursively) or, with
        ``""``, every cached namespace. Returns how many items were dropped; the primary is not touched."""
        self._require_open()
        if not (self._cache_open and not self._disabled):
            return 0
        if name and self.policy_for(name).caching:
            with contextlib.suppress(ObjectNotFound):
                info = await self.cache.info(name)
                if info.exists and not info.directory:
                    async with self._writing([name]):
                        await self._cache_drop(name)
                    return 1
        roots = [name] if name else [prefix.rstrip("/") for prefix, policy in self._policies if policy.caching]
        if "" in roots:
            roots = [""]
        dropped = 0
        for root in roots:
            try:
                found = [info.name async for info in self._walk(root, frozenset())]
            except Exception as exc:
                self._failed(f"listing {root!r} to invalidate it", exc)
                return dropped
            for item in found:
                if not self.policy_for(item).caching:
                    continue
                async with self._writing([item]):
                    await self._cache_drop(item)
                dropped += 1
        return dropped
