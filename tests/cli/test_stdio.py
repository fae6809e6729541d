"""stdin/stdout off the event loop, in daemon threads."""

from __future__ import annotations

import asyncio
import io
import os
import threading

import pytest

from aiodepot.cli.stdio import BinaryInput, BinaryOutput, LineOutput, in_daemon_thread


async def test_in_daemon_thread_returns_and_raises() -> None:
    names: list[str] = []

    def work() -> int:
        names.append(threading.current_thread().name)
        assert threading.current_thread().daemon
        return 42

    assert await in_daemon_thread(work) == 42
    assert names == ["aiodepot-stdio"]

    def fail() -> None:
        raise OSError("broken")

    with pytest.raises(OSError, match="broken"):
        await in_daemon_thread(fail)


async def test_cancelling_abandons_a_blocked_call() -> None:
    release = threading.Event()
    task = asyncio.create_task(in_daemon_thread(release.wait))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    release.set()  # the thread ends later; its result goes nowhere
    await asyncio.sleep(0.01)


async def test_pipe_round_trip() -> None:
    read_fd, write_fd = os.pipe()
    with io.FileIO(read_fd, "rb") as reader, io.FileIO(write_fd, "wb") as writer:
        output = BinaryOutput(writer)
        await output.write(b"hello ")
        await output.write(memoryview(b"world"))
        await output.write(b"")
        writer.close()
        source = BinaryInput(reader)
        received = b""
        while chunk := await source.read(4):
            received += chunk
    assert received == b"hello world"


async def test_streams_without_a_file_descriptor() -> None:
    sink = io.BytesIO()
    await BinaryOutput(sink).write(b"abc")
    assert sink.getvalue() == b"abc"
    source = BinaryInput(io.BytesIO(b"xyz"))
    assert await source.read(2) == b"xy"
    assert await source.read(10) == b"z"
    assert await source.read(10) == b""


async def test_lines_are_written_in_blocks() -> None:
    sink = io.BytesIO()
    lines = LineOutput(BinaryOutput(sink), block=10)
    await lines.line("short")
    assert sink.getvalue() == b""
    await lines.line("long enough now")
    assert sink.getvalue() == b"short\nlong enough now\n"
    await lines.line("ünï")
    await lines.flush()
    assert sink.getvalue().endswith("ünï\n".encode())
