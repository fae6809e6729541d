"""Key transform layers: they change the names the inner backend sees, reversibly.

[`URLEncode`][aiodepot.layers.keys.URLEncode] escapes every character outside a small safe set, so any
valid aiodepot name fits backends with stricter naming rules. [`HashedNames`][aiodepot.layers.keys.HashedNames]
stores each item under a fixed-length hash of its name and keeps the name in a small header inside the
stored value. Both give ``list`` the original names back, sorted.
"""

from __future__ import annotations

import asyncio
import builtins
import datetime
import hashlib
import logging
import re
import string
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence

from ..backends.base import Backend, Capabilities
from ..errors import IntegrityError, InvalidName, ObjectExists, ObjectNotFound
from ..items import ItemInfo, Source, StoreValue, validate_value
from ..names import DEL_SUFFIX, MAX_BACKEND_NAME_LENGTH, is_internal, validate_backend_name
from .base import Layer, RenamingLayer

__all__ = ["HashedNames", "URLEncode"]

logger = logging.getLogger("aiodepot.layers.keys")


def _checked_length(name: str, mapped: str, how: str) -> str:
    """``mapped``, the stored form of ``name``; a form too long for a backend raises ``InvalidName``."""
    if len(mapped) > MAX_BACKEND_NAME_LENGTH:
        raise InvalidName(
            f"{name!r} is too long once {how}: it is stored as {len(mapped)} characters ({mapped!r}), "
            f"and a backend takes at most {MAX_BACKEND_NAME_LENGTH}"
        )
    return mapped


_ALWAYS_SAFE = frozenset(string.ascii_lowercase + string.digits)
_ESCAPE = re.compile(r"%([0-9a-f]{2})")


class URLEncode(RenamingLayer):
    """Escape every character of a name outside a conservative set, so any valid name fits a backend
    with stricter naming rules.

    Args:
        inner: the backend that holds the items under the escaped names.
        safe: characters kept as they are besides ``a-z``, ``0-9`` and the ``/`` separator (default
            ``"-._"``). Every other character becomes ``%`` and two lowercase hex digits: ``?`` → ``%3f``,
            ``:`` → ``%3a``, ``%`` → ``%25``.

    A name with ``?`` or ``#`` cannot travel in a REST v1 URL path, and ``:``, ``*``, ``"``, ``<``,
    ``>`` or ``|`` cannot be part of a Windows file name; under this layer they can be used anyway.
    ``list`` returns the original names, sorted by them (the listing of a directory is collected
    first, since escaping changes the order). An escaped name is up to three times as long as the
    original: one longer than ``MAX_BACKEND_NAME_LENGTH`` raises ``InvalidName`` saying so.
    """

    def __init__(self, inner: Backend, *, safe: str = "-._") -> None:
        super().__init__(inner)
        extra = set(safe)
        if "%" in extra or "/" in extra or any(not ("!" <= c <= "~") or c.isupper() or c == "\\" for c in extra):
            raise ValueError(f"safe may hold printable ASCII punctuation but not '%', '/' or '\\\\': {safe!r}")
        self.safe = safe
        keep = _ALWAYS_SAFE | extra | {"/"}
        self._table = {c: c if c in keep else f"%{ord(c):02x}" for c in map(chr, range(0x21, 0x7F))}

    def _in(self, name: str, *, allow_root: bool = False) -> str:
        validate_backend_name(name, allow_root=allow_root)
        table = self._table
        return _checked_length(name, "".join([table[c] for c in name]), "escaped")

    def _out(self, leaf: str) -> str:
        return _ESCAPE.sub(lambda match: chr(int(match.group(1), 16)), leaf)


_NAME_MAGIC = b"ADN\x01"
_NAME_HEADER_MAX = len(_NAME_MAGIC) + 1 + MAX_BACKEND_NAME_LENGTH
_LISTING_READS = 32  # header reads in flight while a directory is listed


