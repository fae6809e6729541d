"""The encryption layer: authenticated encryption of every value with AES-256-GCM.

[`Encrypt`][aiodepot.layers.crypto.Encrypt] needs the ``cryptography`` package
(``pip install 'aiodepot[crypto]'``). [`derive_key`][aiodepot.layers.crypto.derive_key] turns a
passphrase into a key.

Stored form (format version 1)::

    "ADE" 0x01 | salt (16 bytes) | segment 0 | segment 1 | ... | last segment

The value is cut into segments of 64 KiB (the last one shorter, possibly empty); each is sealed with
AES-256-GCM and carries its 16-byte tag. Every value gets its own key, derived with HKDF-SHA256 from
the layer's key and the value's random salt, so segment nonces can simply count: the nonce of segment
``i`` is ``i`` (11 bytes, big-endian) followed by a byte that is 1 for the last segment and 0 otherwise.
The 20-byte header is the associated data of every segment. Reordering, dropping, appending or
truncating segments, changing the header, or reading with another key all fail the tag check.
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import hmac
import importlib
import os
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from typing import Any

from ..backends.base import Backend, Capabilities
from ..errors import IntegrityError, MissingDependency, ObjectNotFound
from ..items import ItemInfo
from .transforms import THREAD_THRESHOLD, Transform, slice_value

__all__ = ["Encrypt", "derive_key"]

_MAGIC = b"ADE\x01"
_SALT_SIZE = 16
_HEADER_SIZE = len(_MAGIC) + _SALT_SIZE
_TAG_SIZE = 16
_SEGMENT = 64 * 1024  # plaintext bytes per segment (fixed by format version 1)
_SEALED = _SEGMENT + _TAG_SIZE  # stored bytes per full segment
_HKDF_INFO = b"aiodepot Encrypt v1 value key"


def derive_key(passphrase: str | bytes, salt: bytes, *, n: int = 2**17, r: int = 8, p: int = 1) -> bytes:
    """Derive a 32-byte key for [`Encrypt`][aiodepot.layers.crypto.Encrypt] from a passphrase (scrypt).

    Args:
        passphrase: the secret (a str is UTF-8 encoded).
        salt: at least 16 random bytes, stored alongside the data (it is not secret, but the same
            passphrase and salt must be used to read the data again).
        n: scrypt's CPU/memory cost (a power of two); the default takes a fraction of a second and
            128 MiB of memory.
        r: scrypt's block size.
        p: scrypt's parallelism.
    """
    if isinstance(passphrase, str):
        passphrase = passphrase.encode()
    if not passphrase:
        raise ValueError("the passphrase must not be empty")
    if len(salt) < 16:
        raise ValueError("the salt must be at least 16 bytes")
    return hashlib.scrypt(passphrase, salt=salt, n=n, r=r, p=p, maxmem=2 * 128 * r * n + 1024 * 1024, dklen=32)


def _aead() -> Any:
    try:
        return importlib.import_module("cryptography.hazmat.primitives.ciphers.aead")
    except ImportError as exc:
        raise MissingDependency(
            "the Encrypt layer needs the cryptography package: pip install 'aiodepot[crypto]'"
        ) from exc


def _nonce(index: int, last: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def _value_size(stored_size: int) -> int | None:
    """The plaintext size of a stored form of ``stored_size`` bytes (None: too short to be one)."""
    body = stored_size - _HEADER_SIZE
    if body < _TAG_SIZE:
        return None
    segments = -(-body // _SEALED)
    size = body - segments * _TAG_SIZE
    return size if size >= 0 else None


def _stored_size(size: int) -> int:
    segments = max(1, -(-size // _SEGMENT))
    return _HEADER_SIZE + size + segments * _TAG_SIZE


class Encrypt(Transform):
    """Encrypt and authenticate every value with AES-256-GCM (needs ``aiodepot[crypto]``).

    Args:
        inner: the backend that holds the encrypted values.
        key: 32 secret bytes (see [`derive_key`][aiodepot.layers.crypto.derive_key] for a passphrase).

    ``load`` raises [`IntegrityError`][aiodepot.errors.IntegrityError] when the stored bytes were changed
    or written with another key. Values are encrypted in 64 KiB segments, so a ranged load reads and
    decrypts only the segments it covers (plus the 20-byte header), and big values stream through
    ``store_chunks``/``store_file`` without being held whole. ``info`` and ``list`` report the value's
    size, computed from the stored size without reading anything; the stored form is 36 bytes plus 16
    bytes per 64 KiB longer.

    Names are not encrypted and not bound to the values: moves and soft deletion rename stored items,
    so the layer cannot tell a value from another one written with the same key under another name
    (someone who can write to the storage could swap two values). Wrap the layer in
    [`HashedNames`][aiodepot.layers.keys.HashedNames] to hide the names as well (the original names
    then travel encrypted inside the values). Sizes are visible to the storage, to within 16 bytes.
    """

    FORMAT_VERSION = 1

    def __init__(self, inner: Backend, key: bytes) -> None:
        aead = _aead()
        super().__init__(inner)
        if not isinstance(key, bytes | bytearray) or len(key) != 32:
            raise ValueError("the encryption key must be 32 bytes (use derive_key() for a passphrase)")
        self._key = bytes(key)
        self._aesgcm = aead.AESGCM
        self._invalid_tag: type[Exception] = importlib.import_module("cryptography.exceptions").InvalidTag

    def _capabilities(self, inner: Capabilities) -> Capabilities:
        # ranged reads stay (segments are read by range); parts are aligned to segments
        return inner.replace(
            server_side_hash=False,
            server_side_gather=False,
            part_size=max(_SEGMENT, inner.part_size // _SEGMENT * _SEGMENT),
        )

    def _cipher(self, header: bytes) -> Any:
        salt = header[len(_MAGIC) : _HEADER_SIZE]
        prk = hmac.digest(salt, self._key, "sha256")
        return self._aesgcm(hmac.digest(prk, _HKDF_INFO + b"\x01", "sha256"))

    def _header(self, name: str, header: bytes) -> bytes:
        if len(header) < _HEADER_SIZE:
            raise IntegrityError(f"{name}: stored value too short to be encrypted")
        if header[: len(_MAGIC) - 1] != _MAGIC[:-1]:
            raise IntegrityError(f"{name}: not a value written by the Encrypt layer")
        if header[len(_MAGIC) - 1] != self.FORMAT_VERSION:
            raise IntegrityError(f"{name}: unknown encryption format version {header[len(_MAGIC) - 1]}")
        return bytes(header[:_HEADER_SIZE])

    def _seal(self, cipher: Any, header: bytes, index: int, data: bytes | memoryview, last: bool) -> bytes:
        sealed: bytes = cipher.encrypt(_nonce(index, last), data, header)
        return sealed

    def _unseal(
        self, name: str, cipher: Any, header: bytes, index: int, sealed: bytes | memoryview, last: bool
    ) -> bytes:
        try:
            data: bytes = cipher.decrypt(_nonce(index, last), sealed, header)
        except self._invalid_tag:
            raise IntegrityError(
                f"{name}: decryption failed at segment {index} (the value was changed, truncated, or the key is wrong)"
            ) from None
        return data

    def _encode(self, data: bytes | memoryview) -> bytes:
        header = _MAGIC + os.urandom(_SALT_SIZE)
        cipher = self._cipher(header)
        view = memoryview(data)
        count = max(1, -(-len(view) // _SEGMENT))
        parts = [header]
        for index in range(count):
            segment = view[index * _SEGMENT : (index + 1) * _SEGMENT]
            parts.append(self._seal(cipher, header, index, segment, index == count - 1))
        return b"".join(parts)

    def _decode(self, name: str, stored: bytes) -> bytes:
        header = self._header(name, stored)
        if _value_size(len(stored)) is None:
            raise IntegrityError(f"{name}: stored value too short to be encrypted")
        return self._open_segments(name, header, memoryview(stored)[_HEADER_SIZE:], 0, ends=True)

    def _open_segments(self, name: str, header: bytes, body: memoryview, first: int, *, ends: bool) -> bytes:
        """Decrypt consecutive sealed segments, the first of which is number ``first``; ``ends``: the
        last of them is the value's last segment."""
        cipher = self._cipher(header)
        pieces = [body[start : start + _SEALED] for start in range(0, len(body), _SEALED)]
        if ends and not pieces:
            raise IntegrityError(f"{name}: the encrypted value has no segments")
        return b"".join(
            self._unseal(name, cipher, header, first + i, piece, ends and i == len(pieces) - 1)
            for i, piece in enumerate(pieces)
        )

    async def _value_size(self, name: str, info: ItemInfo) -> int:
        size = _value_size(info.size)
        if size is None:
            raise IntegrityError(f"{name}: stored value too short to be encrypted")
        return size

    async def _fix_info(self, name: str, info: ItemInfo) -> ItemInfo | None:
        if not info.exists or info.directory:
            return info
        size = _value_size(info.size)
        return info._replace(size=size if size is not None else 0)  # a damaged item still shows; load says why

    async def info_batch(self, names: Sequence[str]) -> builtins.list[ItemInfo | Exception]:
        """The inner batch, with the sizes of the values (computed, nothing is read)."""
        results: builtins.list[ItemInfo | Exception] = []
        for name, info in zip(names, await self.inner.info_batch(names), strict=True):
            fixed = info if isinstance(info, Exception) else await self._fix_info(name, info)
            results.append(fixed if fixed is not None else ItemInfo.missing(info.name))  # type: ignore[union-attr]
        return results

    async def load(self, name: str, *, offset: int = 0, size: int | None = None) -> bytes:
        """Load and decrypt the value, or only the segments that cover the asked range."""
        if size is not None and size < 0:
            raise ValueError(f"size must be >= 0 or None, got {size}")
        if offset == 0 and size is None:
            return await self._decode_async(name, await self.inner.load(name))
        if offset < 0:
            info = await self.inner.info(name)
            if not info.exists or info.directory:
                raise ObjectNotFound(name)
            total = await self._value_size(name, info)
            offset = max(total + offset, 0)
        if size == 0:
            self._header(name, await self.inner.load(name, size=_HEADER_SIZE))
            return b""
        first = offset // _SEGMENT
        last = None if size is None else (offset + size - 1) // _SEGMENT
        start = _HEADER_SIZE + first * _SEALED
        # one byte past the last wanted segment tells whether more follow (the value's last segment is
        # sealed differently)
        length = None if last is None else (last - first + 1) * _SEALED + 1
        if first == 0:
            stored = await self.inner.load(name, size=None if length is None else length + _HEADER_SIZE)
            header, body = self._header(name, stored), memoryview(stored)[_HEADER_SIZE:]
        else:
            head, rest = await asyncio.gather(
                self.inner.load(name, size=_HEADER_SIZE), self.inner.load(name, offset=start, size=length)
            )
            header, body = self._header(name, head), memoryview(rest)
        if not body:
            return b""  # past the end of the value
        ends = length is None or len(body) < length
        if not ends:
            body = body[:-1]
        if len(body) >= THREAD_THRESHOLD:
            plain = await asyncio.to_thread(self._open_segments, name, header, body, first, ends=ends)
        else:
            plain = self._open_segments(name, header, body, first, ends=ends)
        return slice_value(plain, offset - first * _SEGMENT, size)

    async def read_chunks(
        self, name: str, *, offset: int = 0, size: int | None = None, chunk_size: int = 1024 * 1024
    ) -> AsyncIterator[bytes]:
        """The value in pieces, each one a ranged load (only the covered segments are read)."""
        async for chunk in Backend.read_chunks(self, name, offset=offset, size=size, chunk_size=chunk_size):
            yield chunk

    async def store_chunks(
        self, name: str, chunks: AsyncIterable[bytes], *, size: int | None = None, if_absent: bool = False
    ) -> None:
        """Encrypt the stream segment by segment on its way to the inner backend (memory stays bounded)."""
        header = _MAGIC + os.urandom(_SALT_SIZE)
        cipher = self._cipher(header)

        async def sealed() -> AsyncIterator[bytes]:
            yield header
            pending = bytearray()
            index = 0
            seen = 0
            async for chunk in chunks:
                seen += len(chunk)
                if size is not None and seen > size:
                    raise ValueError(f"{name}: expected {size} bytes, the stream gave more")
                pending += chunk
                while len(pending) > _SEGMENT:  # keep the tail: the last segment is sealed differently
                    yield self._seal(cipher, header, index, bytes(pending[:_SEGMENT]), False)
                    del pending[:_SEGMENT]
                    index += 1
            if size is not None and seen != size:
                raise ValueError(f"{name}: expected {size} bytes, the stream gave {seen}")
            yield self._seal(cipher, header, index, bytes(pending), True)

        await self.inner.store_chunks(
            name, sealed(), size=None if size is None else _stored_size(size), if_absent=if_absent
        )
