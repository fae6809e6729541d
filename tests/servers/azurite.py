"""Azurite's blob service (the npm package ``azurite``) on loopback, for the Azure tests and benchmark.

Azurite keeps its blobs in memory here (``--inMemoryPersistence``), signs in the published development
account ``devstoreaccount1`` and speaks the Blob service's REST API. ``scripts/test`` installs it into
``~/.cache/aiodepot-ci/azurite``; ``$AZURITE_BLOB`` or the ``PATH`` may name another ``azurite-blob``.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from . import free_port, in_ci, start_process, stop_process, wait_for_port

__all__ = ["ACCOUNT", "KEY", "Azurite", "find_azurite", "start_azurite"]

ACCOUNT = "devstoreaccount1"
"""The emulators' development account."""
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
"""Its published key."""
_CACHED = Path.home() / ".cache" / "aiodepot-ci" / "azurite" / "node_modules" / ".bin" / "azurite-blob"


def find_azurite() -> str | None:
    """The ``azurite-blob`` program: ``$AZURITE_BLOB``, the one ``scripts/test`` installs, or on the PATH."""
    for candidate in (os.environ.get("AZURITE_BLOB"), str(_CACHED), shutil.which("azurite-blob")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@dataclasses.dataclass
class Azurite:
    """A running Azurite blob service: its process and port."""

    process: subprocess.Popen[bytes]
    port: int

    @property
    def endpoint(self) -> str:
        """The blob service's URL, ``http://127.0.0.1:PORT/devstoreaccount1``."""
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    def url(self, container: str, path: str, *, port: int | None = None, key: str = KEY) -> str:
        """A store URL for ``path`` in ``container``, key included (``port``: another way to the server)."""
        endpoint = self.endpoint if port is None else f"http://127.0.0.1:{port}/{ACCOUNT}"
        return f"azure://{ACCOUNT}:{key}@{container}/{path}?endpoint={endpoint}"

    @property
    def connection_string(self) -> str:
        """A connection string for the development account on this server."""
        return f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};BlobEndpoint={self.endpoint};"

    def stop(self) -> None:
        """Stop the server."""
        stop_process(self.process)


def start_azurite() -> Azurite:
    """Start ``azurite-blob`` in memory on a free loopback port; skip (fail under CI) when it is not installed."""
    program = find_azurite()
    if program is None:
        message = "azurite is not installed (npm install azurite; scripts/test installs it)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    port = free_port()
    process = start_process(
        [
            program,
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--inMemoryPersistence",
            "--skipApiVersionCheck",
            "--silent",
            "--loose",
            "--disableTelemetry",  # tests and CI never phone home (Azurite >= 3.34 collects telemetry by default)
        ],
        stdin=subprocess.DEVNULL,
        cwd=os.environ.get("TMPDIR", "/tmp"),  # it may write a debug log or lock files in its cwd
    )
    server = Azurite(process, port)
    try:
        wait_for_port(port, process=process, timeout=60.0)
    except BaseException:
        server.stop()
        raise
    return server
