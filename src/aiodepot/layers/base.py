"""The layer base class: a [`Backend`][aiodepot.backends.base.Backend] that wraps another one.

A [`Layer`][aiodepot.layers.base.Layer] forwards every method of the backend contract to ``self.inner``
unchanged, so a subclass overrides only what it changes. Because a layer is itself a backend, layers
compose: ``Store(backend=ReadOnly(Prefix(MemoryBackend("x"), "tenant1")))``.
"""

from __future__ import annotations

import abc
import builtins
import datetime
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from typing import Any, Self

from ..backends.base import Backend, Capabilities, FirstRange
from ..errors import BackendURLInvalid
from ..items import ItemInfo, Source, StoreValue

__all__ = ["Layer", "RenamingLayer", "Wrapper"]


class Wrapper(Backend):
    """A backend that implements the public contract methods itself because it wraps other backends
    (which do the checks): [`Layer`][aiodepot.layers.base.Layer], [`Mirror`][aiodepot.layers.mirror.Mirror].

    The Backend defaults it keeps (``hash``, ``gather``, ``defrag``, the streaming and file forms) are built
    on the protected hooks; here the hooks go through the wrapper's own public methods, as it defines them.
    """

    async def _mkdir(self, name: str) -> None:
        await self.mkdir(name)

    async def _rmdir(self, name: str) -> None:
        await self.rmdir(name)

    async def _info(self, name: str) -> ItemInfo:
        return await self.info(name)

    async def _load(self, name: str, offset: int, size: int | None) -> bytes:
        return await self.load(name, offset=offset, size=size)

    async def _store(self, name: str, value: bytes | memoryview, *, replace: bool) -> None:
        # a wrapper's own permission map is empty: replace=False comes from if_absent
        await self.store(name, value, if_absent=not replace)

    async def _delete(self, name: str) -> None:
        await self.delete(name)

    async def _move(self, src: str, dst: str, *, replace: bool) -> None:
        await self.move(src, dst)

    def _list(self, name: str) -> AsyncIterator[ItemInfo]:
        return self.list(name)


