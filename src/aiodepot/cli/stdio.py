"""stdin and stdout for commands that run on an event loop, without blocking it.

Reading a terminal or writing into a full pipe can block for as long as the other side likes. Each
such call runs in a daemon thread of its own (not the loop's executor): when the user presses Ctrl-C,
the command is cancelled and the process exits at once, instead of waiting at exit for a thread that
waits for input. Real file descriptors are read and written with ``os.read``/``os.write``, which hold
no Python-level lock that a thread left behind could keep at interpreter shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import threading
from collections.abc import Callable
from typing import BinaryIO, TypeVar

import click

__all__ = ["BinaryInput", "BinaryOutput", "LineOutput", "in_daemon_thread"]

T = TypeVar("T")


def _deliver(future: asyncio.Future[T], result: T | None, error: BaseException | None) -> None:
    if future.done():
        return  # the waiter was cancelled meanwhile
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)  # type: ignore[arg-type]


async def in_daemon_thread(func: Callable[[], T]) -> T:
    """Run ``func()`` in a new daemon thread and await its result; cancelling abandons the thread."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def run() -> None:
        result: T | None = None
        error: BaseException | None = None
        try:
            result = func()
        except BaseException as exc:
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(_deliver, future, result, error)

    threading.Thread(target=run, name="aiodepot-stdio", daemon=True).start()
    return await future


def _fileno(stream: BinaryIO) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None  # not backed by a file descriptor (e.g. click's test runner)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class BinaryOutput:
    """Bytes to stdout (or another binary stream), written off the event loop.

    Args:
        stream: the stream to write to (default: stdout).
    """

    def __init__(self, stream: BinaryIO | None = None) -> None:
        self._stream = stream if stream is not None else click.get_binary_stream("stdout")
        self._fd = _fileno(self._stream)
        if self._fd is not None:
            self._stream.flush()  # what was written through the stream comes first

    async def write(self, data: bytes | memoryview) -> None:
        """Write all of ``data``."""
        if not data:
            return
        fd, stream = self._fd, self._stream
        if fd is not None:
            await in_daemon_thread(lambda: _write_all(fd, data))
        else:
            await in_daemon_thread(lambda: (stream.write(data), stream.flush()))


class BinaryInput:
    """Bytes from stdin (or another binary stream), read off the event loop.

    Args:
        stream: the stream to read (default: stdin).
    """

    def __init__(self, stream: BinaryIO | None = None) -> None:
        self._stream = stream if stream is not None else click.get_binary_stream("stdin")
        self._fd = _fileno(self._stream)

    async def read(self, size: int) -> bytes:
        """Return up to ``size`` bytes (fewer as they come); ``b""`` at the end of the input."""
        fd, stream = self._fd, self._stream
        if fd is not None:
            return await in_daemon_thread(lambda: os.read(fd, size))
        return await in_daemon_thread(lambda: stream.read(size))


class LineOutput:
    """Text lines to stdout, collected and written in blocks off the event loop.

    Args:
        output: where the encoded lines go (default: stdout).
        block: bytes to collect before a write.
    """

    def __init__(self, output: BinaryOutput | None = None, *, block: int = 64 * 1024) -> None:
        self._output = output or BinaryOutput()
        self._block = block
        self._parts: list[bytes] = []
        self._pending = 0

    async def line(self, text: str) -> None:
        """Add one line (the newline is appended)."""
        data = (text + "\n").encode("utf-8", "surrogateescape")
        self._parts.append(data)
        self._pending += len(data)
        if self._pending >= self._block:
            await self.flush()

    async def flush(self) -> None:
        """Write what was collected."""
        if self._parts:
            data, self._parts, self._pending = b"".join(self._parts), [], 0
            await self._output.write(data)
