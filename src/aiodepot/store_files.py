"""File transfers of a Store: a value into a local file as parallel ranges, a local file into a value."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets

from .backends.base import FirstRange
from .errors import BackendError, ObjectNotFound, StoreError
from .names import validate_name
from .store_base import RANGED_LOAD_TRIES, StoreBase
from .transfer import ProgressCallback, ProgressTracker, run_bounded

__all__ = ["FileTransfers"]

logger = logging.getLogger(__name__)


def _same_content(before: FirstRange, after: FirstRange) -> bool:
    """Whether two probes of a value found the same content: the same version where the backend names
    versions, else the same size and mtime."""
    if before.version is not None or after.version is not None:
        return before.version == after.version and before.size == after.size
    return (before.size, before.mtime) == (after.size, after.mtime)


class FileTransfers(StoreBase):
    """[`Store.load_file`][aiodepot.Store.load_file] and [`Store.store_file`][aiodepot.Store.store_file]."""

    # files -----------------------------------------------------------------------------------------------

    async def load_file(
        self,
        name: str,
        path: str | os.PathLike[str],
        *,
        deleted: bool = False,
        max_concurrency: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> int:
        """Write the value of ``name`` into the local file ``path``; return its size.

        The value is split into ``part_size`` ranges (from the backend's capabilities) that are copied in
        parallel straight into their place in the file, never more than ``max_bytes_in_flight`` in memory.
        The file appears complete or not at all: it is written under a temporary name and renamed. The
        value's version (or size and mtime) is read before and after the copy: a value replaced meanwhile
        is copied again, so the file never holds pieces of two versions.
        """
        validate_name(name)
        target = os.fspath(path)
        self._require_open()
        started = self._stats.begin("load")
        size = 0
        try:
            nested = await self._find(name, deleted)
            for _ in range(RANGED_LOAD_TRIES):
                before = await self._probe(nested)
                tmp = await self._copy_into_file(nested, target, before.size, max_concurrency, progress)
                kept = False
                try:
                    if _same_content(before, await self._probe(nested)):
                        await asyncio.to_thread(os.replace, tmp, target)
                        kept = True
                        size = before.size
                        return size
                finally:
                    if not kept:
                        with contextlib.suppress(OSError):
                            os.unlink(tmp)
                logger.warning("%s changed while it was copied to a file; copying it again", nested)
            raise BackendError(f"{nested} kept changing while it was copied to a file")
        finally:
            self._stats.end("load", started, size)

    async def _probe(self, nested: str) -> FirstRange:
        """The value's size and what identifies its content, from its first byte (where the backend has
        versions, the reply that carries the byte names them; elsewhere its ``info``)."""
        try:
            return await self._calls.load_first(nested, 0, 1)
        except ObjectNotFound:
            raise
        except StoreError:
            if (await self._calls.info(nested)).directory:  # a directory is no item
                raise ObjectNotFound(nested) from None
            raise

    async def _copy_into_file(
        self,
        nested: str,
        target: str,
        size: int,
        max_concurrency: int | None,
        progress: ProgressCallback | None,
    ) -> str:
        """The value's ``size`` bytes as parallel ranges into a new file beside ``target``; returns its
        name (the caller renames it to ``target`` or removes it)."""
        part = self.backend.capabilities.part_size
        ranges = [(offset, min(part, size - offset)) for offset in range(0, size, part)]
        tmp = f"{target}.{secrets.token_hex(6)}.part"
        fd = await asyncio.to_thread(os.open, tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        try:
            try:
                await asyncio.to_thread(os.ftruncate, fd, size)

                async def copy(span: tuple[int, int]) -> None:
                    offset, length = span
                    async with self.budget.reserve(length):
                        await self._calls.read_into(nested, fd, offset=offset, size=length)

                await run_bounded(
                    ranges,
                    copy,
                    max_concurrency=max_concurrency or self.max_concurrency,
                    progress=progress,
                    bytes_total=size,
                    bytes_of=lambda span, _: span[1],
                )
            finally:
                await asyncio.to_thread(os.close, fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return tmp

    async def store_file(
        self,
        name: str,
        path: str | os.PathLike[str],
        *,
        progress: ProgressCallback | None = None,
    ) -> int:
        """Store the content of the local file ``path`` under ``name``, atomically; return its size.

        The file is streamed (or copied inside the kernel, on posixfs), never read into memory whole.
        """
        validate_name(name)
        source = os.fspath(path)
        self._require_open()
        started = self._stats.begin("store")
        size = 0
        try:
            st = await asyncio.to_thread(os.stat, source)
            nested = await self._find(name, False)
            async with self.budget.reserve(min(st.st_size, self.backend.capabilities.part_size)):
                await self._calls.store_file(nested, source, size=st.st_size)
            size = st.st_size
            if progress is not None:
                await ProgressTracker(progress, 1, size).step(size)
        finally:
            self._stats.end("store", started, size)
        return size
