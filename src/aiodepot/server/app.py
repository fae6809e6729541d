"""The aiohttp application that serves one backend over the borgstore REST protocol, v1."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote_to_bytes

from aiohttp import web

from ..backends.base import Backend
from ..errors import (
    IntegrityError,
    InvalidName,
    ObjectNotFound,
    PermissionDenied,
    QuotaExceeded,
    ReadRangeError,
    StoreAlreadyOpen,
    StoreError,
    StoreNotOpen,
)
from ..items import Source, validate_sources
from ..names import DEL_SUFFIX, validate_backend_name
from ..protocol import (
    ACCEPT,
    ATIME_HEADER,
    EXTENSIONS,
    EXTENSIONS_HEADER,
    HASH_HEADER,
    HASH_MISMATCH,
    IF_ABSENT,
    IS_DIRECTORY_HEADER,
    MTIME_HEADER,
    MUST_BE_OPEN,
    MUST_NOT_BE_OPEN,
    BadRequest,
    BodyTimeout,
    PayloadTooLarge,
    parse_range_header,
    status_for_error,
)
from ._coordination import Gate, NameLocks, Repositories, StoreBatches
from .auth import Authenticator, PasswordAuth
from .metrics import Metrics

__all__ = ["StoreServer"]

logger = logging.getLogger("aiodepot.server")

MiB = 1024 * 1024
SMALL_BODY = 8 * MiB
"""Bodies up to this size are read whole; bigger ones stream to the backend."""
LOAD_PROBE = 8 * MiB
"""A GET first loads up to this much; a value that is bigger streams out in chunks. It matches the REST
client's part size, so every part of a big load comes whole, with the SHA-256 of its body."""
BATCHED_BODY = 1 * MiB
"""Plain stores up to this size are written in batches with the stores of other requests (see
`StoreBatches`), where the backend has batch calls; bigger ones are written one by one."""
ARRIVED_BODY = 64 * 1024
"""A body up to this size that came with its request's headers is taken without waiting."""
INLINE_HASH = 256 * 1024
"""Response bodies up to this size are hashed on the event loop; bigger ones in a thread."""
JSON_BODY_LIMIT = 64 * MiB
MAX_OPEN_REPOS = 64
"""Repositories kept open at once (``--max-open-repos``); the least recently used idle one is closed."""
MAX_GATHER_SIZE = 256 * MiB
"""Most bytes one ``gather`` or ``defrag`` may name (``--max-gather-size``); more is refused with 413."""
MAX_SOURCES = 100_000
"""Most ranges one ``gather`` or ``defrag`` may name; more is refused with 413."""
GATHER_PIECE = 8 * MiB
"""A streamed ``gather`` answer reads at most this much at a time."""
SERVER_HEADER = "aiodepot"
"""The ``Server`` header: no versions for a visitor to look up."""
_NO_CACHE = {"Cache-Control": "no-store, no-cache, must-revalidate, max-age=0"}
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])/(?:[^\s'\"/]+/)*[^\s'\"/]+")
_REALM = 'Basic realm="BorgStore REST Server"'


def decode_path(raw_path: str) -> str:
    """The request path percent-decoded exactly once; it must be ASCII then, or it names nothing.

    Every name the server hands a backend comes from this decoded form (and is validated once, by
    [`validate_backend_name`][aiodepot.names.validate_backend_name]); nothing decodes it again.
    """
    try:
        return unquote_to_bytes(raw_path).decode("ascii")
    except UnicodeDecodeError:
        raise InvalidName(f"the path is not plain ASCII once percent-decoded: {_printable(raw_path)}") from None


def validate_repository_name(repo: str) -> str:
    """Check the repository element of a multi-repository path (decoded) and return it.

    A repository name is one valid name element: no ``/``, no ``%`` (no second decoding can change it), not
    hidden (no leading ``.``, so never ``.`` or ``..``) and no reserved suffix.
    """
    if not repo:
        raise PermissionDenied("name a repository: /<repository>/…")
    validate_backend_name(repo)
    if "/" in repo or "%" in repo or repo.startswith(".") or repo.endswith(DEL_SUFFIX):
        raise InvalidName(f"not a repository name: {repo!r}")
    return repo


class StoreServer:
    """Serves stores over HTTP with borgstore's REST protocol (v1): one backend, or one per repository.

    Unlike borgstore's server, requests run concurrently (only ``create`` and ``destroy`` of a store run
    alone), bodies stream to and from the backend instead of passing through memory whole, a body that is
    shorter than declared or fails its hash stores nothing, and chunked uploads are accepted.

    Paths are percent-decoded once, then every name is checked by the store's name rules before a backend
    sees it (see "Security model" in docs/server.md).

    Args:
        backend: the one backend to serve (give this or ``repos``); opened on the first request.
        repos: serve many stores: ``/<repo>/<item>`` goes to the backend ``repos(repo)`` returns (made on
            first use; ``repo`` is checked by :func:`validate_repository_name` first). The factory must
            join ``repo`` to its base as one element (e.g. ``PosixFSBackend(root / repo)``), never build a
            URL that is parsed again.
        private_repos: with ``repos``, each user reaches only the repository named like the user.
        username: with ``password``, require HTTP Basic authentication for this one user.
        password: see ``username``.
        authenticator: instead of ``username``/``password``, any authenticator (e.g. an htpasswd file).
        max_body_size: bodies larger than this many bytes are refused with 413 (None: no limit).
        body_timeout: seconds a request body may stall before the request fails (408).
        request_timeout: seconds a request may take in all (None: no limit).
        metrics: where to count requests (see :meth:`make_admin_app`).
        max_open_repos: with ``repos``, how many idle repositories stay open (least recently used closed).
        max_gather_size: most bytes a ``gather`` or ``defrag`` may name (413 past it).
    """

    def __init__(
        self,
        backend: Backend | None = None,
        *,
        repos: Callable[[str], Backend] | None = None,
        private_repos: bool = False,
        username: str | None = None,
        password: str | None = None,
        authenticator: Authenticator | None = None,
        max_body_size: int | None = None,
        body_timeout: float = 60.0,
        request_timeout: float | None = None,
        metrics: Metrics | None = None,
        max_open_repos: int = MAX_OPEN_REPOS,
        max_gather_size: int = MAX_GATHER_SIZE,
    ) -> None:
        if (backend is None) == (repos is None):
            raise ValueError("give one backend or a repos factory")
        if bool(username) != bool(password):
            raise ValueError("give both username and password, or neither")
        if username and authenticator is not None:
            raise ValueError("give username/password or an authenticator, not both")
        if private_repos and (repos is None or not (username or authenticator)):
            raise ValueError("private repositories need repos and authentication")
        if username and password:
            authenticator = PasswordAuth(username, password)
        self.authenticator = authenticator
        self.private_repos = private_repos
        self.max_body_size = max_body_size
        self.body_timeout = body_timeout
        self.request_timeout = request_timeout
        self.max_gather_size = max_gather_size
        self.metrics = metrics if metrics is not None else Metrics()
        self._repos = (
            Repositories(lambda repo: self._handler_for(repos(repo)), max_open_repos) if repos is not None else None
        )
        self._single = self._handler_for(backend) if backend is not None else None

    @property
    def backend(self) -> Backend:
        """The backend of a single-store server."""
        if self._single is None:
            raise AttributeError("a multi-repository server has one backend per repository")
        return self._single.backend

    @property
    def open_repositories(self) -> int:
        """How many repository handlers a multi-repository server holds now."""
        return len(self._repos) if self._repos is not None else 0

    def _handler_for(self, backend: Backend) -> _StoreHandler:
        return _StoreHandler(
            backend,
            max_body_size=self.max_body_size,
            body_timeout=self.body_timeout,
            max_gather_size=self.max_gather_size,
        )

    def make_app(self) -> web.Application:
        """The aiohttp application (one catch-all route; the path is the item name)."""
        app = web.Application(client_max_size=JSON_BODY_LIMIT)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        app.on_cleanup.append(self._on_cleanup)
        app.on_response_prepare.append(_plain_server_header)
        return app

    def make_admin_app(self) -> web.Application:
        """A second application for operators: ``/metrics`` (Prometheus) and ``/openapi.json``.

        It answers to the same credentials as the store, without the protocol's Accept header.
        """
        app = web.Application()
        app.router.add_get("/metrics", self._metrics_page)
        app.router.add_get("/openapi.json", self._openapi_page)
        app.on_response_prepare.append(_plain_server_header)
        return app

    async def _admin_allowed(self, request: web.Request) -> web.Response | None:
        if (
            self.authenticator is not None
            and await self.authenticator.authenticate(request.headers.get("Authorization")) is None
        ):
            return _text(HTTPStatus.UNAUTHORIZED, "Unauthorized", headers={"WWW-Authenticate": _REALM})
        return None

    async def _metrics_page(self, request: web.Request) -> web.Response:
        refused = await self._admin_allowed(request)
        if refused is not None:
            return refused
        return web.Response(text=self.metrics.render(), content_type="text/plain", charset="utf-8")

    async def _openapi_page(self, request: web.Request) -> web.Response:
        refused = await self._admin_allowed(request)
        if refused is not None:
            return refused
        from .openapi import document

        return web.json_response(document())

    async def _on_cleanup(self, app: web.Application) -> None:
        if self._repos is not None:
            await self._repos.close()
        if self._single is not None:
            await self._single.close()

    # request entry -------------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Check Accept and authentication, run the operation, translate errors; count the request."""
        started = time.perf_counter()
        response = await self._answer(request)
        sent = response.content_length or 0
        self.metrics.observe(
            request.method, response.status, time.perf_counter() - started, request.content_length or 0, sent
        )
        return response

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Accept") != ACCEPT:
            return _text(HTTPStatus.NOT_ACCEPTABLE, "Not Acceptable: unsupported or missing Accept header")
        user = None
        if self.authenticator is not None:
            user = await self.authenticator.authenticate(request.headers.get("Authorization"))
            if user is None:
                return _text(HTTPStatus.UNAUTHORIZED, "Unauthorized", headers={"WWW-Authenticate": _REALM})
        scrub: list[str] = []
        try:
            path = decode_path(request.rel_url.raw_path)
            async with self._route(path, user) as (handler, rest):
                scrub = handler.scrub
                if self.request_timeout is None:
                    return await handler.dispatch(request, rest)
                async with asyncio.timeout(self.request_timeout):
                    return await handler.dispatch(request, rest)
        except TimeoutError:
            return _text(HTTPStatus.SERVICE_UNAVAILABLE, "request timed out")
        except _Truncated as exc:
            logger.warning(
                "%s %s: %s; the connection was closed after %d bytes of the answer",
                request.method,
                _printable(request.rel_url.raw_path),
                exc.reason,
                exc.sent,
            )
            if request.transport is not None:
                request.transport.abort()
            return exc.response
        except Exception as exc:
            return _error(request, exc, scrub)

    @contextlib.asynccontextmanager
    async def _route(self, path: str, user: str | None) -> AsyncIterator[tuple[_StoreHandler, str]]:
        """The handler for a decoded ``path`` and the path inside its store."""
        if self._single is not None:
            yield self._single, path
            return
        assert self._repos is not None
        repo, _, rest = path.removeprefix("/").partition("/")
        validate_repository_name(repo)
        if self.private_repos and repo != user:
            raise PermissionDenied(f"{user} may only use the repository {user}")
        async with self._repos.use(repo) as handler:
            yield handler, "/" + rest


class _Truncated(Exception):
    """A streamed answer could not be finished (its item changed meanwhile): the status is out already."""

    def __init__(self, response: web.StreamResponse, sent: int, reason: str) -> None:
        super().__init__(reason)
        self.response = response
        self.sent = sent
        self.reason = reason


async def _plain_server_header(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Server"] = SERVER_HEADER
    response.headers[EXTENSIONS_HEADER] = EXTENSIONS


def _error(request: web.Request, exc: Exception, scrub: list[str]) -> web.Response:
    status = status_for_error(exc)
    if isinstance(exc, StoreNotOpen):
        message = MUST_BE_OPEN
    elif isinstance(exc, StoreAlreadyOpen):
        message = MUST_NOT_BE_OPEN
    elif isinstance(exc, IntegrityError):
        message = HASH_MISMATCH
    elif status is HTTPStatus.INTERNAL_SERVER_ERROR and not isinstance(exc, StoreError):
        logger.exception("%s %s failed", request.method, _printable(request.rel_url.raw_path))
        message = "Internal Server Error"
    else:
        message = str(exc)
        for path in scrub:
            message = message.replace(path, "[store]")
        message = _ABSOLUTE_PATH.sub("[path]", message)
        if status is HTTPStatus.INTERNAL_SERVER_ERROR:
            logger.error("%s %s: %s", request.method, _printable(request.rel_url.raw_path), message)
    return _text(status, message)


class _StoreHandler:
    """The operations on one backend: no HTTP checks here, those are the server's."""

    def __init__(
        self, backend: Backend, *, max_body_size: int | None, body_timeout: float, max_gather_size: int
    ) -> None:
        self.backend = backend
        self.max_body_size = max_body_size
        self.body_timeout = body_timeout
        self.max_gather_size = max_gather_size
        self.users = 0
        """Requests using this handler now (a repository in use is never closed)."""
        self._gate = Gate()
        self._opening = asyncio.Lock()
        self._writing = NameLocks()
        self._batches = (
            StoreBatches(backend, backend.capabilities.batch_size) if backend.capabilities.batch_ops else None
        )
        self.scrub = [str(path) for path in (getattr(backend, "base", None),) if path]

    async def close(self) -> None:
        async with self._gate.exclusive():
            if self.backend.opened:
                await self.backend.close()

    # dispatch --------------------------------------------------------------------------------------------

    async def dispatch(self, request: web.Request, path: str) -> web.StreamResponse:
        """Run the operation ``request`` asks for on the item at ``path`` (decoded, relative to this store)."""
        name = validate_backend_name(path.strip("/"), allow_root=True)
        cmd = request.query.get("cmd")
        method = request.method
        if cmd in ("create", "destroy") and name:  # a whole store is made or removed at its root only
            raise BadRequest(f"{cmd} applies to the store, not to an item: send it to /")
        if method == "POST" and cmd == "create":
            async with self._gate.exclusive():
                if self.backend.opened:
                    await self.backend.close()
                await self.backend.create()
            return _ok()
        if method == "DELETE" and cmd == "destroy":
            async with self._gate.exclusive():
                if self.backend.opened:
                    await self.backend.close()
                await self.backend.destroy()
            return _ok()
        handler = self._route(method, cmd, path, name)
        if handler is None:
            if method in ("GET", "HEAD", "POST", "DELETE"):
                raise BadRequest("Bad Request")
            return _text(HTTPStatus.NOT_IMPLEMENTED, f"method {method} is not supported")
        async with self._gate.shared():
            await self._ensure_open()
            return await handler(request, name)

    def _route(
        self, method: str, cmd: str | None, path: str, name: str
    ) -> Callable[[web.Request, str], Awaitable[web.StreamResponse]] | None:
        if method == "HEAD":
            return self._info
        if method == "GET":
            return self._list if path.endswith("/") else (self._load if name else None)
        if method == "POST":
            commands = {
                "mkdir": self._mkdir,
                "move": self._move,
                "hash": self._hash,
                "quota": self._quota,
                "gather": self._gather,
                "defrag": self._defrag,
            }
            if cmd is not None:
                return commands.get(cmd)
            return self._store if name else None
        if method == "DELETE":
            if cmd == "rmdir":
                return self._rmdir
            return self._delete if name and cmd is None else None
        return None

    async def _ensure_open(self) -> None:
        if self.backend.opened:
            return
        async with self._opening:
            if not self.backend.opened:
                await self.backend.open()

    # operations ------------------------------------------------------------------------------------------

    async def _info(self, request: web.Request, name: str) -> web.Response:
        info = await self.backend.info(name)
        if not info.exists:
            raise ObjectNotFound(name)
        headers = {
            "Content-Length": str(info.size),
            IS_DIRECTORY_HEADER: "true" if info.directory else "false",
            ATIME_HEADER: str(float(info.atime)),
            MTIME_HEADER: str(float(info.mtime)),
            **_NO_CACHE,
        }
        return web.Response(status=HTTPStatus.OK, headers=headers)

    async def _list(self, request: web.Request, name: str) -> web.Response:
        entries = [
            {
                "name": info.name,
                "size": info.size,
                "directory": info.directory,
                "atime": info.atime,
                "mtime": info.mtime,
            }
            async for info in self.backend.list(name)
        ]
        listing = json.dumps(entries).encode()
        return _ok(listing, "application/json", digest=await _sha256(listing))

    async def _load(self, request: web.Request, name: str) -> web.StreamResponse:
        range_header = request.headers.get("Range")
        offset, size = parse_range_header(range_header) if range_header else (0, None)
        status = HTTPStatus.PARTIAL_CONTENT if range_header else HTTPStatus.OK
        if offset < 0:  # a suffix: where it starts depends on the size
            offset = max((await self._existing(name)).size + offset, 0)
        probe = LOAD_PROBE if size is None else min(size, LOAD_PROBE)
        if not probe:  # "bytes=-0": no bytes, but only of an item that exists
            await self._existing(name)
            return _ok(b"", "application/octet-stream", status=status)
        condition = request.headers.get("If-Match")
        if range_header is None and condition is None:
            first = await self.backend.load(name, offset=offset, size=probe)
            if len(first) < probe:
                return _ok(first, "application/octet-stream", status=status, digest=await _sha256(first))
            total = (await self._existing(name)).size
            tags: dict[str, str] = {}
        else:
            # a range (of a big load, most likely): the value's size and version come with it, from the same
            # open file where the backend can (posixfs: one fstat), so the client needs no HEAD before or
            # after its ranges and can ask the others on the condition of this version
            part = await self.backend.load_first(name, offset, probe)
            first, total = part.data, part.size
            tags = {} if part.version is None else {"ETag": f'"{part.version}"'}
            if condition is not None and not _matches(condition, part.version):
                return _text(HTTPStatus.PRECONDITION_FAILED, f"{name} is not the version asked for", headers=tags)
            if len(first) < probe or size == len(first):
                answer = _ok(first, "application/octet-stream", status=status, digest=await _sha256(first))
                answer.headers.update(tags)
                if range_header is not None and first:
                    answer.headers["Content-Range"] = f"bytes {offset}-{offset + len(first) - 1}/{total}"
                return answer
        # a big value: stream the rest, never more than one chunk in memory
        end = total if size is None else min(offset + size, total)
        response = web.StreamResponse(
            status=status, headers={"Content-Type": "application/octet-stream", **_NO_CACHE, **tags}
        )
        response.content_length = max(end - offset, 0)
        if range_header is not None and end > offset:
            response.headers["Content-Range"] = f"bytes {offset}-{end - 1}/{total}"
        await response.prepare(request)
        await response.write(first)
        sent = len(first)
        async for chunk in self.backend.read_chunks(name, offset=offset + sent, size=end - offset - sent):
            await response.write(chunk)
            sent += len(chunk)
        if sent != end - offset:  # the value changed under us: break the connection, never send garbage
            raise _Truncated(response, sent, f"{name} changed while it was sent")
        await response.write_eof()
        return response

    async def _existing(self, name: str) -> Any:
        info = await self.backend.info(name)
        if not info.exists:
            raise ObjectNotFound(name)
        return info

    async def _store(self, request: web.Request, name: str) -> web.Response:
        declared = request.content_length
        if declared is not None and self.max_body_size is not None and declared > self.max_body_size:
            raise PayloadTooLarge(f"the body has {declared} bytes, the server takes at most {self.max_body_size}")
        expected = request.headers.get(HASH_HEADER)
        if_absent = request.query.get(IF_ABSENT) == "1"  # the extension: create only (412 if it exists)
        # One write of a name at a time through this server: the backend's "is it new?" (append-only) and
        # quota checks and its final commit cannot interleave with another store of the same name.
        async with self._writing.hold(name):
            room = await self._quota_room(name)
            if room is not None and declared is not None and declared > room:
                raise QuotaExceeded(f"quota exceeded: the body has {declared} bytes, {max(room, 0)} are free")
            if declared is not None and declared <= SMALL_BODY:
                data = await self._read_exact(request, declared)
                if expected and hashlib.sha256(data).hexdigest() != expected.strip().lower():
                    raise IntegrityError(HASH_MISMATCH)
                if self._batches is not None and not if_absent and declared <= BATCHED_BODY:
                    await self._batches.store(name, data)
                else:
                    await self.backend.store(name, data, if_absent=if_absent)
            else:
                chunks = self._body_chunks(request, declared, expected, room)
                await self.backend.store_chunks(name, chunks, size=declared, if_absent=if_absent)
        return _ok()

    async def _quota_room(self, name: str) -> int | None:
        """How many bytes a store of ``name`` may bring now (what is free plus what it replaces), or None
        without a quota. The backend's own check at commit decides; this refuses a body before it lands."""
        figures = await self.backend.quota()
        limit = figures.get("limit", -1)
        if limit < 0:
            return None
        try:
            info = await self.backend.info(name)
            replaced = info.size if info.exists and not info.directory else 0
        except PermissionDenied:  # a write-only client may not look: nothing is counted as replaced
            replaced = 0
        return int(limit - figures.get("usage", 0) + replaced)

    async def _read_exact(self, request: web.Request, size: int) -> bytes:
        if size == 0:
            return b""
        # a small body mostly came with the headers: taken as it is, without a timeout (a part that did not
        # is joined to the rest below, a copy worth paying only while small)
        arrived = request.content.read_nowait(size) if size <= ARRIVED_BODY else b""
        if len(arrived) == size:
            return arrived
        try:
            async with asyncio.timeout(self.body_timeout):
                return arrived + await request.content.readexactly(size - len(arrived))
        except asyncio.IncompleteReadError as exc:
            raise BadRequest(f"the body ended after {len(arrived) + len(exc.partial)} of {size} bytes") from None
        except TimeoutError:
            raise BodyTimeout(f"the body stalled for {self.body_timeout} s") from None

    async def _body_chunks(
        self, request: web.Request, declared: int | None, expected: str | None, room: int | None
    ) -> AsyncIterator[bytes]:
        hasher = hashlib.sha256()
        received = 0
        while True:
            try:
                async with asyncio.timeout(self.body_timeout):
                    chunk = await request.content.readany()
            except TimeoutError:
                raise BodyTimeout(f"the body stalled for {self.body_timeout} s") from None
            if not chunk:
                break
            received += len(chunk)
            if self.max_body_size is not None and received > self.max_body_size:
                raise PayloadTooLarge(f"the body is larger than the server takes ({self.max_body_size} bytes)")
            if declared is not None and received > declared:
                raise BadRequest(f"the body is longer than its Content-Length of {declared}")
            if room is not None and received > room:
                raise QuotaExceeded(f"quota exceeded: the body is larger than the {max(room, 0)} bytes free")
            hasher.update(chunk)
            yield chunk
        if declared is not None and received != declared:
            raise BadRequest(f"the body ended after {received} of {declared} bytes")
        if expected and hasher.hexdigest() != expected.strip().lower():
            raise IntegrityError(HASH_MISMATCH)

    async def _json_body(self, request: web.Request) -> Any:
        if request.content_length is not None and request.content_length > JSON_BODY_LIMIT:
            raise PayloadTooLarge("the request body is too large")
        async with asyncio.timeout(self.body_timeout):
            body = await request.read()
        try:
            return json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BadRequest(f"the body is not valid JSON: {exc}") from None
        except RecursionError:
            raise BadRequest("the body is not valid JSON: nested too deeply") from None

    def _sources(self, body: Any) -> list[Source]:
        """The ``(name, offset, size)`` ranges of a gather or defrag body: names checked, count and total
        size bounded."""
        if not isinstance(body, list):
            raise BadRequest("the body must be a JSON list of [name, offset, size] ranges")
        if len(body) > MAX_SOURCES:
            raise PayloadTooLarge(f"{len(body)} ranges: the server takes at most {MAX_SOURCES} at once")
        sources = validate_sources(body)
        for source_name, _, _ in sources:
            validate_backend_name(source_name)
        total = sum(size for _, _, size in sources)
        if total > self.max_gather_size:
            limit = self.max_gather_size
            raise PayloadTooLarge(f"the ranges add up to {total} bytes, the server takes at most {limit}")
        return sources

    async def _delete(self, request: web.Request, name: str) -> web.Response:
        async with self._writing.hold(name):
            await self.backend.delete(name)
        return _ok()

    async def _mkdir(self, request: web.Request, name: str) -> web.Response:
        await self.backend.mkdir(name)
        return _ok()

    async def _rmdir(self, request: web.Request, name: str) -> web.Response:
        with contextlib.suppress(PermissionDenied):  # a client that may not list still may remove
            async for _ in self.backend.list(name):  # a client's mistake (400), not a storage failure
                raise InvalidName(f"{name}: the directory is not empty")
        await self.backend.rmdir(name)
        return _ok()

    async def _move(self, request: web.Request, name: str) -> web.Response:
        current, new = request.query.get("current"), request.query.get("new")
        if not current or not new:
            raise BadRequest("Missing current or new name for move")
        validate_backend_name(current)
        validate_backend_name(new)
        if new.startswith(current + "/"):
            raise InvalidName(f"cannot move {current} into itself")
        async with self._writing.hold(current, new):
            await self.backend.move(current, new)
        return _ok()

    async def _hash(self, request: web.Request, name: str) -> web.Response:
        if not name:
            raise BadRequest("Missing name for hash")
        digest = await self.backend.hash(name, request.query.get("algorithm", "sha256"))
        return _ok(digest.encode("ascii"), "text/plain")

    async def _quota(self, request: web.Request, name: str) -> web.Response:
        return _ok(json.dumps(await self.backend.quota()).encode(), "application/json")

    async def _gather(self, request: web.Request, name: str) -> web.StreamResponse:
        sources = self._sources(await self._json_body(request))
        total = sum(size for _, _, size in sources)
        if total <= GATHER_PIECE:
            gathered = await self.backend.gather(sources)
            return _ok(gathered, "application/octet-stream", digest=await _sha256(gathered))
        # a big answer streams, one piece in memory at a time; every range is checked before the status
        starts = await self._range_starts(sources)
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream", **_NO_CACHE})
        response.content_length = total
        await response.prepare(request)
        sent = 0
        for (source_name, _, size), start in zip(sources, starts, strict=True):
            done = 0
            while done < size:
                want = min(GATHER_PIECE, size - done)
                piece = await self.backend.load(source_name, offset=start + done, size=want)
                if len(piece) != want:
                    raise _Truncated(response, sent, f"{source_name} changed while it was sent")
                await response.write(piece)
                done += want
                sent += want
        await response.write_eof()
        return response

    async def _range_starts(self, sources: list[Source]) -> list[int]:
        """Where each range starts (a negative offset counts from the end); a missing item or a range past
        the end raises now, while an error status can still be sent."""
        sizes: dict[str, int] = {}
        starts = []
        for source_name, offset, size in sources:
            if source_name not in sizes:
                sizes[source_name] = (await self._existing(source_name)).size
            start = max(sizes[source_name] + offset, 0) if offset < 0 else offset
            if start + size > sizes[source_name]:
                raise ReadRangeError(f"{source_name}: wanted {size} bytes at offset {offset}")
            starts.append(start)
        return starts

    async def _defrag(self, request: web.Request, name: str) -> web.Response:
        query = request.query
        target, algorithm = query.get("target") or None, query.get("algorithm") or None
        if target is None and algorithm is None:
            raise BadRequest("Missing target or algorithm for defrag")
        try:
            levels = int(query.get("levels", "0"))
        except ValueError:
            raise BadRequest(f"levels must be an integer, got {query.get('levels')!r}") from None
        namespace = query.get("namespace") or None
        if target is not None:
            validate_backend_name(target)
        if namespace is not None:
            validate_backend_name(namespace.rstrip("/"))
        sources = self._sources(await self._json_body(request))
        async with self._writing.hold(*([target] if target else [])):
            result = await self.backend.defrag(
                sources, target=target, algorithm=algorithm, namespace=namespace, levels=levels
            )
        return _ok(result.encode("ascii"), "text/plain")


def _matches(condition: str, version: str | None) -> bool:
    """Whether an ``If-Match`` header names ``version`` (``*``: any version; none matches no version)."""
    if version is None:
        return False
    tags = [tag.strip().removeprefix("W/").strip('"') for tag in condition.split(",")]
    return "*" in tags or version in tags


def _ok(
    body: bytes = b"", content_type: str | None = None, *, status: int = HTTPStatus.OK, digest: str | None = None
) -> web.Response:
    """A success; a body travels with its SHA-256 in ``X-Content-hash-sha256`` (clients that know the
    header check it, as the server checks it on stores; borgstore's client ignores it)."""
    headers = _NO_CACHE
    if body:
        headers = {**_NO_CACHE, HASH_HEADER: digest or hashlib.sha256(body).hexdigest()}
    return web.Response(status=status, body=body, content_type=content_type, headers=headers)


async def _sha256(body: bytes) -> str:
    """The hex SHA-256 of a response body (hashlib releases the GIL: big bodies go to a thread)."""
    if len(body) <= INLINE_HASH:
        return hashlib.sha256(body).hexdigest()
    return await asyncio.to_thread(lambda: hashlib.sha256(body).hexdigest())


def _text(status: int, message: str, *, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=message, headers={**_NO_CACHE, **(headers or {})})


def _printable(text: str) -> str:
    """``text`` with control characters escaped, for log lines."""
    return text.encode("unicode_escape").decode("ascii")
