"""zarr v3 on any aiodepot store: [`DepotZarrStore`][aiodepot.integrations.zarr.DepotZarrStore].

```python
import zarr, aiodepot
from aiodepot.integrations.zarr import DepotZarrStore
store = await DepotZarrStore.open(aiodepot.Store("sftp://backup@nas/srv/arrays"))
array = await zarr.api.asynchronous.create_array(store, shape=(1000, 1000), chunks=(100, 100), dtype="f4")
```

Each zarr key is one item of the store, its key made by
[`aiodepot.integrations.paths`][aiodepot.integrations.paths] (so any key fits), in the namespace given
(the whole store by default). Needs ``pip install 'aiodepot[zarr]'``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from typing import Any, Self, TypeVar

from ..errors import ObjectExists, ObjectNotFound, StoreNotFound
from ..names import ROOTNS, validate_namespace
from ..store import Store
from ..sync import Portal
from .paths import key_path, path_key, path_prefix_key

try:
    from zarr.abc.store import ByteRequest, OffsetByteRequest, RangeByteRequest, SuffixByteRequest
    from zarr.abc.store import Store as ZarrStore
    from zarr.core.buffer import Buffer, BufferPrototype, default_buffer_prototype
    from zarr.core.sync import sync as zarr_sync
except ImportError as exc:  # pragma: no cover - the extra is not installed
    raise ImportError("DepotZarrStore needs zarr 3: pip install 'aiodepot[zarr]'") from exc

__all__ = ["DepotZarrStore"]

T = TypeVar("T")


class DepotZarrStore(ZarrStore):
    """A zarr v3 store over an aiodepot [`Store`][aiodepot.Store].

    Args:
        store: the aiodepot store. If it is closed, the zarr store opens it on first use (creating it if
            it does not exist yet) and closes it in ``close()``; an open one stays its owner's.
        read_only: refuse writes (zarr raises ``ValueError`` for them).
        namespace: the namespace the keys live in (default: the whole store).
        portal: the [`Portal`][aiodepot.Portal] an open ``store`` runs on, if it was opened there (as a
            [`SyncStore`][aiodepot.SyncStore] does): calls from other event loops are run on it, since
            network backends keep their connections on one loop.

    Reads of byte ranges (``RangeByteRequest``, ``OffsetByteRequest``, ``SuffixByteRequest``) read only
    the range; ``get_partial_values`` runs its reads concurrently, ``max_concurrency`` of the store at
    once. ``set_if_not_exists`` is atomic where the backend creates atomically
    (``store(…, if_absent=True)``, see ``capabilities.atomic_create``); elsewhere it checks, then writes.
    """

    supports_writes = True
    supports_deletes = True
    supports_listing = True

    def __init__(
        self, store: Store, *, read_only: bool = False, namespace: str = ROOTNS, portal: Portal | None = None
    ) -> None:
        super().__init__(read_only=read_only)
        if not isinstance(store, Store):
            raise TypeError(f"store must be an aiodepot Store, not {type(store).__name__}")
        bare = validate_namespace(namespace.rstrip("/"))
        self.store = store
        """The aiodepot store the keys live in."""
        self.namespace = bare
        self._prefix = bare + "/" if bare else ""
        self._portal = portal
        self._owned_loop: asyncio.AbstractEventLoop | None = None

    # identity, pickling ------------------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"DepotZarrStore({self.store.url or self.store.backend!r}, namespace={self.namespace!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DepotZarrStore) or other.namespace != self.namespace:
            return False
        if other.store is self.store:
            return True
        return self.store._url is not None and other.store._url == self.store._url

    def __hash__(self) -> int:
        return hash((self.store._url or id(self.store), self.namespace))

    def __getstate__(self) -> dict[str, Any]:
        # the URL with its secrets (Store.url hides them): the unpickled store must sign in again
        if self.store._url is None:
            raise TypeError("a DepotZarrStore over a Store made from a backend instance cannot be pickled")
        config = {prefix: {"levels": levels} for prefix, levels in self.store.levels.items()}
        return {"url": self.store._url, "config": config, "namespace": self.namespace, "read_only": self.read_only}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            Store(state["url"], config=state["config"]), read_only=state["read_only"], namespace=state["namespace"]
        )

    def with_read_only(self, read_only: bool = False) -> DepotZarrStore:
        """A zarr store over the same aiodepot store, with another ``read_only``."""
        return type(self)(self.store, read_only=read_only, namespace=self.namespace, portal=self._portal)

    # lifecycle -----------------------------------------------------------------------------------------

    async def _open(self) -> None:
        if self._is_open:
            raise ValueError("store is already open")
        if not self.store.opened:
            try:
                await self.store.open()
            except StoreNotFound:
                if self.read_only:
                    raise FileNotFoundError(f"no store at {self.store.url}") from None
                await self.store.create()
                await self.store.open()
            self._owned_loop = asyncio.get_running_loop()
        await super()._open()

    def close(self) -> None:
        """Close the zarr store, and the aiodepot store if this zarr store opened it."""
        super().close()
        loop, self._owned_loop = self._owned_loop, None
        if loop is None or not self.store.opened:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            loop.create_task(self.store.close())
        elif loop.is_running():
            asyncio.run_coroutine_threadsafe(self.store.close(), loop).result()
        else:
            asyncio.run(self.store.close())

    async def _call(self, func: Callable[[], Awaitable[T]]) -> T:
        """Run ``func()`` where the aiodepot store lives (its portal, when it was opened there)."""
        await self._ensure_open()
        portal = self._portal
        if portal is None or portal.thread is threading.current_thread():
            return await func()

        async def run() -> T:
            return await func()

        return await asyncio.to_thread(portal.call, run)

    def _name(self, key: str) -> str:
        return self._prefix + path_key(key, room=100 - len(self._prefix))

    # reading ---------------------------------------------------------------------------------------------

    async def get(
        self, key: str, prototype: BufferPrototype | None = None, byte_range: ByteRequest | None = None
    ) -> Buffer | None:
        """The value of ``key`` (or a byte range of it); None if it is missing."""
        prototype = prototype or default_buffer_prototype()
        offset, size = _range(byte_range)
        name = self._name(key)

        async def load() -> bytes | None:
            try:
                return await self.store.load(name, offset=offset, size=size)
            except ObjectNotFound:
                return None

        if size == 0 or (isinstance(byte_range, SuffixByteRequest) and byte_range.suffix == 0):
            found = await self._call(lambda: self.store.exists(name))
            return prototype.buffer.from_bytes(b"") if found else None
        data = await self._call(load)
        return None if data is None else prototype.buffer.from_bytes(data)

    async def get_partial_values(
        self, prototype: BufferPrototype, key_ranges: Iterable[tuple[str, ByteRequest | None]]
    ) -> list[Buffer | None]:
        """Read many (ranges of) values concurrently; None for each missing key."""
        limit = asyncio.Semaphore(self.store.max_concurrency)

        async def one(key: str, byte_range: ByteRequest | None) -> Buffer | None:
            async with limit:
                return await self.get(key, prototype, byte_range)

        return list(await asyncio.gather(*(one(key, byte_range) for key, byte_range in key_ranges)))

    async def exists(self, key: str) -> bool:
        """True if ``key`` holds a value."""
        name = self._name(key)
        return await self._call(lambda: self.store.exists(name))

    async def getsize(self, key: str) -> int:
        """The size of the value of ``key``; ``FileNotFoundError`` if it is missing."""
        name = self._name(key)
        info = await self._call(lambda: self.store.info(name))
        if not info.exists or info.directory:
            raise FileNotFoundError(key)
        return int(info.size)

    # writing ---------------------------------------------------------------------------------------------

    async def set(self, key: str, value: Buffer) -> None:
        """Store ``value`` under ``key``, atomically."""
        self._check_writable()
        if not isinstance(value, Buffer):
            raise TypeError(f"DepotZarrStore.set(): expected a zarr Buffer, got {type(value).__name__}")
        name = self._name(key)
        data = value.as_buffer_like()
        await self._call(lambda: self.store.store(name, data))

    async def set_if_not_exists(self, key: str, value: Buffer) -> None:
        """Store ``value`` under ``key`` unless it holds a value already."""
        self._check_writable()
        if not isinstance(value, Buffer):
            raise TypeError(f"DepotZarrStore.set_if_not_exists(): expected a zarr Buffer, got {type(value).__name__}")
        name = self._name(key)
        data = value.as_buffer_like()

        async def create() -> None:
            if self.store.backend.capabilities.atomic_create:
                with contextlib.suppress(ObjectExists):
                    await self.store.store(name, data, if_absent=True)
            elif not await self.store.exists(name):
                await self.store.store(name, data)

        await self._call(create)

    async def _set_many(self, values: Iterable[tuple[str, Buffer]]) -> None:
        self._check_writable()
        items = [(self._name(key), value.as_buffer_like()) for key, value in values]
        await self._call(lambda: self.store.store_many(items))

    async def delete(self, key: str) -> None:
        """Delete ``key``; a missing one is no error."""
        self._check_writable()
        name = self._name(key)

        async def delete() -> None:
            try:
                await self.store.delete(name)
            except ObjectNotFound:
                pass

        await self._call(delete)

    async def delete_dir(self, prefix: str) -> None:
        """Delete every key below ``prefix`` (a directory, so ``foo`` spares ``foo-bar``)."""
        self._check_writable()
        directory = prefix.rstrip("/")
        keys = [key async for key in self.list_prefix(directory + "/" if directory else "")]
        names = [self._name(key) for key in keys]
        await self._call(lambda: self.store.delete_many(names, return_exceptions=True))

    # listing ---------------------------------------------------------------------------------------------

    async def _keys(self, prefix: str) -> list[str]:
        async def collect() -> list[str]:
            try:
                return [
                    key_path(info.name)
                    async for info in self.store.list(self.namespace, prefix=path_prefix_key(prefix))
                ]
            except ObjectNotFound:
                return []

        return await self._call(collect)

    async def list(self) -> AsyncIterator[str]:
        """Every key."""
        for key in await self._keys(""):
            yield key

    async def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        """Every key that starts with ``prefix``."""
        for key in await self._keys(prefix):
            yield key

    async def list_dir(self, prefix: str) -> AsyncIterator[str]:
        """The names directly below ``prefix``: keys, and the first element of deeper ones."""
        directory = prefix.rstrip("/")
        start = directory + "/" if directory else ""
        last = None
        for key in await self._keys(start):
            child = key[len(start) :].partition("/")[0]
            if child != last:
                last = child
                yield child

    # blocking ------------------------------------------------------------------------------------------

    def get_sync(
        self, key: str, *, prototype: BufferPrototype | None = None, byte_range: ByteRequest | None = None
    ) -> Buffer | None:
        """The blocking [`get`][aiodepot.integrations.zarr.DepotZarrStore.get] (run on zarr's event loop)."""
        return _blocking(self.get(key, prototype, byte_range))

    def set_sync(self, key: str, value: Buffer) -> None:
        """The blocking [`set`][aiodepot.integrations.zarr.DepotZarrStore.set]."""
        _blocking(self.set(key, value))

    def delete_sync(self, key: str) -> None:
        """The blocking [`delete`][aiodepot.integrations.zarr.DepotZarrStore.delete]."""
        _blocking(self.delete(key))

    @classmethod
    async def open(cls, *args: Any, **kwargs: Any) -> Self:
        """Make the store and open it (as zarr expects of every store)."""
        store = cls(*args, **kwargs)
        await store._open()
        return store


def _blocking(coro: Coroutine[Any, Any, T]) -> T:
    result: T = zarr_sync(coro)
    return result


def _range(byte_range: ByteRequest | None) -> tuple[int, int | None]:
    """``(offset, size)`` for ``Store.load`` from a zarr byte request."""
    if byte_range is None:
        return 0, None
    if isinstance(byte_range, RangeByteRequest):
        if byte_range.start < 0 or byte_range.end < byte_range.start:
            raise ValueError(f"a byte range needs 0 <= start <= end, got {byte_range}")
        return byte_range.start, byte_range.end - byte_range.start
    if isinstance(byte_range, OffsetByteRequest):
        if byte_range.offset < 0:
            raise ValueError(f"an offset must be >= 0, got {byte_range}")
        return byte_range.offset, None
    if isinstance(byte_range, SuffixByteRequest):
        if byte_range.suffix < 0:
            raise ValueError(f"a suffix must be >= 0, got {byte_range}")
        return -byte_range.suffix, None
    raise TypeError(f"Unexpected byte_range, got {byte_range}.")