class Layer(Wrapper):
    """A backend that forwards everything to the backend it wraps.

    Args:
        inner: the wrapped backend (which may itself be a layer). The layer opens and closes it.

    ``capabilities`` are the inner backend's (a subclass that changes what the data looks like adjusts
    them); ``opened`` is the inner backend's. Permissions are enforced by the inner
    backend: the layer's own permission map is empty.
    """

    def __init__(self, inner: Backend) -> None:
        super().__init__()
        if not isinstance(inner, Backend):
            raise TypeError(f"a layer wraps a Backend, not {type(inner).__name__}")
        self.inner = inner
        # per instance: the inner backend's, possibly adjusted by the subclass (and replaceable by users)
        object.__setattr__(self, "capabilities", self._capabilities(inner.capabilities))

    def _capabilities(self, inner: Capabilities) -> Capabilities:
        """The layer's capabilities, given the inner backend's; a subclass turns off what it loses."""
        return inner

    @property
    def opened(self) -> bool:
        """A layer is open while the backend it wraps is: one opened before it was wrapped (as when a Store
        is given an open backend) counts, and closing the layer closes it."""
        inner = self.__dict__.get("inner")
        return inner is not None and inner.opened

    @opened.setter
    def opened(self, value: bool) -> None:
        """The open state is the inner backend's; the base class's bookkeeping has nothing to record."""

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Layers are not opened from URLs: wrap a backend instead."""
        raise BackendURLInvalid(f"{cls.__name__} is a layer: wrap a backend instead of opening {url!r}")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {'open' if self.opened else 'closed'} over {self.inner!r}>"

    @property
    def location(self) -> str:
        """The location of the wrapped backend: the user opened that, not the layer."""
        return self.inner.location

    # lifecycle -----------------------------------------------------------------------------------------

    async def _create(self) -> None:
        """Create the inner storage."""
        await self.inner.create()

    async def _destroy(self) -> None:
        """Destroy the inner storage."""
        await self.inner.destroy()

    async def _open(self) -> None:
        """Open the inner backend."""
        await self.inner.open()

    async def _close(self) -> None:
        """Close the inner backend."""
        await self.inner.close()

    # the contract --------------------------------------------------------------------------------------

    async def mkdir(self, name: str) -> None:
        """Forwarded."""
        await self.inner.mkdir(name)

    async def rmdir(self, name: str) -> None:
        """Forwarded."""
        await self.inner.rmdir(name)

    async def info(self, name: str) -> ItemInfo:
        """Forwarded."""
        return await self.inner.info(name)

    async def load(self, name: str, *, offset: int = 0, size: int | None = None) -> bytes:
        """Forwarded."""
        return await self.inner.load(name, offset=offset, size=size)

    async def load_first(self, name: str, offset: int, size: int) -> FirstRange:
        """Forwarded by a layer that forwards ``load``; a layer with a ``load`` of its own loads the range
        with it and asks its own ``info`` (no version: its values need not be the inner backend's)."""
        if type(self).load is not Layer.load:
            return await super().load_first(name, offset, size)
        return await self.inner.load_first(name, offset, size)

    async def load_into(
        self, name: str, offset: int, buffer: bytearray | memoryview, *, version: str | None = None
    ) -> int:
        """Forwarded by a layer that forwards ``load``; a layer with a ``load`` of its own (one that changes
        the values or where they come from) loads the range with it and copies it."""
        if type(self).load is not Layer.load:
            return await super().load_into(name, offset, buffer, version=version)
        return await self.inner.load_into(name, offset, buffer, version=version)

    async def store(self, name: str, value: StoreValue, *, if_absent: bool = False) -> None:
        """Forwarded."""
        await self.inner.store(name, value, if_absent=if_absent)

    async def delete(self, name: str) -> None:
        """Forwarded."""
        await self.inner.delete(name)

    async def move(self, src: str, dst: str) -> None:
        """Forwarded."""
        await self.inner.move(src, dst)

    def list(self, name: str) -> AsyncIterator[ItemInfo]:
        """Forwarded."""
        return self.inner.list(name)

    def list_range(self, name: str, *, prefix: str = "", start_after: str | None = None) -> AsyncIterator[ItemInfo]:
        """Forwarded with its hints by a layer that forwards ``list``; a layer with a ``list`` of its own (one
        that renames or filters) lists with it, and the hints are dropped."""
        if type(self).list is not Layer.list:
            return self.list(name)
        return self.inner.list_range(name, prefix=prefix, start_after=start_after)

    async def count(self, name: str, *, deleted: bool = False) -> int:
        """Forwarded."""
        return await self.inner.count(name, deleted=deleted)

    async def load_batch(self, names: Sequence[str]) -> builtins.list[bytes | Exception]:
        """Forwarded."""
        return await self.inner.load_batch(names)

    async def store_batch(self, items: Sequence[tuple[str, StoreValue]]) -> builtins.list[Exception | None]:
        """Forwarded."""
        return await self.inner.store_batch(items)

    async def delete_batch(self, names: Sequence[str]) -> builtins.list[Exception | None]:
        """Forwarded."""
        return await self.inner.delete_batch(names)

    async def info_batch(self, names: Sequence[str]) -> builtins.list[ItemInfo | Exception]:
        """Forwarded."""
        return await self.inner.info_batch(names)

    async def quota(self) -> dict[str, int]:
        """Forwarded."""
        return await self.inner.quota()

    async def hash(self, name: str, algorithm: str = "sha256") -> str:
        """Forwarded."""
        return await self.inner.hash(name, algorithm)

    async def gather(self, sources: Iterable[Source]) -> bytes:
        """Forwarded."""
        return await self.inner.gather(sources)

    async def defrag(
        self,
        sources: Iterable[Source],
        *,
        target: str | None = None,
        algorithm: str | None = None,
        namespace: str | None = None,
        levels: int = 0,
    ) -> str:
        """Forwarded."""
        return await self.inner.defrag(sources, target=target, algorithm=algorithm, namespace=namespace, levels=levels)

    def read_chunks(
        self, name: str, *, offset: int = 0, size: int | None = None, chunk_size: int = 1024 * 1024
    ) -> AsyncIterator[bytes]:
        """Forwarded."""
        return self.inner.read_chunks(name, offset=offset, size=size, chunk_size=chunk_size)

    async def read_into(self, name: str, fd: int, *, offset: int, size: int) -> None:
        """Forwarded."""
        await self.inner.read_into(name, fd, offset=offset, size=size)

    async def store_file(self, name: str, path: str, *, size: int) -> None:
        """Forwarded."""
        await self.inner.store_file(name, path, size=size)

    async def store_chunks(
        self, name: str, chunks: AsyncIterable[bytes], *, size: int | None = None, if_absent: bool = False
    ) -> None:
        """Forwarded."""
        await self.inner.store_chunks(name, chunks, size=size, if_absent=if_absent)

    async def url_for(self, name: str, *, expires: float | datetime.timedelta, method: str = "GET") -> str:
        """Forwarded (the value is stored as it is given)."""
        return await self.inner.url_for(name, expires=expires, method=method)


class RenamingLayer(Layer):
    """A layer that changes names, not values: a subclass says how a name maps to the inner backend's
    (``_in``) and how an inner leaf name maps back (``_out``); every method of the contract maps and forwards.

    Listings are collected and sorted by the original names, since a mapping need not keep the order; a
    subclass whose mapping keeps it overrides ``list`` to stream. ``defrag`` runs here (gather, then store
    through this layer) so a content-hash target is named in the original namespace.
    """

    @abc.abstractmethod
    def _in(self, name: str, *, allow_root: bool = False) -> str:
        """The inner name of ``name`` (validated)."""

    @abc.abstractmethod
    def _out(self, leaf: str) -> str:
        """The original name of an inner leaf name (one path element)."""

    async def mkdir(self, name: str) -> None:
        """Mapped and forwarded."""
        await self.inner.mkdir(self._in(name))

    async def rmdir(self, name: str) -> None:
        """Mapped and forwarded."""
        await self.inner.rmdir(self._in(name))

    async def info(self, name: str) -> ItemInfo:
        """Mapped and forwarded, under the original name."""
        info = await self.inner.info(self._in(name, allow_root=True))
        return info.with_name(name.rpartition("/")[2])

    async def load(self, name: str, *, offset: int = 0, size: int | None = None) -> bytes:
        """Mapped and forwarded."""
        return await self.inner.load(self._in(name), offset=offset, size=size)

    async def load_first(self, name: str, offset: int, size: int) -> FirstRange:
        """Mapped and forwarded."""
        return await self.inner.load_first(self._in(name), offset, size)

    async def load_into(
        self, name: str, offset: int, buffer: bytearray | memoryview, *, version: str | None = None
    ) -> int:
        """Mapped and forwarded."""
        return await self.inner.load_into(self._in(name), offset, buffer, version=version)

    async def store(self, name: str, value: StoreValue, *, if_absent: bool = False) -> None:
        """Mapped and forwarded."""
        await self.inner.store(self._in(name), value, if_absent=if_absent)

    async def delete(self, name: str) -> None:
        """Mapped and forwarded."""
        await self.inner.delete(self._in(name))

    async def move(self, src: str, dst: str) -> None:
        """Mapped and forwarded."""
        await self.inner.move(self._in(src), self._in(dst))

    async def list(self, name: str) -> AsyncIterator[ItemInfo]:
        """The inner listing under the original names, sorted by them."""
        entries = [
            info.with_name(self._out(info.name)) async for info in self.inner.list(self._in(name, allow_root=True))
        ]
        entries.sort(key=lambda info: info.name)
        for info in entries:
            yield info

    async def count(self, name: str, *, deleted: bool = False) -> int:
        """Generic (a walk through this layer's listing): a mapping may change the names' suffixes."""
        return await Backend.count(self, name, deleted=deleted)

    async def load_batch(self, names: Sequence[str]) -> builtins.list[bytes | Exception]:
        """Mapped and forwarded."""
        return await self.inner.load_batch([self._in(name) for name in names])

    async def store_batch(self, items: Sequence[tuple[str, StoreValue]]) -> builtins.list[Exception | None]:
        """Mapped and forwarded."""
        return await self.inner.store_batch([(self._in(name), value) for name, value in items])

    async def delete_batch(self, names: Sequence[str]) -> builtins.list[Exception | None]:
        """Mapped and forwarded."""
        return await self.inner.delete_batch([self._in(name) for name in names])

    async def info_batch(self, names: Sequence[str]) -> builtins.list[ItemInfo | Exception]:
        """Mapped and forwarded, under the original names."""
        infos = await self.inner.info_batch([self._in(name) for name in names])
        return [
            info if isinstance(info, Exception) else info.with_name(name.rpartition("/")[2])
            for name, info in zip(names, infos, strict=True)
        ]

    async def hash(self, name: str, algorithm: str = "sha256") -> str:
        """Mapped and forwarded."""
        return await self.inner.hash(self._in(name), algorithm)

    async def gather(self, sources: Iterable[Source]) -> bytes:
        """Mapped and forwarded."""
        return await self.inner.gather([(self._in(name), offset, size) for name, offset, size in sources])

    async def defrag(
        self,
        sources: Iterable[Source],
        *,
        target: str | None = None,
        algorithm: str | None = None,
        namespace: str | None = None,
        levels: int = 0,
    ) -> str:
        """Generic (gather, then store through this layer): a content-hash target is named by the original
        namespace, not the mapped one."""
        return await Backend.defrag(
            self, sources, target=target, algorithm=algorithm, namespace=namespace, levels=levels
        )

    def read_chunks(
        self, name: str, *, offset: int = 0, size: int | None = None, chunk_size: int = 1024 * 1024
    ) -> AsyncIterator[bytes]:
        """Mapped and forwarded."""
        return self.inner.read_chunks(self._in(name), offset=offset, size=size, chunk_size=chunk_size)

    async def read_into(self, name: str, fd: int, *, offset: int, size: int) -> None:
        """Mapped and forwarded."""
        await self.inner.read_into(self._in(name), fd, offset=offset, size=size)

    async def store_file(self, name: str, path: str, *, size: int) -> None:
        """Mapped and forwarded."""
        await self.inner.store_file(self._in(name), path, size=size)

    async def store_chunks(
        self, name: str, chunks: AsyncIterable[bytes], *, size: int | None = None, if_absent: bool = False
    ) -> None:
        """Mapped and forwarded."""
        await self.inner.store_chunks(self._in(name), chunks, size=size, if_absent=if_absent)

    async def url_for(self, name: str, *, expires: float | datetime.timedelta, method: str = "GET") -> str:
        """Mapped and forwarded."""
        return await self.inner.url_for(self._in(name), expires=expires, method=method)
