"""The HTTP/1.1 pool of the object-store backends (``aiodepot.backends._http1``), against scripted servers on
loopback: each test's server writes exactly the bytes it names, well-formed or hostile."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import socket
import ssl
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from aiodepot.backends import _http1
from tests.servers.ftp import make_certificate

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Server"], Awaitable[None]]


@dataclass
class Server:
    """What a scripted server saw: connections opened, requests (head, body) read, connections open at most."""

    port: int = 0
    connections: int = 0
    open_now: int = 0
    most_open: int = 0
    requests: list[tuple[str, bytes]] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    requested: asyncio.Event = field(default_factory=asyncio.Event)


async def read_request(reader: asyncio.StreamReader, server: Server) -> str | None:
    """One request's head (None at the client's end) and its body, recorded."""
    try:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    except asyncio.IncompleteReadError:
        return None
    length = 0
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.lower() == "content-length":
            length = int(value)
    body = await reader.readexactly(length) if length else b""
    server.requests.append((head, body))
    server.requested.set()
    return head


@contextlib.asynccontextmanager
async def serve(handler: Handler, *, tls: ssl.SSLContext | None = None) -> AsyncIterator[Server]:
    """A server on 127.0.0.1 answering each connection with ``handler``."""
    server = Server()

    async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server.connections += 1
        server.open_now += 1
        server.most_open = max(server.most_open, server.open_now)
        try:
            await handler(reader, writer, server)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            server.open_now -= 1
            writer.close()
            server.closed.set()

    listener = await asyncio.start_server(connected, "127.0.0.1", 0, ssl=tls)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()
        with contextlib.suppress(TimeoutError):  # a handler still waiting on a client: leave it
            await asyncio.wait_for(listener.wait_closed(), 5)


def keepalive(reply: bytes) -> Handler:
    """A handler answering every request of a connection with ``reply``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        while await read_request(reader, server) is not None:
            writer.write(reply)
            await writer.drain()

    return handle


