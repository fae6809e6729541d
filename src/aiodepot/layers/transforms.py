"""Transform layers: they change the bytes on the way to the inner backend and back.

[`Hmac`][aiodepot.layers.transforms.Hmac] authenticates every value,
[`Compress`][aiodepot.layers.transforms.Compress] compresses it. Both keep the backend contract for the
caller: values, ranges, sizes and hashes are those of the original bytes.
"""

from __future__ import annotations

import abc
import asyncio
import builtins
import datetime
import hashlib
import hmac
import importlib
import struct
import zlib
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from typing import Any

from ..backends.base import Backend, Capabilities
from ..errors import IntegrityError, ObjectNotFound, StoreError
from ..items import ItemInfo, Source, StoreValue, validate_value
from .base import Layer

__all__ = ["THREAD_THRESHOLD", "Compress", "Hmac", "Transform", "slice_value"]

THREAD_THRESHOLD = 256 * 1024
"""Values at least this big are encoded and decoded in a worker thread."""


def slice_value(data: bytes, offset: int, size: int | None) -> bytes:
    """``size`` bytes of ``data`` from ``offset`` (negative: from the end; None: to the end), as a ranged load."""
    if size is not None and size < 0:
        raise ValueError(f"size must be >= 0 or None, got {size}")
    if offset == 0 and size is None:
        return data
    start = max(len(data) + offset, 0) if offset < 0 else offset
    return data[start : None if size is None else start + size]


