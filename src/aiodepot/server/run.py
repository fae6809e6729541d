"""Running the REST server: over TCP, a systemd-activated unix socket, or stdin/stdout."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import logging.handlers
import os
import queue
import signal
import socket
import ssl
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from aiohttp import web, web_response
from aiohttp.abc import AbstractAccessLogger

from ..backends import backend_from_url
from ..backends.base import Backend
from ..backends.memory import MemoryBackend
from ..backends.posixfs import PosixFSBackend
from ..permissions import resolve_permissions
from ._stdio import bridge_stdio
from .app import MAX_GATHER_SIZE, MAX_OPEN_REPOS, SERVER_HEADER, StoreServer, validate_repository_name
from .auth import Authenticator, HtpasswdAuth

__all__ = ["activated_socket", "backend_for", "main", "repositories_below", "serve"]

logger = logging.getLogger("aiodepot.server")

DEFAULT_PORT = 5618


def backend_for(url: str, *, permissions: str | None = None, quota: int | None = None, fsync: bool = False) -> Backend:
    """The backend for ``--backend``: a store URL, or ``FILE:path`` (relative, ``~`` allowed) as borgstore's
    ``rest://`` client sends it. ``fsync`` makes a file store sync each value before it is acknowledged."""
    if url.startswith("FILE:"):
        url = Path(url[len("FILE:") :]).expanduser().resolve().as_uri()
    options: dict[str, object] = {"fsync": True} if fsync else {}
    if permissions is not None:
        options["permissions"] = resolve_permissions(permissions)
    if quota is not None:
        options["quota"] = quota
    try:
        return backend_from_url(url, **options)
    except TypeError as exc:
        raise ValueError(f"the backend {url.partition(':')[0]}: takes no permissions, quota or fsync") from exc


def repositories_below(
    url: str, *, permissions: str | None = None, quota: int | None = None, fsync: bool = False
) -> Callable[[str], Backend]:
    """The repository factory for ``--repos``: repository ``name`` is the store ``<url>/<name>``.

    The URL is parsed once, here. Each repository is made by joining its (validated) name to that base as
    one element — a directory below a file store's base, a named memory store below the root's name — and
    never by building a URL that would be parsed and percent-decoded again. Other backends cannot serve
    many repositories (ValueError).
    """
    root = backend_for(url, permissions=permissions, quota=quota, fsync=fsync)
    if isinstance(root, PosixFSBackend):
        base = Path(root.base)

        def make(name: str) -> Backend:
            path = base / validate_repository_name(name)
            assert path.parent == base
            return PosixFSBackend(path, permissions=permissions, quota=quota, fsync=fsync)

        return make
    if isinstance(root, MemoryBackend) and root.name:
        prefix = root.name

        def make_in_memory(name: str) -> Backend:
            return MemoryBackend(f"{prefix}/{validate_repository_name(name)}", permissions=permissions, quota=quota)

        return make_in_memory
    raise ValueError("--repos serves file: (or named memory:) stores, one directory per repository")


def activated_socket() -> socket.socket:
    """The listening socket systemd passed (``LISTEN_FDS=1``, fd 3); RuntimeError if there is none."""
    count = int(os.environ.get("LISTEN_FDS", "0"))
    pid = os.environ.get("LISTEN_PID")
    if count != 1 or (pid is not None and int(pid) != os.getpid()):
        raise RuntimeError("--socket-activation needs exactly one socket passed by systemd (LISTEN_FDS=1)")
    sock = socket.socket(fileno=3)
    sock.setblocking(False)
    return sock


class _EscapingAccessLogger(AbstractAccessLogger):
    """One line per request; control characters and quotes escaped, credentials never logged."""

    @property
    def enabled(self) -> bool:
        """Whether lines are logged at all (aiohttp skips the logger otherwise: ``--log-level WARNING``)."""
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        peer = request.remote or "unix"
        target = _escaped(f"{request.method} {request.rel_url}")
        agent = _escaped(request.headers.get("User-Agent", "-"))
        self.logger.info('%s "%s" %s %s %.6f "%s"', peer, target, response.status, response.body_length, time, agent)


