"""A small HTTP/1.1 client for the hot requests of the object-store backends: one pool of kept-alive
connections to one origin, requests of a method, a target, headers and a body of bytes, replies read whole,
in pieces or into a caller's buffer.

Why not aiohttp: against a server that closes the connection after each reply (moto's, and many small
S3-compatible servers), aiohttp spent about 700 µs of client CPU on a 4 KiB PUT — connector, resolver,
request and response objects, trace hooks, a stream reader per reply — where a plain ``asyncio`` protocol
spends about 450 µs (measured with ``benchmarks`` on this 2-core machine; see docs/performance.md). On
kept-alive connections the gap is 370 µs against about 170 µs. This client does what the backends need and
no more: no cookies, redirects, proxies, compression or multipart; those requests go through aiohttp.

The parts:

- ``_Connection`` is an ``asyncio.Protocol``: received pieces are kept as they came (no copy) until a
  reader takes them; reading pauses above 4 MiB unread; writes wait while the transport's buffer is full.
- ``Response`` reads a reply's body by its ``Content-Length``, as chunks, or up to the close; when the body
  is read to its end the connection goes back to the pool (or is closed, if the server asked for it).
- ``Pool`` caps the connections (``limit``), reuses idle ones newest first, drops those idle longer than
  ``keepalive`` seconds, caches the host's address for ``resolve_ttl`` seconds, and sends a request again
  on a fresh connection once when a kept-alive one turns out to have been closed by the server before it
  answered (the server's keep-alive timeout racing our request).

Errors are ``ConnectionError`` subclasses (``ConnectError``, ``ServerClosed``, ``ProtocolError``) and
``TimeoutError`` subclasses (``ConnectTimeout``, ``ReadTimeout``), each naming the origin.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import ipaddress
import os
import socket
import ssl as ssl_module
import time
from collections.abc import Mapping
from typing import Final

__all__ = [
    "CertificateError",
    "ConnectError",
    "ConnectTimeout",
    "Pool",
    "ProtocolError",
    "ReadTimeout",
    "Response",
    "ServerClosed",
]

_MAX_HEAD: Final = 64 * 1024
"""The longest status line and headers of a reply (and longest chunk-size line)."""
_PAUSE_AT: Final = 4 * 1024 * 1024
"""Unread bytes above which the connection stops reading from the socket until a reader takes some."""
_WRITE_PIECE: Final = 1024 * 1024
"""Large bodies are written in views of this size, waiting while the transport's buffer is full."""
_JOIN_BELOW: Final = 64 * 1024
"""Bodies up to this size are sent joined to the head, in one write."""
_IDEMPOTENT: Final = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
"""Methods sent again on a fresh connection when a kept-alive one closed before the reply."""
_NO_BODY_STATUSES: Final = frozenset({204, 304})


class ConnectError(ConnectionError):
    """No connection could be made (refused, unreachable, the name does not resolve, TLS failed)."""


class CertificateError(ConnectError):
    """The server's TLS certificate was not accepted (not retried: it will not change by itself)."""


class ServerClosed(ConnectionError):
    """The server closed the connection, or it broke, before the reply ended."""


class ProtocolError(ConnectionError):
    """The server's reply is not HTTP/1.x as this client reads it."""


class ConnectTimeout(TimeoutError):
    """The connection (and TLS handshake) took longer than the connect timeout."""


