"""``http[s]://…``, ``rest://[user@]host/path`` and ``rest:///path`` — a store behind a REST server.

Speaks borgstore's REST protocol (v1), so it works with aiodepot's server and with borgstore's
``borgstore-server-rest``. Over HTTP it keeps a pool of keep-alive connections and runs requests
concurrently; ``rest://`` runs the server over ssh (or locally) and speaks HTTP/1.1 over its stdin/stdout,
one request at a time. Big values load as parallel ranged GETs; big uploads stream from a file with their
SHA-256 in ``X-Content-hash-sha256``.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import shlex
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Self
from urllib.parse import quote, unquote, urlencode

import aiofiles
import aiohttp
import yarl
from multidict import CIMultiDict

from ..errors import (
    BackendError,
    BackendURLInvalid,
    ConnectionLost,
    IntegrityError,
    InvalidName,
    ObjectNotFound,
    ReadRangeError,
    ValueChanged,
)
from ..items import ItemInfo, Source, validate_sources
from ..names import validate_backend_name
from ..protocol import (
    ACCEPT,
    ATIME_HEADER,
    EXTENSIONS_HEADER,
    HASH_HEADER,
    IF_ABSENT,
    IS_DIRECTORY_HEADER,
    MTIME_HEADER,
    error_for_status,
    make_range_header,
)
from ._objectstore import content_range_total
from .base import Backend, Capabilities, FirstRange
from .options import Limits, Rename, RetryPolicy, Timeouts, legacy_options, never_reached

__all__ = ["RestBackend"]

logger = logging.getLogger(__name__)

MiB = 1024 * 1024
SSH_ALIVE_INTERVAL = 30
SSH_ALIVE_COUNT_MAX = 3
DEFAULT_SERVER_COMMAND = "aiodepot-server-rest"


_CHUNK = 1 * MiB
_SMALL_BODY = 64 * 1024  # request bodies up to this size go out in one write (any send buffer takes them)
_INLINE_HASH = 256 * 1024  # reply bodies up to this size are hashed on the event loop, bigger ones in a thread


class _SendWatch:
    """A deadline for sending a request body: each piece must leave within ``seconds`` of the one before.

    aiohttp's read timeout only covers the reply; without this, a server (or a link) that stops taking the
    body would hold the request on a full send buffer for ever.
    """

    __slots__ = ("_deadline", "_loop", "seconds", "sending")

    def __init__(self, deadline: asyncio.Timeout, seconds: float) -> None:
        self._deadline = deadline
        self._loop = asyncio.get_running_loop()
        self.seconds = seconds
        self.sending = False

    def progress(self) -> None:
        """A piece is going out (so the one before it has left): the clock starts again."""
        self.sending = True
        self._deadline.reschedule(self._loop.time() + self.seconds)

    def done(self) -> None:
        """The body has left; the reply's read timeout takes over."""
        self.sending = False
        self._deadline.reschedule(None)


class _Slices:
    """An in-memory body as an async iterator of ``_CHUNK``-sized views (no copies)."""

    __slots__ = ("_position", "_view", "_watch")

    def __init__(self, data: bytes | memoryview, watch: _SendWatch) -> None:
        self._view = memoryview(data)
        self._position = 0
        self._watch = watch

    def __aiter__(self) -> _Slices:
        return self

    async def __anext__(self) -> memoryview:
        if self._position >= len(self._view):
            self._watch.done()
            raise StopAsyncIteration
        self._watch.progress()
        piece = self._view[self._position : self._position + _CHUNK]
        self._position += len(piece)
        return piece


class _FileSlices:
    """A file body as an async iterator of ``_CHUNK``-sized pieces, read in a thread."""

    __slots__ = ("_file", "_path", "_watch")

    def __init__(self, path: str, watch: _SendWatch) -> None:
        self._path = path
        self._file: Any = None
        self._watch = watch

    def __aiter__(self) -> _FileSlices:
        return self

    async def __anext__(self) -> bytes:
        self._watch.progress()
        if self._file is None:
            self._file = await asyncio.to_thread(open, self._path, "rb")
        piece: bytes = await asyncio.to_thread(self._file.read, _CHUNK)
        if not piece:
            self._watch.done()
            raise StopAsyncIteration
        return piece

    async def close(self) -> None:
        if self._file is not None:
            await asyncio.to_thread(self._file.close)


