"""View layers: what a caller may do ([`ReadOnly`][aiodepot.layers.views.ReadOnly],
[`WriteOnly`][aiodepot.layers.views.WriteOnly]) and which part of the inner store it sees
([`Prefix`][aiodepot.layers.views.Prefix])."""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from typing import NoReturn

from ..backends.base import Backend
from ..errors import PermissionDenied, StoreExists, StoreNotFound
from ..items import ItemInfo, Source, StoreValue
from ..names import validate_backend_name
from .base import Layer, RenamingLayer

__all__ = ["Prefix", "ReadOnly", "WriteOnly"]


class ReadOnly(Layer):
    """Refuse every write: ``create``, ``destroy``, ``mkdir``, ``rmdir``, ``store`` (and its batch, chunk
    and file forms), ``delete``, ``move`` and ``defrag`` raise
    [`PermissionDenied`][aiodepot.errors.PermissionDenied] naming the store's location; nothing reaches the inner
    backend. Batch writes report the refusal per item."""

    def _refusal(self, what: str) -> PermissionDenied:
        return PermissionDenied(f"{self.location}: {what}: refused, the store is read-only here")

    def _refuse(self, what: str) -> NoReturn:
        raise self._refusal(what)

    async def create(self) -> None:
        """Refused."""
        self._refuse("create")

    async def destroy(self) -> None:
        """Refused."""
        self._refuse("destroy")

    async def mkdir(self, name: str) -> None:
        """Refused."""
        self._refuse(f"mkdir {name!r}")

    async def rmdir(self, name: str) -> None:
        """Refused."""
        self._refuse(f"rmdir {name!r}")

    async def store(self, name: str, value: StoreValue, *, if_absent: bool = False) -> None:
        """Refused."""
        self._refuse(f"store {name!r}")

    async def delete(self, name: str) -> None:
        """Refused."""
        self._refuse(f"delete {name!r}")

    async def move(self, src: str, dst: str) -> None:
        """Refused."""
        self._refuse(f"move {src!r} to {dst!r}")

    async def defrag(
        self,
        sources: Iterable[Source],
        *,
        target: str | None = None,
        algorithm: str | None = None,
        namespace: str | None = None,
        levels: int = 0,
    ) -> str:
        """Refused."""
        self._refuse("defrag")

    async def store_file(self, name: str, path: str, *, size: int) -> None:
        """Refused."""
        self._refuse(f"store {name!r}")

    async def store_chunks(
        self, name: str, chunks: AsyncIterable[bytes], *, size: int | None = None, if_absent: bool = False
    ) -> None:
        """Refused."""
        self._refuse(f"store {name!r}")

    async def store_batch(self, items: Sequence[tuple[str, StoreValue]]) -> builtins.list[Exception | None]:
        """Refused, item by item."""
        return [self._refusal(f"store {name!r}") for name, _ in items]

    async def delete_batch(self, names: Sequence[str]) -> builtins.list[Exception | None]:
        """Refused, item by item."""
        return [self._refusal(f"delete {name!r}") for name in names]


class WriteOnly(Layer):
    """Refuse every read of values: ``load`` (and its batch, chunk and file forms), ``hash``, ``gather``
    and ``defrag`` raise [`PermissionDenied`][aiodepot.errors.PermissionDenied] naming the store's location.
    ``info`` and ``list`` stay allowed (a writer may see what exists, not what it holds), and so do
    ``store``, ``delete`` and ``move``."""

    def _refusal(self, what: str) -> PermissionDenied:
        return PermissionDenied(f"{self.location}: {what}: refused, the store is write-only here")

    def _refuse(self, what: str) -> NoReturn:
        raise self._refusal(what)

    async def load(self, name: str, *, offset: int = 0, size: int | None = None) -> bytes:
        """Refused."""
        self._refuse(f"load {name!r}")

    async def load_batch(self, names: Sequence[str]) -> builtins.list[bytes | Exception]:
        """Refused, item by item."""
        return [self._refusal(f"load {name!r}") for name in names]

    async def hash(self, name: str, algorithm: str = "sha256") -> str:
        """Refused."""
        self._refuse(f"hash {name!r}")

    async def gather(self, sources: Iterable[Source]) -> bytes:
        """Refused."""
        self._refuse("gather")

    async def defrag(
        self,
        sources: Iterable[Source],
        *,
        target: str | None = None,
        algorithm: str | None = None,
        namespace: str | None = None,
        levels: int = 0,
    ) -> str:
        """Refused (it reads its sources)."""
        self._refuse("defrag")

    def read_chunks(
        self, name: str, *, offset: int = 0, size: int | None = None, chunk_size: int = 1024 * 1024
    ) -> AsyncIterator[bytes]:
        """Refused."""
        self._refuse(f"load {name!r}")

    async def read_into(self, name: str, fd: int, *, offset: int, size: int) -> None:
        """Refused."""
        self._refuse(f"load {name!r}")


