"""Hostile input against aiodepot's REST server over a posixfs store.

The store sits in a directory next to sentinel "secret" files and an ``outside`` directory, and symlinks
planted inside the store point out of it (to a file, to directories, to ``/``, and nowhere). Several
hundred requests are sent as raw bytes over a socket, so nothing between the test and the server
normalises them: traversal (``..``, percent-encoded, double-encoded, overlong UTF-8, backslashes),
absolute paths, NUL, very long names, reserved suffixes, requests through the symlinks with every
method and command, bad ``Range``, hash and ``Content-Length`` headers, bad query parameters, odd methods.

What must hold: no byte from outside the store in any answer, nothing outside the store changed (files,
their mtimes, the directories' mtimes, no new entries), and only 4xx answers (501 for methods the protocol
does not have, as borgstore's server) — never 2xx for a refused request, never another 5xx. The server
percent-decodes a path exactly once and checks the decoded name (``%2e%2e`` is ``..``, refused); what is
left of a double encoding (``%252e`` decodes to ``%2e``) is literal characters of a valid name, which must
land inside the store under exactly that name.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from aiodepot import InvalidName, PermissionDenied, SyncStore
from aiodepot.backends.posixfs import PosixFSBackend, _safe_open
from aiodepot.protocol import ACCEPT, HASH_HEADER
from tests.servers.rest import ThreadedServer

SECRET = b"TOP-SECRET-SENTINEL-7f3a"
REAL = b"a real value inside the store"
MIN_REQUESTS = 500


@dataclass
class Request:
    """One raw request and what it must get."""

    method: bytes
    target: bytes
    headers: dict[bytes, bytes] = field(default_factory=dict)
    body: bytes = b""
    allowed: tuple[int, ...] = ()
    """Exact statuses allowed; empty means any 4xx."""


@dataclass
class Answer:
    status: int
    body: bytes


@dataclass
class Layout:
    parent: Path
    store: Path
    secret: Path
    outside: Path


@pytest.fixture(params=["native", "readlink"])
def confinement(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """posixfs's way of refusing links: openat2 where the kernel has it ("native"), and the fallback that
    checks where /proc/self/fd says an opened file is (forced with "readlink")."""
    if request.param == "readlink":
        monkeypatch.setattr(_safe_open, "_openat2", None)
    return str(request.param)


@pytest.fixture
def layout(tmp_path: Path, confinement: str) -> Layout:
    parent = tmp_path / "parent"
    store = parent / "store"
    outside = parent / "outside"
    outside.mkdir(parents=True)
    secret = parent / "secret.txt"
    secret.write_bytes(SECRET)
    (outside / "secret2.txt").write_bytes(SECRET + b"-2")
    (outside / "sub").mkdir()
    (outside / "sub" / "deep.txt").write_bytes(SECRET + b"-3")
    (store / "data").mkdir(parents=True)
    (store / "data" / "real").write_bytes(REAL)
    # planted symlinks: to a file, to directories, to the root, and to nothing (a write would create it)
    (store / "data" / "link").symlink_to(secret)
    (store / "data" / "dangling").symlink_to(outside / "created-by-server")
    (store / "data" / "evildir").symlink_to(outside)
    (store / "evil").symlink_to(outside)
    # an absolute link to a stand-in for "/": never the real root, so a regression cannot write over the
    # test machine's /etc/passwd (it did once, as root, before posixfs refused links)
    fakeroot = parent / "fakeroot"
    (fakeroot / "etc").mkdir(parents=True)
    (fakeroot / "tmp").mkdir()
    (fakeroot / "etc" / "passwd").write_bytes(SECRET + b"-passwd")
    (fakeroot / "etc" / "hostname").write_bytes(SECRET + b"-hostname")
    (store / "rootlink").symlink_to(fakeroot.resolve())
    (store / "up").symlink_to("..")
    return Layout(parent, store, secret, outside)


@pytest.fixture
def server(layout: Layout) -> Iterator[ThreadedServer]:
    with ThreadedServer(PosixFSBackend(layout.store), body_timeout=5.0) as running:
        yield running


def snapshot(layout: Layout) -> dict[str, tuple[int, ...] | tuple[int, int, str]]:
    """Everything outside the store: files by size, mtime and content hash; directories by mtime."""
    state: dict[str, tuple[int, ...] | tuple[int, int, str]] = {}
    for root, dirs, files in os.walk(layout.parent):
        if Path(root) == layout.parent:
            dirs.remove("store")
        state[root] = (os.stat(root).st_mtime_ns,)
        for name in files:
            path = os.path.join(root, name)
            st = os.stat(path, follow_symlinks=False)
            state[path] = (st.st_size, st.st_mtime_ns, hashlib.sha256(Path(path).read_bytes()).hexdigest())
    return state


async def send(port: int, request: Request) -> Answer:
    """Send ``request`` verbatim on a new connection; read the whole answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        head = [request.method + b" " + request.target + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
        headers = {b"Accept": ACCEPT.encode(), **request.headers}
        if request.body and b"Content-Length" not in headers and b"Transfer-Encoding" not in headers:
            headers[b"Content-Length"] = str(len(request.body)).encode()
        head += [key + b": " + value for key, value in headers.items() if value is not None]
        writer.write(b"\r\n".join(head) + b"\r\n\r\n" + request.body)
        await writer.drain()
        async with asyncio.timeout(20):
            raw = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    status_line, _, rest = raw.partition(b"\r\n")
    parts = status_line.split()
    assert len(parts) >= 2 and parts[0].startswith(b"HTTP/"), (request, raw[:200])
    return Answer(int(parts[1]), rest.partition(b"\r\n\r\n")[2])


def sha(body: bytes) -> bytes:
    return hashlib.sha256(body).hexdigest().encode()


def q(text: str) -> str:
    return quote(text, safe="")


# payloads -----------------------------------------------------------------------------------------------


def refused_paths(layout: Layout) -> list[bytes]:
    """Paths the server must refuse whatever the method: bad names, and names through planted symlinks."""
    secret = str(layout.secret).encode()
    traversal = [
        b"/../secret.txt",
        b"/../../secret.txt",
        b"/data/../../secret.txt",
        b"/data/./../../secret.txt",
        b"/..",
        b"/../",
        b"/data/..",
        b"/..%2fsecret.txt",
        b"/%2E%2E/secret.txt",  # percent-decoded once: ".." in any case
        b"/..%2f..%2fsecret.txt",
        b"/data%2f..%2f..%2fsecret.txt",
        b"/%2e%2e%2f..%2fsecret.txt/..",
        b"/..%5csecret.txt",
        b"/..\\secret.txt",
        b"/data\\..\\..\\secret.txt",
        b"/data/x\\y",
        b"/..;/secret.txt",
        b"/data/...",
        b"/data/..../secret.txt",
        b"/.",
        b"/data/.",
        b"/./data/real",
        b"/data/./real",
        b"/data//real",
        b"/data/a%0ab",  # a decoded newline: aiohttp's router does not match it (404)
        b"http://127.0.0.1/../secret.txt",
        b"http://evil.example/../../secret.txt",
    ]
    bad_names = [
        b"/data/x\xc0\xae",  # raw non-ASCII bytes: refused by the HTTP parser
        b"/\xc0\xae\xc0\xae/secret.txt",
        b"/\xef\xbc\x8e\xef\xbc\x8e/secret.txt",  # fullwidth full stops
        b"/data/x\x00y",
        b"/data/x\x01",
        b"/data/x\x7f",
        b"/data/a b",
        b"/data/a\tb",
        b"/Data/Real",
        b"/data/REAL",
        b"/data/" + b"a" * 200,
        b"/data/" + b"a" * 9000,
        b"/" + b"a/" * 70 + b"b",
        b"/data/x.tmp",
        b"/quota.hid",
        b"/data/x.hid",
        b"/data/real.tmp",
        b"/data/.tmp",
        b"*",
        b"secret.txt",
        b"//" + secret.lstrip(b"/") + b"/..",
        b"/" + secret + b"/../x",
    ]
    through_symlinks = [
        b"/data/link",
        b"/data/dangling",
        b"/data/evildir/secret2.txt",
        b"/data/evildir/sub/deep.txt",
        b"/data/evildir/new",
        b"/data/evildir",
        b"/evil/secret2.txt",
        b"/evil/sub/deep.txt",
        b"/evil/sub",
        b"/evil/new",
        b"/evil",
        b"/rootlink/etc/passwd",
        b"/rootlink/etc/hostname",
        b"/rootlink" + secret,
        b"/rootlink",
        b"/up/secret.txt",
        b"/up/outside/secret2.txt",
        b"/up/store/data/real",
        b"/up",
    ]
    return traversal + bad_names + through_symlinks + decoded_refused_paths()


def literal_paths(layout: Layout) -> list[tuple[bytes, str]]:
    """Paths that look hostile but are valid names once percent-decoded (once): (raw path, the name in the
    store). What is left of a double encoding is literal characters of a name, never decoded again."""
    secret = str(layout.secret)
    return [
        (b"/%252e%252e%252fsecret.txt", "%2e%2e%2fsecret.txt"),
        (b"/%25252e%25252e/secret.txt", "%252e%252e/secret.txt"),
        (b"/%u002e%u002e/secret.txt", "%u002e%u002e/secret.txt"),
        (b"/%252e%252e/secret.txt", "%2e%2e/secret.txt"),
        (b"/%255c..%255csecret.txt".replace(b"..", b"%252e%252e"), "%5c%2e%2e%5csecret.txt"),
        (b"/%2f" + quote(secret.lstrip("/")).encode(), secret.lstrip("/")),
        (b"//" + secret.lstrip("/").encode(), secret.lstrip("/")),  # "//abs/path" strips to a relative name
        (b"/data/%72eal2", "data/real2"),
    ]


def decoded_refused_paths() -> list[bytes]:
    """Paths that decode (once) to names the store refuses: traversal, overlong UTF-8, NUL, blanks."""
    return [
        b"/%2e%2e/secret.txt",
        b"/%2e%2e%2fsecret.txt",
        b"/%2e%2e%2f%2e%2e%2fsecret.txt",
        b"/data%2f%2e%2e%2f%2e%2e%2fsecret.txt",
        b"/%c0%ae%c0%ae/secret.txt",
        b"/%c0%ae%c0%ae%c0%afsecret.txt",
        b"/%e0%80%ae%e0%80%ae/secret.txt",
        b"/%ef%bc%8e%ef%bc%8e/secret.txt",
        b"/data/x%00",
        b"/data/real%00.txt",
        b"/%00",
        b"/data/a%20b",
        b"/%5c%2e%2e%5csecret.txt",
        b"/data/%2e",
        b"/data/%2e%2e",
        b"/data/%2f%2e%2e",
        b"/data/real%2etmp",
        b"/quota%2ehid",
        b"/data/%52eal",
    ]


def refused_requests(layout: Layout) -> list[Request]:
    body = b"pwned"
    requests: list[Request] = []
    for path in refused_paths(layout):
        slash = path if path.endswith(b"/") else path + b"/"
        requests += [
            Request(b"GET", path),
            Request(b"HEAD", path),
            Request(b"DELETE", path),
            Request(b"POST", path, {HASH_HEADER.encode(): sha(body)}, body),
            Request(b"GET", slash),
            Request(b"POST", path + b"?cmd=mkdir"),
            Request(b"DELETE", path + b"?cmd=rmdir"),
            Request(b"POST", path + b"?cmd=hash"),
        ]
    return requests


def query_requests(layout: Layout) -> list[Request]:
    """Commands whose names come in the query string (decoded there) or the JSON body."""
    secret = str(layout.secret)
    hostile = [
        "../secret.txt",
        "../../secret.txt",
        "data/../../secret.txt",
        "..\\secret.txt",
        secret,
        "/" + secret,
        "data/link",
        "data/dangling",
        "data/evildir/secret2.txt",
        "evil/secret2.txt",
        "evil/new",
        "rootlink/etc/passwd",
        "up/secret.txt",
        "data/x\x00",
        "data/x.tmp",
        "quota.hid",
        "",
        "Data/Real",
    ]
    requests: list[Request] = []
    for name in hostile:
        n = q(name).encode()
        requests += [
            Request(b"POST", b"/?cmd=move&current=" + n + b"&new=data/stolen"),
            Request(b"POST", b"/?cmd=move&current=data/real&new=" + n),
            Request(b"POST", b"/?cmd=move&current=" + n + b"&new=" + n),
            Request(b"POST", b"/?cmd=gather", body=json.dumps([[name, 0, 5]]).encode()),
            Request(b"POST", b"/?cmd=gather", body=json.dumps([["data/real", 0, 2], [name, -5, 5]]).encode()),
            Request(b"POST", b"/?cmd=defrag&target=" + n, body=json.dumps([["data/real", 0, 2]]).encode()),
            Request(b"POST", b"/?cmd=defrag&algorithm=sha256", body=json.dumps([[name, 0, 5]]).encode()),
            Request(b"POST", b"/data/real?cmd=hash&algorithm=" + n),
        ]
    sources = json.dumps([["data/real", 0, 2]]).encode()
    requests += [
        Request(b"POST", b"/?cmd=move&current=data/real"),
        Request(b"POST", b"/?cmd=move&new=data/x"),
        Request(b"POST", b"/?cmd=move"),
        Request(b"POST", b"/?cmd=move&current=&new="),
        Request(b"POST", b"/?cmd=nosuchcommand"),
        Request(b"POST", b"/data/real?cmd="),
        Request(b"POST", b"/?cmd=gather", body=b"not json"),
        Request(b"POST", b"/?cmd=gather", body=b'{"a": 1}'),
        Request(b"POST", b"/?cmd=gather", body=b"[[1, 2, 3]]"),
        Request(b"POST", b"/?cmd=gather", body=b'[["data/real", -1, -1]]'),
        Request(b"POST", b"/?cmd=gather", body=b'[["data/real", 0, 99999999999999999999]]'),
        Request(b"POST", b"/?cmd=gather", body=b'[["data/real", 0, 1e400]]'),
        Request(b"POST", b"/?cmd=gather", body=b'[["data/real"]]'),
        Request(b"POST", b"/?cmd=gather", body=b"\xff\xfe"),
        Request(b"POST", b"/?cmd=defrag", body=sources),
        Request(b"POST", b"/?cmd=defrag&target=x&levels=abc", body=sources),
        Request(b"POST", b"/?cmd=defrag&algorithm=sha256&levels=-1", body=sources),
        Request(b"POST", b"/?cmd=defrag&algorithm=sha256&levels=99999999999999999999999", body=sources),
        Request(b"POST", b"/?cmd=defrag&algorithm=nosuchhash", body=sources),
        Request(b"POST", b"/?cmd=defrag&algorithm=sha256&namespace=..", body=sources),
        Request(b"POST", b"/?cmd=defrag&algorithm=sha256&namespace=evil", body=sources),
        Request(b"POST", b"/?cmd=defrag&algorithm=sha256&namespace=" + q(secret).encode(), body=sources),
        Request(b"POST", b"/?cmd=defrag&target=x", body=b"[]" * 3),
        Request(b"POST", b"/data/real?cmd=hash&algorithm=nosuchhash"),
        Request(b"POST", b"/data/real?cmd=hash&algorithm=%00"),
        Request(b"POST", b"/?cmd=hash"),
    ]
    return requests


def header_requests() -> list[Request]:
    """Bad Range, hash, Content-Length and Accept headers on a real item; odd methods."""
    requests: list[Request] = []
    for value in [
        b"bytes=5-1",
        b"bytes=-",
        b"bytes=",
        b"bytes=0-1,2-3",
        b"bytes=1-2, 3-4",
        b"items=0-1",
        b"bytes 0-1",
        b"bytes=--1",
        b"bytes=-1-2",
        b"bytes=+1-2",
        b"bytes=0x10-",
        b"bytes=1e3-",
        b"bytes=\xd9\xa1-",  # Arabic-Indic one, which int() would read as 1
        b"bytes=99999999999999999999-",
        b"bytes=0-99999999999999999999",
        b"bytes=-99999999999999999999",
        b"bytes=" + b"1" * 5000 + b"-",
        b"bytes=9223372036854775808-",
        b"bytes=\x00",
    ]:
        requests.append(Request(b"GET", b"/data/real", {b"Range": value}))
        requests.append(Request(b"GET", b"/data/missing", {b"Range": value}))
    for value in [b"bytes=1000-", b"bytes=1000-2000", b"bytes=9223372036854775807-", b"bytes=0-1099511627775"]:
        # a range past the end comes back short or empty, as the protocol's client expects (206)
        requests.append(Request(b"GET", b"/data/real", {b"Range": value}, allowed=(206,)))
        requests.append(Request(b"GET", b"/data/missing", {b"Range": value}, allowed=(404,)))
    for value in [b"zz", b"0" * 64, b"0" * 10000, b"\xff" * 64, sha(b"something else"), sha(b"pwned") + b"x"]:
        requests.append(Request(b"POST", b"/data/hashed", {HASH_HEADER.encode(): value}, b"pwned"))
    for value in [b"-1", b"abc", b"99999999999999999999", b"1, 2", b"0x10", b"5 5"]:
        requests.append(Request(b"POST", b"/data/sized", {b"Content-Length": value}, b"pwned"))
    requests.append(
        Request(b"POST", b"/data/sized", {b"Content-Length": b"5", b"Transfer-Encoding": b"chunked"}, b"0\r\n\r\n")
    )
    requests.append(Request(b"POST", b"/data/sized", {b"Transfer-Encoding": b"identity"}, b"pwned"))
    for accept in [b"", b"*/*", b"application/json", ACCEPT.encode() + b", */*", ACCEPT.upper().encode()]:
        requests.append(Request(b"GET", b"/data/real", {b"Accept": accept}))
    requests.append(Request(b"GET", b"/data/real", {b"Authorization": b"Basic " + b"A" * 5000}, allowed=(200,)))
    not_in_protocol = (*range(400, 500), 501)  # 501: a method the protocol does not have, as borgstore
    for method in [b"PUT", b"PATCH", b"OPTIONS", b"TRACE", b"PROPFIND", b"MKCOL", b"COPY", b"get", b"GETX", b"BREW"]:
        requests.append(Request(method, b"/data/real", allowed=not_in_protocol))
    requests.append(Request(b"CONNECT", b"127.0.0.1:22", allowed=not_in_protocol))
    requests.append(Request(b"G\x00ET", b"/data/real", allowed=(400,)))
    requests.append(Request(b"GET", b""))
    return requests


# the test --------------------------------------------------------------------------------------------------


async def test_hostile_requests_stay_inside_the_store(layout: Layout, server: ThreadedServer) -> None:
    """Every hostile request gets its 4xx (or the exact status listed), no answer carries a byte from outside
    the store, nothing outside changes, and the server keeps serving."""
    before = snapshot(layout)
    port = server.port
    control = await send(port, Request(b"GET", b"/data/real", allowed=(200,)))
    assert (control.status, control.body) == (200, REAL)

    checked = 0
    failures: list[str] = []

    async def expect(request: Request) -> Answer:
        nonlocal checked
        answer = await send(port, request)
        checked += 1
        if SECRET in answer.body:
            failures.append(f"LEAK {request.method!r} {request.target[:120]!r}: {answer.status}")
        allowed = answer.status in request.allowed if request.allowed else 400 <= answer.status < 500
        if not allowed:
            failures.append(
                f"{request.method!r} {request.target[:120]!r} {request.headers}: {answer.status} {answer.body[:200]!r}"
            )
        return answer

    for request in [*refused_requests(layout), *query_requests(layout), *header_requests()]:
        await expect(request)

    # valid literal names: reads find nothing, a write lands inside the store under exactly that name
    literals = literal_paths(layout)
    for raw, name in literals:
        for request in [
            Request(b"GET", raw, allowed=(404,)),
            Request(b"HEAD", raw, allowed=(404,)),
            Request(b"DELETE", raw, allowed=(404,)),
            Request(b"GET", raw + b"/", allowed=(404,)),
            Request(b"POST", raw + b"?cmd=hash", allowed=(404,)),
            Request(b"DELETE", raw + b"?cmd=rmdir", allowed=(404,)),
        ]:
            await expect(request)
        await expect(Request(b"POST", raw, {HASH_HEADER.encode(): sha(name.encode())}, name.encode(), allowed=(200,)))
        landed = layout.store / name
        if not (landed.is_file() and not landed.is_symlink() and landed.read_bytes() == name.encode()):
            failures.append(f"literal name {name!r} did not land at {landed}")
        assert os.path.realpath(landed).startswith(str(layout.store) + os.sep)
        await expect(Request(b"DELETE", raw, allowed=(200,)))

    assert not failures, f"{len(failures)} of {checked} requests misbehaved:\n" + "\n".join(failures[:40])
    assert snapshot(layout) == before, "something outside the store changed"
    assert layout.secret.read_bytes() == SECRET
    assert not (layout.outside / "created-by-server").exists()
    assert (layout.store / "data" / "real").read_bytes() == REAL
    # the symlinks are still there, untouched: nothing was written or removed through them
    assert os.readlink(layout.store / "data" / "link") == str(layout.secret)
    assert os.readlink(layout.store / "evil") == str(layout.outside)
    after = await send(port, Request(b"GET", b"/data/real", allowed=(200,)))
    assert (after.status, after.body) == (200, REAL), "the server stopped serving after the hostile requests"
    assert checked >= MIN_REQUESTS, checked
    print(f"hostile requests: {checked} ({len(literals)} literal names)")


# the backend itself ----------------------------------------------------------------------------------------


async def test_posixfs_follows_no_planted_symlink(layout: Layout, tmp_path: Path, confinement: str) -> None:
    """Every posixfs operation through a planted link is refused with PermissionDenied (403 on the wire)
    and touches nothing outside; a link that stays inside the store is refused the same way."""
    before = snapshot(layout)
    backend = PosixFSBackend(layout.store)
    await backend.open()
    assert (backend._base_dir is not None) == (_safe_open._openat2 is not None), confinement
    try:
        local = tmp_path / "local"
        local.write_bytes(b"local file")
        through = ["data/link", "data/dangling", "evil/secret2.txt", "data/evildir/sub/deep.txt", "up/secret.txt"]
        through += ["up/store/data/real", "rootlink/etc/passwd"]
        for name in through:
            for call in (
                backend.load(name),
                backend.load(name, offset=-3, size=2),
                backend.info(name),
                backend.hash(name),
                backend.gather([(name, 0, 3)]),
                backend.store(name, b"pwned"),
                backend.delete(name),
                backend.move(name, "data/stolen"),
                backend.move("data/real", name),
                backend.store_file(name, str(local), size=10),
                backend.store_chunks(name, _chunks(b"pwned"), size=5),
                _drain(backend.read_chunks(name)),
            ):
                with pytest.raises(PermissionDenied):
                    await call
            for outcome in await backend.load_batch([name]) + await backend.store_batch([(name, b"x")]):
                assert isinstance(outcome, PermissionDenied), (name, outcome)
        fd = os.open(tmp_path / "copy", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            with pytest.raises(PermissionDenied):
                await backend.read_into("data/link", fd, offset=0, size=3)
        finally:
            os.close(fd)
        for directory in ("evil", "data/evildir", "evil/sub", "up", "up/store/data", "rootlink/tmp"):
            with pytest.raises(PermissionDenied):
                await _drain(backend.list(directory))
            with pytest.raises(PermissionDenied):
                await backend.mkdir(directory + "/new")
        with pytest.raises(PermissionDenied):
            await backend.mkdir("evil")
        with pytest.raises(PermissionDenied):
            await backend.rmdir("evil/sub")
        with pytest.raises(InvalidName):
            await backend.mkdir("data/dangling")  # a link is in the way: nothing is made through it
        # the listing shows no links, and real items still work
        assert [info.name async for info in backend.list("data")] == ["real"]
        assert [info.name async for info in backend.list("")] == ["data"]
        assert await backend.load("data/real") == REAL
        await backend.store("data/new/item", b"fine")
        assert await backend.load("data/new/item") == b"fine"
    finally:
        await backend.close()
    assert snapshot(layout) == before
    assert not (layout.outside / "created-by-server").exists()


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _drain(stream: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in stream]


def test_posixfs_base_may_itself_be_a_symlink(tmp_path: Path, confinement: str) -> None:
    """The base path is the operator's choice: a base reached through a link works as any other."""
    real = tmp_path / "real-store"
    real.mkdir()
    link = tmp_path / "store-link"
    link.symlink_to(real, target_is_directory=True)
    store = SyncStore(link.as_uri(), config={"data/": {"levels": [1]}})
    store.create()
    with store:
        store.store("data/0123", b"v")
        assert store.load("data/0123") == b"v"
        assert [info.name for info in store.list("data")] == ["0123"]
        store.move("data/0123", delete=True)
        assert store.info("data/0123", deleted=True).exists
    assert (real / "data" / "01" / "0123.del").read_bytes() == b"v"
