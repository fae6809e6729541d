"""A TCP proxy on loopback that injects network faults, for the reliability tests.

``FaultProxy(target_port)`` listens on ``127.0.0.1:<free port>`` and forwards every connection to the
target. It runs on its own event loop in a daemon thread, so sync tests, async tests and servers running
in the test's own loop can all use it. What happens to a connection is a [`Fault`][]:

- ``Fault.none()`` — pass everything through;
- ``Fault.reset(after=k, direction=…)`` — forward ``k`` bytes in that direction, then reset both sides
  (``SO_LINGER`` 0, so the peers see a TCP RST, not a clean close);
- ``Fault.stall(after=k, seconds=t)`` — forward ``k`` bytes, then forward nothing for ``t`` seconds
  (``None``: until [`FaultProxy.release`][], or until the waiting side closes or either side resets);
  the sockets stay open, and a close by the sending side is held back too;
- ``Fault.trickle(chunk=n, interval=s)`` — forward ``n`` bytes per ``s`` seconds;
- ``Fault.flip(at=k, bit=b)`` — invert bit ``b`` of the byte at offset ``k`` of that direction.

Offsets count the bytes of one direction of one connection: ``"up"`` is client → server, ``"down"``
server → client. A fault is chosen when a connection is accepted: the next one queued with
[`FaultProxy.plan`][], else the result of the ``fault`` attribute (a ``Fault``, or a callable taking the
connection's serial number). [`FaultProxy.switch`][] changes the fault of the open connections too
(offsets then count from the switch). [`FaultProxy.counters`][] reports connections accepted, open and
closed, bytes each way and the faults that fired.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, Literal, TypeVar

__all__ = ["Counters", "Direction", "Fault", "FaultProxy"]

Direction = Literal["up", "down"]
"""``"up"``: client → server; ``"down"``: server → client."""
Kind = Literal["none", "reset", "stall", "trickle", "flip"]

_READ_HIGH_WATER = 256 * 1024  # bytes buffered per direction before the source is paused
_PIECE = 64 * 1024  # bytes forwarded per write


@dataclasses.dataclass(frozen=True, slots=True)
class Fault:
    """What the proxy does to one connection (build one with the class methods)."""

    kind: Kind = "none"
    direction: Direction = "down"
    after: int = 0
    """reset/stall: bytes forwarded first; flip: the offset of the flipped byte."""
    seconds: float | None = None
    """stall: how long (None: until released or the connection ends)."""
    chunk: int = 1
    """trickle: bytes per interval."""
    interval: float = 0.0
    """trickle: seconds between chunks."""
    bit: int = 0
    """flip: which bit of the byte (0 = least significant)."""

    def __post_init__(self) -> None:
        if self.after < 0 or self.chunk < 1 or self.interval < 0 or not 0 <= self.bit <= 7:
            raise ValueError(f"invalid fault parameters: {self}")
        if self.seconds is not None and self.seconds < 0:
            raise ValueError(f"a stall cannot last {self.seconds} s")

    @classmethod
    def none(cls) -> Fault:
        """Pass everything through."""
        return cls()

    @classmethod
    def reset(cls, after: int, direction: Direction = "down") -> Fault:
        """Forward ``after`` bytes of ``direction``, then reset the connection (RST to both peers)."""
        return cls("reset", direction, after)

    @classmethod
    def stall(cls, after: int = 0, seconds: float | None = None, direction: Direction = "down") -> Fault:
        """Forward ``after`` bytes of ``direction``, then nothing for ``seconds`` (None: until released)."""
        return cls("stall", direction, after, seconds=seconds)

    @classmethod
    def trickle(cls, chunk: int, interval: float, direction: Direction = "down") -> Fault:
        """Forward ``direction`` ``chunk`` bytes at a time, ``interval`` seconds apart."""
        return cls("trickle", direction, chunk=chunk, interval=interval)

    @classmethod
    def flip(cls, at: int, direction: Direction = "down", bit: int = 0) -> Fault:
        """Invert bit ``bit`` of the byte at offset ``at`` of ``direction``."""
        return cls("flip", direction, at, bit=bit)


@dataclasses.dataclass(frozen=True, slots=True)
class Counters:
    """A snapshot of what the proxy has seen."""

    accepted: int
    open: int
    closed: int
    bytes_up: int
    bytes_down: int
    resets: int
    stalls: int
    flips: int
    upstream_failures: int


FaultSource = Fault | Callable[[int], Fault]
_T = TypeVar("_T")


class _Side(asyncio.Protocol):
    """One socket of a proxied connection (the client's or the server's)."""

    def __init__(self, connection: _Connection, name: str) -> None:
        self.connection = connection
        self.name = name
        self.transport: asyncio.Transport | None = None
        self.writable = asyncio.Event()
        self.writable.set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connection.side_made(self)

    def data_received(self, data: bytes) -> None:
        self.connection.received(self, data)

    def eof_received(self) -> bool:
        self.connection.eof(self)
        return True  # half-close: keep the other direction going

    def connection_lost(self, exc: Exception | None) -> None:
        self.writable.set()
        self.connection.lost(self, exc)

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def reset(self) -> None:
        """Close with an RST (SO_LINGER 0)."""
        if self.transport is None or self.transport.is_closing():
            return
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()


class _Pipe:
    """One direction of a connection: a buffer filled by the source side, drained by a pump task."""

    def __init__(self, connection: _Connection, direction: Direction, source: _Side, sink: _Side) -> None:
        self.connection = connection
        self.direction = direction
        self.source, self.sink = source, sink
        self.buffer = bytearray()
        self.ready = asyncio.Event()
        self.eof = False
        self.offset = 0  # bytes of this direction forwarded since the fault was set
        self.fired = False  # the reset or stall happened already
        self.stalled = False
        self.paused = False

    def feed(self, data: bytes) -> None:
        self.buffer += data
        self.ready.set()
        if len(self.buffer) > _READ_HIGH_WATER and not self.paused and self.source.transport is not None:
            self.paused = True
            self.source.transport.pause_reading()

    def take(self, limit: int) -> bytes:
        piece = bytes(self.buffer[:limit])
        del self.buffer[:limit]
        if not self.buffer and not self.eof:
            self.ready.clear()
        if self.paused and len(self.buffer) < _READ_HIGH_WATER // 2 and self.source.transport is not None:
            self.paused = False
            if not self.source.transport.is_closing():
                self.source.transport.resume_reading()
        return piece

    async def pump(self) -> None:
        """Forward until the source ends (then pass the EOF on), applying the connection's fault."""
        proxy = self.connection.proxy
        while True:
            await self.ready.wait()
            if not self.buffer:
                if self.eof:
                    sink = self.sink.transport
                    if sink is not None and not sink.is_closing() and sink.can_write_eof():
                        sink.write_eof()
                    return
                continue
            fault = self.connection.fault
            mine = fault.direction == self.direction
            limit = _PIECE
            if mine and fault.kind in ("reset", "stall") and not self.fired:
                room = fault.after - self.offset
                if room <= 0:  # the fault fires here, once
                    self.fired = True
                    if fault.kind == "reset":
                        proxy._count("resets")
                        await self.connection.reset()
                        return
                    proxy._count("stalls")
                    self.stalled = True
                    try:
                        await self.connection.stall(fault.seconds)
                    finally:
                        self.stalled = False
                    continue
                limit = min(limit, room)
            elif mine and fault.kind == "trickle":
                limit = fault.chunk
            piece = self.take(limit)
            if mine and fault.kind == "flip" and self.offset <= fault.after < self.offset + len(piece):
                flipped = bytearray(piece)
                flipped[fault.after - self.offset] ^= 1 << fault.bit
                piece = bytes(flipped)
                proxy._count("flips")
            await self.write(piece)
            if mine and fault.kind == "trickle" and fault.interval:
                await asyncio.sleep(fault.interval)

    async def write(self, piece: bytes) -> None:
        sink = self.sink.transport
        if sink is None or sink.is_closing():
            raise ConnectionResetError("the other side is gone")
        await self.sink.writable.wait()
        sink.write(piece)
        self.offset += len(piece)
        self.connection.proxy._count("bytes_" + self.direction, len(piece))


