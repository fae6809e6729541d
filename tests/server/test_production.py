"""The server for production: many repositories, htpasswd users, TLS, unix sockets, append-only,
metrics, OpenAPI and the access log."""

from __future__ import annotations

import datetime
import http.client
import json
import logging
import os
import queue
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from pathlib import Path

import aiohttp
import bcrypt
import pytest
from aiohttp.test_utils import make_mocked_request

from aiodepot import PermissionDenied, RetryPolicy, Store
from aiodepot.backends.memory import MemoryBackend
from aiodepot.backends.rest import RestBackend
from aiodepot.protocol import ACCEPT
from aiodepot.server.auth import HtpasswdAuth
from aiodepot.server.run import LOG_LINGER, _DroppingQueueHandler, _EscapingAccessLogger, _LingeringQueueListener
from tests.servers import free_port, start_process, stop_process, wait_for_port
from tests.servers.rest import ThreadedServer


def htpasswd_file(path: Path, users: dict[str, str]) -> Path:
    lines = [f"{user}:{bcrypt.hashpw(pw.encode(), bcrypt.gensalt(rounds=4)).decode()}" for user, pw in users.items()]
    path.write_text("# users\n" + "\n".join(lines) + "\n")
    return path


def repos_in_memory() -> object:
    prefix = uuid.uuid4().hex
    return lambda name: MemoryBackend(f"{prefix}-{name}")


async def roundtrip(url: str, **options: object) -> bytes:
    store = Store(backend=RestBackend(url, retry=RetryPolicy(attempts=1), **options))  # type: ignore[arg-type]
    await store.create()
    async with store:
        await store.store("item", url.encode())
        value = await store.load("item")
    return value


async def test_many_repositories_are_separate() -> None:
    with ThreadedServer(None, repos=repos_in_memory()) as server:
        assert await roundtrip(server.url + "/alice") == (server.url + "/alice").encode()
        assert await roundtrip(server.url + "/bob") == (server.url + "/bob").encode()
        async with aiohttp.ClientSession(headers={"Accept": ACCEPT}) as session:
            async with session.get(server.url + "/alice/") as response:
                assert [e["name"] for e in await response.json()] == ["item"]
            async with session.get(server.url + "/") as response:
                assert response.status == 403  # no repository named
            async with session.get(server.url + "/Bad/") as response:
                assert response.status == 400


async def test_private_repositories_with_htpasswd(tmp_path: Path) -> None:
    users = htpasswd_file(tmp_path / "htpasswd", {"alice": "alice-pw", "bob": "bob-pw"})
    auth = HtpasswdAuth(users)
    with ThreadedServer(None, repos=repos_in_memory(), private_repos=True, authenticator=auth) as server:
        host = server.url.removeprefix("http://")
        own = f"http://alice:alice-pw@{host}/alice"
        assert await roundtrip(own) == own.encode()
        with pytest.raises(PermissionDenied):
            await roundtrip(f"http://alice:alice-pw@{host}/bob")
        with pytest.raises(PermissionDenied, match="401"):
            await roundtrip(f"http://alice:wrong@{host}/alice")
        with pytest.raises(PermissionDenied, match="401"):
            await roundtrip(f"http://mallory:x@{host}/mallory")


async def test_htpasswd_reload_and_bad_lines(tmp_path: Path) -> None:
    path = htpasswd_file(tmp_path / "htpasswd", {"alice": "one"})
    auth = HtpasswdAuth(path)
    header = "Basic " + __import__("base64").b64encode(b"alice:one").decode()
    assert await auth.authenticate(header) == "alice"
    assert await auth.authenticate(header) == "alice"  # remembered, no second bcrypt
    with path.open("a") as f:
        f.write("plain:not-bcrypt\nbroken line\n")
    htpasswd_file(path, {"alice": "two"})
    assert await auth.authenticate(header) == "alice"  # the file changed, but it is not re-read yet
    auth.reload()
    assert await auth.authenticate(header) is None
    path.unlink()
    auth.reload()  # an unreadable file keeps the users there were
    assert await auth.authenticate("Basic " + __import__("base64").b64encode(b"alice:two").decode()) == "alice"
    with pytest.raises(ValueError, match="htpasswd"):
        HtpasswdAuth(tmp_path / "missing")