def once(reply: bytes, *, then_close: bool = True) -> Handler:
    """A handler answering one request with ``reply`` (bytes as given), then closing."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        if await read_request(reader, server) is not None:
            writer.write(reply)
            await writer.drain()
        if not then_close:
            await reader.read()

    return handle


def pool_for(server: Server, **options: object) -> _http1.Pool:
    return _http1.Pool("http", "127.0.0.1", server.port, **options)  # type: ignore[arg-type]


HOST = {"host": "127.0.0.1"}
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"


async def test_a_kept_alive_connection_carries_many_requests() -> None:
    async with serve(keepalive(OK)) as server:
        pool = pool_for(server)
        for _ in range(5):
            response = await pool.request("GET", "/k", HOST)
            assert (response.status, response.reason, await response.read()) == (200, "OK", b"hello")
            assert response.at_eof
        assert server.connections == 1 and len(server.requests) == 5
        head = server.requests[0][0]
        assert head.startswith("GET /k HTTP/1.1\r\nhost: 127.0.0.1\r\n") and "user-agent: aiodepot" in head
        await pool.close()


async def test_a_put_sends_its_body_and_length() -> None:
    async with serve(keepalive(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")) as server:
        pool = pool_for(server)
        response = await pool.request("PUT", "/a", HOST, b"value")
        assert await response.read() == b""
        response = await pool.request("PUT", "/b", HOST, b"")
        await response.read()
        big = bytes(range(256)) * (6 * 4096 + 7)  # 6 MiB and change: written in pieces, with drains
        response = await pool.request("PUT", "/c", HOST, memoryview(big))
        await response.read()
        assert [body for _, body in server.requests] == [b"value", b"", big]
        assert "content-length: 0\r\n" in server.requests[1][0]
        assert server.connections == 1
        await pool.close()


async def test_headers_are_lowercased_and_repeats_joined() -> None:
    reply = b'HTTP/1.1 200 Fine Thanks\r\nETag: "x"\r\nX-Amz-Meta: a\r\nx-amz-meta: b\r\nContent-Length: 0\r\n\r\n'
    async with serve(keepalive(reply)) as server:
        pool = pool_for(server)
        response = await pool.request("GET", "/", HOST)
        assert response.reason == "Fine Thanks"
        assert response.headers == {"etag": '"x"', "x-amz-meta": "a, b", "content-length": "0"}
        assert response.content_length == 0
        await pool.close()


async def test_a_chunked_body_with_extensions_and_trailers() -> None:
    reply = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\n0\r\nX-Trailer: yes\r\n\r\n"
    )
    async with serve(keepalive(reply)) as server:
        pool = pool_for(server)
        response = await pool.request("GET", "/", HOST)
        assert response.content_length is None
        assert await response.read() == b"hello 0123456789"
        response = await pool.request("GET", "/", HOST)  # the same connection, after the trailers
        assert await response.read_some(3) == b"hel"
        buffer = bytearray(100)
        assert await response.readinto(memoryview(buffer)) == 13
        assert bytes(buffer[:13]) == b"lo 0123456789" and response.at_eof
        assert server.connections == 1
        await pool.close()


async def test_a_body_up_to_the_close_is_read_and_the_connection_not_kept() -> None:
    async with serve(once(b"HTTP/1.1 200 OK\r\n\r\nuntil the end")) as server:
        pool = pool_for(server)
        response = await pool.request("GET", "/", HOST)
        assert response.content_length is None
        assert await response.read() == b"until the end"
        assert pool.connections == 0
        await pool.close()


@pytest.mark.parametrize(
    ("reply", "kept"),
    [
        (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", False),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", True),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", False),
    ],
)
async def test_the_connection_is_kept_only_where_the_server_keeps_it(reply: bytes, kept: bool) -> None:
    async with serve(keepalive(reply)) as server:
        pool = pool_for(server)
        for _ in range(2):
            response = await pool.request("GET", "/", HOST)
            assert await response.read() == b"ok"
        assert server.connections == (1 if kept else 2)
        await pool.close()


async def test_a_head_reply_has_no_body_though_it_names_a_length() -> None:
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
    async with serve(keepalive(reply)) as server:
        pool = pool_for(server)
        for _ in range(2):
            response = await pool.request("HEAD", "/", HOST)
            assert response.content_length == 1000 and response.at_eof and await response.read() == b""
        assert server.connections == 1 and pool.connections == 1
        await pool.close()


async def test_informational_replies_before_the_reply_are_skipped() -> None:
    reply = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + OK
    async with serve(keepalive(reply)) as server:
        pool = pool_for(server)
        response = await pool.request("PUT", "/", HOST, b"x")
        assert (response.status, await response.read()) == (200, b"hello")
        await pool.close()


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", "switched protocols"),
        (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", "not an HTTP/1.x status line"),
        (b"HTTP/1.1 2000 OK\r\n\r\n", "not an HTTP/1.x status line"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "bad header line"),
        (b"HTTP/1.1 200 OK\r\n folded: value\r\n\r\n", "bad header line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 12abc\r\n\r\n", "bad Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "bad Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\n", "conflicting Content-Length"),
        (b"HTTP/1.1 200 OK\r\nX: " + b"a" * (70 * 1024), "longer than"),
    ],
)
async def test_a_hostile_head_is_refused_with_its_reason(reply: bytes, message: str) -> None:
    async with serve(once(reply, then_close=False)) as server:
        pool = pool_for(server)
        with pytest.raises(_http1.ProtocolError, match=message):
            await pool.request("GET", "/", HOST)
        assert pool.connections == 0
        await pool.close()


async def test_repeated_equal_content_lengths_are_one() -> None:
    async with serve(keepalive(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok")) as server:
        pool = pool_for(server)
        response = await pool.request("GET", "/", HOST)
        assert response.content_length == 2 and await response.read() == b"ok"
        await pool.close()


@pytest.mark.parametrize(
    ("body", "error", "message"),
    [
        (b"zz\r\nhello\r\n0\r\n\r\n", _http1.ProtocolError, "bad chunk size"),
        (b"0x5\r\nhello\r\n0\r\n\r\n", _http1.ProtocolError, "bad chunk size"),
        (b"3\r\nhello\r\n0\r\n\r\n", _http1.ProtocolError, "longer than its size"),
        (b"5\r\nhel", _http1.ServerClosed, "inside a chunk"),
        (b"5\r\nhello\r\n", _http1.ServerClosed, "chunk-size line"),
    ],
)
async def test_a_hostile_chunked_body_is_refused(body: bytes, error: type[Exception], message: str) -> None:
    reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body
    async with serve(once(reply)) as server:
        pool = pool_for(server)
        response = await pool.request("GET", "/", HOST)
        with pytest.raises(error, match=message):
            await response.read()
        assert pool.connections == 0
        await pool.close()


async def test_a_body_cut_short_raises_and_names_what_is_missing() -> None:
    async with serve(once(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")) as server:
        pool = pool_for(server)
        response = await pool.request("GET", "/", HOST)
        with pytest.raises(_http1.ServerClosed, match="7 bytes before the body's end"):
            await response.read()
        await pool.close()


async def test_a_silent_server_times_out_and_frees_the_connection() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await read_request(reader, server)
        await reader.read()

    async with serve(silent) as server:
        pool = pool_for(server, read_timeout=0.2, limit=1)
        with pytest.raises(_http1.ReadTimeout, match=r"no reply for 0\.2 s"):
            await pool.request("GET", "/", HOST)
        assert pool.connections == 0
        await asyncio.wait_for(server.closed.wait(), 5)  # the pool hung up
        with pytest.raises(_http1.ReadTimeout):  # the one slot was given back
            await pool.request("GET", "/", HOST)
        await pool.close()


async def test_a_body_that_stalls_times_out() -> None:
    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await read_request(reader, server)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await reader.read()

    async with serve(stall) as server:
        pool = pool_for(server, read_timeout=0.2)
        response = await pool.request("GET", "/", HOST)
        with pytest.raises(_http1.ReadTimeout):
            await response.read()
        assert pool.connections == 0
        await pool.close()


async def test_a_refused_connection_is_a_connect_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, not listening: refused
        pool = _http1.Pool("http", "127.0.0.1", port)
        with pytest.raises(_http1.ConnectError, match=f"http://127.0.0.1:{port}: cannot connect"):
            await pool.request("GET", "/", HOST)
        await pool.close()


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_failed_connects_leave_no_socket_open() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, not listening: refused
        pool = _http1.Pool("http", "127.0.0.1", port)
        before = open_descriptors()
        for _ in range(50):
            with pytest.raises(_http1.ConnectError):
                await pool.request("GET", "/", HOST)
        assert open_descriptors() == before
        await pool.close()


async def test_a_refused_address_of_a_name_is_skipped_for_the_next() -> None:
    async with serve(once(OK)) as server:
        pool = _http1.Pool("http", "depot.test", server.port)
        # the name "resolved" to an address nothing listens on (refused), then to the server's; fresh in the cache
        pool._addresses = [(socket.AF_INET, "127.0.0.2"), (socket.AF_INET, "127.0.0.1")]
        pool._resolved_at = time.monotonic()
        response = await pool.request("GET", "/", {"host": "depot.test"})
        assert (response.status, await response.read()) == (200, b"hello")
        await pool.close()


async def test_a_name_that_does_not_resolve_is_a_connect_error() -> None:
    pool = _http1.Pool("http", "no-such-host.invalid", 80)
    with pytest.raises(_http1.ConnectError, match=r"cannot resolve 'no-such-host\.invalid'"):
        await pool.request("GET", "/", {"host": "no-such-host.invalid"})
    await pool.close()


@contextlib.contextmanager
def full_accept_queue() -> Iterator[tuple[socket.socket, list[socket.socket]]]:
    """A listener that never accepts, its queue filled by connections of its own: Linux drops further SYNs,
    so a connect hangs until there is room. Yields the listener and the fillers (closed at the end)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        fillers: list[socket.socket] = []
        try:
            for _ in range(8):
                filler = socket.socket()
                filler.setblocking(False)
                filler.connect_ex(listener.getsockname())
                fillers.append(filler)
            yield listener, fillers
        finally:
            for filler in fillers:
                filler.close()