class _FileBody:
    """A request body read from a local file (opened afresh by each attempt, so a retry can resend it)."""

    __slots__ = ("path", "size")

    def __init__(self, path: str, size: int) -> None:
        self.path, self.size = path, size


Body = bytes | memoryview | _FileBody | None


class _Reply:
    __slots__ = ("body", "filled", "headers", "reason", "status")

    def __init__(
        self, status: int, reason: str, headers: Mapping[str, str], body: bytes, filled: memoryview | None = None
    ) -> None:
        self.status, self.reason, self.headers, self.body = status, reason, headers, body
        self.filled = filled
        """The part of the caller's buffer the body went into (then ``body`` is empty), else None."""

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def _too_long(into: memoryview, method: str, target: str) -> BackendError:
    return BackendError(f"{method} {target}: the server sent more than the {len(into)} bytes asked for")


def _place(body: bytes, into: memoryview, method: str, target: str) -> memoryview:
    """``body`` copied to the start of ``into``; the part of ``into`` it fills."""
    if len(body) > len(into):
        raise _too_long(into, method, target)
    into[: len(body)] = body
    return into[: len(body)]


async def _receive(content: aiohttp.StreamReader, into: memoryview, method: str, target: str) -> memoryview:
    """A response body received into ``into`` chunk by chunk as the connection delivers it (no joined copy of
    the whole body); the part of ``into`` it fills."""
    content.set_read_chunk_size(len(into))  # else the socket pauses at every 128 KiB buffered (read() lifts it too)
    filled = 0
    while chunk := await content.readany():
        end = filled + len(chunk)
        if end > len(into):
            raise _too_long(into, method, target)
        into[filled:end] = chunk
        filled = end
    return into[:filled]


class _HttpTransport:
    """A pooled aiohttp session."""

    def __init__(self, backend: RestBackend) -> None:
        self._backend = backend
        connector = aiohttp.TCPConnector(limit=backend.limits.connections or 0, ssl=backend.ssl)
        timeout = aiohttp.ClientTimeout(total=None, connect=backend.timeouts.connect, sock_read=backend.timeout)
        headers = {"Accept": ACCEPT}
        if backend.username:
            headers["Authorization"] = _basic_auth(backend.username, backend.password or "")
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=timeout, headers=headers, auto_decompress=False
        )
        # aiohttp quietly resends an idempotent request once when a kept-alive connection breaks; the
        # backend retries itself and must know it did (a DELETE answered 404 on a resend is done, not
        # missing). aiohttp's own test client turns the resend off the same way.
        self._session._retry_connection = False

    async def request(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: Body,
        length: int | None,
        into: memoryview | None = None,
    ) -> _Reply:
        """Send a request and read the reply; a successful reply's body goes into ``into`` where given."""
        assert self._backend.base_url is not None
        url = yarl.URL(self._backend.base_url + target, encoded=True)
        if length is not None:
            headers = {**headers, "Content-Length": str(length)}
        try:
            async with asyncio.timeout(None) as deadline:
                watch = _SendWatch(deadline, self._backend.timeout)
                data: Any = body
                if isinstance(body, _FileBody):
                    data = _FileSlices(body.path, watch)
                elif body is not None and len(body) > _SMALL_BODY:  # in slices: one big write would hold the loop
                    data = _Slices(body, watch)
                try:
                    async with self._session.request(method, url, headers=headers, data=data) as response:
                        reply = _Reply(response.status, response.reason or "", response.headers, b"")
                        if into is not None and response.status in (200, 206):
                            reply.filled = await _receive(response.content, into, method, target)
                        else:
                            reply.body = await response.read()
                        return reply
                finally:
                    if isinstance(data, _FileSlices):
                        await data.close()
        except TimeoutError as exc:
            if watch.sending:
                raise ConnectionLost(
                    f"{method} {target}: the request body stalled (nothing sent for {watch.seconds} s)"
                ) from exc
            raise ConnectionLost(f"{method} {target}: {exc or f'timed out after {self._backend.timeout} s'}") from exc
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            raise ConnectionLost(f"{method} {target}: {exc or type(exc).__name__}") from exc
        except aiohttp.ClientResponseError as exc:  # not an HTTP reply: garbled on the way
            raise ConnectionLost(f"{method} {target}: unreadable reply ({exc.message})") from exc

    async def close(self) -> None:
        await self._session.close()