class Prefix(RenamingLayer):
    """One directory of the inner store, seen as a store of its own.

    Args:
        inner: the backend that holds the data of all prefixes.
        prefix: the directory (a valid backend name such as ``"tenant1"`` or ``"tenants/t1"``).

    Every name is mapped to ``prefix/name`` on the way in (the root ``""`` is the prefix directory) and
    back on the way out, so two prefixes over one inner store never see each other's items.
    ``create`` creates the inner storage if it is missing (an existing one is shared) and then the
    prefix directory (one that holds anything raises ``StoreExists``); ``open`` needs the prefix
    directory; ``destroy`` deletes everything below the prefix and the directory, and leaves the inner
    storage and the other prefixes alone.
    """

    def __init__(self, inner: Backend, prefix: str) -> None:
        super().__init__(inner)
        self.prefix = validate_backend_name(prefix.strip("/") if isinstance(prefix, str) else prefix)

    def __repr__(self) -> str:
        return f"<Prefix {self.prefix!r} {'open' if self.opened else 'closed'} over {self.inner!r}>"

    def _in(self, name: str, *, allow_root: bool = False) -> str:
        validate_backend_name(name, allow_root=allow_root)
        return f"{self.prefix}/{name}" if name else self.prefix

    def _out(self, name: str) -> str:
        return name[len(self.prefix) + 1 :] if name.startswith(self.prefix + "/") else name

    # lifecycle -----------------------------------------------------------------------------------------

    async def _has_prefix(self) -> bool:
        info = await self.inner.info(self.prefix)
        return info.exists and info.directory

    async def _create(self) -> None:
        """Create the inner storage if needed, then the (empty) prefix directory."""
        try:
            await self.inner.create()
        except StoreExists:
            pass  # shared with other prefixes
        await self.inner.open()
        try:
            if await self._has_prefix():
                async for _ in self.inner.list(self.prefix):
                    raise StoreExists(f"prefix {self.prefix!r} exists already and is not empty")
            await self.inner.mkdir(self.prefix)
        finally:
            await self.inner.close()

    async def _destroy(self) -> None:
        """Remove the prefix directory and everything in it (the inner storage stays)."""
        await self.inner.open()
        try:
            if not await self._has_prefix():
                raise StoreNotFound(f"prefix {self.prefix!r} does not exist")
            await self._remove_tree(self.prefix)
        finally:
            await self.inner.close()

    async def _remove_tree(self, directory: str) -> None:
        entries = [info async for info in self.inner.list(directory)]
        for info in entries:
            path = f"{directory}/{info.name}"
            if info.directory:
                await self._remove_tree(path)
            else:
                await self.inner.delete(path)
        await self.inner.rmdir(directory)

    async def _open(self) -> None:
        """Open the inner backend; the prefix directory must exist."""
        await self.inner.open()
        try:
            found = await self._has_prefix()
        except BaseException:
            await self.inner.close()
            raise
        if not found:
            await self.inner.close()
            raise StoreNotFound(f"prefix {self.prefix!r} does not exist (call create())")

    # items (mapped and forwarded by RenamingLayer) ----------------------------------------------------------

    def list(self, name: str) -> AsyncIterator[ItemInfo]:
        """Mapped and forwarded as a stream (entries are leaf names, so they need no mapping back)."""
        return self.inner.list(self._in(name, allow_root=True))

    async def count(self, name: str, *, deleted: bool = False) -> int:
        """Mapped and forwarded (the mapping keeps the suffixes)."""
        return await self.inner.count(self._in(name, allow_root=True), deleted=deleted)

    async def quota(self) -> dict[str, int]:
        """The inner store's quota (shared by all prefixes)."""
        return await self.inner.quota()

    async def defrag(
        self,
        sources: Iterable[Source],
        *,
        target: str | None = None,
        algorithm: str | None = None,
        namespace: str | None = None,
        levels: int = 0,
    ) -> str:
        """Mapped and forwarded; the returned name is mapped back."""
        mapped = [(self._in(name), offset, size) for name, offset, size in sources]
        inner_namespace = self._in(namespace.rstrip("/")) if namespace else self.prefix
        result = await self.inner.defrag(
            mapped,
            target=None if target is None else self._in(target),
            algorithm=algorithm,
            namespace=inner_namespace,
            levels=levels,
        )
        return self._out(result)
