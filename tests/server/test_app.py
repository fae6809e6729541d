"""aiodepot's REST server on the wire: checks, statuses, bodies, authentication, permissions, quota."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from aiodepot import errors
from aiodepot.backends.memory import MemoryBackend
from aiodepot.backends.posixfs import PosixFSBackend
from aiodepot.protocol import ACCEPT, HASH_HEADER, error_for_status, status_for_error
from tests.servers.rest import ThreadedServer

HEADERS = {"Accept": ACCEPT}


def memory(**options: Any) -> MemoryBackend:
    return MemoryBackend(f"server-{uuid.uuid4().hex}", **options)


@pytest.fixture
def server() -> Iterator[ThreadedServer]:
    with ThreadedServer(memory(), max_body_size=32 * 1024 * 1024) as running:
        yield running


async def call(
    server: ThreadedServer, method: str, path: str, *, headers: dict[str, str] | None = None, **kwargs: Any
) -> tuple[int, bytes, dict[str, str]]:
    data = kwargs.get("data")
    if isinstance(data, bytes) and len(data) > 1024 * 1024:
        kwargs["data"] = io.BytesIO(data)  # aiohttp streams a file-like body; raw bytes that big make it warn
    async with aiohttp.ClientSession() as session:
        url = server.url + path
        async with session.request(method, url, headers=headers if headers is not None else HEADERS, **kwargs) as r:
            return r.status, await r.read(), dict(r.headers)


def raw_exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
    return b"".join(chunks)


async def test_accept_is_checked_before_auth() -> None:
    with ThreadedServer(memory(), username="u", password="p") as server:
        status, body, _ = await call(server, "GET", "/", headers={})
        assert status == 406
        status, body, headers = await call(server, "GET", "/")
        assert status == 401
        assert body == b"Unauthorized"
        assert headers["WWW-Authenticate"] == 'Basic realm="BorgStore REST Server"'


@pytest.mark.parametrize(
    ("credentials", "expected"),
    [(("u", "p"), 200), (("u", "wrong"), 401), (("wrong", "p"), 401), (("", ""), 401), (("u", ""), 401)],
)
async def test_basic_authentication(credentials: tuple[str, str], expected: int) -> None:
    with ThreadedServer(memory(), username="u", password="p") as server:
        token = base64.b64encode(":".join(credentials).encode()).decode()
        status, _, _ = await call(
            server, "POST", "/?cmd=create", headers={**HEADERS, "Authorization": f"Basic {token}"}
        )
        assert status == expected
    with ThreadedServer(memory(), username="u", password="p") as server:
        garbage = {**HEADERS, "Authorization": "Basic !!!not-base64"}
        assert (await call(server, "POST", "/?cmd=create", headers=garbage))[0] == 401
        token = base64.b64encode(b"no-colon").decode()
        assert (await call(server, "POST", "/?cmd=create", headers={**HEADERS, "Authorization": f"Basic {token}"}))[
            0
        ] == 401


async def test_protocol_basics(server: ThreadedServer) -> None:
    assert (await call(server, "HEAD", "/"))[0] == 410  # not created yet
    assert (await call(server, "POST", "/?cmd=create"))[0] == 200
    assert (await call(server, "POST", "/?cmd=create"))[0] == 200  # an empty store may be created again
    payload = b"hello world"
    status, _, _ = await call(
        server, "POST", "/ns/item", data=payload, headers={**HEADERS, HASH_HEADER: hashlib.sha256(payload).hexdigest()}
    )
    assert status == 200
    assert (await call(server, "POST", "/?cmd=create"))[0] == 409
    status, body, headers = await call(server, "GET", "/ns/item")
    assert (status, body) == (200, payload)
    assert headers["Cache-Control"] == "no-store, no-cache, must-revalidate, max-age=0"
    for range_header, expected in (("bytes=0-4", b"hello"), ("bytes=6-", b"world"), ("bytes=-3", b"rld")):
        status, body, _ = await call(server, "GET", "/ns/item", headers={**HEADERS, "Range": range_header})
        assert (status, body) == (206, expected)
    status, body, headers = await call(server, "HEAD", "/ns/item")
    assert (status, body) == (200, b"")
    assert headers["Content-Length"] == "11"
    assert headers["X-BorgStore-Is-Directory"] == "false"
    assert float(headers["X-BorgStore-Mtime"]) > 0
    assert (await call(server, "HEAD", "/ns"))[2]["X-BorgStore-Is-Directory"] == "true"
    status, body, _ = await call(server, "GET", "/ns/")
    assert status == 200
    assert [entry["name"] for entry in json.loads(body)] == ["item"]
    status, body, _ = await call(server, "GET", "/")
    assert [entry["name"] for entry in json.loads(body)] == ["ns"]
    assert (await call(server, "POST", "/ns/item?cmd=hash&algorithm=sha256"))[1] == hashlib.sha256(
        payload
    ).hexdigest().encode()
    assert json.loads((await call(server, "POST", "/?cmd=quota"))[1]) == {"limit": -1, "usage": -1}
    body = json.dumps([["ns/item", 0, 5], ["ns/item", -5, 5]]).encode()
    assert (await call(server, "POST", "/?cmd=gather", data=body))[1] == b"helloworld"
    status, body, _ = await call(
        server, "POST", "/?cmd=defrag&algorithm=sha256&namespace=ns", data=json.dumps([["ns/item", 0, 5]])
    )
    assert (status, body) == (200, f"ns/{hashlib.sha256(b'hello').hexdigest()}".encode())
    assert (await call(server, "POST", "/?cmd=defrag", data=b"[]"))[0] == 400
    assert (await call(server, "POST", "/?cmd=move&current=ns/item"))[0] == 400
    assert (await call(server, "POST", "/?cmd=move&current=ns/item&new=ns/moved"))[0] == 200
    assert (await call(server, "GET", "/ns/item"))[0] == 404
    assert (await call(server, "DELETE", "/ns/moved"))[0] == 200
    assert (await call(server, "DELETE", "/ns/moved"))[0] == 404
    assert (await call(server, "POST", "/dir?cmd=mkdir"))[0] == 200
    assert (await call(server, "DELETE", "/dir?cmd=rmdir"))[0] == 200
    assert (await call(server, "PUT", "/ns/item"))[0] == 501
    assert (await call(server, "PATCH", "/ns/item"))[0] == 501
    assert (await call(server, "POST", "/ns/Upper", data=b"x"))[0] == 400
    assert (await call(server, "POST", "/ns/x.tmp", data=b"x"))[0] == 400
    assert (await call(server, "GET", "/../etc/passwd"))[0] in (400, 404)
    assert (await call(server, "GET", "/UPPER"))[0] == 400
    assert (await call(server, "POST", "/?cmd=gather", data=b"not json"))[0] == 400
    assert (await call(server, "DELETE", "/?cmd=destroy"))[0] == 200
    assert (await call(server, "HEAD", "/"))[0] == 410


async def test_hash_mismatch_stores_nothing(server: ThreadedServer) -> None:
    await call(server, "POST", "/?cmd=create")
    status, body, _ = await call(
        server, "POST", "/ns/item", data=b"payload", headers={**HEADERS, HASH_HEADER: "00" * 32}
    )
    assert (status, body) == (422, b"Content hash verification failed, please retry")
    assert (await call(server, "GET", "/ns/item"))[0] == 404
    big = b"x" * (9 * 1024 * 1024)  # the streaming path checks the hash at the end, before anything commits
    status, _, _ = await call(server, "POST", "/ns/big", data=big, headers={**HEADERS, HASH_HEADER: "11" * 32})
    assert status == 422
    assert (await call(server, "HEAD", "/ns/big"))[0] == 404


@pytest.mark.parametrize("declared", [100, 20 * 1024 * 1024], ids=["small", "streamed"])
async def test_a_body_shorter_than_declared_stores_nothing(tmp_path: Path, declared: int) -> None:
    backend = PosixFSBackend(tmp_path / "store")
    with ThreadedServer(backend, body_timeout=2) as server:
        await call(server, "POST", "/?cmd=create")
        head = f"POST /ns/short HTTP/1.1\r\nHost: x\r\nAccept: {ACCEPT}\r\nContent-Length: {declared}\r\n\r\n"
        raw_exchange(server.port, head.encode() + b"only part of it")
        assert (await call(server, "HEAD", "/ns/short"))[0] == 404
    leftovers = [p.name for p in (tmp_path / "store").rglob("*") if p.is_file()]
    assert leftovers == []


async def test_chunked_upload(server: ThreadedServer) -> None:
    await call(server, "POST", "/?cmd=create")

    async def chunks():  # type: ignore[no-untyped-def]
        for i in range(20):
            yield bytes([i]) * 100_000

    payload = b"".join(bytes([i]) * 100_000 for i in range(20))
    headers = {**HEADERS, HASH_HEADER: hashlib.sha256(payload).hexdigest()}
    status, _, _ = await call(server, "POST", "/ns/chunked", data=chunks(), headers=headers)
    assert status == 200
    assert (await call(server, "GET", "/ns/chunked"))[1] == payload


async def test_big_values_stream_both_ways(server: ThreadedServer) -> None:
    await call(server, "POST", "/?cmd=create")
    payload = bytes(range(256)) * (20 * 4096)  # 20 MiB: above both streaming thresholds
    headers = {**HEADERS, HASH_HEADER: hashlib.sha256(payload).hexdigest()}
    assert (await call(server, "POST", "/ns/big", data=payload, headers=headers))[0] == 200
    status, body, response_headers = await call(server, "GET", "/ns/big")
    assert status == 200
    assert body == payload
    assert response_headers["Content-Length"] == str(len(payload))
    status, body, _ = await call(server, "GET", "/ns/big", headers={**HEADERS, "Range": "bytes=1000-15000999"})
    assert (status, body) == (206, payload[1000:15001000])


async def test_ranges_tell_size_and_version_and_if_match_is_kept(tmp_path: Path) -> None:
    """A range comes with ``Content-Range`` (the value's size) and, where the backend has versions (posixfs:
    inode, mtime and size of the file read), an ``ETag``; ``If-Match`` with another version is 412, and the
    value is sent only for its own. A plain GET is answered as before (no extra headers)."""
    backend = PosixFSBackend(tmp_path / "store")
    with ThreadedServer(backend, max_body_size=32 * 1024 * 1024) as server:
        await call(server, "POST", "/?cmd=create")
        payload = bytes(range(256)) * (36 * 1024)  # 9 MiB: a range of all of it streams
        headers = {**HEADERS, HASH_HEADER: hashlib.sha256(payload).hexdigest()}
        assert (await call(server, "POST", "/ns/big", data=payload, headers=headers))[0] == 200
        status, body, answer = await call(server, "GET", "/ns/big", headers={**HEADERS, "Range": "bytes=10-109"})
        assert (status, body, answer["Content-Range"]) == (206, payload[10:110], f"bytes 10-109/{len(payload)}")
        etag = answer["Etag"]  # aiohttp spells it so; HTTP header names know no case
        status, body, answer = await call(server, "GET", "/ns/big", headers={**HEADERS, "Range": "bytes=-5"})
        assert (status, body, answer["Content-Range"]) == (
            206,
            payload[-5:],
            f"bytes {len(payload) - 5}-{len(payload) - 1}/{len(payload)}",
        )
        status, body, answer = await call(server, "GET", "/ns/big", headers={**HEADERS, "Range": "bytes=5-"})
        assert (status, body, answer["Content-Range"]) == (
            206,
            payload[5:],
            f"bytes 5-{len(payload) - 1}/{len(payload)}",
        )
        status, body, answer = await call(
            server, "GET", "/ns/big", headers={**HEADERS, "Range": f"bytes={len(payload)}-"}
        )
        assert (status, body) == (206, b"") and "Content-Range" not in answer
        for condition in (etag, f'"x", {etag}', f"W/{etag}", "*"):
            asked = {**HEADERS, "Range": "bytes=0-9", "If-Match": condition}
            assert (await call(server, "GET", "/ns/big", headers=asked))[:2] == (206, payload[:10]), condition
        status, body, answer = await call(server, "GET", "/ns/big")
        assert (status, len(body)) == (200, len(payload)) and "Etag" not in answer and "Content-Range" not in answer
        assert (await call(server, "POST", "/ns/big", data=payload, headers=headers))[0] == 200  # a new file
        asked = {**HEADERS, "Range": "bytes=0-9", "If-Match": etag}
        status, _, answer = await call(server, "GET", "/ns/big", headers=asked)
        assert status == 412 and answer["Etag"] != etag
        assert (await call(server, "GET", "/ns/missing", headers=asked))[0] == 404


async def test_body_size_limit(server: ThreadedServer) -> None:
    await call(server, "POST", "/?cmd=create")
    too_big = b"x" * (32 * 1024 * 1024 + 1)
    status, _, _ = await call(server, "POST", "/ns/huge", data=too_big)
    assert status == 413
    assert (await call(server, "HEAD", "/ns/huge"))[0] == 404


async def test_errors_leak_no_path_and_no_traceback(tmp_path: Path) -> None:
    store = tmp_path / "secret-location" / "store"
    store.mkdir(parents=True)
    (store / "foreign-file").write_text("not a store")
    with ThreadedServer(PosixFSBackend(store)) as server:
        status, body, _ = await call(server, "POST", "/?cmd=create")
        assert status == 409
        text = body.decode()
        assert "secret-location" not in text
        assert str(tmp_path) not in text
        assert "Traceback" not in text


async def test_permissions_through_the_server(tmp_path: Path) -> None:
    base = tmp_path / "store"
    with ThreadedServer(PosixFSBackend(base)) as server:
        await call(server, "POST", "/?cmd=create")
        await call(server, "POST", "/data/existing", data=b"old")
    with ThreadedServer(PosixFSBackend(base, permissions="borgbackup-no-delete")) as server:
        assert (await call(server, "POST", "/data/new", data=b"new"))[0] == 200
        assert (await call(server, "POST", "/data/existing", data=b"overwrite"))[0] == 403
        assert (await call(server, "DELETE", "/data/existing"))[0] == 403
        assert (await call(server, "GET", "/data/existing"))[1] == b"old"
        assert (await call(server, "DELETE", "/?cmd=destroy"))[0] == 403
    assert (base / "data" / "existing").read_bytes() == b"old"


async def test_quota_through_the_server(tmp_path: Path) -> None:
    with ThreadedServer(PosixFSBackend(tmp_path / "store", quota=100)) as server:
        await call(server, "POST", "/?cmd=create")
        assert (await call(server, "POST", "/ns/a", data=b"x" * 80))[0] == 200
        status, _, _ = await call(server, "POST", "/ns/b", data=b"x" * 30)
        assert status == 507
        assert (await call(server, "HEAD", "/ns/b"))[0] == 404
        assert json.loads((await call(server, "POST", "/?cmd=quota"))[1]) == {"limit": 100, "usage": 80}


ERROR_CASES = [
    (errors.ObjectNotFound("x"), 404),
    (errors.StoreNotFound("x"), 410),
    (errors.StoreExists("x"), 409),
    (errors.StoreNotOpen("x"), 412),
    (errors.StoreAlreadyOpen("x"), 412),
    (errors.PermissionDenied("x"), 403),
    (errors.QuotaExceeded("x"), 507),
    (errors.ReadRangeError("x"), 416),
    (errors.InvalidName("x"), 400),
    (errors.IntegrityError("x"), 422),
    (ValueError("x"), 400),
    (errors.BackendError("x"), 500),
    (RuntimeError("x"), 500),
]


@pytest.mark.parametrize(("error", "status"), ERROR_CASES, ids=[type(e).__name__ for e, _ in ERROR_CASES])
def test_error_table(error: Exception, status: int) -> None:
    assert status_for_error(error) == status
    if status == 500:  # stays a generic backend error on the client
        assert type(error_for_status(status, "x")) is errors.BackendError
        return
    message = "x"
    if status == 412:
        message = "Backend must not be open" if isinstance(error, errors.StoreAlreadyOpen) else "Backend must be open"
    back = error_for_status(status, message)
    assert isinstance(back, errors.StoreError)
    if status == 400:  # any malformed request: the client raises BadRequest, a ValueError
        assert isinstance(back, ValueError)
    else:
        assert isinstance(back, type(error))


class Failing(MemoryBackend):
    """A backend whose load raises whatever the test puts in ``failure``."""

    failure: Exception = RuntimeError("boom at /very/secret/path")

    async def load(self, name: str, *, offset: int = 0, size: int | None = None) -> bytes:
        raise self.failure


@pytest.mark.parametrize(("error", "status"), ERROR_CASES, ids=[type(e).__name__ for e, _ in ERROR_CASES])
async def test_error_statuses_on_the_wire(error: Exception, status: int) -> None:
    backend = Failing(f"failing-{uuid.uuid4().hex}")
    backend.failure = error
    with ThreadedServer(backend) as server:
        await call(server, "POST", "/?cmd=create")
        got, body, _ = await call(server, "GET", "/ns/item")
        assert got == status
        if isinstance(error, RuntimeError):
            assert body == b"Internal Server Error"


def test_a_stalled_body_times_out_and_stores_nothing() -> None:
    with ThreadedServer(memory(), body_timeout=0.5) as server:
        raw_exchange(server.port, f"POST /?cmd=create HTTP/1.1\r\nHost: x\r\nAccept: {ACCEPT}\r\n\r\n".encode())
        head = f"POST /ns/slow HTTP/1.1\r\nHost: x\r\nAccept: {ACCEPT}\r\nContent-Length: 1000\r\n\r\n"
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(head.encode() + b"a little")  # and then nothing more
            reply = sock.recv(65536)
        assert reply.startswith(b"HTTP/1.1 408")
        check = f"HEAD /ns/slow HTTP/1.1\r\nHost: x\r\nAccept: {ACCEPT}\r\n\r\n"
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(check.encode())
            assert sock.recv(65536).startswith(b"HTTP/1.1 404")


def test_socket_activation(tmp_path: Path) -> None:
    """systemd hands the server a listening unix socket as fd 3 (LISTEN_FDS=1)."""
    import os
    import subprocess
    import sys

    path = str(tmp_path / "server.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen()

    def as_fd_3() -> None:
        os.dup2(listener.fileno(), 3)

    command = [
        sys.executable,
        "-m",
        "aiodepot.server",
        "--backend",
        (tmp_path / "store").as_uri(),
        "--socket-activation",
    ]
    process = subprocess.Popen(
        command,
        preexec_fn=as_fd_3,
        pass_fds=(listener.fileno(), 3),  # fd 3 too: the child closes every fd not listed after preexec_fn
        env={**os.environ, "LISTEN_FDS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        request = f"POST /?cmd=create HTTP/1.1\r\nHost: x\r\nAccept: {ACCEPT}\r\nConnection: close\r\n\r\n".encode()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(60)  # the connection waits in the socket's backlog until the server is up
            client.connect(path)
            client.sendall(request)
            reply = client.recv(65536)
        assert reply.startswith(b"HTTP/1.1 200")
        assert (tmp_path / "store").is_dir()
    finally:
        process.terminate()
        process.wait(10)
        listener.close()
