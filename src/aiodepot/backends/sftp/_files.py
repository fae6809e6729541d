"""The sftp backend's file operations on one connection: reads and writes in bursts of requests, temp
files created with their directories, atomic renames, stat, and removing a tree.

Each round of requests runs under ``round()``'s deadline: past it, the connection counts as dead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import posixpath
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, cast

import asyncssh

from ...items import ItemInfo
from ._connection import FALLBACK_BLOCK, Link
from ._errors import is_not_found

__all__ = ["BURST", "RENAME_FALLBACK_TRIES", "RemoteFiles", "close_quietly", "gather_all", "item_info"]

log = logging.getLogger("aiodepot.backends.sftp")

BURST = 64
"""Read or write requests sent at once by one operation (64 x 255 KiB on OpenSSH)."""
RENAME_FALLBACK_TRIES = 8
"""Attempts of remove-then-rename where the server cannot rename over an existing file."""


async def gather_all(calls: Sequence[Awaitable[Any]]) -> list[Any]:
    """Await requests sent together; raise the first failure once all have answered."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


async def close_quietly(f: asyncssh.SFTPClientFile) -> None:
    """Close a remote file, ignoring any error (the connection may be gone)."""
    with contextlib.suppress(Exception):
        await f.close()


def item_info(name: str, attrs: asyncssh.SFTPAttrs) -> ItemInfo:
    """The [`ItemInfo`][aiodepot.items.ItemInfo] of a file or directory from its SFTP attributes."""

    def seconds(whole: int | None, nanos: int | None) -> float:
        return float(whole or 0) + (nanos or 0) / 1e9

    return ItemInfo(
        name=name,
        exists=True,
        size=attrs.size or 0,
        directory=attrs.type == asyncssh.FILEXFER_TYPE_DIRECTORY,
        atime=seconds(attrs.atime, attrs.atime_ns),
        mtime=seconds(attrs.mtime, attrs.mtime_ns),
    )