class _Connection:
    """A client connection and its upstream twin."""

    def __init__(self, proxy: FaultProxy, fault: Fault) -> None:
        self.proxy = proxy
        self.fault = fault
        self.client = _Side(self, "client")
        self.server = _Side(self, "server")
        self.up = _Pipe(self, "up", self.client, self.server)
        self.down = _Pipe(self, "down", self.server, self.client)
        self.released = asyncio.Event()
        self.ended = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def side_made(self, side: _Side) -> None:
        if side is self.client:
            self.task = asyncio.get_running_loop().create_task(self.run())
            self.proxy._connections.add(self)

    def set_fault(self, fault: Fault) -> None:
        self.fault = fault
        for pipe in (self.up, self.down):
            pipe.offset = 0
            pipe.fired = False

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        assert self.client.transport is not None
        try:
            try:
                await loop.create_connection(lambda: self.server, *self.proxy.target)
            except OSError:
                self.proxy._count("upstream_failures")
                self.client.reset()
                return
            pumps = [asyncio.create_task(self.up.pump()), asyncio.create_task(self.down.pump())]
            ended: asyncio.Future[Any] = asyncio.create_task(self.ended.wait())
            try:
                # both directions done, or one side went away (then the other is cut off too)
                both: asyncio.Future[Any] = asyncio.gather(*pumps, return_exceptions=True)
                await asyncio.wait([both, ended], return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in [*pumps, ended]:
                    task.cancel()
                await asyncio.gather(*pumps, ended, return_exceptions=True)
        finally:
            self.close()
            self.proxy._connections.discard(self)
            self.proxy._count("closed")
            self.proxy._count("open", -1)

    def received(self, side: _Side, data: bytes) -> None:
        (self.up if side is self.client else self.down).feed(data)

    def eof(self, side: _Side) -> None:
        pipe = self.up if side is self.client else self.down
        pipe.eof = True
        pipe.ready.set()
        self._gave_up(side)

    def lost(self, side: _Side, exc: Exception | None) -> None:
        pipe = self.up if side is self.client else self.down
        if exc is not None:  # a reset: pass it on
            (self.server if side is self.client else self.client).reset()
            self.ended.set()
            return
        pipe.eof = True
        pipe.ready.set()
        self._gave_up(side)

    def _gave_up(self, side: _Side) -> None:
        """``side`` closed. A stall holds back what ``side`` sent, its end included (a dead link would
        not deliver it either), but if ``side`` was the one waiting for a stalled direction, nobody
        waits any more: the connection ends."""
        waiting_for = self.down if side is self.client else self.up
        if waiting_for.stalled:
            self.ended.set()

    async def reset(self) -> None:
        """Let the bytes written so far leave, then reset both sides."""
        for side in (self.client, self.server):
            transport = side.transport
            deadline = time.monotonic() + 1.0
            while transport is not None and not transport.is_closing() and transport.get_write_buffer_size():
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.001)
        self.client.reset()
        self.server.reset()
        self.ended.set()

    async def stall(self, seconds: float | None) -> None:
        waiters: list[asyncio.Task[Any]] = [
            asyncio.create_task(self.released.wait()),
            asyncio.create_task(self.ended.wait()),
        ]
        if seconds is not None:
            waiters.append(asyncio.create_task(asyncio.sleep(seconds)))
        try:
            await asyncio.wait(waiters, return_when="FIRST_COMPLETED")
        finally:
            for waiter in waiters:
                waiter.cancel()
        if self.ended.is_set():
            raise ConnectionResetError("the connection ended during a stall")

    def close(self) -> None:
        for side in (self.client, self.server):
            if side.transport is not None and not side.transport.is_closing():
                side.transport.close()


