"""Real servers for the backend tests, started on loopback by session fixtures.

Every fixture that needs an external program asks :func:`require_program` first: on a developer machine
without it the test is skipped with the install hint; under ``CI=true`` it fails, because CI installs
everything the tests need (``scripts/test``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from typing import Any

import pytest

__all__ = [
    "free_port",
    "in_ci",
    "require_module",
    "require_program",
    "start_process",
    "stop_process",
    "wait_for_port",
]

_EXTRA_PATHS = ("/usr/sbin", "/usr/local/sbin", "/sbin")


def in_ci() -> bool:
    """True when running under CI (``CI`` set to a true value)."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_program(name: str, *, apt: str) -> str:
    """The path of program ``name``; skip (fail under CI) naming the Debian package that provides it."""
    path = shutil.which(name) or shutil.which(name, path=os.pathsep.join(_EXTRA_PATHS))
    if path is None:
        message = f"{name} is not installed (apt-get install {apt}; scripts/test installs it)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return path


def require_module(name: str, *, pip: str) -> None:
    """Import check for a Python package a test server needs; skip (fail under CI) with the pip hint."""
    try:
        __import__(name)
    except ImportError:
        message = f"the Python package {pip!r} is not installed (pip install -e '.[dev]')"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(
    port: int, *, host: str = "127.0.0.1", timeout: float = 20.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Wait until something accepts TCP connections on ``host:port`` (or fail, showing why)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            pytest.fail(f"server exited with {process.returncode} before listening on {port}: {_output_of(process)}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"nothing listens on {host}:{port} after {timeout} s")


def start_process(command: list[str], **options: Any) -> subprocess.Popen[bytes]:
    """Start a server with its output going to a log file, never to a pipe nobody reads (a full pipe
    blocks the server mid-request)."""
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop_process
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, **options)
    process.log = log  # type: ignore[attr-defined]
    return process


def _output_of(process: subprocess.Popen[bytes]) -> str:
    log = getattr(process, "log", None)
    if log is None:
        return ""
    log.seek(0)
    return str(log.read()[-4000:].decode(errors="replace"))


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Terminate a server process and reap it (kill it if it does not stop in time)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    log = getattr(process, "log", None)
    if log is not None:
        log.close()
