"""The ftp backend's connections: a data connection of one transfer, the pool of logged-in control
connections, and the parsing of ``MLSD``/``MLST`` lines."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import io
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import aioftp

from ...errors import StoreError
from ...items import ItemInfo
from ._errors import is_lost

__all__ = [
    "CLOSE_TIMEOUT",
    "Client",
    "DataConnection",
    "Download",
    "Pool",
    "close_client",
    "closed",
    "item_info",
    "mlsx_entry",
]

CLOSE_TIMEOUT = 5.0
"""Seconds to wait for a closed connection to finish closing (a TLS goodbye)."""
SCRATCH = 64 * 1024
"""Bytes a download without a target buffer receives at once (a small value allocates no more)."""
DROP = 16 * 1024
"""The scratch buffer of a download into a target: where bytes past its end go."""


class Client(aioftp.Client):
    """aioftp's client with one ``asyncio.timeout`` per command instead of aioftp's per-read ``wait_for``
    (which starts a task for every line read and written: a third of the CPU of a small transfer).

    ``reply_timeout``: seconds a command may take from sending it to its final reply.
    """

    def __init__(self, *, reply_timeout: float | None, **options: Any) -> None:
        super().__init__(socket_timeout=None, **options)
        self.reply_timeout = reply_timeout

    async def command(self, *args: Any, **kwargs: Any) -> Any:
        async with asyncio.timeout(self.reply_timeout):
            return await super().command(*args, **kwargs)


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


class Download(asyncio.BufferedProtocol):
    """The data connection of one ``RETR``, as a protocol that receives into a buffer (no stream between).

    With ``target`` the bytes go straight into it (the socket reads into it) and the download is
    complete when it is full; without, they collect in a growing buffer, up to ``limit`` bytes if given.
    Bytes past the end are read into a scratch buffer and dropped. It takes the connection over from the
    stream it was opened with, before the ``RETR``.
    """

    def __init__(
        self, writer: asyncio.StreamWriter, target: memoryview | None, limit: int | None, timeout: float
    ) -> None:
        transport = writer.transport
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._writer = writer  # kept: a StreamWriter that is dropped closes its transport
        self._target = target
        self._limit = len(target) if target is not None else limit
        self._collected = io.BytesIO() if target is None else None
        scratch = DROP if target is not None else SCRATCH if limit is None else min(SCRATCH, max(limit, 1))
        self._scratch = memoryview(bytearray(scratch))
        self._timeout = timeout
        self.received = 0
        loop = asyncio.get_running_loop()
        self._done: asyncio.Future[None] = loop.create_future()
        self._closed: asyncio.Future[None] = loop.create_future()
        # before the RETR: nothing has arrived yet
        transport.set_protocol(self if transport.get_extra_info("ssl_object") is None else _Copying(self))

    # the protocol (called by the transport)

    def get_buffer(self, sizehint: int) -> memoryview:
        remaining = len(self._scratch) if self._limit is None else self._limit - self.received
        if remaining <= 0:
            return self._scratch  # past the end: dropped
        if self._target is not None:
            return self._target[self.received :]
        return self._scratch[:remaining] if remaining < len(self._scratch) else self._scratch

    def buffer_updated(self, nbytes: int) -> None:
        if self._limit is not None:
            nbytes = min(nbytes, self._limit - self.received)  # the rest is past the range: dropped
        if self._collected is not None and nbytes:
            self._collected.write(self._scratch[:nbytes])
        self.received += nbytes
        if self._limit is not None and self.received >= self._limit:
            self._settle(None)

    def eof_received(self) -> bool:
        self._settle(None)
        return False  # close the connection

    def connection_lost(self, exc: Exception | None) -> None:
        self._settle(exc)
        if not self._closed.done():
            self._closed.set_result(None)

    def _settle(self, exc: Exception | None) -> None:
        if not self._done.done():
            if exc is None:
                self._done.set_result(None)
            else:
                self._done.set_exception(exc)
                self._done.exception()  # retrieved by wait(); not worth a warning if nobody waits any more

    # the download (called by the backend)

    @property
    def complete(self) -> bool:
        """True once ``limit`` bytes (or the whole target) have arrived."""
        return self._limit is not None and self.received >= self._limit

    async def wait(self) -> None:
        """Until the download is complete or the server ends it; a pause of ``timeout`` raises ``TimeoutError``."""
        while not self._done.done():
            before = self.received
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._timeout):
                    await asyncio.shield(self._done)
            if not self._done.done() and self.received == before:
                raise TimeoutError(f"no data for {self._timeout} s")
        self._done.result()  # a broken connection raises here

    async def finish(self, client: aioftp.Client) -> None:
        """Close the data connection (cut it where the transfer goes on) and wait for the final reply."""
        cut = self.complete
        if cut:
            self.transport.abort()
        else:
            self.transport.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await asyncio.shield(self._closed)
        self._target = None
        async with asyncio.timeout(self._timeout):
            await client.command(None, ("2xx", "426") if cut else ("2xx",), "1xx")

    def abort(self) -> None:
        """Cut the data connection at once (after a failure)."""
        self._target = None
        self.transport.abort()

    def value(self) -> bytes:
        """What a download without a target collected."""
        assert self._collected is not None
        value = self._collected.getvalue()
        self._collected = io.BytesIO()
        return value


class _Copying(asyncio.Protocol):
    """A download's protocol on a TLS connection: the decrypted bytes are copied into its buffers.

    asyncio's TLS layer (Python 3.11) hands a buffered protocol one buffer-full per read and, when the
    peer closes, reports the end before the rest of what it decrypted: the tail of a transfer that fits in
    the socket's buffers would be lost. Given whole chunks, it loses nothing.
    """

    def __init__(self, download: Download) -> None:
        self._download = download

    def data_received(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            buffer = self._download.get_buffer(len(view))
            count = min(len(buffer), len(view))
            buffer[:count] = view[:count]
            self._download.buffer_updated(count)
            view = view[count:]

    def eof_received(self) -> bool:
        return self._download.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._download.connection_lost(exc)


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
