"""borgstore's ``borgstore.server.rest`` on aiodepot's REST server.

The names, arguments and command line are borgstore's (``serve``, ``main``, ``BorgStoreRESTServer``, the
``borgstore-server-rest`` command); the server underneath is [`aiodepot.server`][aiodepot.server], an
aiohttp application that answers many requests at once, where borgstore's runs one thread per connection.

```python
from borgstore.server.rest import BorgStoreRESTServer     # with install(), or from this module
from borgstore.store import get_backend

server = BorgStoreRESTServer(("127.0.0.1", 0), get_backend("file:///srv/repo"), "user", "secret")
threading.Thread(target=server.serve_forever).start()    # server.server_address has the port
...
server.shutdown()
server.server_close()
```
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import socket
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ....backends.base import Backend
from ....permissions import PERMISSION_SHORTCUTS
from ....permissions import resolve_permissions as _resolve_permissions
from ....server import run as _run
from .._bridge import SyncBackendBridge
from ..backends._base import AiodepotBackend
from ..backends._utils import parse_range_header
from ..backends.errors import (
    BackendAlreadyExists,
    BackendDoesNotExist,
    BackendError,
    BackendMustBeOpen,
    BackendMustNotBeOpen,
    ObjectNotFound,
    PermissionDenied,
    QuotaExceeded,
    ReadRangeError,
)
from ..store import get_backend

__all__ = [
    "PERMISSION_SHORTCUTS",
    "BackendAlreadyExists",
    "BackendDoesNotExist",
    "BackendError",
    "BackendMustBeOpen",
    "BackendMustNotBeOpen",
    "BorgStoreRESTServer",
    "BorgStoreStdioRESTServer",
    "ObjectNotFound",
    "PermissionDenied",
    "QuotaExceeded",
    "ReadRangeError",
    "get_pre_bound_socket",
    "main",
    "parse_range_header",
    "resolve_permissions",
    "serve",
]

logger = logging.getLogger("borgstore.server.rest")

DEFAULT_PORT = 5618
"""The port ``borgstore-server-rest`` listens on unless told otherwise."""


def resolve_permissions(permissions: str | None) -> dict[str, str] | None:
    """A permission shortcut name (``borgbackup-no-delete``, …) or a JSON object string as a permission map.

    None stays None (no permission checks); anything else is a ValueError naming the accepted forms.
    """
    return _resolve_permissions(permissions)


def get_pre_bound_socket() -> socket.socket:
    """The listening socket systemd passed to this process (socket activation, ``LISTEN_FDS=1``)."""
    return _run.activated_socket()


def _async_backend(backend: Any) -> Backend:
    """The aiodepot backend to serve for a borgstore-style backend object."""
    if isinstance(backend, AiodepotBackend):
        return backend.async_backend
    if isinstance(backend, Backend):
        return backend
    return SyncBackendBridge(backend)


class _Served:
    """One run of aiodepot's server on a private event loop, stoppable from any thread."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._stopped.set()

    def run(self, backend: Backend, **options: Any) -> None:
        """Serve until `stop` (or the end of stdin, for a stdio server); blocks the calling thread."""
        if self._stopping.is_set():
            return
        self._stopped.clear()
        try:
            asyncio.run(self._serve(backend, **options))
        finally:
            self._stopped.set()

    async def _serve(self, backend: Backend, **options: Any) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        if self._stopping.is_set():
            return
        with contextlib.suppress(asyncio.CancelledError):
            await _run.serve(backend, **options)

    def stop(self) -> None:
        """Ask `run` to return, and wait until it has."""
        self._stopping.set()
        loop, task = self._loop, self._task
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # the loop has finished already
                loop.call_soon_threadsafe(task.cancel)
        self._stopped.wait()


