"""REST servers for the tests: aiodepot's in a background thread or a subprocess, and borgstore's."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web

from aiodepot.backends.base import Backend
from aiodepot.server import StoreServer

from . import free_port, start_process, stop_process, wait_for_port


class ThreadedServer:
    """aiodepot's server for one backend, on its own event loop in a daemon thread."""

    def __init__(self, backend: Backend | None, *, ssl: Any = None, **options: Any) -> None:
        self.server = StoreServer(backend, **options)
        # Listening sockets bound here, on ports the kernel picks: a port found free and bound later can be
        # taken in between (by any outgoing connection of a parallel test).
        self._sockets = [_listening_socket(), _listening_socket()]
        self.port, self.admin_port = (sock.getsockname()[1] for sock in self._sockets)
        self._ssl = ssl
        scheme = "https" if ssl is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.admin_url = f"{scheme}://127.0.0.1:{self.admin_port}"
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="test-rest-server", daemon=True)

    def __enter__(self) -> ThreadedServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        self._runner = web.AppRunner(self.server.make_app(), access_log=None)
        await self._runner.setup()
        await web.SockSite(self._runner, self._sockets[0], ssl_context=self._ssl).start()
        self._admin = web.AppRunner(self.server.make_admin_app(), access_log=None)
        await self._admin.setup()
        await web.SockSite(self._admin, self._sockets[1], ssl_context=self._ssl).start()

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._admin.cleanup(), self._loop).result(10)
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        for sock in self._sockets:
            sock.close()


def _listening_socket() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock


@contextmanager
def aiodepot_server_process(
    backend_url: str, *args: str, port: int | None = None, pids: list[int] | None = None
) -> Iterator[str]:
    """``python -m aiodepot.server`` on ``port`` (default: a free one); yields its base URL.

    ``pids`` (if given) gets the server's process id, for a benchmark that reads its CPU time.
    """
    port = port or free_port()
    command = [sys.executable, "-m", "aiodepot.server", "--backend", backend_url, "--port", str(port)]
    command += [*args] if "--username" in args or "--htpasswd" in args else ["--no-auth", *args]
    process = start_process(command)
    if pids is not None:
        pids.append(process.pid)
    try:
        wait_for_port(port, process=process)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(process)


@contextmanager
def borgstore_server_process(backend_url: str, *args: str, pids: list[int] | None = None) -> Iterator[str]:
    """borgstore 0.7's ``borgstore.server.rest`` on a free port; yields its base URL (``pids``: as above)."""
    port = free_port()
    command = [sys.executable, "-m", "borgstore.server.rest", "--backend", backend_url, "--port", str(port), *args]
    process = start_process(command, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if pids is not None:
        pids.append(process.pid)
    try:
        wait_for_port(port, process=process)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(process)
