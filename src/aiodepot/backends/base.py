"""The backend contract: what every storage backend implements.

A backend stores what it is told under the name it is told, atomically, and knows nothing of nesting,
soft deletion, caching or statistics: that policy lives in [`aiodepot.Store`][aiodepot.Store]. Names a backend sees
are already nested (``data/01/23/0123…``) and may carry the ``.del`` suffix.

Subclasses implement the abstract methods; ``hash``, ``gather``, ``defrag``, ``quota``,
``read_chunks`` and ``store_chunks`` have defaults that work everywhere and may be overridden for speed.
"""

from __future__ import annotations

import abc
import asyncio
import builtins
import dataclasses
import os
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, ClassVar, Self, TypeVar

import aiofiles

from .. import hashing
from ..errors import ReadRangeError, StoreAlreadyOpen, StoreError, StoreNotOpen
from ..items import ItemInfo, Source, StoreValue, validate_sources
from ..names import nest
from ..permissions import Permissions

__all__ = ["Backend", "Capabilities"]

MiB = 1024 * 1024
T = TypeVar("T")


def pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    """Write all of ``data`` to ``fd`` at ``offset`` (``os.pwrite`` may write less than asked)."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


async def _outcome(call: Awaitable[T]) -> T | Exception:
    """Await ``call``; a [`StoreError`][aiodepot.errors.StoreError] becomes the result instead of propagating."""
    try:
        return await call
    except StoreError as exc:
        return exc


@dataclasses.dataclass(frozen=True, slots=True)
class Capabilities:
    """What a backend can do, so the Store and the transfer engine can choose the fastest way."""

    ranged_reads: bool = True
    """Partial loads read only the asked range (not the whole value)."""
    server_side_hash: bool = False
    """``hash`` runs where the data is, without moving it."""
    server_side_copy: bool = False
    """``move`` (and copies) run where the data is."""
    server_side_gather: bool = False
    """``gather`` fetches many ranges in one round trip."""
    multipart: bool = False
    """Big values are uploaded in parallel parts."""
    atomic_store: bool = True
    """A reader never sees a half-written value."""
    batch_ops: bool = False
    """The ``*_batch`` methods do many items in one round trip or thread job (faster than one by one)."""
    batch_size: int = 64
    """Items per batch call in bulk operations."""
    parallel_ranges: bool = False
    """A big ``load`` is faster as parallel range requests (true of network backends, not of local files)."""
    preferred_concurrency: int = 16
    """How many operations to keep in flight by default."""
    part_size: int = 8 * MiB
    """Range size for parallel loads and multipart stores of big values."""

    def replace(self, **changes: Any) -> Capabilities:
        """Return a copy with some fields changed."""
        return dataclasses.replace(self, **changes)


class Backend(abc.ABC):
    """An async storage backend. Subclass it and register the URL scheme (see `aiodepot.backends`)."""

    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init__(self, *, permissions: str | Mapping[str, str] | None = None) -> None:
        self.opened = False
        self.permissions = Permissions(permissions)
        """The permission map this backend enforces (empty: everything allowed)."""

    @classmethod
    @abc.abstractmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Create a backend for ``url``; ``options`` are backend-specific keyword arguments."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {'open' if self.opened else 'closed'}>"

    # state -------------------------------------------------------------------------------------------

    def _require_open(self) -> None:
        if not self.opened:
            raise StoreNotOpen(f"{type(self).__name__} must be open for this operation")

    def _require_closed(self) -> None:
        if self.opened:
            raise StoreAlreadyOpen(f"{type(self).__name__} must not be open for this operation")

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # the contract --------------------------------------------------------------------------------------

    @abc.abstractmethod
    async def create(self) -> None:
        """Initialize empty storage; an existing non-empty one raises ``StoreExists``."""

    @abc.abstractmethod
    async def destroy(self) -> None:
        """Remove the storage and everything in it; a missing one raises ``StoreNotFound``."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Start using the storage; a missing one raises ``StoreNotFound``."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop using the storage and release its resources."""

    @abc.abstractmethod
    async def mkdir(self, name: str) -> None:
        """Create directory ``name`` and its parents (no error if it exists)."""

    @abc.abstractmethod
    async def rmdir(self, name: str) -> None:
        """Remove the empty directory ``name``."""

    @abc.abstractmethod
    async def info(self, name: str) -> ItemInfo:
        """Describe ``name`` (``exists=False`` if it is missing); ``info.name`` is the last element."""

    @abc.abstractmethod
    async def load(self, name: str, *, offset: int = 0, size: int | None = None) -> bytes:
        """Read ``size`` bytes (all if None) from ``offset`` (negative: from the end); short at the end."""

    @abc.abstractmethod
    async def store(self, name: str, value: StoreValue) -> None:
        """Write ``value`` under ``name`` atomically; keep no reference to ``value`` after returning."""

    @abc.abstractmethod
    async def delete(self, name: str) -> None:
        """Remove ``name``; a missing one raises ``ObjectNotFound``."""

    @abc.abstractmethod
    async def move(self, src: str, dst: str) -> None:
        """Rename ``src`` to ``dst``, replacing ``dst``; a missing ``src`` raises ``ObjectNotFound``."""

    @abc.abstractmethod
    def list(self, name: str) -> AsyncIterator[ItemInfo]:
        """Yield the entries of directory ``name`` (not recursive), sorted by name, never ``.tmp`` ones."""

    # defaults that work on every backend ---------------------------------------------------------------

    async def load_batch(self, names: Sequence[str]) -> builtins.list[bytes | Exception]:
        """Load many whole values; each result is the value or the item's [`StoreError`][aiodepot.errors.StoreError]."""
        return [await _outcome(self.load(name)) for name in names]

    async def store_batch(self, items: Sequence[tuple[str, StoreValue]]) -> builtins.list[Exception | None]:
        """Store many values, each atomically.

        Each result is None or the item's [`StoreError`][aiodepot.errors.StoreError].
        """
        return [await _outcome(self.store(name, value)) for name, value in items]

    async def delete_batch(self, names: Sequence[str]) -> builtins.list[Exception | None]:
        """Delete many items; each result is None or the item's [`StoreError`][aiodepot.errors.StoreError]."""
        return [await _outcome(self.delete(name)) for name in names]

    async def info_batch(self, names: Sequence[str]) -> builtins.list[ItemInfo | Exception]:
        """Describe many items; each result is the info or the item's [`StoreError`][aiodepot.errors.StoreError]."""
        return [await _outcome(self.info(name)) for name in names]

    async def quota(self) -> dict[str, int]:
        """Return ``{"limit": bytes, "usage": bytes}``; -1 means not set or not tracked."""
        return {"limit": -1, "usage": -1}

    async def hash(self, name: str, algorithm: str = "sha256") -> str:
        """Return the hex digest of the value of ``name`` (any hashlib algorithm, or ``"blake3"``)."""
        hasher = hashing.new(algorithm)
        async for chunk in self.read_chunks(name):
            hasher.update(chunk)
        return hasher.hexdigest()

    async def gather(self, sources: Iterable[Source]) -> bytes:
        """Read several exact ranges and return them concatenated in the order given.

        A range that comes back short raises [`ReadRangeError`][aiodepot.errors.ReadRangeError].
        """
        checked = validate_sources(sources)
        limit = asyncio.Semaphore(self.capabilities.preferred_concurrency)

        async def read(name: str, offset: int, size: int) -> bytes:
            if size == 0:
                return b""
            async with limit:
                data = await self.load(name, offset=offset, size=size)
            if len(data) != size:
                raise ReadRangeError(f"{name}: wanted {size} bytes at offset {offset}, got {len(data)}")
            return data

        parts = await asyncio.gather(*(read(*source) for source in checked))
        return b"".join(parts)

    async def defrag(
        self,
        sources: Iterable[Source],
        *,
        target: str | None = None,
        algorithm: str | None = None,
        namespace: str | None = None,
        levels: int = 0,
    ) -> str:
        """Write the concatenated ``sources`` ranges as a new item and return its (nested) name.

        Without ``target`` the name is the ``algorithm`` hex digest of the content, placed in
        ``namespace`` and nested ``levels`` deep.
        """
        if target is None and algorithm is None:
            raise ValueError("defrag needs a target name or a hash algorithm")
        if algorithm is not None:
            hashing.check_algorithm(algorithm)
        self._require_open()
        prefix = namespace.rstrip("/") + "/" if namespace else ""
        self.permissions.check(target or prefix + "00000000", "W")  # before anything is read
        data = await self.gather(sources)
        if target is None:
            assert algorithm is not None
            target = hashing.new(algorithm, data).hexdigest()
            if namespace:
                target = namespace.rstrip("/") + "/" + target
            target = nest(target, levels)
        await self.store(target, data)
        return target

    async def read_chunks(
        self, name: str, *, offset: int = 0, size: int | None = None, chunk_size: int = 1 * MiB
    ) -> AsyncIterator[bytes]:
        """Yield the value of ``name`` (or a range of it) in pieces of at most ``chunk_size`` bytes."""
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        if offset < 0:
            total = (await self.info(name)).size
            offset = max(total + offset, 0)
        remaining = size
        while remaining is None or remaining > 0:
            want = chunk_size if remaining is None else min(chunk_size, remaining)
            chunk = await self.load(name, offset=offset, size=want)
            if chunk:
                yield chunk
            if len(chunk) < want:
                return
            offset += len(chunk)
            if remaining is not None:
                remaining -= len(chunk)

    async def read_into(self, name: str, fd: int, *, offset: int, size: int) -> None:
        """Copy ``size`` bytes at ``offset`` of the value into the open file ``fd`` at the same offset.

        A value that ends before ``offset + size`` raises [`ReadRangeError`][aiodepot.errors.ReadRangeError].
        """
        data = await self.load(name, offset=offset, size=size)
        if len(data) != size:
            raise ReadRangeError(f"{name}: wanted {size} bytes at offset {offset}, got {len(data)}")
        await asyncio.to_thread(pwrite_all, fd, data, offset)

    async def store_file(self, name: str, path: str, *, size: int) -> None:
        """Store the content of the local file ``path`` (``size`` bytes) under ``name``, atomically.

        The default streams the file in ``part_size`` pieces into
        [`store_chunks`][aiodepot.backends.base.Backend.store_chunks].
        """
        part_size = self.capabilities.part_size

        async def chunks() -> AsyncIterator[bytes]:
            async with aiofiles.open(path, "rb") as f:
                while chunk := await f.read(part_size):
                    yield chunk

        await self.store_chunks(name, chunks(), size=size)

    async def store_chunks(self, name: str, chunks: AsyncIterable[bytes], *, size: int | None = None) -> None:
        """Store the concatenation of ``chunks`` under ``name`` atomically.

        ``size``, when given, is checked: a stream that ends early or runs long stores nothing.
        """
        parts = [bytes(chunk) async for chunk in chunks]
        data = b"".join(parts)
        if size is not None and len(data) != size:
            raise ValueError(f"{name}: expected {size} bytes, the stream gave {len(data)}")
        await self.store(name, data)