LOG_BACKLOG = 10_000
"""Log records waiting for the writer thread at most; more are dropped (and counted) while it is stuck."""
LOG_LINGER = 0.02
"""Seconds the writer thread waits, once it has written all it had, before it waits for the next record:
records logged meanwhile (an access-log line per request) need no wake-up each."""


class _LingeringQueueListener(logging.handlers.QueueListener):
    """A ``QueueListener`` whose thread is woken once per `LOG_LINGER` under load, not once per record:
    each wake-up of a sleeping thread is a futex call for the event loop and a context switch (about
    8 futex calls per request were the access log's). An idle server's first line is written at once."""

    def __init__(self, backlog: queue.Queue[logging.LogRecord], *handlers: logging.Handler) -> None:
        super().__init__(backlog, *handlers, respect_handler_level=True)
        self.backlog = backlog

    def dequeue(self, block: bool) -> logging.LogRecord:
        """The next record; when none waits, first a pause of `LOG_LINGER` for more to gather."""
        if block and self.backlog.empty():
            time.sleep(LOG_LINGER)
        return self.backlog.get(block)


class _DroppingQueueHandler(logging.handlers.QueueHandler):
    """Hands records to the writer thread; drops them while its backlog is full, and says how many."""

    def __init__(self, backlog: queue.Queue[logging.LogRecord]) -> None:
        super().__init__(backlog)
        self.dropped = 0

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        """The record with its message made final (its arguments could change before the writer thread
        formats it), as ``QueueHandler.prepare`` does, but without formatting the whole line and copying
        the record on the event loop: this handler is the root logger's only one, nobody else sees it.
        A record with an exception goes the standard way (its traceback is formatted now)."""
        if record.exc_info or record.stack_info:
            prepared: logging.LogRecord = super().prepare(record)
            return prepared
        record.msg = record.getMessage()
        record.args = None
        return record

    def enqueue(self, record: logging.LogRecord) -> None:
        if self.dropped:
            note = logging.LogRecord(
                "aiodepot.server",
                logging.WARNING,
                __file__,
                0,
                "%d log lines dropped: the log output was stuck",
                (self.dropped,),
                None,
            )
            try:
                self.queue.put_nowait(note)
            except queue.Full:
                self.dropped += 1
                return
            self.dropped = 0
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1


@contextlib.contextmanager
def logging_off_the_loop() -> Iterator[_DroppingQueueHandler]:
    """Send the root logger's records to a thread that writes them: the event loop formats a line and
    queues it, so a slow or stuck log output (a full pipe, a stalled journal) never holds up requests.
    At exit the writer finishes what is queued."""
    root = logging.getLogger()
    handlers = root.handlers[:]
    backlog: queue.Queue[logging.LogRecord] = queue.Queue(LOG_BACKLOG)
    handler = _DroppingQueueHandler(backlog)
    listener = _LingeringQueueListener(backlog, *handlers)
    root.handlers = [handler]
    listener.start()
    try:
        yield handler
    finally:
        root.handlers = handlers
        listener.stop()


