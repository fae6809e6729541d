"""Running the REST server: over TCP, a systemd-activated unix socket, or stdin/stdout."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from ..backends import backend_from_url
from ..backends.base import Backend
from ..permissions import resolve_permissions
from .app import StoreServer

__all__ = ["backend_for", "main", "serve"]

logger = logging.getLogger("aiodepot.server")

DEFAULT_PORT = 5618


def backend_for(url: str, *, permissions: str | None = None, quota: int | None = None) -> Backend:
    """The backend for ``--backend``: a store URL, or ``FILE:path`` (relative, ``~`` allowed) as borgstore's
    ``rest://`` client sends it."""
    if url.startswith("FILE:"):
        url = Path(url[len("FILE:") :]).expanduser().resolve().as_uri()
    options: dict[str, object] = {}
    if permissions is not None:
        options["permissions"] = resolve_permissions(permissions)
    if quota is not None:
        options["quota"] = quota
    try:
        return backend_from_url(url, **options)
    except TypeError as exc:
        raise ValueError(f"the backend {url.partition(':')[0]}: takes no permissions or quota") from exc


def _activated_socket() -> socket.socket:
    """The listening socket systemd passed (LISTEN_FDS, fd 3)."""
    count = int(os.environ.get("LISTEN_FDS", "0"))
    pid = os.environ.get("LISTEN_PID")
    if count != 1 or (pid is not None and int(pid) != os.getpid()):
        raise RuntimeError("--socket-activation needs exactly one socket passed by systemd (LISTEN_FDS=1)")
    sock = socket.socket(fileno=3)
    sock.setblocking(False)
    return sock


async def _bridge_stdio(runner: web.AppRunner) -> None:
    """Serve one HTTP connection over stdin/stdout: aiohttp gets one end of a socket pair, the other end
    is pumped to and from the pipes. Returns when the client closes stdin and every answer is out."""
    loop = asyncio.get_running_loop()
    server_end, bridge_end = socket.socketpair()
    assert runner.server is not None
    await loop.connect_accepted_socket(runner.server, server_end)
    bridge_reader, bridge_writer = await asyncio.open_connection(sock=bridge_end)
    stdin_reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin_reader), sys.stdin.buffer)
    out_transport, out_protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, sys.stdout.buffer)
    stdout_writer = asyncio.StreamWriter(out_transport, out_protocol, None, loop)

    async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter, close_sink: bool) -> None:
        while chunk := await source.read(1 << 20):
            sink.write(chunk)
            await sink.drain()
        if close_sink and sink.can_write_eof():
            sink.write_eof()

    async with asyncio.TaskGroup() as group:
        group.create_task(pump(stdin_reader, bridge_writer, True))
        group.create_task(pump(bridge_reader, stdout_writer, False))
    bridge_writer.close()
    stdout_writer.close()


async def serve(
    backend: Backend,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    username: str | None = None,
    password: str | None = None,
    socket_activation: bool = False,
    stdio: bool = False,
    max_body_size: int | None = None,
    idle_timeout: float = 75.0,
    request_timeout: float | None = None,
    ready: asyncio.Event | None = None,
) -> None:
    """Serve ``backend`` until cancelled, SIGTERM/SIGINT, or (``stdio``) the end of stdin."""
    server = StoreServer(
        backend, username=username, password=password, max_body_size=max_body_size, request_timeout=request_timeout
    )
    runner = web.AppRunner(server.make_app(), access_log=None if stdio else logger, keepalive_timeout=idle_timeout)
    await runner.setup()
    try:
        if stdio:
            logger.info("serving on stdin/stdout")
            if ready is not None:
                ready.set()
            await _bridge_stdio(runner)
            return
        if socket_activation:
            site: web.BaseSite = web.SockSite(runner, _activated_socket())
        else:
            site = web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
        logger.info("serving %s on %s", type(backend).__name__, site.name)
        if ready is not None:
            ready.set()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        with contextlib.ExitStack() as handlers:
            for signum in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.add_signal_handler(signum, stop.set)
                    handlers.callback(loop.remove_signal_handler, signum)
            await stop.wait()
    finally:
        await runner.cleanup()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aiodepot-server-rest", description="Serve an aiodepot backend over the borgstore REST protocol (v1)."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on (default: %(default)s)")
    parser.add_argument("--backend", required=True, help="store URL, e.g. file:///srv/depot (or FILE:relative/path)")
    parser.add_argument("--username", help="HTTP Basic username (with --password)")
    parser.add_argument("--password", help="HTTP Basic password (or AIODEPOT_SERVER_PASSWORD)")
    parser.add_argument("--permissions", help="a permission shortcut (e.g. borgbackup-no-delete) or a JSON object")
    parser.add_argument("--quota", type=int, help="quota in bytes")
    parser.add_argument("--socket-activation", action="store_true", help="use the socket systemd passes (fd 3)")
    parser.add_argument("--stdio", action="store_true", help="speak HTTP over stdin/stdout (for rest:// clients)")
    parser.add_argument("--max-body-size", type=int, help="refuse bodies larger than this many bytes with 413")
    parser.add_argument("--idle-timeout", type=float, default=75.0, help="close idle connections after this many s")
    parser.add_argument("--request-timeout", type=float, help="fail requests that take longer than this many s")
    parser.add_argument("--log-level", default="INFO", help="logging level (default: %(default)s)")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """The ``aiodepot-server-rest`` command (and ``python -m aiodepot.server``)."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    password = args.password or os.environ.get("AIODEPOT_SERVER_PASSWORD")
    try:
        backend = backend_for(args.backend, permissions=args.permissions, quota=args.quota)
        asyncio.run(
            serve(
                backend,
                host=args.host,
                port=args.port,
                username=args.username,
                password=password,
                socket_activation=args.socket_activation,
                stdio=args.stdio,
                max_body_size=args.max_body_size,
                idle_timeout=args.idle_timeout,
                request_timeout=args.request_timeout,
            )
        )
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"aiodepot-server-rest: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        pass
