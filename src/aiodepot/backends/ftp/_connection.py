"""The ftp backend's connections: a data connection of one transfer, the pool of logged-in control
connections, and the parsing of ``MLSD``/``MLST`` lines."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

import aioftp

from ...errors import StoreError
from ...items import ItemInfo
from ._errors import is_lost

__all__ = ["CLOSE_TIMEOUT", "DataConnection", "Pool", "close_client", "closed", "item_info", "mlsx_entry"]

CLOSE_TIMEOUT = 5.0
"""Seconds to wait for a closed connection to finish closing (a TLS goodbye)."""


def mlsx_entry(line: str) -> tuple[str, dict[str, str]]:
    """The name and the facts (lower-case keys) of one ``MLSD``/``MLST`` line: ``fact=value;… name``."""
    facts_text, _, name = line.lstrip(" ").partition(" ")
    facts = {}
    for fact in facts_text.split(";"):
        key, sep, value = fact.partition("=")
        if sep:
            facts[key.lower()] = value
    return name, facts


def item_info(name: str, facts: Mapping[str, str]) -> ItemInfo:
    """The [`ItemInfo`][aiodepot.items.ItemInfo] of a file or directory from its ``MLSD``/``MLST`` facts."""
    kind = facts.get("type", "").lower()
    directory = kind in ("dir", "cdir", "pdir")
    mtime = 0.0
    modify = facts.get("modify", "")
    if len(modify) >= 14:
        with contextlib.suppress(ValueError):
            whole = datetime.datetime.strptime(modify[:14], "%Y%m%d%H%M%S").replace(tzinfo=datetime.UTC)
            fraction = float("0" + modify[14:]) if modify[14:15] == "." else 0.0
            mtime = whole.timestamp() + fraction
    size = 0 if directory else int(facts.get("size", "0") or 0)
    return ItemInfo(name=name, exists=True, size=size, directory=directory, atime=0.0, mtime=mtime)


class DataConnection:
    """One data connection: the stream to read or write, and the control connection that reports on it."""

    __slots__ = ("client", "reader", "timeout", "writer")

    def __init__(
        self, client: aioftp.Client, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, timeout: float
    ) -> None:
        self.client = client
        self.reader = reader
        self.writer = writer
        self.timeout = timeout

    async def read(self, count: int) -> bytes:
        async with asyncio.timeout(self.timeout):
            return await self.reader.read(count)

    async def write(self, data: bytes | memoryview) -> None:
        self.writer.write(data)
        async with asyncio.timeout(self.timeout):
            await self.writer.drain()

    async def abort(self) -> None:
        """Cut the data connection at once (no TLS goodbye: the peer may still be sending)."""
        self.writer.transport.abort()
        await closed(self.writer)

    async def finish(self, expected: tuple[str, ...] = ("2xx",), *, cut: bool = False) -> None:
        """Close the data connection (``cut``: at once) and wait for the transfer's final reply."""
        if cut:
            self.writer.transport.abort()
        await closed(self.writer)
        async with asyncio.timeout(self.timeout):
            await self.client.command(None, expected, "1xx")


async def closed(writer: asyncio.StreamWriter) -> None:
    """Close a connection and wait (briefly) until it is closed: a TLS connection ends with a goodbye."""
    writer.close()
    with contextlib.suppress(Exception):
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await writer.wait_closed()


async def close_client(client: aioftp.Client) -> None:
    """Close a control connection without a word (it broke, or the server said goodbye)."""
    stream = getattr(client, "_stream", None)
    if stream is not None:
        await closed(stream.writer)


class Pool:
    """Up to ``size`` logged-in control connections; each operation holds one for itself."""

    def __init__(self, connect: Callable[[], Awaitable[aioftp.Client]], size: int, wait: float | None) -> None:
        self._connect = connect
        self.size = size
        self._wait = wait
        self._idle: list[aioftp.Client] = []
        self._slots: asyncio.Semaphore | None = None
        self._pid = os.getpid()

    def _fresh(self) -> asyncio.Semaphore:
        if self._pid != os.getpid():  # a forked child leaves the parent's connections alone
            self._idle, self._slots, self._pid = [], None, os.getpid()
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.size)
        return self._slots

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[aioftp.Client]:
        """A connection for one operation; it goes back to the pool unless the operation broke it."""
        slots = self._fresh()
        async with asyncio.timeout(self._wait):
            await slots.acquire()
        try:
            client = self._idle.pop() if self._idle else await self._connect()
            try:
                yield client
            except BaseException as exc:
                # an error reply leaves the connection in step; anything else may leave it mid-command
                if isinstance(exc, aioftp.StatusCodeError | StoreError) and not is_lost(exc):
                    self._idle.append(client)
                else:
                    await close_client(client)
                raise
            self._idle.append(client)
        finally:
            slots.release()

    async def close(self) -> None:
        """Say goodbye on every idle connection (briefly) and close them."""
        self._fresh()
        idle, self._idle = self._idle, []
        for client in idle:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await client.command("QUIT", "2xx")
            await close_client(client)
