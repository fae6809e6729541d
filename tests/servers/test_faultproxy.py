"""The fault proxy against a trivial echo server: every fault does what it says, and the counters add up."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.servers.faultproxy import Fault, FaultProxy

PAYLOAD = os.urandom(200_000)


class EchoServer:
    """Echoes every byte back; counts the connections it served (in a thread of its own)."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.served = 0
        self.resets_seen = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    def _echo(self, conn: socket.socket) -> None:
        self.served += 1
        with conn:
            try:
                while data := conn.recv(65536):
                    conn.sendall(data)
            except ConnectionResetError:
                self.resets_seen += 1

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone does not on Linux)
        self.listener.close()


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.close()


@pytest.fixture
def proxy(echo: EchoServer) -> Iterator[FaultProxy]:
    with FaultProxy(echo.port) as running:
        yield running


@pytest.fixture
async def opened(proxy: FaultProxy) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    yield reader, writer
    writer.close()
    try:
        await writer.wait_closed()
    except ConnectionError:
        pass  # the test reset it


async def exchange(writer: asyncio.StreamWriter, reader: asyncio.StreamReader, data: bytes) -> bytes:
    """Send ``data`` and read until as many bytes came back (or the connection ends)."""
    writer.write(data)
    await writer.drain()
    received = bytearray()
    while len(received) < len(data):
        chunk = await reader.read(65536)
        if not chunk:
            break
        received += chunk
    return bytes(received)


async def test_passes_everything_through_and_counts(proxy: FaultProxy) -> None:
    for _ in range(3):
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        async with asyncio.timeout(10):
            assert await exchange(writer, reader, PAYLOAD) == PAYLOAD
        writer.close()
        await writer.wait_closed()
    figures = await proxy.wait_idle(5)
    assert (figures.accepted, figures.open, figures.closed) == (3, 0, 3)
    assert figures.bytes_up == figures.bytes_down == 3 * len(PAYLOAD)
    assert figures.resets == figures.flips == figures.stalls == 0


@pytest.mark.parametrize("direction", ["up", "down"])
@pytest.mark.parametrize("after", [0, 1, 70_000])
async def test_reset_after_k_bytes(proxy: FaultProxy, direction: str, after: int) -> None:
    proxy.fault = Fault.reset(after, direction)  # type: ignore[arg-type]
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    received = bytearray()
    async with asyncio.timeout(10):

        async def talk() -> None:
            writer.write(PAYLOAD)
            await writer.drain()
            while chunk := await reader.read(65536):
                received.extend(chunk)
            writer.write(b"more")  # only a write tells a client that saw EOF about the RST
            await writer.drain()
            await asyncio.sleep(0.1)
            writer.write(b"more")
            await writer.drain()

        with pytest.raises(ConnectionResetError):  # an RST, not a clean end of stream
            await talk()
    writer.close()
    assert len(received) <= after
    assert PAYLOAD.startswith(bytes(received))
    figures = await proxy.wait_idle(5)
    assert figures.resets == 1
    assert figures.open == 0
    assert (figures.bytes_up if direction == "up" else figures.bytes_down) == after


async def test_flip_one_bit(proxy: FaultProxy, opened: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
    proxy.switch(Fault.flip(100_001, "down", bit=3))
    reader, writer = opened
    async with asyncio.timeout(10):
        echoed = await exchange(writer, reader, PAYLOAD)
    assert len(echoed) == len(PAYLOAD)
    differences = [i for i, (a, b) in enumerate(zip(echoed, PAYLOAD, strict=True)) if a != b]
    assert differences == [100_001]
    assert echoed[100_001] ^ PAYLOAD[100_001] == 1 << 3
    assert proxy.counters().flips == 1


async def test_flip_client_to_server(proxy: FaultProxy) -> None:
    proxy.plan([Fault.flip(5, "up", bit=7)])
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    async with asyncio.timeout(10):
        echoed = await exchange(writer, reader, b"\x00" * 10)
    writer.close()
    assert echoed == b"\x00" * 5 + b"\x80" + b"\x00" * 4
    # the plan was for one connection: the next one is clean again
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    async with asyncio.timeout(10):
        assert await exchange(writer, reader, b"\x00" * 10) == b"\x00" * 10
    writer.close()


async def test_stall_for_a_while(proxy: FaultProxy) -> None:
    proxy.fault = Fault.stall(after=1000, seconds=0.5, direction="down")
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    started = time.monotonic()
    async with asyncio.timeout(10):
        writer.write(PAYLOAD)
        first = await reader.readexactly(1000)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await reader.read(1)
        rest = await reader.readexactly(len(PAYLOAD) - 1000)
    assert first + rest == PAYLOAD
    assert time.monotonic() - started >= 0.45
    writer.close()
    assert proxy.counters().stalls == 1


async def test_stall_forever_until_released(proxy: FaultProxy) -> None:
    proxy.fault = Fault.stall(after=0, seconds=None, direction="up")
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"hello")
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await reader.read(1)
    assert proxy.counters().open == 1  # the socket stays open while stalled
    proxy.release()
    async with asyncio.timeout(5):
        assert await reader.readexactly(5) == b"hello"
    writer.close()