class HashedNames(Layer):
    """Store every item under a fixed-length hash of its name; the name itself travels in the value.

    Args:
        inner: the backend that holds the items under hashed names.
        key: optional secret (up to 64 bytes) for a keyed hash, so the stored names cannot be guessed
            from likely names.
        levels: directory levels of the hash to spread items over (``~ab/~cd/…``), for namespaces with
            many items and no nesting of their own (default 0: the Store's nesting spreads already).
            Must stay the same for the life of a store.

    The last element of a name becomes 32 hex digits of a BLAKE2b hash (of the element, not of its
    directory, so a move to another nesting level stays a cheap rename); directories keep their names.
    The ``.del`` suffix of a soft-deleted item stays outside the hash (``<hash>.del``), so soft deletion
    and undeletion are renames too. A move to another last element rewrites the header: the value is
    copied (streamed) and the old item deleted.

    The stored value is a header (``ADN`` 0x01, a length byte, the name's last element) followed by the
    value. ``load`` checks the header and raises ``IntegrityError`` if it names another item (a hash
    collision or tampering); ranged loads read only the asked range. ``info`` needs no read (the header
    size follows from the name) but tries the name as an item and as a directory. ``list`` reads the
    header of every item it lists (one small ranged read each, many in flight) and returns the items
    sorted by name; inner entries that are not this layer's items are skipped. With ``levels`` the
    directory elements starting with ``~`` are reserved and raise ``InvalidName``.

    Put [`Encrypt`][aiodepot.layers.crypto.Encrypt] inside this layer to hide the names completely.
    """

    DIGEST_CHARS = 32

    def __init__(self, inner: Backend, *, key: bytes | None = None, levels: int = 0) -> None:
        super().__init__(inner)
        if key is not None and (not isinstance(key, bytes | bytearray) or not 1 <= len(key) <= 64):
            raise ValueError("the name key must be 1 to 64 bytes")
        if not isinstance(levels, int) or not 0 <= levels <= 4:
            raise ValueError(f"levels must be between 0 and 4, got {levels!r}")
        self._key = bytes(key or b"")
        self.levels = levels
        self._stored_leaf = re.compile(rf"[0-9a-f]{{{self.DIGEST_CHARS}}}(\.del)?")

    def _capabilities(self, inner: Capabilities) -> Capabilities:
        return inner.replace(server_side_hash=False)

    # names -------------------------------------------------------------------------------------------

    def _dir(self, name: str) -> str:
        """The inner name of directory ``name`` (validated)."""
        validate_backend_name(name, allow_root=True)
        if self.levels and any(part.startswith("~") for part in name.split("/")):
            raise InvalidName(
                f"{name!r}: names starting with '~' are reserved in this store (it spreads its hashed names over "
                "'~' directories)"
            )
        return _checked_length(name, name, "hashed")

    def _item(self, name: str) -> tuple[str, bytes]:
        """The inner name of item ``name`` and the header its stored value starts with."""
        validate_backend_name(name)
        directory, _, leaf = name.rpartition("/")
        self._dir(directory)
        base = leaf.removesuffix(DEL_SUFFIX)
        digest = hashlib.blake2b(
            base.encode(), digest_size=self.DIGEST_CHARS // 2, key=self._key, person=b"aiodepot-name"
        ).hexdigest()
        spread = "".join(f"~{digest[2 * i : 2 * i + 2]}/" for i in range(self.levels))
        stored = f"{directory}/{spread}{digest}" if directory else f"{spread}{digest}"
        if leaf != base:
            stored += DEL_SUFFIX
        header = _NAME_MAGIC + bytes([len(base)]) + base.encode()
        return _checked_length(name, stored, "hashed"), header

    def _check_header(self, name: str, header: bytes, stored: bytes | memoryview) -> None:
        if bytes(stored[: len(header)]) != header:
            raise IntegrityError(
                f"{name}: the stored item carries another name (a hash collision, or the storage was changed)"
            )

    # items -------------------------------------------------------------------------------------------

    async def mkdir(self, name: str) -> None:
        """Forwarded (directories keep their names)."""
        await self.inner.mkdir(self._dir(name))

    async def rmdir(self, name: str) -> None:
        """Forwarded (directories keep their names)."""
        await self.inner.rmdir(self._dir(name))

    async def info(self, name: str) -> ItemInfo:
        """The item ``name`` (its value's size), else the directory ``name``, else ``exists=False``."""
        validate_backend_name(name, allow_root=True)
        leaf = name.rpartition("/")[2]
        if name == "":
            return (await self.inner.info(self._dir(name))).with_name("")
        path, header = self._item(name)
        item, directory = await asyncio.gather(self.inner.info(path), self.inner.info(self._dir(name)))
        if item.exists and not item.directory:
            return item._replace(name=leaf, size=max(item.size - len(header), 0))
        if directory.exists and directory.directory:
            return directory.with_name(leaf)
        return ItemInfo.missing(leaf)

    async def info_batch(self, names: Sequence[str]) -> builtins.list[ItemInfo | Exception]:
        """One by one (each name is tried as an item and as a directory)."""
        return await Backend.info_batch(self, names)

    async def load(self, name: str, *, offset: int = 0, size: int | None = None) -> bytes:
        """A whole load checks the header; a ranged load reads only its range."""
        if size is not None and size < 0:
            raise ValueError(f"size must be >= 0 or None, got {size}")
        if is_internal(name):  # the store's own layout file keeps its name (and stays out of listings)
            return await self.inner.load(name, offset=offset, size=size)
        path, header = self._item(name)
        if offset == 0 and size is None:
            stored = await self.inner.load(path)
            self._check_header(name, header, stored)
            return stored[len(header) :]
        if offset < 0:
            offset = max((await self._size(name, path, header)) + offset, 0)
        return await self.inner.load(path, offset=offset + len(header), size=size)

    async def _size(self, name: str, path: str, header: bytes) -> int:
        info = await self.inner.info(path)
        if not info.exists or info.directory:
            raise ObjectNotFound(name)
        return max(info.size - len(header), 0)

    async def store(self, name: str, value: StoreValue, *, if_absent: bool = False) -> None:
        """The header and the value, under the hashed name."""
        if is_internal(name):
            await self.inner.store(name, value, if_absent=if_absent)
            return
        path, header = self._item(name)
        try:
            await self.inner.store(path, b"".join((header, validate_value(value))), if_absent=if_absent)
        except ObjectExists as exc:
            raise ObjectExists(f"item {name!r} exists") from exc  # the original name, not the hashed one

    async def url_for(self, name: str, *, expires: float | datetime.timedelta, method: str = "GET") -> str:
        """Not supported: the stored form starts with a header, so a URL to it would not give (or take) the
        value as it is."""
        raise self._not_supported("url_for", "the stored values carry a header")

    async def delete(self, name: str) -> None:
        """Forwarded under the hashed name."""
        await self.inner.delete(self._item(name)[0])

    async def move(self, src: str, dst: str) -> None:
        """A rename when the last element stays (soft delete, level change), else a streamed copy with
        the new header followed by a delete of ``src``."""
        src_path, src_header = self._item(src)
        dst_path, dst_header = self._item(dst)
        if src_header == dst_header:
            await self.inner.move(src_path, dst_path)
            return
        self._check_header(src, src_header, await self.inner.load(src_path, size=len(src_header)))
        size = await self._size(src, src_path, src_header)

        async def rewritten() -> AsyncIterator[bytes]:
            yield dst_header
            async for chunk in self.inner.read_chunks(src_path, offset=len(src_header)):
                yield chunk

        await self.inner.store_chunks(dst_path, rewritten(), size=len(dst_header) + size)
        await self.inner.delete(src_path)

    async def count(self, name: str, *, deleted: bool = False) -> int:
        """Generic (a walk through this layer's listing: the suffixes are in the items' headers)."""
        return await Backend.count(self, name, deleted=deleted)

    async def list(self, name: str) -> AsyncIterator[ItemInfo]:
        """Directories as they are, items under their original names (read from their headers), sorted."""
        directory = self._dir(name)
        entries: builtins.list[ItemInfo] = []
        files: builtins.list[tuple[str, ItemInfo]] = []

        async def walk(inner_dir: str, depth: int) -> None:
            async for info in self.inner.list(inner_dir):
                path = f"{inner_dir}/{info.name}" if inner_dir else info.name
                if info.directory:
                    if depth < self.levels and info.name.startswith("~"):
                        await walk(path, depth + 1)
                    elif depth == 0:
                        entries.append(info)
                elif depth == self.levels and self._stored_leaf.fullmatch(info.name):
                    files.append((path, info))
                else:
                    logger.debug("HashedNames: skipping %r, not an item of this layer", path)

        await walk(directory, 0)
        limit = asyncio.Semaphore(_LISTING_READS)

        async def named(path: str, info: ItemInfo) -> ItemInfo | None:
            async with limit:
                try:
                    head = await self.inner.load(path, size=_NAME_HEADER_MAX)
                except ObjectNotFound:
                    return None  # deleted meanwhile
            if len(head) < len(_NAME_MAGIC) + 1 or head[: len(_NAME_MAGIC)] != _NAME_MAGIC:
                logger.warning("HashedNames: %r has no name header, skipped", path)
                return None
            length = head[len(_NAME_MAGIC)]
            leaf = head[len(_NAME_MAGIC) + 1 : len(_NAME_MAGIC) + 1 + length].decode("ascii", "replace")
            suffix = DEL_SUFFIX if info.name.endswith(DEL_SUFFIX) else ""
            return info._replace(name=leaf + suffix, size=max(info.size - len(_NAME_MAGIC) - 1 - length, 0))

        for found in await asyncio.gather(*(named(path, info) for path, info in files)):
            if found is not None:
                entries.append(found)
        entries.sort(key=lambda info: info.name)
        for info in entries:
            yield info

    async def load_batch(self, names: Sequence[str]) -> builtins.list[bytes | Exception]:
        """The inner batch under the hashed names, each header checked."""
        mapped = [self._item(name) for name in names]
        results: builtins.list[bytes | Exception] = []
        for name, (_, header), stored in zip(
            names, mapped, await self.inner.load_batch([p for p, _ in mapped]), strict=True
        ):
            if isinstance(stored, Exception):
                results.append(stored)
            elif bytes(stored[: len(header)]) != header:
                results.append(IntegrityError(f"{name}: the stored item carries another name"))
            else:
                results.append(stored[len(header) :])
        return results

    async def store_batch(self, items: Sequence[tuple[str, StoreValue]]) -> builtins.list[Exception | None]:
        """The inner batch under the hashed names, each value behind its header."""
        mapped = []
        for name, value in items:
            path, header = self._item(name)
            mapped.append((path, b"".join((header, validate_value(value)))))
        return await self.inner.store_batch(mapped)

    async def delete_batch(self, names: Sequence[str]) -> builtins.list[Exception | None]:
        """The inner batch under the hashed names."""
        return await self.inner.delete_batch([self._item(name)[0] for name in names])

    async def hash(self, name: str, algorithm: str = "sha256") -> str:
        """Computed here over the value (the inner item holds the header too)."""
        return await Backend.hash(self, name, algorithm)

    async def gather(self, sources: Iterable[Source]) -> bytes:
        """The inner gather with shifted offsets (generic over ``load`` when an offset is negative)."""
        checked = builtins.list(sources)
        if any(offset < 0 for _, offset, _ in checked if isinstance(offset, int)):
            return await Backend.gather(self, checked)
        mapped = []
        for name, offset, size in checked:
            path, header = self._item(name)
            mapped.append((path, offset + len(header), size))
        return await self.inner.gather(mapped)

    async def defrag(
        self,
        sources: Iterable[Source],
        *,
        target: str | None = None,
        algorithm: str | None = None,
        namespace: str | None = None,
        levels: int = 0,
    ) -> str:
        """Generic (gather, then store through this layer)."""
        return await Backend.defrag(
            self, sources, target=target, algorithm=algorithm, namespace=namespace, levels=levels
        )

    async def read_chunks(
        self, name: str, *, offset: int = 0, size: int | None = None, chunk_size: int = 1024 * 1024
    ) -> AsyncIterator[bytes]:
        """The inner chunks of the value's range (the header is skipped)."""
        path, header = self._item(name)
        if offset < 0:
            offset = max((await self._size(name, path, header)) + offset, 0)
        async for chunk in self.inner.read_chunks(path, offset=offset + len(header), size=size, chunk_size=chunk_size):
            yield chunk

    async def read_into(self, name: str, fd: int, *, offset: int, size: int) -> None:
        """Generic: this layer's ranged ``load``, written at ``offset``."""
        await Backend.read_into(self, name, fd, offset=offset, size=size)

    async def store_file(self, name: str, path: str, *, size: int) -> None:
        """Generic: the file is streamed into ``store_chunks``."""
        await Backend.store_file(self, name, path, size=size)

    async def store_chunks(
        self, name: str, chunks: AsyncIterable[bytes], *, size: int | None = None, if_absent: bool = False
    ) -> None:
        """The header, then the stream, into the inner ``store_chunks``."""
        path, header = self._item(name)

        async def with_header() -> AsyncIterator[bytes]:
            yield header
            async for chunk in chunks:
                yield chunk

        try:
            await self.inner.store_chunks(
                path, with_header(), size=None if size is None else size + len(header), if_absent=if_absent
            )
        except ObjectExists as exc:
            raise ObjectExists(f"item {name!r} exists") from exc
        except ValueError as exc:
            if size is None:
                raise
            raise ValueError(f"{name}: the stream did not give the {size} bytes expected") from exc