class BorgStoreRESTServer:
    """A REST server for ``backend`` on a TCP address ``(host, port)`` (port 0: any free one) or a unix socket
    path, bound when the object is made, as borgstore's (a ``socketserver``) is.

    ``username``/``password`` require HTTP Basic authentication; ``adopted_socket`` is a listening socket
    to use instead of binding one (systemd socket activation).
    """

    def __init__(
        self,
        server_address: tuple[str, int] | str,
        backend: Any,
        username: str | None = None,
        password: str | None = None,
        adopted_socket: socket.socket | None = None,
    ) -> None:
        self.backend = backend
        self.username = username
        self.password = password
        if adopted_socket is not None:
            self.socket = adopted_socket
        elif isinstance(server_address, str):
            self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.socket.bind(server_address)
            self.socket.listen(128)
        else:
            host, port = server_address
            self.socket = socket.create_server((host, port), family=_family(host), reuse_port=False, backlog=128)
        self.server_address: Any = self.socket.getsockname()
        """Where the server listens: ``(host, port)`` with the port assigned, or the unix socket path."""
        self._served = _Served()

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Serve requests until `shutdown` is called (from another thread)."""
        del poll_interval  # the event loop wakes on requests and on shutdown; nothing polls
        self._served.run(_async_backend(self.backend), sock=self.socket, username=self.username, password=self.password)

    def shutdown(self) -> None:
        """Stop `serve_forever` and wait until it has returned."""
        self._served.stop()

    def server_close(self) -> None:
        """Close the listening socket."""
        self.socket.close()

    def __enter__(self) -> BorgStoreRESTServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server_close()


class BorgStoreStdioRESTServer:
    """A REST server for ``backend`` speaking HTTP over this process's stdin and stdout (``rest://`` clients
    start it over ssh); `serve_forever` returns when the client closes stdin."""

    def __init__(self, backend: Any, username: str | None = None, password: str | None = None) -> None:
        self.backend = backend
        self.username = username
        self.password = password
        self._served = _Served()

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Serve requests until stdin ends or `shutdown` is called."""
        del poll_interval
        self._served.run(_async_backend(self.backend), stdio=True, username=self.username, password=self.password)

    def shutdown(self) -> None:
        """Stop `serve_forever` and wait until it has returned."""
        self._served.stop()

    def server_close(self) -> None:
        """Nothing to close: the pipes belong to the process."""


def _family(host: str) -> socket.AddressFamily:
    with contextlib.suppress(ValueError):
        if isinstance(ipaddress.ip_address(host), ipaddress.IPv6Address):
            return socket.AF_INET6
    return socket.AF_INET


def serve(
    host: str,
    port: int,
    backend_url: str,
    username: str | None = None,
    password: str | None = None,
    permissions: dict[str, str] | None = None,
    quota: int | None = None,
    socket_activation: bool = False,
    stdio: bool = False,
) -> None:
    """Serve the store at ``backend_url`` until interrupted (Ctrl-C, SIGTERM) or, with ``stdio``, until stdin
    ends. ``FILE:path`` is a file store relative to the current directory (``~`` allowed), as ``rest://``
    clients send it; ``permissions`` (a resolved map) and ``quota`` are for file stores.
    """
    if backend_url.startswith("FILE:"):
        backend_url = Path(backend_url[len("FILE:") :]).expanduser().resolve().as_uri()
    backend = get_backend(backend_url, permissions=permissions, quota=quota)
    if backend is None:
        raise ValueError(f"Invalid backend URL: {backend_url}")
    server: BorgStoreRESTServer | BorgStoreStdioRESTServer
    if stdio:
        server = BorgStoreStdioRESTServer(backend, username, password)
    else:
        adopted = get_pre_bound_socket() if socket_activation else None
        server = BorgStoreRESTServer((host, port), backend, username, password, adopted_socket=adopted)
        logger.info("serving %s on %s", backend_url, server.server_address)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="borgstore-server-rest", description="Serve a store over borgstore's REST protocol (aiodepot's server)."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on (default: %(default)s)")
    parser.add_argument("--backend", required=True, help="store URL, e.g. file:///srv/repo (or FILE:relative/path)")
    parser.add_argument("--username", help="HTTP Basic username")
    parser.add_argument("--password", help="HTTP Basic password")
    parser.add_argument("--permissions", help="a shortcut (e.g. borgbackup-no-delete) or a JSON object")
    parser.add_argument("--quota", type=int, help="quota in bytes")
    parser.add_argument("--socket-activation", action="store_true", help="use the socket systemd passes (fd 3)")
    parser.add_argument("--stdio", action="store_true", help="speak HTTP over stdin/stdout")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """The ``borgstore-server-rest`` command, with borgstore's options."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        permissions = resolve_permissions(args.permissions)
    except ValueError as exc:
        parser.error(str(exc))
    serve(
        args.host,
        args.port,
        args.backend,
        args.username,
        args.password,
        permissions,
        args.quota,
        args.socket_activation,
        args.stdio,
    )


if __name__ == "__main__":
    main()
