"""``aiodepot serve`` and ``aiodepot-server-rest``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from aiodepot import SyncStore
from tests.servers import free_port, start_process, stop_process, wait_for_port


def test_serve_command_serves_a_store(tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "aiodepot", "serve", "--backend", (tmp_path / "s").as_uri(), "--port", str(port)]
    command += ["--username", "u", "--password", "p", "--quota", "1000"]
    process = start_process(command)
    try:
        wait_for_port(port, process=process)
        store = SyncStore(f"http://u:p@127.0.0.1:{port}")
        store.create()
        with store:
            store.store("item", b"served")
            assert store.load("item") == b"served"
            assert store.quota() == {"limit": 1000, "usage": 6}
        store.destroy()
    finally:
        stop_process(process)


def test_server_refuses_bad_options(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "aiodepot.server", "--backend", "nosuch://x"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "unknown store URL scheme" in done.stderr
    assert "Traceback" not in done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "aiodepot.server", "--backend", (tmp_path / "s").as_uri(), "--permissions", "nonsense"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "permissions" in done.stderr
