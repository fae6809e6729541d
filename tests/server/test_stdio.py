"""``--stdio``: one HTTP connection over the process's pipes, requests answered one after the other."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import IO

ACCEPT = b"Accept: application/vnd.x.borgstore.rest.v1\r\n"


def exchange(stdin: IO[bytes], stdout: IO[bytes], request: bytes) -> tuple[int, bytes]:
    """Send one request; read its answer (status, body)."""
    stdin.write(request)
    stdin.flush()
    status = int(stdout.readline().split()[1])
    length, chunked = 0, False
    while (line := stdout.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
        chunked |= name.lower() == "transfer-encoding" and "chunked" in value
    if not chunked:
        return status, stdout.read(length) if not request.startswith(b"HEAD") else b""
    body = b""
    while size := int(stdout.readline().strip(), 16):
        body += stdout.read(size + 2)[:-2]
    stdout.readline()
    return status, body


def test_requests_without_host_and_with_chunked_bodies(tmp_path: Path) -> None:
    """A request without Host (HTTP/1.1 wants one, but a pipe has no host; borgstore's server takes it) and a
    chunked body are served in turn, on one connection, until stdin closes."""
    command = [sys.executable, "-m", "aiodepot.server", "--stdio", "--backend", (tmp_path / "s").as_uri()]
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        pipes = proc.stdin, proc.stdout
        assert exchange(*pipes, b"POST /?cmd=create HTTP/1.1\r\n" + ACCEPT + b"\r\n")[0] == 200
        plain = b"POST /one HTTP/1.1\r\n" + ACCEPT + b"Content-Length: 5\r\n\r\nfirst"
        assert exchange(*pipes, plain)[0] == 200
        chunked = b"POST /two HTTP/1.1\r\nHost: x\r\n" + ACCEPT + b"Transfer-Encoding: chunked\r\n\r\n"
        chunked += b"3\r\nsec\r\n3;ext=1\r\nond\r\n0\r\nX-Trailer: t\r\n\r\n"
        assert exchange(*pipes, chunked)[0] == 200
        assert exchange(*pipes, b"HEAD /one HTTP/1.1\r\n" + ACCEPT + b"\r\n") == (200, b"")
        status, listing = exchange(*pipes, b"GET / HTTP/1.1\r\n" + ACCEPT + b"\r\n")
        assert status == 200 and [item["name"] for item in json.loads(listing)] == ["one", "two"]
        assert exchange(*pipes, b"GET /two HTTP/1.1\r\n" + ACCEPT + b"\r\n") == (200, b"second")
        bad = b"POST /three HTTP/1.1\r\n" + ACCEPT + b"Content-Length: x\r\n\r\n"
        assert exchange(*pipes, bad)[0] == 400  # framing aiohttp refuses is passed on for it to refuse
        proc.stdin.close()
        assert proc.wait(timeout=10) == 0
    assert (tmp_path / "s" / "one").read_bytes() == b"first"
    assert not (tmp_path / "s" / "three").exists()
