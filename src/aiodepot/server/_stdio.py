"""Serving one HTTP connection over stdin/stdout (``--stdio``, as ``rest://`` clients start the server over
ssh): the bytes are pumped between the pipes and one end of a socket pair that aiohttp serves."""

from __future__ import annotations

import asyncio
import socket
import sys

from aiohttp import web

__all__ = ["bridge_stdio"]

_CHUNK = 1 << 20
_HEAD_LIMIT = 1 << 16
_HOST = b"Host: stdio\r\n"


async def bridge_stdio(runner: web.AppRunner) -> None:
    """Serve one HTTP connection over stdin/stdout; return when the client closes stdin and every answer is
    out."""
    loop = asyncio.get_running_loop()
    server_end, bridge_end = socket.socketpair()
    assert runner.server is not None
    await loop.connect_accepted_socket(runner.server, server_end)
    bridge_reader, bridge_writer = await asyncio.open_connection(sock=bridge_end)
    stdin_reader = asyncio.StreamReader(limit=_HEAD_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin_reader), sys.stdin.buffer)
    out_transport, out_protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, sys.stdout.buffer)
    stdout_writer = asyncio.StreamWriter(out_transport, out_protocol, None, loop)

    async def pump_answers() -> None:
        while chunk := await bridge_reader.read(_CHUNK):
            stdout_writer.write(chunk)
            await stdout_writer.drain()

    async with asyncio.TaskGroup() as group:
        group.create_task(pump_requests(stdin_reader, bridge_writer))
        group.create_task(pump_answers())
    bridge_writer.close()
    out_transport.set_write_buffer_limits(high=0)  # the last answer may still be in the transport's buffer:
    await stdout_writer.drain()  # wait until it is all in the pipe
    stdout_writer.close()


async def pump_requests(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy HTTP requests from ``source`` to ``sink``, one by one, adding ``Host: stdio`` to a request that
    has none; at the end of ``source``, send EOF.

    HTTP/1.1 makes Host mandatory and aiohttp refuses a request without it, but over a pipe there is no host
    to name, and borgstore's server and its tests do without. Anything that is not a well-formed request head
    is passed on as it is, for aiohttp to answer.
    """
    try:
        while True:
            try:
                head = await source.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError as exc:
                sink.write(exc.partial)  # the end of input (a partial head is aiohttp's to refuse)
                break
            except asyncio.LimitOverrunError:
                await _copy_rest(source, sink)  # a head this long is refused anyway
                break
            lines = head.split(b"\r\n")
            names = {line.partition(b":")[0].strip().lower() for line in lines[1:] if line}
            if b"host" not in names:
                head = head[:-2] + _HOST + b"\r\n"
            sink.write(head)
            await sink.drain()
            if not await _copy_body(source, sink, lines):
                break
    finally:
        if sink.can_write_eof():
            sink.write_eof()


async def _copy_body(source: asyncio.StreamReader, sink: asyncio.StreamWriter, lines: list[bytes]) -> bool:
    """Copy the body that the head ``lines`` announce; False if the input ended or cannot be framed."""
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == b"transfer-encoding" and value.endswith(b"chunked"):
            return await _copy_chunked(source, sink)
        if name == b"content-length":
            if not value.isdigit():
                await _copy_rest(source, sink)
                return False
            length = int(value)
    return await _copy_exactly(source, sink, length)


async def _copy_chunked(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> bool:
    while True:
        try:
            size_line = await source.readuntil(b"\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            await _copy_rest(source, sink)
            return False
        sink.write(size_line)
        try:
            size = int(size_line.split(b";")[0].strip(), 16)
        except ValueError:
            await _copy_rest(source, sink)
            return False
        if size == 0:
            break
        if not await _copy_exactly(source, sink, size + 2):
            return False
    while True:  # trailers, up to the empty line
        try:
            line = await source.readuntil(b"\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            await _copy_rest(source, sink)
            return False
        sink.write(line)
        if line == b"\r\n":
            await sink.drain()
            return True


async def _copy_exactly(source: asyncio.StreamReader, sink: asyncio.StreamWriter, size: int) -> bool:
    while size > 0:
        chunk = await source.read(min(size, _CHUNK))
        if not chunk:
            return False
        sink.write(chunk)
        await sink.drain()
        size -= len(chunk)
    return True


async def _copy_rest(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    while chunk := await source.read(_CHUNK):
        sink.write(chunk)
        await sink.drain()
