"""Streaming reads of a Store: [`Store.open_reader`][aiodepot.Store.open_reader] and the reader behind it.

A reader yields a value (or a range of it) in chunks and reads ahead while the caller works on the
chunk it has: on backends where parallel range requests pay (``capabilities.parallel_ranges``) several
chunks are fetched at once, elsewhere the backend's own stream (``read_chunks``) runs one chunk ahead.
Either way at most ``readahead`` chunks are held, within the store's byte budget.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Self

from .errors import BackendError, ObjectNotFound, StoreError, ValueChanged
from .names import validate_name
from .store_base import StoreBase, check_range
from .transfer import ValueBuffer

if TYPE_CHECKING:
    from .backends.base import Backend

__all__ = ["DEFAULT_CHUNK_SIZE", "ChunkReader", "Streams"]

DEFAULT_CHUNK_SIZE = 1024 * 1024
"""Chunk size of [`Store.open_reader`][aiodepot.Store.open_reader] unless given."""


class Streams(StoreBase):
    """[`Store.open_reader`][aiodepot.Store.open_reader]."""

    def open_reader(
        self,
        name: str,
        *,
        offset: int = 0,
        size: int | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        deleted: bool = False,
    ) -> ChunkReader:
        """Return an async iterator over the value of ``name`` (or ``size`` bytes from ``offset``) in chunks.

        ```python
        async with store.open_reader("data/big", chunk_size=4 * 2**20) as reader:
            async for chunk in reader:
                ...
        ```

        Chunks are at most ``chunk_size`` bytes; a negative ``offset`` counts from the end, and a range
        past the end comes back short (possibly empty), as with [`load`][aiodepot.Store.load]. The reader
        fetches a few chunks ahead (in parallel ranges where the backend has them), never more than
        ``max_concurrency`` chunks and within the store's byte budget. Where the backend names versions of
        a value (S3, Azure, GCS, sftp, aiodepot's REST server), every chunk comes from the version the first
        one came from: a value replaced while it is read raises ``BackendError`` rather than go on with the
        new one. A missing item raises ``ObjectNotFound`` on the first step; each step is one operation for
        the store's ``timeout``.
        Leave the loop early with ``async with`` (or ``await reader.aclose()``) to stop the read-ahead.
        """
        validate_name(name)
        check_range(offset, size)
        if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
            raise ValueError(f"chunk_size must be an int >= 1, got {chunk_size!r}")
        return ChunkReader(self, name, offset=offset, size=size, chunk_size=chunk_size, deleted=deleted)


class ChunkReader(AsyncIterator[bytes]):
    """The async iterator [`Store.open_reader`][aiodepot.Store.open_reader] returns (see there)."""

    def __init__(
        self, store: StoreBase, name: str, *, offset: int, size: int | None, chunk_size: int, deleted: bool
    ) -> None:
        self._store = store
        self.name = name
        """The item being read."""
        self._offset = offset
        self._size = size
        self._chunk_size = chunk_size
        self._deleted = deleted
        self._started = False
        self._done = False
        self._pending: collections.deque[asyncio.Future[bytes]] = collections.deque()
        self._version: str | None = None
        self._stream: AsyncIterator[bytes] | None = None
        self._next_offset = 0
        self._end = 0
        self._nested = ""
        self._readahead = max(1, store.max_concurrency)

    def __aiter__(self) -> Self:
        return self

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def __anext__(self) -> bytes:
        if self._done:
            raise StopAsyncIteration
        try:
            timeout = self._store.timeout
            if timeout is None:
                chunk = await self._step()
            else:
                async with asyncio.timeout(timeout):
                    chunk = await self._step()
        except BaseException:
            await self.aclose()
            raise
        if chunk is None:
            await self.aclose()
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        """Stop reading: cancel the chunks fetched ahead and release their memory."""
        self._done = True
        pending, self._pending = list(self._pending), collections.deque()
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        stream, self._stream = self._stream, None
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()

    # the first step decides how to read --------------------------------------------------------------

    async def _start(self) -> None:
        store = self._store
        store._require_open()
        self._nested = await store._find(self.name, self._deleted)
        backend: Backend = store.backend
        caps = backend.capabilities
        if caps.parallel_ranges and self._readahead > 1 and self._offset >= 0 and self._size != 0:
            await self._start_with_first_chunk()
        elif caps.parallel_ranges and self._readahead > 1:
            info = await store._calls.info(self._nested)
            if not info.exists or info.directory:
                raise ObjectNotFound(self.name)
            start = self._offset if self._offset >= 0 else max(info.size + self._offset, 0)
            start = min(start, info.size)
            end = info.size if self._size is None else min(info.size, start + self._size)
            self._next_offset, self._end = start, end
            self._fill()
        else:
            self._stream = store._calls.read_chunks(
                self._nested, offset=self._offset, size=self._size, chunk_size=self._chunk_size
            )
            self._pending.append(asyncio.ensure_future(self._next_from_stream()))

    async def _start_with_first_chunk(self) -> None:
        """The first chunk, with the value's size and version (``load_first``): the size sets the end, and
        where the backend names versions the other chunks are read only from this one, so a value replaced
        while it is read raises instead of streaming pieces of two versions."""
        store = self._store
        length = self._chunk_size if self._size is None else min(self._chunk_size, self._size)
        try:
            async with store.budget.reserve(length):
                first = await store._calls.load_first(self._nested, self._offset, length)
        except ObjectNotFound:
            raise ObjectNotFound(self.name) from None
        except StoreError:
            if (await store._calls.info(self._nested)).directory:  # a directory is no item
                raise ObjectNotFound(self.name) from None
            raise
        start = min(self._offset, first.size)
        end = first.size if self._size is None else min(first.size, start + self._size)
        data = first.data[: max(end - start, 0)]
        self._version = first.version
        self._next_offset, self._end = start + len(data), end
        if data:
            store._stats.add("load_volume", len(data))
            ready: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
            ready.set_result(data)
            self._pending.append(ready)
        self._fill()

    async def _step(self) -> bytes | None:
        if not self._started:
            self._started = True
            await self._start()
        if not self._pending:
            return None
        chunk = await self._pending.popleft()
        if self._stream is not None:
            if not chunk:
                return None
            self._pending.append(asyncio.ensure_future(self._next_from_stream()))  # one chunk ahead
        else:
            self._fill()
        return chunk

    # parallel ranges -----------------------------------------------------------------------------------

    def _fill(self) -> None:
        while len(self._pending) < self._readahead and self._next_offset < self._end:
            length = min(self._chunk_size, self._end - self._next_offset)
            self._pending.append(asyncio.ensure_future(self._fetch(self._next_offset, length)))
            self._next_offset += length

    async def _fetch(self, offset: int, length: int) -> bytes:
        store = self._store
        async with store.budget.reserve(length):
            if self._version is None:
                data = await store._calls.load(self._nested, offset=offset, size=length)
            else:
                buffer = ValueBuffer(length)
                with buffer.view() as view:
                    try:
                        got = await store._calls.load_into(self._nested, offset, view, version=self._version)
                    except ValueChanged as exc:
                        raise BackendError(f"{self.name} changed while it was read (at offset {offset})") from exc
                data = buffer.value(got)
        if len(data) != length:
            raise BackendError(f"{self.name} changed while it was read: {len(data)} bytes at {offset}, not {length}")
        store._stats.add("load_volume", len(data))
        return data

    # the backend's stream ------------------------------------------------------------------------------

    async def _next_from_stream(self) -> bytes:
        assert self._stream is not None
        store = self._store
        async with store.budget.reserve(self._chunk_size):
            chunk = await anext(self._stream, b"")
        store._stats.add("load_volume", len(chunk))
        return chunk