class Transform(Layer):
    """The base of layers whose stored form differs from the value: everything that touches bytes goes through
    ``_encode``/``_decode``; names, directories, deletes and moves are forwarded unchanged.

    Ranged loads read the whole stored value, decode it and slice (the stored form cannot be read by
    range), so ``hash``, ``gather``, ``defrag``, ``read_chunks`` and ``read_into`` use the generic
    implementations of [`Backend`][aiodepot.backends.base.Backend] on top of this layer's ``load``.
    """

    def _capabilities(self, inner: Capabilities) -> Capabilities:
        return inner.replace(
            ranged_reads=False, server_side_hash=False, server_side_gather=False, parallel_ranges=False, multipart=False
        )

    @abc.abstractmethod
    def _encode(self, data: bytes | memoryview) -> bytes:
        """The stored form of a value."""

    @abc.abstractmethod
    def _decode(self, name: str, stored: bytes) -> bytes:
        """The value of a stored form; a damaged one raises ``IntegrityError``."""

    @abc.abstractmethod
    async def _value_size(self, name: str, info: ItemInfo) -> int:
        """The size of the value of the stored item ``name`` that ``info`` describes."""

    async def _encode_async(self, value: StoreValue) -> bytes:
        data = validate_value(value)
        if len(data) >= THREAD_THRESHOLD:
            return await asyncio.to_thread(self._encode, data)
        return self._encode(data)

    async def _decode_async(self, name: str, stored: bytes) -> bytes:
        if len(stored) >= THREAD_THRESHOLD:
            return await asyncio.to_thread(self._decode, name, stored)
        return self._decode(name, stored)

    async def _fix_info(self, name: str, info: ItemInfo) -> ItemInfo | None:
        """``info`` with the value's size (None if the item vanished meanwhile)."""
        if not info.exists or info.directory:
            return info
        try:
            return info._replace(size=await self._value_size(name, info))
        except ObjectNotFound:
            return None

    # the contract --------------------------------------------------------------------------------------

    async def info(self, name: str) -> ItemInfo:
        """The inner info, with the size of the value."""
        info = await self.inner.info(name)
        fixed = await self._fix_info(name, info)
        return fixed if fixed is not None else ItemInfo.missing(info.name)

    async def info_batch(self, names: Sequence[str]) -> builtins.list[ItemInfo | Exception]:
        """One by one (each item's size needs a look at its stored form)."""
        return await Backend.info_batch(self, names)

    async def count(self, name: str, *, deleted: bool = False) -> int:
        """Generic (a walk through this layer's listing, which leaves out what is not a value)."""
        return await Backend.count(self, name, deleted=deleted)

    async def list(self, name: str) -> AsyncIterator[ItemInfo]:
        """The inner listing, with the sizes of the values."""
        prefix = f"{name}/" if name else ""
        async for info in self.inner.list(name):
            fixed = await self._fix_info(prefix + info.name, info)
            if fixed is not None:
                yield fixed

    async def load(self, name: str, *, offset: int = 0, size: int | None = None) -> bytes:
        """Load the whole stored form, decode it and return the asked range of the value."""
        if size is not None and size < 0:
            raise ValueError(f"size must be >= 0 or None, got {size}")
        value = await self._decode_async(name, await self.inner.load(name))
        return slice_value(value, offset, size)

    async def load_batch(self, names: Sequence[str]) -> builtins.list[bytes | Exception]:
        """The inner batch, each value decoded (a damaged one is that item's ``IntegrityError``)."""
        results: builtins.list[bytes | Exception] = []
        for name, stored in zip(names, await self.inner.load_batch(names), strict=True):
            if isinstance(stored, Exception):
                results.append(stored)
                continue
            try:
                results.append(await self._decode_async(name, stored))
            except StoreError as exc:
                results.append(exc)
        return results

    async def store(self, name: str, value: StoreValue, *, if_absent: bool = False) -> None:
        """Encode and store."""
        await self.inner.store(name, await self._encode_async(value), if_absent=if_absent)

    async def store_batch(self, items: Sequence[tuple[str, StoreValue]]) -> builtins.list[Exception | None]:
        """Encode each value and store them as one inner batch."""
        return await self.inner.store_batch([(name, await self._encode_async(value)) for name, value in items])

    async def hash(self, name: str, algorithm: str = "sha256") -> str:
        """The digest of the value (computed here: the inner backend only has the stored form)."""
        return await Backend.hash(self, name, algorithm)

    async def gather(self, sources: Iterable[Source]) -> bytes:
        """Generic gather over this layer's ``load``."""
        return await Backend.gather(self, sources)

    async def defrag(
        self,
        sources: Iterable[Source],
        *,
        target: str | None = None,
        algorithm: str | None = None,
        namespace: str | None = None,
        levels: int = 0,
    ) -> str:
        """Generic defrag over this layer's ``gather`` and ``store``."""
        return await Backend.defrag(
            self, sources, target=target, algorithm=algorithm, namespace=namespace, levels=levels
        )

    async def read_chunks(
        self, name: str, *, offset: int = 0, size: int | None = None, chunk_size: int = 1024 * 1024
    ) -> AsyncIterator[bytes]:
        """The value (or a range of it) in pieces; it is decoded whole first."""
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        data = memoryview(await self.load(name, offset=offset, size=size))
        for start in range(0, len(data), chunk_size):
            yield bytes(data[start : start + chunk_size])

    async def read_into(self, name: str, fd: int, *, offset: int, size: int) -> None:
        """Generic: this layer's ranged ``load``, written at ``offset``."""
        await Backend.read_into(self, name, fd, offset=offset, size=size)

    async def store_file(self, name: str, path: str, *, size: int) -> None:
        """Generic: the file is read, encoded and stored."""
        await Backend.store_file(self, name, path, size=size)

    async def store_chunks(
        self, name: str, chunks: AsyncIterable[bytes], *, size: int | None = None, if_absent: bool = False
    ) -> None:
        """Generic: the chunks are joined, encoded and stored."""
        await Backend.store_chunks(self, name, chunks, size=size, if_absent=if_absent)

    async def url_for(self, name: str, *, expires: float | datetime.timedelta, method: str = "GET") -> str:
        """Not supported: the stored form is not the value, so a URL to it would not give (or take) it."""
        raise self._not_supported("url_for", "the values are stored transformed")


class Hmac(Transform):
    """Authenticate every value with HMAC-SHA256.

    Args:
        inner: the backend that holds the authenticated values.
        key: the secret key (at least 16 bytes).

    The stored form is the value followed by its 32-byte tag. ``load`` verifies the tag and raises
    [`IntegrityError`][aiodepot.errors.IntegrityError] when the stored bytes were changed (or written
    with another key). A ranged load reads and verifies the whole value and returns the slice, so it
    costs as much as a whole load. ``info`` and ``list`` report the value's size (the stored size minus
    32). The tag covers the value, not its name: the layer proves a value was written by a holder of
    the key, not under which name (moves and soft deletion rename stored items).
    """

    TAG_SIZE = hashlib.sha256().digest_size

    def __init__(self, inner: Backend, key: bytes) -> None:
        super().__init__(inner)
        if not isinstance(key, bytes | bytearray) or len(key) < 16:
            raise ValueError("the HMAC key must be bytes, at least 16 of them")
        self._key = bytes(key)

    def _tag(self, data: bytes | memoryview) -> bytes:
        return hmac.digest(self._key, data, "sha256")

    def _encode(self, data: bytes | memoryview) -> bytes:
        return b"".join((data, self._tag(data)))

    def _decode(self, name: str, stored: bytes) -> bytes:
        if len(stored) < self.TAG_SIZE:
            raise IntegrityError(f"{name}: stored value too short to carry an HMAC tag")
        value = memoryview(stored)[: -self.TAG_SIZE]
        if not hmac.compare_digest(self._tag(value), stored[-self.TAG_SIZE :]):
            raise IntegrityError(f"{name}: HMAC verification failed (the value was changed or the key is wrong)")
        return bytes(value)

    async def _value_size(self, name: str, info: ItemInfo) -> int:
        return max(info.size - self.TAG_SIZE, 0)


