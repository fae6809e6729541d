"""moto's S3 server with HTTP/1.1 keep-alive: ``python -P tests/servers/moto_keepalive.py -p PORT [-H HOST]``.

``python -m moto.server`` runs moto's WSGI app on werkzeug's development server (``run_simple``, a thread per
connection), which ends every response with ``Connection: close``: werkzeug's handler, built on
``http.server``, cannot tell how much of a request body the app left unread, so it never reads a second
request from a connection. Every request then pays a new TCP connection on both sides, which S3 and the
S3-compatible services do not ask for. This runs the same app on the same server with one change: a request
with a ``Content-Length`` body (or none) has its body read whole before the app sees it, werkzeug's drain of
the connection after the response is skipped (it would read the client's next request), and the connection
stays open unless the client asked to close it. A chunked request body still closes the connection.
"""

from __future__ import annotations

import argparse
import io
import os
import socket
from typing import Any

from werkzeug.serving import WSGIRequestHandler, run_simple


class _Readable:
    """Stands for the connection while werkzeug's handler drains it after a response: a socket that is always
    readable, so the drain's wait returns at once (werkzeug reads whatever follows a response, which on a kept
    connection is the client's next request)."""

    _pair = socket.socketpair()
    _pair[1].send(b"x")

    def fileno(self) -> int:
        """The always-readable socket's descriptor."""
        return self._pair[0].fileno()


class _Empty:
    """Stands for the request stream during that drain: nothing left to read."""

    def read(self, size: int = -1) -> bytes:
        """No bytes."""
        return b""


class KeepAliveHandler(WSGIRequestHandler):
    """werkzeug's request handler, keeping the connection where the request's body was read whole."""

    _reusable = False

    def setup(self) -> None:
        """Set up the connection's streams; no Nagle delay (on a kept connection, the body written after the
        headers would otherwise wait for the client's delayed ACK: 40 ms a request)."""
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def run_wsgi(self) -> None:
        """Run the app for one request; on a connection that stays open, without werkzeug's drain."""
        self._reusable = "chunked" not in self.headers.get("Transfer-Encoding", "").lower()
        if not self._reusable:
            super().run_wsgi()
            return
        self._socket, self._stream = self.connection, self.rfile
        self.connection, self.rfile = _Readable(), _Empty()  # type: ignore[assignment]
        try:
            super().run_wsgi()
        finally:
            self.connection, self.rfile = self._socket, self._stream

    def make_environ(self) -> Any:
        """The WSGI environ, the body of a ``Content-Length`` request read before the app runs (so nothing of
        it is left on the connection, whatever the app reads)."""
        environ = super().make_environ()
        if self._reusable:
            environ["werkzeug.socket"] = self._socket
            length = int(environ.get("CONTENT_LENGTH") or 0)
            environ["wsgi.input"] = io.BytesIO(self._stream.read(length) if length > 0 else b"")
        return environ

    def send_header(self, keyword: str, value: str) -> None:
        """Send a header; werkzeug's ``Connection: close`` only where the connection cannot be reused."""
        closing = keyword.lower() == "connection" and value.lower() == "close"
        if closing and self._reusable and not self.close_connection:
            return
        super().send_header(keyword, value)


def main() -> None:
    """Serve moto's app (as ``python -m moto.server`` does) with :class:`KeepAliveHandler`."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args()
    os.environ.setdefault("MOTO_PORT", str(args.port))
    app = DomainDispatcherApplication(create_backend_app)
    app.debug = True  # as moto.server sets it
    run_simple(args.host, args.port, app, threaded=True, request_handler=KeepAliveHandler)


if __name__ == "__main__":
    main()