class RemoteFiles:
    """File operations below one base directory, on whichever connection the caller holds.

    Args:
        host: the server, for log messages.
        path: the base directory.
        timeout: seconds a round of requests may take.
    """

    def __init__(self, host: str, path: str, timeout: float) -> None:
        self.host = host
        self.path = path
        self.prefix = "/" if path == "/" else path + "/"
        self.timeout = timeout
        self.posix_rename = True  # until the server says otherwise
        self.closing: set[asyncio.Future[None]] = set()

    def after_fork(self) -> None:
        """In a forked child, forget the parent's closing tasks (they belong to the parent's loop)."""
        self.closing = set()

    def round(self) -> asyncio.Timeout:
        """The deadline for one round of requests: past it, the connection counts as dead."""
        return asyncio.timeout(self.timeout)

    async def is_dir(self, sftp: asyncssh.SFTPClient, path: str) -> bool:
        """Whether ``path`` is a directory (False where nothing is there)."""
        try:
            attrs = await sftp.stat(path)
        except asyncssh.SFTPError as exc:
            if is_not_found(exc):
                return False
            raise
        return attrs.type == asyncssh.FILEXFER_TYPE_DIRECTORY

    async def makedirs(self, sftp: asyncssh.SFTPClient, path: str) -> None:
        """Create directory ``path`` and missing parents; one that exists (or appears meanwhile) is fine."""
        try:
            await sftp.mkdir(path)
            return
        except asyncssh.SFTPError as exc:
            if is_not_found(exc):
                parent = posixpath.dirname(path)
                if parent in ("", "/", path):
                    raise
                await self.makedirs(sftp, parent)
                try:
                    await sftp.mkdir(path)
                    return
                except asyncssh.SFTPError:
                    if await self.is_dir(sftp, path):
                        return
                    raise
            if await self.is_dir(sftp, path):
                return
            raise

    async def rename_over(self, sftp: asyncssh.SFTPClient, src: str, dst: str) -> None:
        """Rename ``src`` to ``dst``, replacing ``dst`` atomically (posix-rename@openssh.com).

        A server without that extension gets remove-then-rename: readers may miss ``dst`` for a moment,
        but never see a partial value.
        """
        if self.posix_rename:
            try:
                await sftp.posix_rename(src, dst)
                return
            except asyncssh.SFTPOpUnsupported:
                log.info("sftp %s: no posix-rename@openssh.com: replacing items by remove and rename", self.host)
                self.posix_rename = False
        for _ in range(RENAME_FALLBACK_TRIES):
            try:
                await sftp.rename(src, dst)
                return
            except asyncssh.SFTPError as exc:
                if exc.code not in (asyncssh.FX_FAILURE, asyncssh.FX_FILE_ALREADY_EXISTS):
                    raise
            try:
                await sftp.remove(dst)
            except asyncssh.SFTPError as exc:
                if not is_not_found(exc):
                    raise
        await sftp.rename(src, dst)  # a last try that raises what stops it

    async def rename_new(self, sftp: asyncssh.SFTPClient, src: str, dst: str) -> bool:
        """Rename ``src`` to ``dst`` only if ``dst`` does not exist; False (``src`` left alone) if it does.

        The plain SFTP rename refuses an existing target (unlike posix-rename@openssh.com), and OpenSSH's
        server does it with ``link()``, so the server decides atomically.
        """
        try:
            await sftp.rename(src, dst)
        except asyncssh.SFTPError as exc:
            if exc.code not in (asyncssh.FX_FAILURE, asyncssh.FX_FILE_ALREADY_EXISTS):
                raise
            try:
                await sftp.lstat(dst)
            except asyncssh.SFTPError as missing:
                if is_not_found(missing):
                    raise exc from None  # the rename failed for another reason
                raise
            return False
        return True

    async def remove_tree(self, sftp: asyncssh.SFTPClient, path: str, limit: asyncio.Semaphore) -> None:
        """Remove the directory ``path`` and everything in it, many requests at a time."""

        async def bounded(call: Awaitable[None]) -> None:
            async with limit:
                try:
                    async with self.round():
                        await call
                except asyncssh.SFTPError as exc:
                    if not is_not_found(exc):  # gone already: a retry, or someone else cleaning up
                        raise

        try:
            async with self.round():
                entries = await sftp.readdir(path)
        except asyncssh.SFTPError as exc:
            if is_not_found(exc):
                return
            raise
        calls: list[Awaitable[None]] = []
        for entry in entries:
            filename = cast(str, entry.filename)
            if filename in (".", ".."):
                continue
            child = f"{path}/{filename}"
            if entry.attrs.type == asyncssh.FILEXFER_TYPE_DIRECTORY:
                calls.append(self.remove_tree(sftp, child, limit))
            else:
                calls.append(bounded(sftp.remove(child)))
        await gather_all(calls)
        try:
            await bounded(sftp.rmdir(path))
        except asyncssh.SFTPError:
            if path != self.path:  # the base itself may belong to someone else: leave it
                raise

    async def stat(self, link: Link, path: str) -> asyncssh.SFTPAttrs | None:
        """The attributes of ``path``, None where nothing is there."""
        try:
            async with self.round():
                return await link.sftp.stat(path)
        except asyncssh.SFTPError as exc:
            if is_not_found(exc):
                return None
            raise

    async def open_file(self, link: Link, path: str, flags: int) -> asyncssh.SFTPClientFile:
        """Open a remote file with ``flags`` (``asyncssh.FXF_*``), one request per read or write."""
        async with self.round():
            # block_size=0: each read() and write() is exactly one request, sent as soon as it starts
            return await link.sftp.open(path, flags, encoding=None, block_size=0)

    def close_later(self, f: asyncssh.SFTPClientFile) -> None:
        """Close a file that was only read from without waiting for the answer (nobody needs it)."""
        task = asyncio.ensure_future(close_quietly(f))
        self.closing.add(task)
        task.add_done_callback(self.closing.discard)

    async def read_value(self, link: Link, path: str, offset: int, size: int | None, part: int) -> bytes:
        """Read a value or a range of it: open, then the reads with the close right behind them."""
        f = await self.open_file(link, path, asyncssh.FXF_READ)
        try:
            if size == 0:
                return b""
            if offset < 0:
                async with self.round():
                    total = (await f.stat()).size or 0
                offset = max(total + offset, 0)
                size = total - offset if size is None else min(size, total - offset)
            block = link.read_len
            if size is not None and (size <= block or offset > 0):
                return await self.read(link, f, offset, size)
            # the start of a value of unknown length: most values are small, so one block first
            first = await self.read(link, f, offset, block)
            if len(first) < block:
                return first
            if size is None:
                return first + await self.read_to_end(link, f, offset + block, part)
            return first + await self.read(link, f, offset + block, size - block)
        finally:
            self.close_later(f)

    async def read(self, link: Link, f: asyncssh.SFTPClientFile, offset: int, size: int) -> bytes:
        """Read ``size`` bytes at ``offset`` (fewer at the end of the file) in bursts of requests (see
        `_read_answers`)."""
        parts: list[bytes] = []
        if not await self._read_answers(link, f, offset, size, parts.append):
            return await self.read_carefully(f, offset, size)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def read_into(self, link: Link, f: asyncssh.SFTPClientFile, offset: int, buffer: memoryview) -> int:
        """`read` into ``buffer``: each answer is copied to its place as it comes (no joined copy of the
        whole range); returns the bytes read."""
        filled = 0

        def place(data: bytes) -> None:
            nonlocal filled
            buffer[filled : filled + len(data)] = data
            filled += len(data)

        if not await self._read_answers(link, f, offset, len(buffer), place):
            data = await self.read_carefully(f, offset, len(buffer))
            buffer[: len(data)] = data
            return len(data)
        return filled

    async def _read_answers(
        self, link: Link, f: asyncssh.SFTPClientFile, offset: int, size: int, take: Callable[[bytes], None]
    ) -> bool:
        """Read ``size`` bytes at ``offset``, giving each answer in order to ``take``, until the end of the
        file; False where the server answered short before the end (then read carefully instead).

        Each burst is up to ``BURST`` requests of the server's maximum read size, all sent at once. For
        a regular file a short answer means the end of the file; a server that answers short before it
        gets a slower, careful read.
        """
        block = link.read_len
        spans = [(start, min(block, offset + size - start)) for start in range(offset, offset + size, block)]
        for first in range(0, len(spans), BURST):
            burst = spans[first : first + BURST]
            async with self.round():
                answers = await gather_all([f.read(length, start) for start, length in burst])
            for index, ((_, length), data) in enumerate(zip(burst, answers, strict=True)):
                if len(data) < length and any(answers[index + 1 :]):  # data after a short answer: not the end
                    return False
                take(data)
                if len(data) < length:
                    return True
        return True

    async def read_range_into(self, link: Link, path: str, offset: int, buffer: memoryview) -> int:
        """Open ``path`` and read from ``offset`` into ``buffer`` (see `read_into`), the close right behind."""
        f = await self.open_file(link, path, asyncssh.FXF_READ)
        try:
            return await self.read_into(link, f, offset, buffer) if buffer else 0
        finally:
            self.close_later(f)

    async def read_with_attrs(
        self, link: Link, path: str, offset: int, size: int, buffer: memoryview | None = None
    ) -> tuple[bytes | int, asyncssh.SFTPAttrs]:
        """Open ``path``, then ask the open file's attributes (``fstat``) with the reads of ``size`` bytes at
        ``offset`` (into ``buffer`` if given: then the count read comes back), in the same round trip: the
        attributes are those of the file the bytes came from, even if a rename replaced it meanwhile."""
        f = await self.open_file(link, path, asyncssh.FXF_READ)
        try:

            async def fstat() -> asyncssh.SFTPAttrs:
                async with self.round():
                    return await f.stat()

            read = self.read(link, f, offset, size) if buffer is None else self.read_into(link, f, offset, buffer)
            attrs, data = await gather_all([fstat(), read])
            return data, attrs
        finally:
            self.close_later(f)

    async def read_to_end(self, link: Link, f: asyncssh.SFTPClientFile, offset: int, part: int) -> bytes:
        """Read from ``offset`` to the end of the file, ``part`` bytes at a time."""
        chunks = []
        while True:
            chunk = await self.read(link, f, offset, part)
            chunks.append(chunk)
            if len(chunk) < part:
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)
            offset += part

    async def read_carefully(self, f: asyncssh.SFTPClientFile, offset: int, size: int | None) -> bytes:
        """One request at a time, each from where the last answer ended, until an empty answer."""
        log.info("sftp %s: the server answers reads short: reading one request at a time", self.host)
        chunks = []
        while size is None or size > 0:
            want = FALLBACK_BLOCK if size is None else min(FALLBACK_BLOCK, size)
            async with self.round():
                chunk = cast(bytes, await f.read(want, offset))
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
            if size is not None:
                size -= len(chunk)
        return b"".join(chunks)

    async def create_file(self, link: Link, tmp: str, directory: str) -> asyncssh.SFTPClientFile:
        """Create the new file ``tmp`` in ``directory``, making the directory and its parents if needed."""
        flags = asyncssh.FXF_WRITE | asyncssh.FXF_CREAT | asyncssh.FXF_EXCL
        try:
            return await self.open_file(link, tmp, flags)
        except asyncssh.SFTPError as exc:
            if not is_not_found(exc) or not directory.startswith(self.prefix):
                raise
        # One round trip: a mkdir for each level below the base (those that exist fail, which is fine),
        # then the open. Servers answer in order; one that does not gets a step-by-step second try.
        parts = directory[len(self.prefix) :].split("/")
        levels = [self.prefix + "/".join(parts[: depth + 1]) for depth in range(len(parts))]
        calls: list[Awaitable[Any]] = [link.sftp.mkdir(level) for level in levels]
        calls.append(link.sftp.open(tmp, flags, encoding=None, block_size=0))
        async with self.round():
            *_, opened = await asyncio.gather(*calls, return_exceptions=True)
        if isinstance(opened, asyncssh.SFTPClientFile):
            return opened
        if not is_not_found(opened):
            raise opened
        async with self.round():
            await self.makedirs(link.sftp, directory)
        return await self.open_file(link, tmp, flags)

    async def write(
        self, link: Link, f: asyncssh.SFTPClientFile, data: bytes | memoryview, offset: int, *, close: bool = False
    ) -> None:
        """Write ``data`` at ``offset`` in bursts of maximum-size requests (the close behind the last)."""
        view = memoryview(data)
        block = link.write_len
        starts = range(0, len(view), block)
        for first in range(0, max(len(starts), 1), BURST):
            calls: list[Awaitable[Any]] = [
                f.write(cast(bytes, view[start : start + block]), offset + start)
                for start in starts[first : first + BURST]
            ]
            if close and first + BURST >= len(starts):
                calls.append(f.close())
            async with self.round():
                await gather_all(calls)

    async def out_of_space(self, link: Link, size: int | None) -> bool:
        """After a write failed for no stated reason (SFTP v3 has no code for a full disk): is the disk full?"""
        try:
            async with self.round():
                vfs = await link.sftp.statvfs(self.path)
        except asyncssh.SFTPError:
            return False
        return vfs.favail == 0 or vfs.bavail * vfs.frsize < max(size or 0, 1)

    async def write_temp(
        self, link: Link, tmp: str, path: str, chunks: AsyncIterator[bytes | memoryview], size: int | None
    ) -> None:
        """Create ``tmp`` (and missing directories) and write the stream into it."""
        f = await self.create_file(link, tmp, posixpath.dirname(path))
        try:
            written = 0
            pending: asyncio.Future[None] | None = None
            try:
                async for chunk in chunks:
                    if size is not None and written + len(chunk) > size:
                        raise ValueError(f"{path}: the stream gave more than the expected {size} bytes")
                    if written == 0 and size == len(chunk):
                        # the whole value in one piece: the writes, then the close right behind them
                        await self.write(link, f, chunk, 0, close=True)
                        written = len(chunk)
                        continue
                    if pending is not None:
                        await pending  # one chunk on the wire while the next one is produced
                    pending = asyncio.ensure_future(self.write(link, f, chunk, written))
                    written += len(chunk)
                if pending is not None:
                    await pending
                    pending = None
            finally:
                if pending is not None and not pending.done():
                    pending.cancel()
                    with contextlib.suppress(BaseException):
                        await pending
            if size is not None and written != size:
                raise ValueError(f"{path}: expected {size} bytes, the stream gave {written}")
            async with self.round():
                await f.close()
        finally:
            await close_quietly(f)