_HEADER = struct.Struct(">4sQ")  # magic naming the codec, size of the value
_ZLIB = b"ADz1"
_ZSTD = b"ADZ1"


def _zstandard() -> Any:
    try:
        return importlib.import_module("zstandard")
    except ImportError:
        return None


class Compress(Transform):
    """Compress every value, with zstd if the ``zstandard`` package is installed, else zlib.

    Args:
        inner: the backend that holds the compressed values.
        codec: ``"zstd"``, ``"zlib"`` or None (zstd when available, else zlib).
        level: the compression level (None: the codec's default).

    The stored form is a 12-byte header (codec and value size) followed by the compressed value; loads
    read either codec whatever ``codec`` is set to (zstd-compressed values need ``zstandard``). Sizes:
    ``info`` and ``list`` report the value's size, read from the header, which costs one small ranged
    read of the inner backend per item (a listing of N items makes N extra reads); the inner store
    (and its ``quota``) shows the size of the stored form. Ranged loads decompress the whole value and
    return the slice.
    """

    def __init__(self, inner: Backend, *, codec: str | None = None, level: int | None = None) -> None:
        super().__init__(inner)
        zstd = _zstandard()
        if codec is None:
            codec = "zstd" if zstd is not None else "zlib"
        if codec not in ("zstd", "zlib"):
            raise ValueError(f"unknown codec {codec!r} (zstd or zlib)")
        if codec == "zstd" and zstd is None:
            raise ValueError("the zstd codec needs the zstandard package")
        self.codec = codec
        self.level = level
        self._zstd = zstd

    def _encode(self, data: bytes | memoryview) -> bytes:
        if self.codec == "zstd":
            level = 3 if self.level is None else self.level
            body: bytes = self._zstd.ZstdCompressor(level=level).compress(data)
            magic = _ZSTD
        else:
            body = zlib.compress(data, -1 if self.level is None else self.level)
            magic = _ZLIB
        return _HEADER.pack(magic, len(data)) + body

    def _decode(self, name: str, stored: bytes) -> bytes:
        if len(stored) < _HEADER.size:
            raise IntegrityError(f"{name}: stored value too short for a compression header")
        magic, size = _HEADER.unpack_from(stored)
        body = memoryview(stored)[_HEADER.size :]
        try:
            if magic == _ZLIB:
                value = zlib.decompress(body)
            elif magic == _ZSTD:
                if self._zstd is None:
                    raise IntegrityError(f"{name}: compressed with zstd; install zstandard to read it")
                value = self._zstd.ZstdDecompressor().decompress(body, max_output_size=size)
            else:
                raise IntegrityError(f"{name}: not a value written by the Compress layer")
        except (zlib.error, ValueError, MemoryError) as exc:
            raise IntegrityError(f"{name}: cannot decompress: {exc}") from exc
        except Exception as exc:
            if self._zstd is not None and isinstance(exc, self._zstd.ZstdError):
                raise IntegrityError(f"{name}: cannot decompress: {exc}") from exc
            raise
        if len(value) != size:
            raise IntegrityError(f"{name}: decompressed to {len(value)} bytes, the header says {size}")
        return bytes(value)

    async def _value_size(self, name: str, info: ItemInfo) -> int:
        header = await self.inner.load(name, size=_HEADER.size)
        if len(header) < _HEADER.size:
            raise IntegrityError(f"{name}: stored value too short for a compression header")
        magic, size = _HEADER.unpack(header)
        if magic not in (_ZLIB, _ZSTD):
            raise IntegrityError(f"{name}: not a value written by the Compress layer")
        return int(size)
