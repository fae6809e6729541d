"""The HTTP/1.1 client under the S3 backend's direct requests: client CPU per request against a server that
closes every connection after its reply, as moto (werkzeug) does.

Contenders, each sending ``count`` PUTs of 4 KiB and reading the replies, 1 and 32 in flight:

- aiodepot: ``aiodepot.backends._http1.Pool``, the client of the S3 backend's PUT/GET/HEAD/UploadPart;
- aiohttp: a ``ClientSession`` with a connector of the same limit (what those requests used before);
- asyncio streams: ``asyncio.open_connection`` and the request written by hand, the reply's head read with
  ``readuntil``: the floor of what a plain asyncio client pays.

The server runs in a process of its own (an ``asyncio.Protocol`` answering ``200`` with ``Connection: close``
once the request's body is in), so the client's CPU (``getrusage`` of this process) is the client's alone; the
server's is reported beside it. Every contender runs in rounds, in turn, every other round reversed, and each
row is the sum of its rounds.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Awaitable, Callable

from .common import Meter, Row, Usage, usage_row

ROUNDS = 4
SIZE = 4096
_REPLY = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class _Answer(asyncio.Protocol):
    """The server's side of one connection: once the request's head and body are in, the reply, then the close."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.received = b""

    def data_received(self, data: bytes) -> None:
        self.received += data
        end = self.received.find(b"\r\n\r\n")
        if end < 0:
            return
        length = 0
        for line in self.received[:end].split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(self.received) >= end + 4 + length:
            self.transport.write(_REPLY)
            self.transport.close()


def serve(port: int) -> None:
    """Answer every request on ``127.0.0.1:port`` with ``200`` and close (until killed)."""

    async def run() -> None:
        server = await asyncio.get_running_loop().create_server(_Answer, "127.0.0.1", port, backlog=1024)
        await server.serve_forever()

    asyncio.run(run())


async def _aiodepot(port: int, count: int, in_flight: int) -> None:
    from aiodepot.backends import _http1

    pool = _http1.Pool("http", "127.0.0.1", port, limit=in_flight)
    body = bytes(SIZE)
    headers = {"host": f"127.0.0.1:{port}"}

    async def put(i: int) -> None:
        response = await pool.request("PUT", f"/bucket/k{i}", headers, body)
        await response.read()

    try:
        await _in_flight(put, count, in_flight)
    finally:
        await pool.close()


async def _aiohttp(port: int, count: int, in_flight: int) -> None:
    import aiohttp

    body = bytes(SIZE)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=in_flight)) as session:

        async def put(i: int) -> None:
            async with session.put(f"http://127.0.0.1:{port}/bucket/k{i}", data=body) as response:
                await response.read()

        await _in_flight(put, count, in_flight)


async def _streams(port: int, count: int, in_flight: int) -> None:
    body = bytes(SIZE)

    async def put(i: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            head = f"PUT /bucket/k{i} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-length: {SIZE}\r\n\r\n"
            writer.write(head.encode() + body)
            await reader.readuntil(b"\r\n\r\n")
        finally:
            writer.close()

    await _in_flight(put, count, in_flight)


async def _in_flight(call: Callable[[int], Awaitable[None]], count: int, in_flight: int) -> None:
    limit = asyncio.Semaphore(in_flight)

    async def one(i: int) -> None:
        async with limit:
            await call(i)

    await asyncio.gather(*(one(i) for i in range(count)))


_CONTENDERS: tuple[tuple[str, Callable[[int, int, int], Awaitable[None]]], ...] = (
    ("aiodepot", _aiodepot),
    ("aiohttp", _aiohttp),
    ("asyncio streams", _streams),
)


def run(count: int = 3000) -> list[Row]:
    """``count`` PUTs per contender at 1 and at 32 in flight (in ``ROUNDS`` rounds): one row each."""
    from tests.servers import free_port, stop_process, wait_for_port

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", f"from benchmarks.http_pool import serve; serve({port})"],
        stdin=subprocess.DEVNULL,
    )
    rows = []
    try:
        wait_for_port(port, process=process, timeout=30.0)
        for in_flight in (1, 32):
            asyncio.run(_aiodepot(port, 200, in_flight))  # the server's and the client's first requests
            sums: dict[str, Usage] = {}
            for round_ in range(ROUNDS):
                for label, contender in _CONTENDERS if round_ % 2 == 0 else _CONTENDERS[::-1]:
                    with Meter(process.pid) as usage:
                        asyncio.run(contender(port, count // ROUNDS, in_flight))
                    sums[label] = sums[label] + usage if label in sums else usage
            done = count // ROUNDS * ROUNDS
            scenario = f"http pool {in_flight} in flight, {done} x PUT 4 KiB, server closes"
            for label, usage in sums.items():
                rows.append(usage_row(scenario, "put", label, usage, done, "op", f"{done / usage.seconds:,.0f} req/s"))
    finally:
        stop_process(process)
    return rows