class FaultProxy:
    """A fault-injecting TCP proxy from ``127.0.0.1:port`` to ``target_host:target_port``.

    Use it as a context manager (or call [`start`][] and [`stop`][]); it runs in a daemon thread with
    its own event loop. Every method may be called from any thread.

    Args:
        target_port: the port to forward to.
        target_host: the host to forward to.
        fault: what to do to new connections: a ``Fault``, or a callable given the connection's serial
            number (0, 1, …) that returns one.
    """

    def __init__(self, target_port: int, target_host: str = "127.0.0.1", *, fault: FaultSource | None = None) -> None:
        self.target = (target_host, target_port)
        self.fault: FaultSource = fault or Fault.none()
        self.port = 0
        self._planned: deque[Fault] = deque()
        self._shots: int | None = None
        self._lock = threading.Lock()
        self._figures = dict.fromkeys(
            ("accepted", "open", "closed", "bytes_up", "bytes_down", "resets", "stalls", "flips", "upstream_failures"),
            0,
        )
        self._connections: set[_Connection] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None

    # lifecycle -------------------------------------------------------------------------------------------

    def __enter__(self) -> FaultProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start listening (returns once the port is bound)."""
        if self._thread is not None:
            raise RuntimeError("the proxy runs already")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)
        self._thread.start()
        self._server = self._run(self._listen())
        self.port = self._server.sockets[0].getsockname()[1]

    async def _listen(self) -> asyncio.Server:
        loop = asyncio.get_running_loop()
        return await loop.create_server(self._accept, "127.0.0.1", 0, backlog=512)

    def stop(self) -> None:
        """Stop listening, cut every open connection and end the thread."""
        if self._loop is None or self._thread is None:
            return
        self._run(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self._loop = self._thread = None

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        for connection in list(self._connections):
            connection.client.reset()
            connection.server.reset()
            connection.ended.set()
        tasks = [c.task for c in self._connections if c.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()

    def _run(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(30)

    def _accept(self) -> asyncio.Protocol:
        with self._lock:
            serial = self._figures["accepted"]
            self._figures["accepted"] += 1
            self._figures["open"] += 1
            if self._planned:
                fault = self._planned.popleft()
            else:
                fault = self.fault(serial) if callable(self.fault) else self.fault
        return _Connection(self, fault).client

    def _count(self, figure: str, amount: int = 1) -> None:
        with self._lock:
            self._figures[figure] += amount
            if figure not in ("resets", "stalls", "flips") or self._shots is None:
                return
            self._shots -= 1
            if self._shots > 0:
                return
            self._shots = None
            self.fault = Fault.none()
        for connection in self._connections:  # on the proxy's loop: the pump that fired called this
            connection.set_fault(Fault.none())

    # control ---------------------------------------------------------------------------------------------

    def plan(self, faults: Iterable[Fault]) -> None:
        """Give the next connections these faults, one each, in order (then ``fault`` again)."""
        with self._lock:
            self._planned.extend(faults)

    def switch(self, fault: FaultSource) -> None:
        """Set ``fault`` for new connections and for the open ones (their offsets count from now).

        It takes effect before it returns (it waits a moment for the proxy's loop).
        """
        self._set(fault, None)

    def _set(self, fault: FaultSource, shots: int | None) -> None:
        with self._lock:
            self.fault = fault
            self._planned.clear()
            self._shots = shots
        assert self._loop is not None

        async def apply() -> None:
            for connection in self._connections:
                connection.set_fault(fault if isinstance(fault, Fault) else fault(-1))

        self._run(apply())

    def arm(self, fault: Fault, times: int | None = 1) -> None:
        """Like [`switch`][], but only until the fault has fired ``times`` times (None: for good); then
        every connection, new or open, passes data through again. A reset, a stall or a flip fires."""
        if times is not None and times < 1:
            raise ValueError(f"times must be >= 1 or None, got {times}")
        self._set(fault, times)

    def disarm(self) -> None:
        """Pass everything through again, on new and open connections."""
        self.switch(Fault.none())

    def release(self) -> None:
        """End every stall now (the open connections go on forwarding)."""
        assert self._loop is not None

        def release_all() -> None:
            for connection in self._connections:
                connection.released.set()

        self._loop.call_soon_threadsafe(release_all)

    def cut(self) -> None:
        """Reset every open connection now."""
        assert self._loop is not None

        def cut_all() -> None:
            for connection in self._connections:
                connection.client.reset()
                connection.server.reset()
                connection.ended.set()

        self._loop.call_soon_threadsafe(cut_all)

    def counters(self) -> Counters:
        """A consistent snapshot of the counters."""
        with self._lock:
            return Counters(**self._figures)

    def wait_until_idle(self, timeout: float = 10.0) -> Counters:
        """Block until no connection is open (or ``timeout``); the counters at that moment."""
        deadline = time.monotonic() + timeout
        while (figures := self.counters()).open and time.monotonic() < deadline:
            time.sleep(0.01)
        return figures

    async def wait_idle(self, within: float = 10.0) -> Counters:
        """``await``-able [`wait_until_idle`][] for async tests (it polls: the counters live in another
        thread)."""
        deadline = time.monotonic() + within
        while (figures := self.counters()).open and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        return figures