def test_sighup_reloads_the_users(tmp_path: Path) -> None:
    users = htpasswd_file(tmp_path / "htpasswd", {"alice": "pw"})
    port = free_port()
    command = [sys.executable, "-m", "aiodepot.server", "--backend", (tmp_path / "s").as_uri(), "--port", str(port)]
    process = start_process([*command, "--htpasswd", str(users)])
    try:
        wait_for_port(port, process=process)

        def status(user: str, password: str) -> int:
            request = f"POST /?cmd=quota HTTP/1.1\r\nHost: x\r\nAccept: {ACCEPT}\r\nConnection: close\r\n"
            token = __import__("base64").b64encode(f"{user}:{password}".encode()).decode()
            request += f"Authorization: Basic {token}\r\n\r\n"
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(request.encode())
                return int(sock.recv(100).split()[1])

        assert status("bob", "new") == 401
        htpasswd_file(users, {"alice": "pw", "bob": "new"})
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while status("bob", "new") == 401 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert status("bob", "new") != 401
    finally:
        stop_process(process)


def test_refuses_tcp_without_authentication(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "aiodepot.server", "--backend", (tmp_path / "s").as_uri(), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "refusing to serve TCP without authentication" in done.stderr


def make_certificate(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]), False
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    return make_certificate(tmp_path)


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
async def test_tls(certificate: tuple[Path, Path]) -> None:
    from aiodepot.server.run import _tls_context

    cert, key = certificate
    with ThreadedServer(MemoryBackend(uuid.uuid4().hex), ssl=_tls_context(str(cert), str(key))) as server:
        trusting = ssl.create_default_context(cafile=str(cert))
        assert await roundtrip(server.url, ssl=trusting) == server.url.encode()
        with pytest.raises(Exception):  # noqa: B017 - the handshake fails: unknown issuer
            await roundtrip(server.url, ssl=ssl.create_default_context())
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.load_verify_locations(str(cert))
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
        with pytest.raises(Exception):  # noqa: B017 - TLS 1.1 is refused
            await roundtrip(server.url, ssl=old)


def test_unix_socket_and_append_only(tmp_path: Path) -> None:
    path = str(tmp_path / "server.sock")
    command = [sys.executable, "-m", "aiodepot.server", "--backend", (tmp_path / "s").as_uri(), "--unix-socket", path]
    process = start_process([*command, "--append-only"])

    def call(method: str, target: str, body: bytes = b"") -> int:
        request = f"{method} {target} HTTP/1.1\r\nHost: x\r\nAccept: {ACCEPT}\r\nConnection: close\r\n"
        request += f"Content-Length: {len(body)}\r\n\r\n"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect(path)
            sock.sendall(request.encode() + body)
            return int(sock.recv(100).split()[1])

    try:
        deadline = time.monotonic() + 20
        while not os.path.exists(path):
            assert time.monotonic() < deadline, "the server did not create its socket"
            time.sleep(0.05)
        assert call("POST", "/?cmd=create") == 200
        assert call("POST", "/data/new", b"first") == 200
        assert call("POST", "/data/new", b"overwrite") == 403
        assert call("DELETE", "/data/new") == 403
        assert call("POST", "/?cmd=move&current=data/new&new=data/other") == 403
        assert call("GET", "/data/new") == 200
    finally:
        stop_process(process)
    assert (tmp_path / "s" / "data" / "new").read_bytes() == b"first"


async def test_metrics_and_openapi() -> None:
    with ThreadedServer(MemoryBackend(uuid.uuid4().hex), username="ops", password="pw") as server:
        await roundtrip(server.url.replace("http://", "http://ops:pw@"))
        async with aiohttp.ClientSession(headers={"Accept": ACCEPT}) as session:
            async with session.get(server.url + "/item") as response:
                assert response.status == 401
            async with session.get(server.admin_url + "/metrics") as response:
                assert response.status == 401  # protected like the store
            auth = {"Authorization": "Basic " + __import__("base64").b64encode(b"ops:pw").decode()}
            async with session.get(server.admin_url + "/metrics", headers=auth) as response:
                text = await response.text()
            async with session.get(server.admin_url + "/openapi.json", headers=auth) as response:
                document = await response.json()
    assert 'aiodepot_requests_total{method="POST",status="200"}' in text
    assert 'aiodepot_errors_total{status="401"} 1' in text
    assert 'aiodepot_request_duration_seconds_bucket{le="+Inf"}' in text
    assert "aiodepot_received_bytes_total" in text
    assert document["openapi"] == "3.1.0"
    assert {"/", "/{name}", "/{name}/"} <= set(document["paths"])
    json.dumps(document)