async def test_a_connection_that_is_never_accepted_times_out() -> None:
    with full_accept_queue() as (listener, _):
        pool = _http1.Pool("http", "127.0.0.1", listener.getsockname()[1], connect_timeout=0.3)
        with pytest.raises(_http1.ConnectTimeout, match=r"no connection within 0\.3 s"):
            await pool.request("GET", "/", HOST)
        await pool.close()


async def test_a_kept_alive_connection_closed_by_the_server_is_replaced_transparently() -> None:
    async def one_per_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await read_request(reader, server)
        writer.write(OK)  # says nothing of closing, then closes: the keep-alive race
        await writer.drain()

    async with serve(one_per_connection) as server:
        pool = pool_for(server)
        for _ in range(3):
            response = await pool.request("GET", "/", HOST)
            assert await response.read() == b"hello"
            await asyncio.wait_for(server.closed.wait(), 5)
            server.closed.clear()
        assert server.connections == 3
        await pool.close()


def drop_the_second_request(*, reset: bool) -> Handler:
    """The first connection answers one request, reads the next and closes (or resets) unanswered; later
    connections answer everything."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        if server.connections == 1:
            await read_request(reader, server)
            writer.write(OK)
            await writer.drain()
            await read_request(reader, server)
            if reset:
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return
        await keepalive(OK)(reader, writer, server)

    return handle


@pytest.mark.parametrize("reset", [False, True], ids=["closed", "reset"])
async def test_a_kept_alive_connection_lost_before_the_reply_is_resent_on_a_fresh_one(reset: bool) -> None:
    async with serve(drop_the_second_request(reset=reset)) as server:
        pool = pool_for(server)
        assert await (await pool.request("GET", "/", HOST)).read() == b"hello"
        assert await (await pool.request("PUT", "/", HOST, b"v")).read() == b"hello"
        assert server.connections == 2 and len(server.requests) == 3
        await pool.close()


async def test_a_post_is_not_sent_twice() -> None:
    async with serve(drop_the_second_request(reset=False)) as server:
        pool = pool_for(server)
        assert await (await pool.request("GET", "/", HOST)).read() == b"hello"
        with pytest.raises(_http1.ServerClosed):
            await pool.request("POST", "/", HOST, b"v")
        assert server.connections == 1
        await pool.close()


async def test_a_reply_dropped_unread_frees_its_slot() -> None:
    async with serve(keepalive(OK)) as server:
        pool = pool_for(server, limit=1)
        await pool.request("GET", "/", HOST)  # never read, never released
        gc.collect()
        assert await asyncio.wait_for((await pool.request("GET", "/", HOST)).read(), 5) == b"hello"
        await pool.close()


async def test_a_fresh_connection_closed_without_a_reply_is_an_error_not_a_resend() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await read_request(reader, server)

    async with serve(hang_up) as server:
        pool = pool_for(server)
        with pytest.raises(_http1.ServerClosed, match="closed the connection in the reply's head"):
            await pool.request("GET", "/", HOST)
        assert server.connections == 1
        await pool.close()


async def test_the_limit_caps_connections_and_waiters_get_them_in_turn() -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        while await read_request(reader, server) is not None:
            await asyncio.sleep(0.01)
            writer.write(OK)
            await writer.drain()

    async with serve(slow) as server:
        pool = pool_for(server, limit=2)

        async def get() -> bytes:
            return await (await pool.request("GET", "/", HOST)).read()

        assert await asyncio.gather(*(get() for _ in range(12))) == [b"hello"] * 12
        assert server.most_open <= 2 and pool.connections <= 2
        await pool.close()


async def test_a_cancelled_request_gives_its_slot_back() -> None:
    async def silent_first(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        if server.connections == 1:
            await read_request(reader, server)
            await reader.read()
            return
        await keepalive(OK)(reader, writer, server)

    async with serve(silent_first) as server:
        pool = pool_for(server, limit=1)
        task = asyncio.create_task(pool.request("GET", "/", HOST))
        await asyncio.wait_for(server.requested.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        response = await asyncio.wait_for(pool.request("GET", "/", HOST), 5)
        assert await response.read() == b"hello"
        await pool.close()


async def test_a_body_released_unread_closes_its_connection() -> None:
    async with serve(keepalive(OK)) as server:
        pool = pool_for(server, limit=1)
        response = await pool.request("GET", "/", HOST)
        assert await response.read_some(2) == b"he"
        response.release()  # 3 bytes unread: the connection cannot carry another request
        assert pool.connections == 0
        assert await (await pool.request("GET", "/", HOST)).read() == b"hello"
        assert server.connections == 2
        await pool.close()


async def test_a_large_body_is_received_with_flow_control_into_a_buffer() -> None:
    size = 12 * 1024 * 1024 + 3  # above the 4 MiB at which reading pauses
    value = bytes(range(251)) * (size // 251) + bytes(size % 251)

    async def big(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        while await read_request(reader, server) is not None:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
            writer.write(value)
            await writer.drain()

    async with serve(big) as server:
        pool = pool_for(server)
        response = await pool.request("GET", "/", HOST)
        await asyncio.sleep(0.2)  # the client stops reading at 4 MiB unread
        buffer = bytearray(size)
        assert await response.readinto(memoryview(buffer)) == size
        assert buffer == value
        assert await (await pool.request("GET", "/", HOST)).read() == value
        assert server.connections == 1
        await pool.close()


@pytest.mark.parametrize("header", [("x-bad", "a\r\nx-injected: 1"), ("x-bad\r\nx", "1"), ("a:b", "1")])
async def test_headers_that_would_split_the_request_are_refused(header: tuple[str, str]) -> None:
    async with serve(keepalive(OK)) as server:
        pool = pool_for(server)
        with pytest.raises(ValueError, match="line break or a colon"):
            await pool.request("GET", "/", {**HOST, header[0]: header[1]})
        assert server.connections == 0
        await pool.close()


async def test_a_closed_pool_refuses_requests() -> None:
    async with serve(keepalive(OK)) as server:
        pool = pool_for(server)
        await (await pool.request("GET", "/", HOST)).read()
        await pool.close()
        assert pool.connections == 0
        with pytest.raises(_http1.ConnectError, match="the pool is closed"):
            await pool.request("GET", "/", HOST)


def test_bad_pool_options_are_named() -> None:
    with pytest.raises(ValueError, match="scheme must be http or https"):
        _http1.Pool("ftp", "h", 1)
    with pytest.raises(ValueError, match="limit must be at least 1"):
        _http1.Pool("http", "h", 1, limit=0)


@pytest.fixture
def tls_server_context(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    pem = make_certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pem)
    return context, pem


async def test_tls_with_a_trusted_certificate(tls_server_context: tuple[ssl.SSLContext, Path]) -> None:
    server_context, pem = tls_server_context
    async with serve(keepalive(OK), tls=server_context) as server:
        client_context = ssl.create_default_context(cafile=str(pem))
        pool = _http1.Pool("https", "127.0.0.1", server.port, ssl=client_context)
        for _ in range(2):
            assert await (await pool.request("GET", "/", HOST)).read() == b"hello"
        assert server.connections == 1
        await pool.close()


async def test_tls_with_an_untrusted_certificate_is_a_certificate_error(
    tls_server_context: tuple[ssl.SSLContext, Path],
) -> None:
    server_context, _ = tls_server_context
    async with serve(keepalive(OK), tls=server_context) as server:
        pool = _http1.Pool("https", "127.0.0.1", server.port)  # the system's CAs: ours is not among them
        with pytest.raises(_http1.CertificateError, match="certificate"):
            await pool.request("GET", "/", HOST)
        await pool.close()


async def test_a_small_request_goes_out_with_the_connect_before_the_loop_turns() -> None:
    # A server with a thread per connection reads the request at its first look only where it is there
    # when the connection is accepted; the request must not wait for asyncio's writable event and transport.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        pool = _http1.Pool("http", "127.0.0.1", listener.getsockname()[1])
        task = asyncio.create_task(pool.request("PUT", "/k", HOST, b"v" * 100))
        await asyncio.sleep(0)  # the task runs up to its first wait, no further
        accepted, _ = listener.accept()
        with accepted:
            request = accepted.recv(65536, socket.MSG_DONTWAIT)
            assert request.startswith(b"PUT /k HTTP/1.1\r\n") and request.endswith(b"\r\n\r\n" + b"v" * 100)
            accepted.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            response = await task
            assert response.status == 200
            await response.read()
        await pool.close()


class _SendsLittle(socket.socket):
    """A socket whose ``send`` takes at most 1,000 bytes, as a full send buffer would."""

    def send(self, data: object, flags: int = 0) -> int:
        return super().send(memoryview(data)[:1000], flags)  # type: ignore[arg-type]


async def test_what_the_connect_could_not_send_of_a_request_goes_after_it(monkeypatch: pytest.MonkeyPatch) -> None:
    async with serve(once(OK)) as server:
        pool = pool_for(server)
        monkeypatch.setattr(_http1.socket, "socket", _SendsLittle)
        body = os.urandom(60_000)
        response = await pool.request("PUT", "/big", HOST, body)
        monkeypatch.undo()
        assert (response.status, await response.read()) == (200, b"hello")
        assert server.requests[0][1] == body
        await pool.close()


async def test_a_connect_that_waits_for_room_in_the_accept_queue_sends_its_request_once_connected() -> None:
    with full_accept_queue() as (listener, fillers):  # the pool's SYN is dropped until there is room
        pool = _http1.Pool("http", "127.0.0.1", listener.getsockname()[1], connect_timeout=10)
        task = asyncio.create_task(pool.request("GET", "/late", HOST))
        await asyncio.sleep(0.2)
        assert not task.done()
        loop = asyncio.get_running_loop()
        listener.setblocking(False)
        for filler in fillers:
            filler.close()
        try:
            while True:  # the fillers, then the pool's connection once its SYN comes again (~1 s)
                accepted, _ = await asyncio.wait_for(loop.sock_accept(listener), 5)
                accepted.setblocking(False)
                try:
                    request = await asyncio.wait_for(loop.sock_recv(accepted, 65536), 0.5)
                except TimeoutError:
                    request = b""
                if request.startswith(b"GET /late "):
                    break
                accepted.close()
            with accepted:
                await loop.sock_sendall(accepted, OK)
                response = await task
                assert (response.status, await response.read()) == (200, b"hello")
        finally:
            await pool.close()
