"""moto's S3 server (``python -m moto.server``) on loopback, for the S3 tests and the S3 benchmark.

moto in server mode is a real HTTP server that speaks the S3 protocol; it keeps its buckets in memory,
accepts any credentials and checks the minimum part size of multipart uploads (5 MiB) as S3 does. It closes
every connection after one response; ``keep_alive=True`` runs it with keep-alive connections, as S3 keeps
them (``moto_keepalive.py``).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import tempfile

from . import free_port, stop_process, wait_for_port

__all__ = ["MotoServer", "start_moto_server"]

_KEEP_ALIVE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "moto_keepalive.py")


@dataclasses.dataclass
class MotoServer:
    """A running moto server: its process, port and the credentials to give it."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: str
    keep_alive: bool = False
    """Whether the server keeps connections open between requests (see ``moto_keepalive.py``)."""
    access_key: str = "testing"
    secret_key: str = "testing"

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def url(self, bucket: str, path: str, *, scheme: str = "s3") -> str:
        """A store URL for ``path`` in ``bucket`` on this server, credentials included."""
        return f"{scheme}:{self.access_key}:{self.secret_key}@{self.endpoint_url}/{bucket}/{path}"

    def stop(self) -> None:
        """Stop the server and remove its log."""
        stop_process(self.process)
        if os.path.exists(self.log_path):
            os.unlink(self.log_path)


def start_moto_server(*, keep_alive: bool = False, script: str | None = None) -> MotoServer:
    """Start ``python -m moto.server`` on a free loopback port and wait until it listens; ``keep_alive``: the
    same app and server keeping connections open between requests (``moto_keepalive.py``); ``script``: this
    Python file instead, which takes moto.server's ``-p PORT -H HOST`` (``benchmarks/moto_probe.py``)."""
    port = free_port()
    # moto logs every request: a file takes it without ever blocking the server (a pipe would fill up).
    log = tempfile.NamedTemporaryFile(prefix="aiodepot-moto-", suffix=".log", delete=False)  # noqa: SIM115
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    if script is None:
        script = _KEEP_ALIVE if keep_alive else None
    program = ["-P", script] if script is not None else ["-m", "moto.server"]  # -P: its folder has a moto.py
    with log:
        process = subprocess.Popen(
            [sys.executable, *program, "-p", str(port), "-H", "127.0.0.1"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    server = MotoServer(process, port, log.name, keep_alive)
    try:
        wait_for_port(port, process=process, timeout=60.0)
    except BaseException:
        server.stop()
        raise
    return server