async def test_a_client_that_gives_up_on_a_stall_frees_the_connection(proxy: FaultProxy) -> None:
    proxy.fault = Fault.stall(after=0, direction="down")
    for _ in range(5):
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        async with asyncio.timeout(5):
            writer.write(b"x" * 100)
            await writer.drain()
            with pytest.raises(TimeoutError):  # the echo is held back
                async with asyncio.timeout(0.1):
                    await reader.read(1)
        writer.close()  # the client, who waits, gives up
        await writer.wait_closed()
    figures = await proxy.wait_idle(5)
    assert (figures.accepted, figures.open, figures.stalls) == (5, 0, 5)


async def test_a_stall_holds_back_the_senders_close(proxy: FaultProxy) -> None:
    """The client sends and closes while its direction is stalled: the server sees neither until release."""
    proxy.fault = Fault.stall(after=0, direction="up")
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"hello")
    writer.write_eof()
    await asyncio.sleep(0.3)
    assert proxy.counters().open == 1
    assert proxy.counters().bytes_up == 0
    proxy.release()
    async with asyncio.timeout(5):
        assert await reader.read() == b"hello"  # the echo, then the server's close
    writer.close()
    figures = await proxy.wait_idle(5)
    assert (figures.open, figures.bytes_up, figures.bytes_down) == (0, 5, 5)


async def test_trickle(proxy: FaultProxy, opened: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
    proxy.switch(Fault.trickle(chunk=100, interval=0.01, direction="down"))
    reader, writer = opened
    started = time.monotonic()
    async with asyncio.timeout(10):
        echoed = await exchange(writer, reader, PAYLOAD[:2000])
    assert echoed == PAYLOAD[:2000]
    assert time.monotonic() - started >= 19 * 0.01  # 20 pieces, an interval after each


async def test_fault_by_serial_number(proxy: FaultProxy) -> None:
    proxy.fault = lambda serial: Fault.reset(0, "up") if serial % 2 else Fault.none()
    outcomes = []
    for _ in range(4):
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        try:
            async with asyncio.timeout(5):
                outcomes.append(await exchange(writer, reader, b"ping") == b"ping")
        except ConnectionError:
            outcomes.append(False)
        writer.close()
    assert outcomes == [True, False, True, False]
    assert (await proxy.wait_idle(5)).resets == 2


async def test_cut_and_unreachable_target(proxy: FaultProxy, echo: EchoServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    async with asyncio.timeout(5):
        assert await exchange(writer, reader, b"ping") == b"ping"
        proxy.cut()
        with pytest.raises(ConnectionResetError):
            await reader.read()
    writer.close()
    echo.close()
    await asyncio.sleep(0.05)
    async with asyncio.timeout(5):
        try:  # the reset may come before the client even saw its connect() complete
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            try:
                echoed = await exchange(writer, reader, b"ping")
            finally:
                writer.close()
        except ConnectionError:
            echoed = b""
    assert echoed == b""  # nothing to forward to: the client is reset
    figures = await proxy.wait_idle(5)
    assert figures.upstream_failures == 1
    assert figures.open == 0


async def test_armed_fault_fires_once_then_disarms(
    proxy: FaultProxy, opened: tuple[asyncio.StreamReader, asyncio.StreamWriter]
) -> None:
    reader, writer = opened
    async with asyncio.timeout(10):
        assert await exchange(writer, reader, b"warm") == b"warm"
        proxy.arm(Fault.flip(2, "down"), times=1)  # the open connection counts from here
        assert await exchange(writer, reader, b"\x00" * 4) == b"\x00\x00\x01\x00"
        assert await exchange(writer, reader, b"\x00" * 4) == b"\x00" * 4  # fired once: disarmed
        other_reader, other_writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        assert await exchange(other_writer, other_reader, b"\x00" * 4) == b"\x00" * 4
        other_writer.close()
        proxy.arm(Fault.flip(0, "up"), times=None)
        assert await exchange(writer, reader, b"\x00") == b"\x01"
        assert await exchange(writer, reader, b"\x00") == b"\x00"  # offset 0 has passed on this one
        proxy.disarm()
        assert await exchange(writer, reader, b"\x00") == b"\x00"
    assert proxy.counters().flips == 2
    with pytest.raises(ValueError, match="times"):
        proxy.arm(Fault.none(), times=0)


def test_from_plain_threads(proxy: FaultProxy) -> None:
    """Sync code uses it too: many blocking clients at once, then every connection is closed."""

    def client() -> None:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
            sock.sendall(PAYLOAD[:50_000])
            received = b""
            while len(received) < 50_000:
                received += sock.recv(65536)
            assert received == PAYLOAD[:50_000]

    threads = [threading.Thread(target=client) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    figures = proxy.wait_until_idle(5)
    assert (figures.accepted, figures.closed, figures.open) == (8, 8, 0)
    assert figures.bytes_up == figures.bytes_down == 8 * 50_000


def test_fault_parameters_are_checked() -> None:
    with pytest.raises(ValueError, match="invalid fault"):
        Fault.flip(0, bit=8)
    with pytest.raises(ValueError, match="invalid fault"):
        Fault.reset(-1)
    with pytest.raises(ValueError, match="stall"):
        Fault.stall(seconds=-1)
