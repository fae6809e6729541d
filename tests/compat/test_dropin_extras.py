"""The drop-in's borgstore.server.rest, backends._utils and __main__ (beyond what borgstore's suite checks)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from aiodepot.compat.borgstore.backends._utils import make_range_header, parse_range_header, with_reconnect
from aiodepot.compat.borgstore.backends.errors import BackendError, ObjectNotFound
from aiodepot.compat.borgstore.backends.rest import get_rest_backend
from aiodepot.compat.borgstore.server.rest import BorgStoreRESTServer, resolve_permissions
from aiodepot.compat.borgstore.store import get_backend


@pytest.mark.parametrize(
    ("offset", "size", "total", "header", "parsed"),
    [
        (0, None, None, None, (0, None)),
        (10, None, None, "bytes=10-", (10, None)),
        (10, 5, None, "bytes=10-14", (10, 5)),
        (-7, None, None, "bytes=-7", (-7, None)),
        (-7, 3, 100, "bytes=93-95", (93, 3)),
    ],
)
def test_range_headers_round_trip(
    offset: int, size: int | None, total: int | None, header: str | None, parsed: tuple[int, int | None]
) -> None:
    assert make_range_header(offset, size, total) == header
    assert parse_range_header(header) == parsed


def test_range_header_edge_cases() -> None:
    with pytest.raises(ValueError, match="total_size"):
        make_range_header(-5, 2)
    for whole in ("", "items=0-4", "bytes=0-1,4-5", "bytes=x-y", "bytes=5"):
        assert parse_range_header(whole) == (0, None)


class _Flaky:
    """A borgstore-style backend whose connection drops ``drops`` times."""

    reconnect_wait = 0.0

    def __init__(self, drops: int, *, gone: bool = False) -> None:
        self.drops, self.gone, self.opened, self.reopened = drops, gone, True, 0

    def open(self) -> None:
        self.opened = True
        self.reopened += 1

    def close(self) -> None:
        self.opened = False

    @with_reconnect
    def load(self, name: str) -> bytes:
        if self.drops:
            self.drops -= 1
            raise ConnectionResetError("peer went away")
        return name.encode()

    @with_reconnect(swallow_not_found=True)
    def delete(self, name: str) -> None:
        if self.drops:
            self.drops -= 1
            raise ConnectionResetError("peer went away")
        if self.gone:
            raise ObjectNotFound(name)


def test_with_reconnect_retries_after_a_lost_connection() -> None:
    backend = _Flaky(drops=2)
    assert backend.load("x") == b"x"
    assert backend.reopened == 2
    with pytest.raises(BackendError, match="could not be re-established"):
        _Flaky(drops=10).load("x")
    # a delete whose reply was lost: the retry finds nothing, which is success
    done = _Flaky(drops=1, gone=True)
    done.delete("x")
    with pytest.raises(ObjectNotFound):  # on the first attempt, not-found is a real answer
        _Flaky(drops=0, gone=True).delete("x")


def test_resolve_permissions() -> None:
    assert resolve_permissions(None) is None
    assert resolve_permissions("borgbackup-all") is None
    assert resolve_permissions("borgbackup-read-only") == {"": "lr", "locks": "lrwD"}
    assert resolve_permissions('{"data": "lrw"}') == {"data": "lrw"}
    with pytest.raises(ValueError, match="borgbackup-no-delete"):
        resolve_permissions("everything")


def test_server_object_serves_a_drop_in_backend_until_shutdown(tmp_path: Path) -> None:
    backend = get_backend((tmp_path / "repo").as_uri())
    assert backend is not None
    server = BorgStoreRESTServer(("127.0.0.1", 0), backend, "user", "secret")
    host, port = server.server_address
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = get_rest_backend(f"http://user:secret@{host}:{port}/")
        assert client is not None
        client.create()
        with client:
            client.store("item", b"over the wire")
            assert client.load("item", offset=5) == b"the wire"
        assert (tmp_path / "repo" / "item").read_bytes() == b"over the wire"
        wrong = get_rest_backend(f"http://user:wrong@{host}:{port}/")
        assert wrong is not None
        with pytest.raises(BackendError):
            wrong.open()
    finally:
        server.shutdown()
        server.server_close()
    thread.join(5)
    assert not thread.is_alive()


def _request(proc: Any, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    head = f"{method} {path} HTTP/1.1\r\nHost: stdio\r\nAccept: application/vnd.x.borgstore.rest.v1\r\n"
    proc.stdin.write((head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
    proc.stdin.flush()
    status = int(proc.stdout.readline().split()[1])
    length = 0
    while (line := proc.stdout.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
    return status, proc.stdout.read(length) if method != "HEAD" else b""


def test_command_line_serves_over_stdio_with_borgstores_options(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "aiodepot.compat.borgstore.server.rest", "--stdio", "--backend", "FILE:repo"]
    with subprocess.Popen(command, cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE) as creator:
        assert _request(creator, "POST", "/?cmd=create")[0] == 200
        assert creator.stdin is not None
        creator.stdin.close()
        assert creator.wait(timeout=10) == 0
    command += ["--permissions", "borgbackup-no-delete"]
    proc = subprocess.Popen(command, cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert _request(proc, "POST", "/data/one", b"1")[0] == 200
        status, body = _request(proc, "GET", "/data/")
        assert status == 200 and [item["name"] for item in json.loads(body)] == ["one"]
        assert _request(proc, "DELETE", "/data/one")[0] == 403  # the no-delete shortcut
    finally:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()
        assert proc.wait(timeout=10) == 0
        proc.stdout.close()
    assert (tmp_path / "repo" / "data" / "one").read_bytes() == b"1"


def test_command_line_refuses_unknown_permissions(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "aiodepot.compat.borgstore.server.rest", "--stdio", "--backend", "FILE:r"]
    completed = subprocess.run([*command, "--permissions", "all-of-it"], capture_output=True, text=True, cwd=tmp_path)
    assert completed.returncode == 2 and "all-of-it" in completed.stderr


def test_demo_tours_a_new_store_and_destroys_it_when_asked(tmp_path: Path) -> None:
    url = (tmp_path / "demo").as_uri()
    command = [sys.executable, "-m", "aiodepot.compat.borgstore", url]
    completed = subprocess.run(command, input="DESTROY\n", capture_output=True, text=True, check=True)
    assert "stored config/main" in completed.stdout and "soft-deleted data/" in completed.stdout
    assert "destroyed" in completed.stdout and not (tmp_path / "demo").exists()
    kept = subprocess.run(command, input="no\n", capture_output=True, text=True, check=True)
    assert (tmp_path / "demo").is_dir() and "destroyed" not in kept.stdout
    again = subprocess.run(command, input="", capture_output=True, text=True, check=True)
    assert "exists at" in again.stdout
