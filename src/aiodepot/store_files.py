"""File transfers of a Store: a value into a local file as parallel ranges, a local file into a value."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from typing import TYPE_CHECKING

from .errors import ObjectNotFound
from .names import validate_name
from .store_base import StoreBase
from .transfer import ProgressCallback, ProgressTracker, run_bounded

if TYPE_CHECKING:
    pass

__all__ = ["FileTransfers"]


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
        The file appears complete or not at all: it is written under a temporary name and renamed.
        """
        validate_name(name)
        target = os.fspath(path)
        self._require_open()
        started = self._stats.begin("load")
        size = 0
        try:
            nested = await self._find(name, deleted)
            info = await self._calls.info(nested)
            if not info.exists or info.directory:
                raise ObjectNotFound(name)
            part = self.backend.capabilities.part_size
            ranges = [(offset, min(part, info.size - offset)) for offset in range(0, info.size, part)]
            tmp = f"{target}.{secrets.token_hex(6)}.part"
            fd = await asyncio.to_thread(os.open, tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
            try:
                try:
                    await asyncio.to_thread(os.ftruncate, fd, info.size)

                    async def copy(span: tuple[int, int]) -> None:
                        offset, length = span
                        async with self.budget.reserve(length):
                            await self._calls.read_into(nested, fd, offset=offset, size=length)

                    await run_bounded(
                        ranges,
                        copy,
                        max_concurrency=max_concurrency or self.max_concurrency,
                        progress=progress,
                        bytes_total=info.size,
                        bytes_of=lambda span, _: span[1],
                    )
                finally:
                    await asyncio.to_thread(os.close, fd)
                await asyncio.to_thread(os.replace, tmp, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            size = info.size
        finally:
            self._stats.end("load", started, size)
        return size

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