class _StdioTransport:
    """HTTP/1.1 over the stdin/stdout of a server process (``rest://``): one request at a time."""

    def __init__(self, backend: RestBackend) -> None:
        self._backend = backend
        self._process: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()
        self._stderr: collections.deque[str] = collections.deque(maxlen=20)
        self._stderr_task: asyncio.Task[None] | None = None
        self._answered = False

    async def _start(self) -> asyncio.subprocess.Process:
        if self._process is None or self._process.returncode is not None:
            command = self._backend.command
            assert command is not None
            self._process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # Ctrl-C in the terminal must not kill the server under us
            )
            self._stderr_task = asyncio.create_task(self._drain_stderr(self._process))
        return self._process

    async def _drain_stderr(self, process: asyncio.subprocess.Process) -> None:
        assert process.stderr is not None
        async for line in process.stderr:
            text = line.decode(errors="replace").rstrip()
            self._stderr.append(text)
            logger.debug("server: %s", text)

    def _lost(self, what: str) -> ConnectionLost:
        tail = "\n".join(self._stderr)
        return ConnectionLost(f"the server process {what}" + (f":\n{tail}" if tail else ""))

    async def request(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: Body,
        length: int | None,
        into: memoryview | None = None,
    ) -> _Reply:
        """Send a request and read the reply; a successful reply's body is copied into ``into`` where given
        (the pipe gives it whole)."""
        async with self._lock:
            process = await self._start()
            assert process.stdin is not None
            assert process.stdout is not None
            backend = self._backend
            lines = [f"{method} {target} HTTP/1.1", "Host: stdio", f"Accept: {ACCEPT}", "Connection: keep-alive"]
            if backend.username:
                lines.append(f"Authorization: {_basic_auth(backend.username, backend.password or '')}")
            if isinstance(body, bytes | memoryview):
                length = len(body)
            lines += [f"{key}: {value}" for key, value in headers.items()]
            lines.append(f"Content-Length: {length or 0}")
            try:
                process.stdin.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
                if isinstance(body, bytes | memoryview):
                    process.stdin.write(body)
                elif body is not None:
                    async with aiofiles.open(body.path, "rb") as f:
                        while chunk := await f.read(1 * MiB):
                            process.stdin.write(chunk)
                            await process.stdin.drain()
                await process.stdin.drain()
                async with asyncio.timeout(backend.timeout):
                    reply = await _read_reply(process.stdout, method)
                self._answered = True
                if into is not None and reply.status in (200, 206):
                    reply.body, reply.filled = b"", _place(reply.body, into, method, target)
                return reply
            except (ConnectionError, asyncio.IncompleteReadError, TimeoutError) as exc:
                await self._kill()
                lost = self._lost(f"went away during {method} {target} ({type(exc).__name__})")
                if not self._answered:  # never got as far as answering: like a refused connection
                    raise lost from ConnectionRefusedError(errno.ECONNREFUSED, "the server process never answered")
                raise lost from exc

    async def _kill(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()
        if self._stderr_task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._stderr_task, 1)

    async def close(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            async with asyncio.timeout(self._backend.timeout):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()
        if self._stderr_task is not None:
            await self._stderr_task
        if process.returncode:
            tail = "\n".join(self._stderr)
            raise BackendError(f"the server process exited with {process.returncode}" + (f":\n{tail}" if tail else ""))


async def _read_reply(stdout: asyncio.StreamReader, method: str) -> _Reply:
    status_line = (await stdout.readuntil(b"\r\n")).decode("latin-1").rstrip()
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise BackendError(f"not an HTTP status line from the server: {status_line!r}")
    headers: CIMultiDict[str] = CIMultiDict()
    while (line := await stdout.readuntil(b"\r\n")) != b"\r\n":
        key, _, value = line.decode("latin-1").partition(":")
        headers[key.strip()] = value.strip()
    body = b""
    if method != "HEAD":
        if headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int((await stdout.readuntil(b"\r\n")).split(b";")[0], 16):
                chunks.append(await stdout.readexactly(size))
                await stdout.readexactly(2)
            await stdout.readuntil(b"\r\n")
            body = b"".join(chunks)
        else:
            body = await stdout.readexactly(int(headers.get("Content-Length", "0")))
    return _Reply(int(parts[1]), parts[2] if len(parts) > 2 else "", headers, body)


async def _check_digest(reply: _Reply, method: str, target: str) -> None:
    """Check a reply body against the SHA-256 the server sent with it (aiodepot's server sends one with
    every body it has whole; borgstore's sends none, and then there is nothing to check)."""
    expected = reply.headers.get(HASH_HEADER)
    if expected is None:
        return
    body = reply.body if reply.filled is None else reply.filled
    if len(body) > _INLINE_HASH:
        actual = await asyncio.to_thread(lambda: hashlib.sha256(body).hexdigest())
    else:
        actual = hashlib.sha256(body).hexdigest()
    if actual != expected.strip().lower():
        raise IntegrityError(
            f"{method} {target}: the reply's {len(body)} bytes do not match its {HASH_HEADER} (corrupted on the way)"
        )


def _transient(exc: BaseException) -> bool:
    """A lost connection or a damaged reply: the same request may well succeed."""
    return isinstance(exc, ConnectionLost | IntegrityError)


_RENAMED: dict[str, Rename] = {
    "timeout": ("timeouts", "read", None),
    "connect_timeout": ("timeouts", "connect", None),
    "reconnect_tries": ("retry", "attempts", lambda tries: tries + 1),
    "reconnect_wait": ("retry", "backoff", None),
    "pool_size": ("limits", "connections", None),
}
"""The keywords before ``retry=``/``limits=``/``timeouts=`` (deprecated)."""


def _basic_auth(username: str, password: str) -> str:
    """The ``Authorization`` header value for HTTP Basic."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def _url_path(name: str) -> str:
    """A (valid) name as the path of a request: one that cannot travel in a URL path is refused."""
    if "?" in name or "#" in name:
        raise InvalidName(f"a name with '?' or '#' cannot travel in a REST URL path: {name!r}")
    return name


def _ssh_command(user: str | None, host: str, port: str | None) -> list[str]:
    rsh = os.environ.get("BORGSTORE_RSH")
    if rsh:
        command = shlex.split(rsh)
    else:
        command = [
            "ssh",
            "-o",
            f"ServerAliveInterval={SSH_ALIVE_INTERVAL}",
            "-o",
            f"ServerAliveCountMax={SSH_ALIVE_COUNT_MAX}",
        ]
        if port:
            command += ["-p", port]
    return [*command, f"{user}@{host}" if user else host]


_HTTP_URL = re.compile(
    r"(?P<scheme>https?)://(?:(?P<user>[^:@/]+):(?P<password>[^@/]+)@)?(?P<host>\[[0-9a-fA-F:.]+\]|[^:/@]+)"
    r"(?::(?P<port>\d+))?(?P<path>/[^?#]*)?$"
)
_REST_URL = re.compile(
    r"rest://(?:(?:(?P<user>[^@:/]+)@)?(?P<host>\[[0-9a-fA-F:.]+\]|[^:/@]+)(?::(?P<port>\d+))?)?/(?P<path>[^?#]+)$"
)


class RestBackend(Backend):
    """A store served by a REST server (aiodepot's or borgstore's), over HTTP(S) or a pipe.

    Args:
        base_url: the server's URL, e.g. ``http://127.0.0.1:5618`` (a sub-path is allowed for proxies).
        username: HTTP Basic credentials (else ``BORGSTORE_REST_USERNAME``/``BORGSTORE_REST_PASSWORD``).
        password: see ``username``.
        command: instead of ``base_url``, a server command line that speaks HTTP on stdin/stdout.
        retry: how a request whose connection broke, or whose reply came damaged, is sent again
            (default ``default_retry``: 4 attempts, 5 s apart).
        limits: ``connections``: keep-alive connections (HTTP) — and requests in flight (default 32).
        timeouts: ``connect``: seconds to wait for a TCP connection (default 10); ``read``: seconds to
            wait for a reply to start arriving (default 60).
        ssl: an ``ssl.SSLContext``, or False to skip certificate checks (HTTPS only).
    """

    default_retry: ClassVar[RetryPolicy] = RetryPolicy(attempts=4, backoff=5.0, multiplier=1.0, jitter=0.0)
    """The retry policy without ``retry=``."""
    default_limits: ClassVar[Limits] = Limits(connections=32)
    """The limits that ``limits=`` leaves ``None``."""
    default_timeouts: ClassVar[Timeouts] = Timeouts(connect=10.0, read=60.0)
    """The timeouts that ``timeouts=`` leaves ``None``."""

    capabilities = Capabilities(
        server_side_hash=True,
        server_side_copy=True,
        server_side_gather=True,
        parallel_ranges=True,
        preferred_concurrency=32,
        part_size=8 * MiB,
    )

    def __init__(
        self,
        base_url: str | None = None,
        *,
        username: str | None = None,
        password: str | None = None,
        command: Sequence[str] | None = None,
        retry: RetryPolicy | None = None,
        limits: Limits | None = None,
        timeouts: Timeouts | None = None,
        ssl: Any = None,
        **deprecated: Any,
    ) -> None:
        super().__init__()
        if (base_url is None) == (command is None):
            raise ValueError("give the server's base_url or a server command, not both")
        defaults = self._defaults(retry, limits, timeouts)
        self.retry, self.limits, self.timeouts = legacy_options("RestBackend", deprecated, _RENAMED, **defaults)
        self.base_url = base_url.rstrip("/") if base_url is not None else None
        self.command = list(command) if command is not None else None
        self.username = username or os.environ.get("BORGSTORE_REST_USERNAME") or None
        self.password = password or os.environ.get("BORGSTORE_REST_PASSWORD") or None
        assert self.timeouts.read is not None  # the default fills it
        self.timeout: float = self.timeouts.read
        """Seconds to wait for a reply to start arriving (``timeouts.read``)."""
        self.ssl = ssl
        self._transport: _HttpTransport | _StdioTransport | None = None

    def _defaults(self, retry: RetryPolicy | None, limits: Limits | None, timeouts: Timeouts | None) -> dict[str, Any]:
        """``legacy_options``'s keywords: the values given over the class's defaults."""
        return {
            "retry": retry or self.default_retry,
            "limits": (limits or Limits()).or_defaults(self.default_limits),
            "timeouts": (timeouts or Timeouts()).or_defaults(self.default_timeouts),
        }

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """``http[s]://[user:pass@]host[:port][/path]``, ``rest://[user@]host[:port]/path``, ``rest:///path``.

        ``rest://`` runs ``aiodepot-server-rest --stdio --backend FILE:<path>`` over ssh (``BORGSTORE_RSH``
        replaces the ssh command), or locally without a host; ``server_command=`` names another server
        program (e.g. ``borgstore-server-rest``).
        """
        match = _HTTP_URL.match(url)
        if match is not None:
            base = f"{match['scheme']}://{match['host']}" + (f":{match['port']}" if match["port"] else "")
            base += match["path"] or ""
            if match["user"]:
                options.setdefault("username", unquote(match["user"]))
                options.setdefault("password", unquote(match["password"]))
            return cls(base, **options)
        match = _REST_URL.match(url)
        if match is not None:
            server = shlex.split(options.pop("server_command", DEFAULT_SERVER_COMMAND))
            command = [] if not match["host"] else _ssh_command(match["user"], match["host"], match["port"])
            command += [*server, "--stdio", "--backend", f"FILE:{unquote(match['path'])}"]
            return cls(command=command, **options)
        raise BackendURLInvalid(
            f"not a REST store URL (http[s]://host[:port]/path or rest://[user@]host/path): {url!r}"
        )

    def __repr__(self) -> str:
        where = self.base_url or shlex.join(self.command or [])
        return f"<RestBackend {where} {'open' if self.opened else 'closed'}>"

    def _describe_location(self) -> str:
        return self.base_url or f"the REST server of {shlex.join(self.command or [])!r}"

    # transport -------------------------------------------------------------------------------------------

    def _new_transport(self) -> _HttpTransport | _StdioTransport:
        return _StdioTransport(self) if self.command is not None else _HttpTransport(self)

    async def _exchange(
        self,
        method: str,
        name: str,
        *,
        query: Mapping[str, Any] | None = None,
        listing: bool = False,
        headers: dict[str, str] | None = None,
        body: Body = None,
        length: int | None = None,
        gone_is_done: bool = False,
        ok: Iterable[int] = (200, 206),
        into: memoryview | None = None,
    ) -> _Reply:
        """One request, with reconnect-and-retry after a lost connection; error statuses raise.

        With ``gone_is_done`` (delete, move), a 404 on a retry counts as success: the first attempt most
        likely did the work and only its reply was lost. With ``into``, a successful reply's body is received
        into it (``reply.body`` is the part it fills; a retry starts it again).
        """
        target = "/" + quote(name, safe="/-._~!$&'()*+,;=:@") + ("/" if listing and name else "")
        if listing and not name:
            target = "/"
        if query:
            target += "?" + urlencode(query)
        transport = self._transport
        temporary = transport is None  # create/destroy run while the backend is closed
        if transport is None:
            transport = self._new_transport()
        tries = 0

        async def attempt() -> _Reply:
            nonlocal tries
            tries += 1
            reply = await transport.request(method, target, dict(headers or {}), body, length, into)
            if reply.status in ok:
                await _check_digest(reply, method, target)
            return reply

        def retryable(exc: BaseException) -> bool:
            # retries are for connections that worked: opening a store at a wrong address fails at once
            return _transient(exc) and (self.opened or not never_reached(exc))

        def on_retry(exc: BaseException, number: int, wait: float) -> None:
            # the connection broke, or the reply came damaged: the same request once more (aiohttp has
            # dropped a broken connection; a rest:// server process is restarted)
            logger.debug(
                "%s %s: connection lost or reply garbled, retry %d/%d", method, target, number - 1, self.retry.retries
            )

        try:
            reply = await self.retry.run(attempt, retryable=retryable, on_retry=on_retry)
        finally:
            if temporary:
                await transport.close()
        if reply.status in ok:
            return reply
        if gone_is_done and tries > 1 and reply.status == 404:
            return reply
        raise error_for_status(reply.status, reply.text.strip(), name=name)

    # lifecycle -------------------------------------------------------------------------------------------

    async def _create(self) -> None:
        """Ask the server to create the store."""
        await self._exchange("POST", "", query={"cmd": "create"})

    async def _destroy(self) -> None:
        """Ask the server to destroy the store."""
        await self._exchange("DELETE", "", query={"cmd": "destroy"})

    async def _open(self) -> None:
        """Connect, and check that the store exists."""
        self._transport = self._new_transport()
        try:
            reply = await self._exchange("HEAD", "", ok=(200, 404))
        except BaseException:
            transport, self._transport = self._transport, None
            with contextlib.suppress(Exception):
                await transport.close()
            raise

        # an aiodepot server names its extensions; borgstore's server would ignore ?if_absent=1 and overwrite
        extensions = next((v for k, v in reply.headers.items() if k.lower() == EXTENSIONS_HEADER.lower()), "")
        creates = "if-absent" in (part.strip() for part in extensions.split(","))
        self.capabilities = self.capabilities.replace(atomic_create=creates)

    def _create_query(self, replace: bool) -> dict[str, str] | None:
        """The query of a store: ``if_absent=1`` for ``replace=False`` where the server offers it."""
        return {IF_ABSENT: "1"} if not replace and self.capabilities.atomic_create else None

    async def _close(self) -> None:
        """Close the connections (and the server process, for ``rest://``)."""
        transport, self._transport = self._transport, None
        if transport is not None:
            await transport.close()

    # items -----------------------------------------------------------------------------------------------

    async def _mkdir(self, name: str) -> None:
        await self._exchange("POST", _url_path(name), query={"cmd": "mkdir"})

    async def _rmdir(self, name: str) -> None:
        await self._exchange("DELETE", _url_path(name), query={"cmd": "rmdir"}, gone_is_done=True)

    async def _info(self, name: str) -> ItemInfo:
        """HEAD: size, kind and times; a 404 means the item does not exist."""
        reply = await self._exchange("HEAD", _url_path(name), ok=(200, 404))
        leaf = name.rpartition("/")[2]
        if reply.status == 404:
            return ItemInfo.missing(leaf)
        headers = reply.headers
        return ItemInfo(
            name=leaf,
            exists=True,
            size=int(headers.get("Content-Length", 0)),
            directory=headers.get(IS_DIRECTORY_HEADER) == "true",
            atime=float(headers.get(ATIME_HEADER, 0)),
            mtime=float(headers.get(MTIME_HEADER, 0)),
        )

    async def _load(self, name: str, offset: int, size: int | None) -> bytes:
        """A GET, ranged where only part of the value is wanted."""
        _url_path(name)
        if size == 0:  # no request for no bytes, but a missing item is still missing
            if not (await self._info(name)).exists:
                raise ObjectNotFound(name)
            return b""
        if offset < 0 and size is not None and -offset - size > 1 * MiB:
            # a small piece far from the end: ask for exactly it rather than the whole tail
            info = await self._info(name)
            if not info.exists:
                raise ObjectNotFound(name)
            offset = max(info.size + offset, 0)
        header = make_range_header(offset, size)
        reply = await self._exchange("GET", name, headers={"Range": header} if header else None)
        data = reply.body
        if offset < 0 and size is not None:
            data = data[:size]
        return data

    async def _load_into(self, name: str, offset: int, buffer: memoryview) -> int:
        """A ranged GET whose body is received straight into ``buffer``."""
        _url_path(name)
        if not buffer:  # no request for no bytes, but a missing item is still missing
            if not (await self._info(name)).exists:
                raise ObjectNotFound(name)
            return 0
        header = make_range_header(offset, len(buffer))
        reply = await self._exchange("GET", name, headers={"Range": header} if header else None, into=buffer)
        assert reply.filled is not None
        return len(reply.filled)

    async def _load_first(self, name: str, offset: int, size: int) -> FirstRange:
        """A ranged GET; where the server sends the value's size (``Content-Range``) and version (``ETag``)
        with it, as aiodepot's server does, the other ranges are asked ``If-Match`` it and no HEAD is needed
        before or after them. borgstore's server sends neither: then the value's HEAD follows, as before."""
        _url_path(name)
        reply = await self._exchange("GET", name, headers={"Range": f"bytes={offset}-{offset + size - 1}"})
        data = reply.body
        total = content_range_total(reply.headers.get("Content-Range"))
        version = reply.headers.get("ETag")
        if total is not None and version is not None:
            return FirstRange(data, total, None, version)
        if len(data) < size:
            return FirstRange(data, offset + len(data))
        info = await self._info(name)
        return FirstRange(data, info.size, info.mtime)

    async def _load_into_if(self, name: str, offset: int, buffer: memoryview, version: str) -> int:
        """`_load_into` with ``If-Match: version``: the server answers 412 for a replaced value, which
        raises ``ValueChanged``."""
        _url_path(name)
        if not buffer:
            return await self._load_into(name, offset, buffer)
        header = f"bytes={offset}-{offset + len(buffer) - 1}"
        reply = await self._exchange(
            "GET", name, headers={"Range": header, "If-Match": version}, into=buffer, ok=(200, 206, 412)
        )
        if reply.status == 412:
            raise ValueChanged(f"{name} was replaced: it is no longer the version {version}")
        assert reply.filled is not None
        return len(reply.filled)

    async def _store(self, name: str, value: bytes | memoryview, *, replace: bool) -> None:
        """A POST of the value with its SHA-256; a transfer that arrives corrupted is sent once more."""
        _url_path(name)
        headers = {HASH_HEADER: hashlib.sha256(value).hexdigest(), "Content-Type": "application/octet-stream"}
        await self._post_value(name, headers, value, len(value), query=self._create_query(replace))

    async def _post_value(
        self, name: str, headers: dict[str, str], body: Body, length: int, *, query: dict[str, str] | None = None
    ) -> None:
        try:
            await self._exchange("POST", name, query=query, headers=headers, body=body, length=length)
        except IntegrityError:
            logger.warning("store %s: the server got a corrupted body, sending it again", name)
            await self._exchange("POST", name, query=query, headers=headers, body=body, length=length)

    async def _delete(self, name: str) -> None:
        """A DELETE; after a lost connection a 404 counts as done."""
        await self._exchange("DELETE", _url_path(name), gone_is_done=True)

    async def _move(self, src: str, dst: str, *, replace: bool) -> None:
        """A server-side rename; after a lost connection a 404 counts as done."""
        _url_path(src)
        _url_path(dst)
        await self._exchange("POST", "", query={"cmd": "move", "current": src, "new": dst}, gone_is_done=True)

    async def _list(self, name: str) -> AsyncIterator[ItemInfo]:
        """One GET of the directory listing (JSON), sorted by name."""
        reply = await self._exchange("GET", _url_path(name), listing=True)
        try:
            entries = json.loads(reply.body)
            infos = [
                ItemInfo(
                    name=entry["name"],
                    exists=True,
                    size=int(entry["size"]),
                    directory=bool(entry.get("directory", False)),
                    atime=float(entry.get("atime", 0)),
                    mtime=float(entry.get("mtime", 0)),
                )
                for entry in entries
            ]
        except (ValueError, KeyError, TypeError) as exc:
            raise BackendError(f"the server sent an unreadable listing for {name!r}") from exc
        infos.sort(key=lambda info: info.name)
        for info in infos:
            yield info

    async def _hash(self, name: str, algorithm: str) -> str:
        """The server hashes the value where it is."""
        reply = await self._exchange("POST", _url_path(name), query={"cmd": "hash", "algorithm": algorithm})
        return reply.text.strip()

    async def _quota_usage(self) -> dict[str, int]:
        """The server's quota figures."""
        self._require_open()
        reply = await self._exchange("POST", "", query={"cmd": "quota"})
        figures = json.loads(reply.body)
        return {"limit": int(figures["limit"]), "usage": int(figures["usage"])}

    async def _gather(self, sources: list[Source]) -> bytes:
        """All ranges in one request; the server reads them where the data is."""
        for name, _, _ in sources:
            _url_path(name)
        body = json.dumps(sources).encode()
        reply = await self._exchange(
            "POST", "", query={"cmd": "gather"}, body=body, headers={"Content-Type": "application/json"}
        )
        expected = sum(size for _, _, size in sources)
        if len(reply.body) != expected:
            raise ReadRangeError(f"gather returned {len(reply.body)} bytes, expected {expected}")
        return reply.body

    async def _defrag(
        self,
        sources: Iterable[Source],
        *,
        target: str | None,
        algorithm: str | None,
        namespace: str | None,
        levels: int,
    ) -> str:
        """The server assembles the new item where the data is."""
        checked = validate_sources(sources)
        query: dict[str, Any] = {"cmd": "defrag"}
        if target is not None:
            validate_backend_name(target)
            query["target"] = _url_path(target)
        if algorithm is not None:
            query["algorithm"] = algorithm
        if namespace:
            query["namespace"] = namespace
        if levels:
            query["levels"] = levels
        reply = await self._exchange(
            "POST", "", query=query, body=json.dumps(checked).encode(), headers={"Content-Type": "application/json"}
        )
        return reply.text.strip()

    # big values ------------------------------------------------------------------------------------------

    async def _store_file(self, name: str, path: str, size: int, *, replace: bool) -> None:
        """Hash the file, then stream it up (its SHA-256 travels in the header, as for every store)."""
        _url_path(name)
        digest = await asyncio.to_thread(_file_sha256, path)  # a file that changes meanwhile fails this check
        headers = {HASH_HEADER: digest, "Content-Type": "application/octet-stream"}
        await self._post_value(name, headers, _FileBody(path, size), size, query=self._create_query(replace))

    async def _store_chunks(self, name: str, chunks: AsyncIterable[bytes], size: int | None, *, replace: bool) -> None:
        """Spool the stream to a temporary file (bounded memory, hashed on the way), then upload it."""
        _url_path(name)
        fd, spool = await asyncio.to_thread(tempfile.mkstemp, prefix="aiodepot-upload-")
        try:
            written = 0
            async with aiofiles.open(fd, "wb", closefd=True) as f:
                async for chunk in chunks:
                    written += len(chunk)
                    if size is not None and written > size:
                        raise ValueError(f"{name}: the stream gave more than the expected {size} bytes")
                    await f.write(chunk)
            if size is not None and written != size:
                raise ValueError(f"{name}: expected {size} bytes, the stream gave {written}")
            await self._store_file(name, spool, written, replace=replace)
        finally:
            await asyncio.to_thread(_unlink_quietly, spool)


def _file_sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