def test_access_log_escapes_control_characters(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test-access")
    access = _EscapingAccessLogger(logger, "")
    request = make_mocked_request(
        "GET", "/data/x", headers={"User-Agent": "evil\r\ninjected\x1b[31m", "Authorization": "Basic c2VjcmV0"}
    )
    response = aiohttp.web.Response(status=404)
    with caplog.at_level(logging.INFO, logger="test-access"):
        access.log(request, response, 0.01)
    line = caplog.records[0].getMessage()
    assert "\n" not in line
    assert "\r" not in line
    assert "\x1b" not in line
    assert "\\r\\n" in line
    assert "c2VjcmV0" not in line


class SlowBackend(MemoryBackend):
    async def load(self, name: str, *, offset: int = 0, size: int | None = None) -> bytes:
        await __import__("asyncio").sleep(5)
        return b""


async def test_request_timeout() -> None:
    with ThreadedServer(SlowBackend(uuid.uuid4().hex), request_timeout=0.3) as server:
        async with aiohttp.ClientSession(headers={"Accept": ACCEPT}) as session:
            async with session.post(server.url + "/?cmd=create") as response:
                assert response.status == 200
            started = time.monotonic()
            async with session.get(server.url + "/item") as response:
                assert response.status == 503
            assert time.monotonic() - started < 3


def test_idle_connections_are_closed(tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "aiodepot.server", "--backend", (tmp_path / "s").as_uri(), "--port", str(port)]
    process = start_process([*command, "--no-auth", "--idle-timeout", "0.5"])
    try:
        wait_for_port(port, process=process)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(f"POST /?cmd=quota HTTP/1.1\r\nHost: x\r\nAccept: {ACCEPT}\r\n\r\n".encode())
            assert sock.recv(65536).startswith(b"HTTP/1.1")
            time.sleep(1.5)
            assert sock.recv(65536) == b""  # the server hung up on the idle keep-alive connection
    finally:
        stop_process(process)


def test_a_stuck_log_output_does_not_hold_up_requests(tmp_path: Path) -> None:
    """stderr is a pipe nobody reads (it fills after a few hundred access-log lines): the server goes on
    answering, since lines are written by a thread; once the pipe is read, every line arrives."""
    port = free_port()
    command = [sys.executable, "-m", "aiodepot.server", "--backend", "memory://stuck-log", "--port", str(port)]
    process = subprocess.Popen([*command, "--no-auth"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, process=process)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            for i in range(2000):  # ~100 bytes of log each: 3x what a pipe holds
                connection.request("GET", f"/data/{i:064x}", headers={"Accept": ACCEPT})
                response = connection.getresponse()
                response.read()
                assert response.status == 410  # no store there: answered all the same
        finally:
            connection.close()
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    lines = [line for line in output.decode().splitlines() if '"GET /data/' in line]
    assert len(lines) == 2000


def test_the_log_backlog_drops_lines_and_says_how_many() -> None:
    backlog: queue.Queue[logging.LogRecord] = queue.Queue(2)
    handler = _DroppingQueueHandler(backlog)
    logger = logging.getLogger("test-backlog")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        for i in range(5):
            logger.warning("line %d", i)
        assert handler.dropped == 3
        assert [backlog.get_nowait().getMessage() for _ in range(2)] == ["line 0", "line 1"]
        logger.warning("line 5")
        assert [backlog.get_nowait().getMessage() for _ in range(2)] == [
            "3 log lines dropped: the log output was stuck",
            "line 5",
        ]
        assert handler.dropped == 0
    finally:
        logger.removeHandler(handler)


def test_the_log_writer_writes_every_line_in_order_across_its_pauses() -> None:
    backlog: queue.Queue[logging.LogRecord] = queue.Queue()
    written: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            written.append(record.getMessage())

    listener = _LingeringQueueListener(backlog, Collect())
    listener.start()
    logger = logging.getLogger("test-linger")
    logger.propagate = False
    handler = _DroppingQueueHandler(backlog)
    logger.addHandler(handler)
    try:
        for i in range(300):
            logger.warning("line %d", i)
            if i % 100 == 0:
                time.sleep(LOG_LINGER * 2)  # the writer is pausing or waiting when the next lines come
    finally:
        logger.removeHandler(handler)
        listener.stop()
    assert written == [f"line {i}" for i in range(300)]


def test_queued_records_carry_their_final_message_and_tracebacks() -> None:
    handler = _DroppingQueueHandler(queue.Queue())
    changing = ["before"]
    record = handler.prepare(logging.LogRecord("t", logging.INFO, __file__, 1, "value %s", (changing,), None))
    changing[0] = "after"  # what the writer thread formats later is what was logged
    assert record.getMessage() == "value ['before']"
    try:
        raise ValueError("boom")
    except ValueError:
        failed = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed %d", (7,), sys.exc_info())
    prepared = handler.prepare(failed)
    assert prepared.getMessage().startswith("failed 7\nTraceback")
    assert "ValueError: boom" in prepared.getMessage()