class ReadTimeout(TimeoutError):
    """The server sent nothing for longer than the read timeout."""


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection: the pieces received and not yet read, and waiters for more."""

    def __init__(self, loop: asyncio.AbstractEventLoop, origin: str, read_timeout: float | None) -> None:
        self._loop = loop
        self.origin = origin
        self.read_timeout = read_timeout
        self.transport: asyncio.Transport | None = None
        self._pieces: collections.deque[bytes] = collections.deque()
        self._offset = 0  # how much of the first piece was read
        self.unread = 0
        self.received = 0  # bytes received in all
        self._eof = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        self._write_waiter: asyncio.Future[None] | None = None
        self._writing_paused = False
        self.idle_since = 0.0

    # asyncio's callbacks ----------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._pieces.append(data)
        self.unread += len(data)
        self.received += len(data)
        if self.unread > _PAUSE_AT and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return False  # close the transport: this client never writes after the server's end

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        if exc is not None and self._error is None:
            self._error = ServerClosed(f"{self.origin}: the connection broke: {exc}")
            self._error.__cause__ = exc
        self.transport = None
        self._wake()
        waiter = self._write_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)  # write() finds the transport gone

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        waiter = self._write_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # for the pool and the response ------------------------------------------------------------------------
    @property
    def reusable(self) -> bool:
        """Open, nothing pending from the server (a kept-alive connection the server closed shows its end)."""
        return self.transport is not None and not self._eof and self.unread == 0 and not self.transport.is_closing()

    def close(self) -> None:
        """Close the connection (at once: any unread reply is dropped)."""
        transport = self.transport
        if transport is not None:
            transport.abort()  # not close(): nothing to flush, and a reply we gave up on must not linger
            self.transport = None
        self._eof = True
        self._wake()

    async def write(self, head: bytes, body: bytes | memoryview) -> None:
        """Send a request's head and body."""
        transport = self.transport
        if transport is None:
            raise self._error or ServerClosed(f"{self.origin}: the server closed the connection")
        if len(body) <= _JOIN_BELOW:
            transport.write(head + body if body else head)  # one send for a small request
        elif len(body) <= _WRITE_PIECE:
            transport.write(head)
            transport.write(body)
        else:
            transport.write(head)
            view = memoryview(body).cast("B")
            for start in range(0, len(view), _WRITE_PIECE):
                if self._writing_paused:
                    await self._drain()
                if self.transport is None:
                    raise self._error or ServerClosed(f"{self.origin}: the server closed the connection")
                transport.write(view[start : start + _WRITE_PIECE])
        if self._writing_paused:
            await self._drain()

    async def _drain(self) -> None:
        while self._writing_paused and self.transport is not None:
            waiter = self._write_waiter = self._loop.create_future()
            try:
                await waiter
            finally:
                self._write_waiter = None
        if self.transport is None:
            raise self._error or ServerClosed(f"{self.origin}: the server closed the connection")

    async def _more(self) -> bool:
        """Wait for more bytes; False at the server's end (no more will come). Raises what broke the
        connection, or ``ReadTimeout``."""
        if self._error is not None:
            raise self._error
        if self._eof:
            return False
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        waiter = self._waiter = self._loop.create_future()
        timer = None
        if self.read_timeout is not None:
            timer = self._loop.call_later(self.read_timeout, self._time_out, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()
        if self._error is not None:
            raise self._error
        return bool(self.unread) or not self._eof

    def _time_out(self, waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            waiter.set_exception(ReadTimeout(f"{self.origin}: no reply for {self.read_timeout:g} s"))

    def take(self, limit: int) -> memoryview | None:
        """Up to ``limit`` of the bytes received (a view, no copy), or None when none are here yet."""
        if not self.unread:
            return None
        piece = self._pieces[0]
        start = self._offset
        available = len(piece) - start
        if available <= limit:
            self._pieces.popleft()
            self._offset = 0
            taken = available
        else:
            self._offset = start + limit
            taken = limit
        self.unread -= taken
        view = memoryview(piece)
        return view[start : start + taken] if start or taken < len(piece) else view

    async def read(self, limit: int) -> memoryview:
        """Up to ``limit`` bytes, waiting for some; empty at the server's end."""
        while True:
            view = self.take(limit)
            if view is not None:
                return view
            if not await self._more():
                return memoryview(b"")

    async def read_line(self, what: str) -> bytes:
        """Bytes up to a CRLF (without it), at most ``_MAX_HEAD`` long."""
        return await self._read_until(b"\r\n", what)

    async def read_head(self) -> bytes:
        """The status line and headers of a reply, up to the empty line (without it)."""
        return await self._read_until(b"\r\n\r\n", "the reply's head")

    async def _read_until(self, end: bytes, what: str) -> bytes:
        searched = 0
        while True:
            if self.unread:
                pieces = self._pieces
                if len(pieces) > 1:  # rare: a head spread over several receives — join them once
                    joined = b"".join((pieces.popleft()[self._offset :], *pieces))
                    pieces.clear()
                    pieces.append(joined)
                    self._offset = 0
                piece = pieces[0]
                found = piece.find(end, self._offset + max(searched - len(end) + 1, 0))
                if found >= 0:
                    line = piece[self._offset : found]
                    stop = found + len(end)
                    self.unread -= stop - self._offset
                    if stop == len(piece):
                        pieces.popleft()
                        self._offset = 0
                    else:
                        self._offset = stop
                    return line
                searched = len(piece) - self._offset
                if searched > _MAX_HEAD:
                    raise ProtocolError(f"{self.origin}: {what} is longer than {_MAX_HEAD} bytes")
            if not await self._more():
                raise ServerClosed(f"{self.origin}: the server closed the connection in {what}")


class Response:
    """A reply: ``status``, ``reason``, ``headers`` (names in lower case; repeated ones joined by ``, ``),
    ``content_length`` (None for a chunked or close-delimited body) and the body, read once by ``read()``,
    ``read_some(n)`` or ``readinto(buffer)``.

    The connection goes back to the pool when the body has been read to its end; ``release()`` does that
    for a body already read (and closes the connection of one that was not), ``close()`` closes it.
    """

    __slots__ = (
        "_chunk_left",
        "_chunked",
        "_conn",
        "_keep",
        "_pool",
        "_remaining",
        "content_length",
        "headers",
        "reason",
        "status",
    )

    def __init__(
        self, pool: Pool, conn: _Connection, status: int, reason: str, headers: dict[str, str], method: str
    ) -> None:
        self._pool: Pool | None = pool
        self._conn: _Connection | None = conn
        self.status = status
        self.reason = reason
        self.headers = headers
        self._keep = "close" not in headers.get("connection", "").lower()
        self._chunked = False
        self._chunk_left = 0
        self.content_length: int | None = None
        self._remaining: int | None  # None: up to the close
        if method == "HEAD" or status in _NO_BODY_STATUSES or status < 200:
            self._remaining = 0
            if "content-length" in headers:
                self.content_length = _content_length(conn.origin, headers["content-length"])
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            self._chunked = True
            self._remaining = -1  # a chunk-size line comes next
        elif "content-length" in headers:
            self._remaining = self.content_length = _content_length(conn.origin, headers["content-length"])
        else:
            self._remaining = None
            self._keep = False
        if self._remaining == 0:
            self._finish()

    @property
    def at_eof(self) -> bool:
        """Whether the body was read to its end."""
        return self._remaining == 0

    async def read(self) -> bytes:
        """The rest of the body (the connection goes back to the pool)."""
        parts = []
        while True:
            view = await self._read_view(1 << 62)
            if not view:
                break
            parts.append(view)
        if len(parts) == 1:
            return _as_bytes(parts[0])
        return b"".join(parts)

    async def read_some(self, amount: int) -> bytes:
        """At most ``amount`` bytes of the body, as soon as some are here; ``b""`` at its end."""
        return _as_bytes(await self._read_view(amount))

    async def readinto(self, buffer: memoryview) -> int:
        """Receive the body into ``buffer`` (one copy of each piece) up to ``len(buffer)`` bytes or the
        body's end; return how many bytes came."""
        filled = 0
        size = len(buffer)
        while filled < size:
            view = await self._read_view(size - filled)
            if not view:
                break
            buffer[filled : filled + len(view)] = view
            filled += len(view)
        return filled

    async def _read_view(self, amount: int) -> memoryview:
        conn = self._conn
        if conn is None or amount <= 0:
            return memoryview(b"")
        try:
            if self._chunked:
                return await self._read_chunked(conn, amount)
            remaining = self._remaining
            if remaining is None:  # up to the close
                view = await conn.read(amount)
                if not view:
                    self._remaining = 0
                    self._finish()
                return view
            view = await conn.read(min(amount, remaining))
            if not view:
                raise ServerClosed(
                    f"{conn.origin}: the server closed the connection {remaining} bytes before the body's end"
                )
            self._remaining = remaining = remaining - len(view)
            if remaining == 0:
                self._finish()
            return view
        except BaseException:
            self.close()
            raise

    async def _read_chunked(self, conn: _Connection, amount: int) -> memoryview:
        while self._chunk_left == 0:
            if self._remaining == -1:  # a chunk-size line
                line = await conn.read_line("a chunk-size line")
                size_text = line.split(b";", 1)[0].strip()
                if not size_text or len(size_text) > 16 or size_text.strip(b"0123456789abcdefABCDEF"):
                    raise ProtocolError(f"{conn.origin}: bad chunk size {size_text[:40]!r}")
                size = int(size_text, 16)
                if size == 0:  # the last chunk: trailers up to an empty line
                    while await conn.read_line("the trailers"):
                        pass
                    self._remaining = 0
                    self._finish()
                    return memoryview(b"")
                self._chunk_left = size
                self._remaining = 1  # inside a chunk
            else:  # the CRLF after a chunk's data
                if await conn.read_line("a chunk's end"):
                    raise ProtocolError(f"{conn.origin}: a chunk is longer than its size")
                self._remaining = -1
        view = await conn.read(min(amount, self._chunk_left))
        if not view:
            raise ServerClosed(f"{conn.origin}: the server closed the connection inside a chunk")
        self._chunk_left -= len(view)
        if self._chunk_left == 0:
            self._remaining = 2  # the CRLF after the data comes next
        return view

    def _finish(self) -> None:
        """The body ended: the connection goes back to the pool (or is closed)."""
        conn, pool = self._conn, self._pool
        self._conn = self._pool = None
        if pool is not None and conn is not None:
            pool._give_back(conn, keep=self._keep)

    def release(self) -> None:
        """Give the connection back if the body was read to its end, else close it."""
        if self._conn is not None:
            self.close()

    def __del__(self) -> None:
        # a reply dropped unread must not hold its connection and its slot for ever
        if self._conn is not None:
            with contextlib.suppress(Exception):  # the loop may be closed already
                self.close()

    def close(self) -> None:
        """Close the connection (drops whatever of the body was not read)."""
        conn, pool = self._conn, self._pool
        self._conn = self._pool = None
        if conn is not None and pool is not None:
            pool._give_back(conn, keep=False)


def _as_bytes(view: memoryview) -> bytes:
    """The bytes of ``view``: the received piece itself where the view covers it all, else a copy."""
    whole = view.obj
    if type(whole) is bytes and len(whole) == len(view):
        return whole
    return bytes(view)


def _content_length(origin: str, text: str) -> int:
    # one value, or the same value repeated (RFC 9110 §8.6); digits only
    values = {value.strip() for value in text.split(",")}
    if len(values) != 1:
        raise ProtocolError(f"{origin}: conflicting Content-Length values {text[:80]!r}")
    value = values.pop()
    if not value.isdigit() or not value.isascii():
        raise ProtocolError(f"{origin}: bad Content-Length {value[:40]!r}")
    return int(value)


def _parse_head(origin: str, head: bytes) -> tuple[int, str, dict[str, str]]:
    """Status, reason and headers of a reply's head."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # latin-1 decodes every byte; kept for clarity of intent
        raise ProtocolError(f"{origin}: the reply's head is not text") from None
    lines = text.split("\r\n")
    status_line = lines[0]
    version, _, rest = status_line.partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise ProtocolError(f"{origin}: not an HTTP/1.x status line: {status_line[:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip() or "\n" in line:
            raise ProtocolError(f"{origin}: bad header line {line[:80]!r}")
        name = name.lower()
        value = value.strip()
        if name in headers:
            headers[name] = f"{headers[name]}, {value}"
        else:
            headers[name] = value
    if version == "HTTP/1.0" and "keep-alive" not in headers.get("connection", "").lower():
        headers["connection"] = "close"  # an HTTP/1.0 server keeps a connection only when it says so
    return int(code), reason, headers


class Pool:
    """Kept-alive connections to one origin (``scheme://host:port``) and the requests sent on them.

    Args:
        scheme: ``http`` or ``https``.
        host: the server's name or address.
        port: its port.
        ssl: the TLS context for ``https`` (default: the system's, checking the name).
        limit: the most connections open at once; requests beyond wait for one.
        connect_timeout: seconds to connect (and handshake), None for no limit.
        read_timeout: seconds the server may stay silent while a reply is awaited or read.
        keepalive: seconds an idle connection is kept.
        resolve_ttl: seconds the host's address is reused before it is resolved again.
        user_agent: sent with each request.
    """

    def __init__(
        self,
        scheme: str,
        host: str,
        port: int,
        *,
        ssl: ssl_module.SSLContext | None = None,
        limit: int = 10,
        connect_timeout: float | None = 60.0,
        read_timeout: float | None = 60.0,
        keepalive: float = 12.0,
        resolve_ttl: float = 10.0,
        user_agent: str = "aiodepot",
    ) -> None:
        if scheme not in ("http", "https"):
            raise ValueError(f"scheme must be http or https, got {scheme!r}")
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit!r}")
        self.scheme = scheme
        self.host = host
        self.port = port
        self.origin = f"{scheme}://{host}:{port}"
        self._ssl = (ssl or ssl_module.create_default_context()) if scheme == "https" else None
        self.limit = limit
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.keepalive = keepalive
        self.resolve_ttl = resolve_ttl
        self._agent = f"user-agent: {user_agent}\r\n".encode("latin-1")
        self._idle: list[_Connection] = []
        self._busy: set[_Connection] = set()
        self._slots = asyncio.Semaphore(limit)
        self._addresses: list[tuple[int, str]] = []
        self._resolved_at = 0.0
        self._literal = self._literal_address(host)
        self._closed = False

    @staticmethod
    def _literal_address(host: str) -> tuple[int, str] | None:
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return None
        return (socket.AF_INET6 if address.version == 6 else socket.AF_INET, str(address))

    @property
    def connections(self) -> int:
        """How many connections are open (busy and idle)."""
        return len(self._idle) + len(self._busy)

    async def request(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes | memoryview = b""
    ) -> Response:
        """Send ``method target`` with ``headers`` (which must name the ``host``) and ``body``; return the
        reply once its head arrived. Read its body (or ``close()`` it) to free the connection."""
        if self._closed:
            raise ConnectError(f"{self.origin}: the pool is closed")
        lines = [f"{method} {target} HTTP/1.1\r\n"]
        for name, value in headers.items():
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
                raise ValueError(f"header {name!r} holds a line break or a colon in its name")
            lines.append(f"{name}: {value}\r\n")
        if body or method in ("PUT", "POST"):
            lines.append(f"content-length: {len(body)}\r\n")
        head = "".join(lines).encode("latin-1") + self._agent + b"\r\n"
        await self._slots.acquire()
        try:
            conn = self._take_idle()
            if conn is not None:
                received = conn.received
                try:
                    return await self._exchange(conn, method, head, body)
                except ServerClosed:
                    # A kept-alive connection the server closed (or reset) as the request went out, before
                    # any byte of a reply: the keep-alive race. Once more on a fresh connection, where the
                    # method may be repeated.
                    if conn.received != received or method not in _IDEMPOTENT:
                        raise
            # A small plain-text request goes out with the connect, before asyncio builds the transport:
            # the server's thread that accepts finds it there (see ``_connect_to``).
            early = head + body if self._ssl is None and len(body) <= _JOIN_BELOW else None
            conn, sent = await self._connect(early)
            if early is None:
                return await self._exchange(conn, method, head, body)
            return await self._exchange(conn, method, b"", early[sent:] if sent < len(early) else b"")
        except BaseException:
            self._slots.release()
            raise

    async def _exchange(self, conn: _Connection, method: str, head: bytes, body: bytes | memoryview) -> Response:
        """Send on ``conn`` and read the reply's head (the slot passes to the response)."""
        self._busy.add(conn)
        try:
            if head or body:
                await conn.write(head, body)
            while True:
                status, reason, headers = _parse_head(conn.origin, await conn.read_head())
                if status >= 200 or status == 101:
                    break  # 1xx (100 Continue, 103 Early Hints) come before the reply
            if status == 101:
                raise ProtocolError(f"{conn.origin}: the server switched protocols (101), which this client does not")
            return Response(self, conn, status, reason, headers, method)
        except BaseException:
            self._busy.discard(conn)
            conn.close()
            raise

    def _take_idle(self) -> _Connection | None:
        idle = self._idle
        now = time.monotonic()
        while idle:
            conn = idle.pop()  # the newest: the least likely to have been closed by the server
            if conn.reusable and now - conn.idle_since < self.keepalive:
                return conn
            conn.close()
        return None

    def _give_back(self, conn: _Connection, *, keep: bool) -> None:
        """A reply ended (or was dropped): keep ``conn`` for the next request or close it; free the slot."""
        if conn in self._busy:
            self._busy.discard(conn)
            self._slots.release()
        if keep and conn.reusable and not self._closed:
            conn.idle_since = time.monotonic()
            self._idle.append(conn)
            if len(self._idle) + len(self._busy) > self.limit:
                self._idle.pop(0).close()  # the oldest idle one makes room
        else:
            conn.close()

    async def _addresses_of_host(self) -> list[tuple[int, str]]:
        if self._literal is not None:
            return [self._literal]
        now = time.monotonic()
        if self._addresses and now - self._resolved_at < self.resolve_ttl:
            return self._addresses
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        except OSError as exc:
            raise ConnectError(f"{self.origin}: cannot resolve {self.host!r}: {exc}") from exc
        addresses: list[tuple[int, str]] = list(
            dict.fromkeys((family, str(sockaddr[0])) for family, _, _, _, sockaddr in infos)
        )
        if not addresses:
            raise ConnectError(f"{self.origin}: {self.host!r} resolves to no address")
        self._addresses, self._resolved_at = addresses, now
        return addresses

    async def _connect(self, early: bytes | None = None) -> tuple[_Connection, int]:
        """A new connection, and how much of ``early`` (a whole small request, or None) went out with the
        connect."""
        loop = asyncio.get_running_loop()
        conn = _Connection(loop, self.origin, self.read_timeout)
        last: BaseException | None = None
        try:
            async with asyncio.timeout(self.connect_timeout):
                for family, address in await self._addresses_of_host():
                    # Our own socket: asyncio's create_connection by address resolves it twice more and
                    # runs its happy-eyeballs bookkeeping, ~10% of a small request's CPU where every
                    # request needs a new connection.
                    try:
                        return conn, await self._connect_to(loop, conn, family, address, early)
                    except ssl_module.SSLCertVerificationError as exc:
                        raise CertificateError(
                            f"{self.origin}: the server's certificate: {exc.verify_message}"
                        ) from exc
                    except OSError as exc:  # refused, unreachable, a TLS alert: the next address
                        last = exc
        except TimeoutError:
            conn.close()
            raise ConnectTimeout(f"{self.origin}: no connection within {self.connect_timeout:g} s") from None
        raise ConnectError(f"{self.origin}: cannot connect: {last}") from last

    async def _connect_to(
        self, loop: asyncio.AbstractEventLoop, conn: _Connection, family: int, address: str, early: bytes | None
    ) -> int:
        """Connect ``conn`` to one address (TLS too, where the pool speaks it) and return how much of
        ``early`` was sent; the socket is closed on failure.

        With ``early``, the request is sent the moment the socket is connected, by ``send`` on the socket
        itself: on loopback and on a near server the handshake is done when ``connect`` returns, and a server
        that runs a thread per connection (werkzeug under moto) reads the request at its first look instead
        of sleeping for it. Waiting for asyncio (the writable event, then ``create_connection``'s transport
        and callbacks) put two to four turns of the event loop between the connect and the request.
        """
        sock = socket.socket(family, socket.SOCK_STREAM)
        sent = 0
        try:
            sock.setblocking(False)
            if early is None:
                await loop.sock_connect(sock, (address, self.port))
            else:
                error = sock.connect_ex((address, self.port))
                if error not in (0, errno.EINPROGRESS):
                    raise OSError(error, f"connect to {address}: {os.strerror(error)}")
                try:
                    sent = sock.send(early)
                except BlockingIOError:  # still connecting: wait for it, then let the transport send it all
                    await _connected(loop, sock)
            await loop.create_connection(
                lambda: conn, sock=sock, ssl=self._ssl, server_hostname=self.host if self._ssl is not None else None
            )
        except BaseException:
            sock.close()
            raise
        return sent

    async def close(self) -> None:
        """Close every connection; requests after this fail."""
        self._closed = True
        for conn in (*self._idle, *self._busy):
            conn.close()
        self._idle.clear()
        self._busy.clear()


async def _connected(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    """Wait until a non-blocking ``connect`` on ``sock`` ends; raise its error, if it failed."""
    done = loop.create_future()
    fd = sock.fileno()
    loop.add_writer(fd, _settle, done)
    try:
        await done
    finally:
        loop.remove_writer(fd)
    error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if error:
        raise OSError(error, f"connect: {os.strerror(error)}")


def _settle(done: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_result(None)