def _escaped(text: str) -> str:
    """``text`` for a log line: control characters, non-ASCII, backslashes and double quotes escaped."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return text  # the common case, as it is
    return text.encode("unicode_escape").decode("ascii").replace('"', '\\"')


def _tls_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


async def serve(
    backend: Backend | None = None,
    *,
    repos: Callable[[str], Backend] | None = None,
    private_repos: bool = False,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    unix_socket: str | None = None,
    username: str | None = None,
    password: str | None = None,
    htpasswd: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    socket_activation: bool = False,
    stdio: bool = False,
    sock: socket.socket | None = None,
    max_body_size: int | None = None,
    idle_timeout: float = 75.0,
    request_timeout: float | None = None,
    admin_port: int | None = None,
    max_open_repos: int = MAX_OPEN_REPOS,
    max_gather_size: int = MAX_GATHER_SIZE,
    ready: asyncio.Event | None = None,
) -> None:
    """Serve ``backend`` (or ``repos``) until cancelled, SIGTERM/SIGINT, or (``stdio``) the end of stdin.

    ``sock`` is a listening socket to serve on (bound by the caller) instead of ``host``/``port``. SIGHUP
    re-reads the htpasswd file.
    """
    # aiohttp's own answers (a malformed request line, a bad header) skip the app's hooks and name the Python
    # and aiohttp versions in their Server header: the process that serves names none
    web_response.SERVER_SOFTWARE = SERVER_HEADER  # type: ignore[attr-defined]
    authenticator: Authenticator | None = HtpasswdAuth(htpasswd) if htpasswd else None
    if bool(tls_cert) != bool(tls_key):
        raise ValueError("--tls-cert and --tls-key go together")
    tls = _tls_context(tls_cert, tls_key) if tls_cert and tls_key else None
    server = StoreServer(
        backend,
        repos=repos,
        private_repos=private_repos,
        username=username,
        password=password,
        authenticator=authenticator,
        max_body_size=max_body_size,
        request_timeout=request_timeout,
        max_open_repos=max_open_repos,
        max_gather_size=max_gather_size,
    )
    access_log = {} if stdio else {"access_log": logger, "access_log_class": _EscapingAccessLogger}
    runner = web.AppRunner(server.make_app(), keepalive_timeout=idle_timeout, **access_log)  # type: ignore[arg-type]
    await runner.setup()
    admin: web.AppRunner | None = None
    try:
        if stdio:
            logger.info("serving on stdin/stdout")
            if ready is not None:
                ready.set()
            await bridge_stdio(runner)
            return
        if sock is not None or socket_activation:
            site: web.BaseSite = web.SockSite(runner, sock or activated_socket(), ssl_context=tls)
        elif unix_socket:
            site = web.UnixSite(runner, unix_socket, ssl_context=tls)
        else:
            site = web.TCPSite(runner, host, port, reuse_address=True, ssl_context=tls)
        await site.start()
        logger.info("serving %s on %s", "repositories" if repos else type(backend).__name__, site.name)
        if admin_port is not None:
            admin = web.AppRunner(server.make_admin_app(), access_log=None)
            await admin.setup()
            admin_site = web.TCPSite(admin, host, admin_port, reuse_address=True, ssl_context=tls)
            await admin_site.start()
            logger.info("metrics and OpenAPI on %s", admin_site.name)
        if ready is not None:
            ready.set()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        with contextlib.ExitStack() as handlers:
            for signum, action in (
                (signal.SIGTERM, stop.set),
                (signal.SIGINT, stop.set),
                (signal.SIGHUP, _reloader(authenticator)),
            ):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.add_signal_handler(signum, action)
                    handlers.callback(loop.remove_signal_handler, signum)
            await stop.wait()
    finally:
        if admin is not None:
            await admin.cleanup()
        await runner.cleanup()


def _reloader(authenticator: Authenticator | None) -> Callable[[], None]:
    def reload() -> None:
        if authenticator is not None:
            logger.info("SIGHUP: reloading the users")
            authenticator.reload()

    return reload


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aiodepot-server-rest", description="Serve an aiodepot backend over the borgstore REST protocol (v1)."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on (default: %(default)s)")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--backend", help="store URL, e.g. file:///srv/depot (or FILE:relative/path)")
    where.add_argument(
        "--repos", help="serve many stores: /<name>/... is the store <URL>/<name>, e.g. file:///srv/repos"
    )
    parser.add_argument("--private-repos", action="store_true", help="with --repos: each user reaches only /<user>/")
    parser.add_argument("--unix-socket", help="listen on this unix socket instead of TCP")
    parser.add_argument("--htpasswd", help="an htpasswd file with bcrypt hashes (re-read on SIGHUP)")
    parser.add_argument("--no-auth", action="store_true", help="allow serving TCP without authentication")
    parser.add_argument("--tls-cert", help="TLS certificate (PEM); TLS 1.2 at least")
    parser.add_argument("--tls-key", help="TLS private key (PEM)")
    parser.add_argument("--append-only", action="store_true", help="no overwrite, no delete (permissions lrw)")
    parser.add_argument("--admin-port", type=int, help="serve /metrics and /openapi.json on this port")
    parser.add_argument("--username", help="HTTP Basic username (with --password)")
    parser.add_argument("--password", help="HTTP Basic password (or AIODEPOT_SERVER_PASSWORD)")
    parser.add_argument("--permissions", help="a permission shortcut (e.g. borgbackup-no-delete) or a JSON object")
    parser.add_argument("--quota", type=int, help="quota in bytes")
    parser.add_argument("--fsync", action="store_true", help="file stores: make each store durable before answering")
    parser.add_argument("--socket-activation", action="store_true", help="use the socket systemd passes (fd 3)")
    parser.add_argument("--stdio", action="store_true", help="speak HTTP over stdin/stdout (for rest:// clients)")
    parser.add_argument("--max-body-size", type=int, help="refuse bodies larger than this many bytes with 413")
    parser.add_argument("--idle-timeout", type=float, default=75.0, help="close idle connections after this many s")
    parser.add_argument("--request-timeout", type=float, help="fail requests that take longer than this many s")
    parser.add_argument(
        "--max-open-repos",
        type=int,
        default=MAX_OPEN_REPOS,
        help="with --repos: idle repositories kept open, least recently used closed first (default: %(default)s)",
    )
    parser.add_argument(
        "--max-gather-size",
        type=int,
        default=MAX_GATHER_SIZE,
        help="most bytes one gather or defrag may name; more is refused with 413 (default: %(default)s)",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default: %(default)s)")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """The ``aiodepot-server-rest`` command (and ``python -m aiodepot.server``)."""
    args = _parser().parse_args(argv)
    # the lines name no thread or process: a record need not look them up (~10 µs of each request's line)
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    with logging_off_the_loop():
        _main(args)


def _main(args: argparse.Namespace) -> None:
    password = args.password or os.environ.get("AIODEPOT_SERVER_PASSWORD")
    try:
        permissions = args.permissions
        if args.append_only:
            if permissions is not None:
                raise ValueError("--append-only and --permissions exclude each other")
            permissions = '{"": "lrw"}'
        backend = repos = None
        if args.repos:
            repos = repositories_below(args.repos, permissions=permissions, quota=args.quota, fsync=args.fsync)
        else:
            backend = backend_for(args.backend, permissions=permissions, quota=args.quota, fsync=args.fsync)
        tcp = not (args.stdio or args.socket_activation or args.unix_socket)
        if tcp and not (args.username or args.htpasswd or args.no_auth):
            raise ValueError(
                "refusing to serve TCP without authentication: give --htpasswd or --username/--password, "
                "or --no-auth to serve everyone who can connect"
            )
        asyncio.run(
            serve(
                backend,
                repos=repos,
                private_repos=args.private_repos,
                host=args.host,
                port=args.port,
                unix_socket=args.unix_socket,
                username=args.username,
                password=password,
                htpasswd=args.htpasswd,
                tls_cert=args.tls_cert,
                tls_key=args.tls_key,
                socket_activation=args.socket_activation,
                stdio=args.stdio,
                max_body_size=args.max_body_size,
                idle_timeout=args.idle_timeout,
                request_timeout=args.request_timeout,
                admin_port=args.admin_port,
                max_open_repos=args.max_open_repos,
                max_gather_size=args.max_gather_size,
            )
        )
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"aiodepot-server-rest: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        pass
