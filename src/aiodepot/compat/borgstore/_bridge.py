"""The other direction: a borgstore-style synchronous backend object as an async aiodepot backend.

The compat Store runs the async [`aiodepot.Store`][aiodepot.Store] over a
[`SyncBackendBridge`][aiodepot.compat.borgstore._bridge.SyncBackendBridge]. For an untouched compat backend
(an [`AiodepotBackend`][aiodepot.compat.borgstore.backends._base.AiodepotBackend]) each call goes straight
to its async backend. Anything else — a third-party ``BackendBase``, a duck-typed wrapper, a compat backend
with a method replaced on the instance — is called in a worker thread, one call at a time (borgstore
backends are not thread-safe, and borgstore serializes their calls).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Any, Self

from ...backends.base import Backend, Capabilities
from ...items import ItemInfo, Source, StoreValue
from ...layers.base import Wrapper
from .backends._base import AiodepotBackend
from .backends.errors import translate

__all__ = ["SyncBackendBridge"]

_LIST_STEP = 100
"""Entries of a sync ``list`` generator pulled per worker-thread job."""


class SyncBackendBridge(Wrapper):
    """An aiodepot backend over a borgstore-style sync backend object ``sync_backend``."""

    capabilities = Capabilities(preferred_concurrency=8)

    def __init__(self, sync_backend: Any) -> None:
        super().__init__()
        self.sync_backend = sync_backend
        self._lock: asyncio.Lock | None = None

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Not supported: a bridge always wraps a backend object."""
        raise NotImplementedError("SyncBackendBridge wraps a backend object; it has no URL")

    def __repr__(self) -> str:
        return f"<SyncBackendBridge {self.sync_backend!r}>"

    @property
    def opened(self) -> bool:
        """The wrapped backend's state (or what the bridge saw, for objects without ``opened``)."""
        return bool(getattr(self.sync_backend, "opened", self._opened_flag))

    @opened.setter
    def opened(self, value: bool) -> None:
        self._opened_flag = value

    def _native(self, method: str) -> Backend | None:
        """The async backend to call ``method`` on directly, or None to call the sync object."""
        obj = self.sync_backend
        if (
            isinstance(obj, AiodepotBackend)
            and method not in vars(obj)
            and getattr(type(obj), method) is getattr(AiodepotBackend, method)
        ):
            return obj.async_backend
        return None

    # blocking twins: where the call goes straight to an aiodepot backend that has them (a file store), the
    # drop-in's single calls run in the caller's thread, as borgstore's do

    def has_blocking(self, operation: str) -> bool:
        """True where the call goes to an aiodepot backend that has the blocking twin."""
        native = self._native(operation)
        return native is not None and native.has_blocking(operation)

    def _blocking_native(self, operation: str) -> Backend:
        native = self._native(operation)
        if native is None:
            raise NotImplementedError(f"{self!r} has no blocking {operation}")
        return native

    def info_blocking(self, name: str) -> ItemInfo:
        """The native backend's blocking info."""
        return ItemInfo(*self._blocking_native("info").info_blocking(name))

    def load_blocking(self, name: str, *, offset: int = 0, size: int | None = None) -> bytes:
        """The native backend's blocking load."""
        return self._blocking_native("load").load_blocking(name, offset=offset, size=size)

    def store_blocking(self, name: str, value: StoreValue) -> None:
        """The native backend's blocking store."""
        self._blocking_native("store").store_blocking(name, value)

    def delete_blocking(self, name: str) -> None:
        """The native backend's blocking delete."""
        self._blocking_native("delete").delete_blocking(name)

    async def _sync(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call ``sync_backend.method`` in a worker thread, one call at a time; errors become aiodepot's."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            try:
                return await asyncio.to_thread(getattr(self.sync_backend, method), *args, **kwargs)
            except Exception as exc:
                translated = translate(exc)
                if translated is exc:
                    raise
                raise translated from exc

    async def _do(self, method: str, *args: Any, **kwargs: Any) -> Any:
        native = self._native(method)
        if native is not None:
            return await getattr(native, method)(*args, **kwargs)
        return await self._sync(method, *args, **kwargs)

    # the lifecycle hooks (the public methods below do without the template's state checks: the wrapped
    # object keeps its own state)

    async def _create(self) -> None:
        await self._do("create")

    async def _destroy(self) -> None:
        await self._do("destroy")

    async def _open(self) -> None:
        await self._do("open")

    async def _close(self) -> None:
        await self._do("close")

    async def create(self) -> None:
        """Initialize the storage."""
        await self._do("create")

    async def destroy(self) -> None:
        """Remove the storage."""
        await self._do("destroy")

    async def open(self) -> None:
        """Start using the storage."""
        await self._do("open")
        self.opened = True

    async def close(self) -> None:
        """Stop using the storage."""
        self.opened = False
        await self._do("close")

    async def mkdir(self, name: str) -> None:
        """Create directory ``name``."""
        await self._do("mkdir", name)

    async def rmdir(self, name: str) -> None:
        """Remove the empty directory ``name``."""
        await self._do("rmdir", name)

    async def info(self, name: str) -> ItemInfo:
        """Describe ``name``."""
        return ItemInfo(*(await self._do("info", name)))

    async def load(self, name: str, *, offset: int = 0, size: int | None = None) -> bytes:
        """Read a value or a range of it."""
        data: bytes = await self._do("load", name, offset=offset, size=size)
        return data

    async def store(self, name: str, value: StoreValue, *, if_absent: bool = False) -> None:
        """Write a value; ``if_absent`` only where the bridge reaches an aiodepot backend directly (a
        borgstore-style sync backend has no atomic create: ``NotSupported``)."""
        if not if_absent:
            await self._do("store", name, value)
            return
        native = self._native("store")
        if native is None:
            raise self._not_supported(
                "store(..., if_absent=True)", "a borgstore-style backend object cannot create atomically"
            )
        await native.store(name, value, if_absent=True)

    async def delete(self, name: str) -> None:
        """Remove ``name``."""
        await self._do("delete", name)

    async def move(self, src: str, dst: str) -> None:
        """Rename ``src`` to ``dst``."""
        await self._do("move", src, dst)

    async def list(self, name: str) -> AsyncIterator[ItemInfo]:
        """Yield the entries of directory ``name``."""
        native = self._native("list")
        if native is not None:
            async for info in native.list(name):
                yield info
            return
        iterator: Any = None

        def step() -> list[Any]:
            nonlocal iterator
            if iterator is None:
                iterator = iter(self.sync_backend.list(name))
            batch = []
            for info in iterator:
                batch.append(info)
                if len(batch) >= _LIST_STEP:
                    break
            return batch

        try:
            while True:
                batch = await self._sync_call(step)
                for info in batch:
                    yield ItemInfo(*info)
                if len(batch) < _LIST_STEP:
                    return
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    async def _sync_call(self, func: Any) -> Any:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            try:
                return await asyncio.to_thread(func)
            except Exception as exc:
                translated = translate(exc)
                if translated is exc:
                    raise
                raise translated from exc

    async def hash(self, name: str, algorithm: str = "sha256") -> str:
        """Hex digest of the value of ``name``."""
        digest: str = await self._do("hash", name, algorithm)
        return digest

    async def gather(self, sources: Iterable[Source]) -> bytes:
        """Read ranges and return them concatenated."""
        data: bytes = await self._do("gather", list(sources))
        return data

    async def defrag(
        self,
        sources: Iterable[Source],
        *,
        target: str | None = None,
        algorithm: str | None = None,
        namespace: str | None = None,
        levels: int = 0,
    ) -> str:
        """Write ranges as a new item; return its name."""
        name: str = await self._do(
            "defrag", list(sources), target=target, algorithm=algorithm, namespace=namespace, levels=levels
        )
        return name

    async def quota(self) -> dict[str, int]:
        """``{"limit": ..., "usage": ...}``."""
        figures: dict[str, int] = await self._do("quota")
        return figures
