"""Security of ``aiodepot-server-rest`` against a hostile client: a real server process, raw HTTP.

Every request goes out as raw bytes over a socket, so nothing between the test and the server normalises
its path. The repositories root and an "outside" tree (a sibling directory, with sentinel files, a
``quota.hid`` and a stand-in ``etc/passwd``) live in the test's temp directory — nothing ever points at
the real ``/``. After each mode, everything outside the repositories (and every item inside them) is
compared byte for byte with what was there before.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import os
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import bcrypt
import pytest

from aiodepot.backends.posixfs import PosixFSBackend
from aiodepot.errors import PermissionDenied
from aiodepot.protocol import ACCEPT, HASH_HEADER
from aiodepot.server import auth as auth_module
from aiodepot.server.auth import HtpasswdAuth
from aiodepot.server.run import _escaped
from tests.servers import free_port, start_process, stop_process, wait_for_port

SECRET = b"SENTINEL-OUTSIDE-3b9e"
REAL = b"a value inside alice"
MIN_REQUESTS = 2000
MiB = 1024 * 1024


# the layout and the server --------------------------------------------------------------------------------


@dataclass
class Layout:
    top: Path
    repos: Path
    outside: Path


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    top = tmp_path / "top"
    repos, outside = top / "repos", top / "outside"
    for repo in ("alice", "bob"):
        (repos / repo / "data").mkdir(parents=True)
        (repos / repo / "data" / "real").write_bytes(REAL + repo.encode())
        (repos / repo / "data" / "sub").mkdir()
    (outside / "sub").mkdir(parents=True)
    (outside / "secret.txt").write_bytes(SECRET + b"-1")
    (outside / "sub" / "deep.txt").write_bytes(SECRET + b"-2")
    (outside / "quota.hid").write_bytes(b"12345")  # opening a store there once deleted this
    (outside / "data").mkdir()
    (outside / "data" / "real").write_bytes(SECRET + b"-3")
    (top / "secret.txt").write_bytes(SECRET + b"-4")
    (top / "quota.hid").write_bytes(b"54321")
    (top / "etc").mkdir()
    (top / "etc" / "passwd").write_bytes(SECRET + b"-passwd")  # a stand-in for /etc/passwd
    return Layout(top, repos, outside)


def snapshot(layout: Layout) -> dict[str, object]:
    """Every file below ``top`` by content and mtime, every directory by mtime and entries — except the
    stores' own internal files (sessions, quota), which opening a store rightly changes."""
    state: dict[str, object] = {}
    for root, dirs, files in os.walk(layout.top):
        inside_repo = Path(root) != layout.repos and Path(root).is_relative_to(layout.repos)
        if not inside_repo:
            state[root] = (os.stat(root).st_mtime_ns, sorted(dirs), sorted(files))
        for name in files:
            if inside_repo and name.endswith(".hid"):
                continue
            path = os.path.join(root, name)
            state[path] = (os.stat(path).st_mtime_ns, Path(path).read_bytes())
    return state


@dataclass
class Server:
    port: int
    process: object
    auth: bytes | None = None

    def thread_count(self) -> int:
        return int(_status(self.process.pid)["Threads"])  # type: ignore[attr-defined]

    def rss(self, key: str = "VmRSS") -> int:
        return int(_status(self.process.pid)[key].split()[0]) * 1024  # type: ignore[attr-defined]


def _status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}


@pytest.fixture
def start(tmp_path: Path) -> Iterator[object]:
    started = []

    def run(*args: str, auth: bytes | None = None) -> Server:
        port = free_port()
        process = start_process([sys.executable, "-m", "aiodepot.server", "--port", str(port), *args])
        started.append(process)
        wait_for_port(port, process=process)
        return Server(port, process, auth)

    yield run
    for process in started:
        stop_process(process)


def htpasswd(path: Path, users: dict[str, str], rounds: int = 4) -> Path:
    lines = [f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(rounds=rounds)).decode()}" for u, p in users.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


# raw HTTP ---------------------------------------------------------------------------------------------------


@dataclass
class Request:
    method: bytes
    target: bytes
    body: bytes = b""
    headers: dict[bytes, bytes] = field(default_factory=dict)
    category: str = ""


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


async def send(port: int, request: Request, auth: bytes | None = None) -> Answer:
    """``request`` verbatim on a new connection; the whole answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        head = [request.method + b" " + request.target + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
        headers = {b"Accept": ACCEPT.encode(), **request.headers}
        if auth is not None:
            headers[b"Authorization"] = auth
        if request.body and b"Transfer-Encoding" not in headers:
            headers[b"Content-Length"] = str(len(request.body)).encode()
        head += [key + b": " + value for key, value in headers.items()]
        writer.write(b"\r\n".join(head) + b"\r\n\r\n" + request.body)
        await writer.drain()
        async with asyncio.timeout(30):
            raw = await reader.read()
    finally:
        writer.close()
    head_bytes, _, body = raw.partition(b"\r\n\r\n")
    lines = head_bytes.split(b"\r\n")
    parts = lines[0].split()
    assert len(parts) >= 2 and parts[0].startswith(b"HTTP/"), (request, raw[:200])
    found = {}
    for line in lines[1:]:
        key, _, value = line.decode("latin-1").partition(":")
        found[key.strip().lower()] = value.strip()
    return Answer(int(parts[1]), found, body)


def basic(user: str, password: str) -> bytes:
    import base64

    return b"Basic " + base64.b64encode(f"{user}:{password}".encode())


# the hostile requests ---------------------------------------------------------------------------------------

# repository segments that must never name a repository: traversal in every encoding, separators, overlong
# and fullwidth forms, NUL, reserved and hidden names, case
HOSTILE_REPOS = [
    b"..",
    b".",
    b"%2e%2e",
    b"%2E%2E",
    b"%2e",
    b".%2e",
    b"%2e.",
    b"%252e%252e",
    b"%25252e%25252e",
    b"%252f",
    b"%2f",
    b"%2F",
    b"%2f%2e%2e",
    b"%2e%2e%2f%2e%2e",
    b"%2e%2e%2foutside",
    b"..%2foutside",
    b"%2e%2e%5coutside",
    b"%5c",
    b"%5C..",
    b"..%5coutside",
    b"%c0%ae%c0%ae",
    b"%c0%af",
    b"%c0%ae%c0%ae%c0%afoutside",
    b"%e0%80%ae%e0%80%ae",
    b"%ef%bc%8e%ef%bc%8e",
    b"%u002e%u002e",
    b"%00",
    b"alice%00",
    b"alice%2f..%2f..",
    b"%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc",
    b".alice",
    b"alice.del",
    b"alice.tmp",
    b"quota.hid",
    b"ALICE",
    b"%41lice",
    b"al%20ice",
    b"al%09ice",
    b"al\\ice",
    b"%2e%2e%2ftop",
    b"\xc0\xae\xc0\xae",
    b"\xef\xbc\x8e\xef\xbc\x8e",
    b"%ff",
    b"%",
    b"%%32%65",
    b"%7f",
    b"a" * 200,
]
# item names (inside a valid repository, or the single store) that must never name an item
HOSTILE_ITEMS = [
    b"..",
    b"%2e%2e",
    b"%2e%2e/secret.txt",
    b"%2e%2e%2f%2e%2e%2foutside%2fsecret.txt",
    b"data/%2e%2e/%2e%2e",
    b"data%2f..%2f..%2f..%2foutside",
    b"..%5c..%5csecret.txt",
    b"data%5creal",
    b"%c0%ae%c0%ae/secret.txt",
    b"%e0%80%ae%e0%80%ae/x",
    b"%ef%bc%8e%ef%bc%8e/x",
    b"data/x%00",
    b"%00",
    b"data/a%20b",
    b"data/REAL",
    b"data/%52eal",
    b"quota.hid",
    b"data/x%2etmp",
    b"data/%2e",
    b"data//real",
    b"data/\xc0\xae",
    b"%ff",
    b"data/" + b"a" * 200,
]


def operations(path: bytes, category: str) -> list[Request]:
    """Every method and command on ``path`` (a hostile path)."""
    body = b"pwned"
    digest = hashlib.sha256(body).hexdigest().encode()
    slash = path if path.endswith(b"/") else path + b"/"
    sources = json.dumps([["data/real", 0, 3]]).encode()
    return [
        Request(b"GET", path, category=category),
        Request(b"GET", slash, category=category),
        Request(b"HEAD", path, category=category),
        Request(b"DELETE", path, category=category),
        Request(b"POST", path, body, {HASH_HEADER.encode(): digest}, category=category),
        Request(b"POST", path, body, {b"Transfer-Encoding": b"chunked"}, category=category + "/chunked"),
        Request(b"POST", path + b"?cmd=mkdir", category=category),
        Request(b"DELETE", path + b"?cmd=rmdir", category=category),
        Request(b"POST", path + b"?cmd=hash", category=category),
        Request(b"POST", slash + b"?cmd=quota", category=category),
        Request(b"POST", slash + b"?cmd=create", category=category),
        Request(b"DELETE", slash + b"?cmd=destroy", category=category),
        Request(b"POST", slash + b"?cmd=gather", sources, category=category),
        Request(b"POST", slash + b"?cmd=defrag&algorithm=sha256", sources, category=category),
        Request(b"POST", slash + b"?cmd=move&current=data/real&new=data/moved", category=category),
    ]


def chunked(body: bytes) -> bytes:
    return f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"


def query_names(prefix: bytes) -> list[Request]:
    """Names that travel in the query string or a JSON body (decoded there once, then validated)."""
    names = [
        "../outside/secret.txt",
        "../../secret.txt",
        "data/../../../outside/secret.txt",
        "..\\secret.txt",
        "/etc/passwd",
        "data/real\x00",
        "quota.hid",
        "data/x.tmp",
        "Data/Real",
        "",
        "data//real",
        "./data/real",
    ]
    requests: list[Request] = []
    for name in names:
        n = quote(name, safe="").encode()
        category = "query names"
        requests += [
            Request(b"POST", prefix + b"?cmd=move&current=" + n + b"&new=data/stolen", category=category),
            Request(b"POST", prefix + b"?cmd=move&current=data/real&new=" + n, category=category),
            Request(b"POST", prefix + b"?cmd=gather", json.dumps([[name, 0, 3]]).encode(), category=category),
            Request(
                b"POST",
                prefix + b"?cmd=defrag&target=" + n,
                json.dumps([["data/real", 0, 3]]).encode(),
                category=category,
            ),
            Request(
                b"POST",
                prefix + b"?cmd=defrag&algorithm=sha256&namespace=" + (n or b"%2e%2e"),
                json.dumps([["data/real", 0, 3]]).encode(),
                category=category,
            ),
            Request(
                b"POST",
                prefix + b"?cmd=defrag&algorithm=sha256",
                json.dumps([[name, 0, 3]]).encode(),
                category=category,
            ),
        ]
    requests += [
        Request(b"POST", prefix + b"?cmd=move&current=data&new=data/sub/x", category="move into itself"),
        Request(b"DELETE", prefix + b"data?cmd=rmdir", category="rmdir not empty"),
        Request(b"POST", prefix + b"?cmd=gather", b"[" * 100_000, category="deep json"),
        Request(b"POST", prefix + b"?cmd=defrag&target=x", b"[" * 100_000, category="deep json"),
        Request(
            b"POST",
            prefix + b"?cmd=gather",
            json.dumps([["data/real", 0, 1]] * 100_001).encode(),
            category="too many sources",
        ),
        Request(
            b"POST",
            prefix + b"?cmd=gather",
            json.dumps([["data/real", 0, 2**40]]).encode(),
            category="too big a gather",
        ),
    ]
    return requests


# valid item names once decoded (a store may hold them), but never repository names
REPOSITORY_ONLY = {
    b"%2f",
    b"%2F",
    b".alice",
    b"alice.del",
    b"%252e%252e",
    b"%25252e%25252e",
    b"%252f",
    b"%u002e%u002e",
    b"%",
    b"%%32%65",
}


def hostile_requests(mode: str) -> list[Request]:
    requests: list[Request] = []
    if mode == "single":
        for item in [repo for repo in HOSTILE_REPOS if repo not in REPOSITORY_ONLY] + HOSTILE_ITEMS:
            requests += operations(b"/" + item, "item name")
        return requests + query_names(b"/")
    for repo in HOSTILE_REPOS:
        for rest in (b"", b"/", b"/secret.txt", b"/data/real"):
            requests += operations(b"/" + repo + rest, "repository segment")
    for item in HOSTILE_ITEMS:
        requests += operations(b"/alice/" + item, "item name")
    requests += query_names(b"/alice/")
    if mode == "private":  # another user's repository, in every way
        for other in (b"bob", b"%62ob", b"bob%2f", b"alice%2f..%2fbob", b"alice/..%2fbob"):
            requests += operations(b"/" + other + b"/data/real", "other user")
    return requests


MODES = {
    "repos": ["--repos", "{root}", "--no-auth"],
    "private": ["--repos", "{root}", "--private-repos", "--htpasswd", "{htpasswd}"],
    "append-only": ["--repos", "{root}", "--append-only", "--no-auth"],
    "single": ["--backend", "{alice}", "--no-auth"],
}


async def test_hostile_requests_in_every_mode(layout: Layout, start: object, tmp_path: Path) -> None:
    """Thousands of hostile requests in four modes: each gets a 4xx (501 for a method the protocol does not
    have), never 2xx, never 5xx; no answer carries an outside byte; nothing outside the repositories (nor any
    item inside them) changes; the server still serves afterwards and keeps no state per refused name."""
    users = htpasswd(tmp_path / "users", {"alice": "wonderland", "bob": "builder"})
    before = snapshot(layout)
    counts: Counter[str] = Counter()
    failures: list[str] = []
    for mode, template in MODES.items():
        args = [
            arg.format(root=layout.repos.as_uri(), htpasswd=users, alice=(layout.repos / "alice").as_uri())
            for arg in template
        ]
        server = start(*args, "--request-timeout", "20")  # type: ignore[operator]
        auth = basic("alice", "wonderland") if mode == "private" else None
        threads_before = server.thread_count()
        requests = hostile_requests(mode)
        limit = asyncio.Semaphore(8)

        async def one(
            request: Request,
            server: Server = server,
            auth: bytes | None = auth,
            mode: str = mode,
            limit: asyncio.Semaphore = limit,
        ) -> None:
            if b"chunked" in request.headers.get(b"Transfer-Encoding", b""):
                request = Request(request.method, request.target, chunked(request.body), request.headers)
            async with limit:
                answer = await send(server.port, request, auth)
            counts[mode] += 1
            counts[f"{mode}:{request.category}"] += 1
            if SECRET in answer.body:
                failures.append(f"LEAK {mode} {request.method!r} {request.target[:100]!r}")
            if not (400 <= answer.status < 500 or answer.status == 501):
                failures.append(
                    f"{mode} {request.method!r} {request.target[:100]!r}: {answer.status} {answer.body[:150]!r}"
                )
            for header in ("server",):
                if "python" in answer.headers.get(header, "").lower() or "aiohttp" in answer.headers.get(header, ""):
                    failures.append(f"{mode}: the Server header names versions: {answer.headers[header]}")

        await asyncio.gather(*(one(request) for request in requests))
        # still serving, still the right data; no thread left per refused repository name
        control = await send(
            server.port, Request(b"GET", b"/data/real" if mode == "single" else b"/alice/data/real"), auth
        )
        assert (control.status, control.body) == (200, REAL + b"alice"), (mode, control)
        assert server.thread_count() <= threads_before + 40, (mode, threads_before, server.thread_count())
        stop_process(server.process)  # type: ignore[arg-type]
        assert snapshot(layout) == before, f"{mode}: something outside the repositories (or an item) changed"
    assert not failures, f"{len(failures)} of {sum(counts[m] for m in MODES)} misbehaved:\n" + "\n".join(failures[:40])
    total = sum(counts[mode] for mode in MODES)
    categories = {key.partition(":")[2] for key in counts if ":" in key}
    print(f"hostile requests: {total} in {len(categories)} categories, per mode {[counts[m] for m in MODES]}")
    assert total >= MIN_REQUESTS, total
    assert all(counts[mode] >= 400 for mode in MODES), counts


# races ------------------------------------------------------------------------------------------------------


async def stalled_upload(port: int, target: bytes, parts: list[bytes], stall: asyncio.Event) -> int:
    """A chunked POST that sends its first part, waits for ``stall``, then sends the rest; its status."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        head = b"POST " + target + b" HTTP/1.1\r\nHost: x\r\nAccept: " + ACCEPT.encode()
        writer.write(head + b"\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        writer.write(f"{len(parts[0]):x}\r\n".encode() + parts[0] + b"\r\n")
        await writer.drain()
        await stall.wait()
        for part in parts[1:]:
            writer.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        async with asyncio.timeout(30):
            raw = await reader.read()
    finally:
        writer.close()
    return int(raw.split()[1])


def disk_usage(store: Path) -> int:
    return sum(p.stat().st_size for p in store.rglob("*") if p.is_file() and not p.name.endswith((".hid", ".tmp")))


async def test_quota_holds_against_racing_stalled_uploads(tmp_path: Path, start: object) -> None:
    """Parallel chunked overwrites of one name and parallel new names, stalled mid-body, many rounds: the
    usage never goes negative, what is stored never passes the quota, and the usage matches the disk."""
    store = tmp_path / "store"
    limit = 1_000_000
    server = start("--backend", store.as_uri(), "--no-auth", "--quota", str(limit))  # type: ignore[operator]
    assert (await send(server.port, Request(b"POST", b"/?cmd=create"))).status == 200
    half = b"x" * 200_000
    for round_number in range(6):
        stall = asyncio.Event()
        same = [stalled_upload(server.port, b"/data/same", [half, half], stall) for _ in range(5)]
        new = [
            stalled_upload(server.port, f"/data/n{round_number}-{i}".encode(), [half, half], stall) for i in range(4)
        ]
        tasks = [asyncio.create_task(upload) for upload in same + new]
        await asyncio.sleep(0.3)
        stall.set()
        statuses = await asyncio.gather(*tasks)
        assert set(statuses) <= {200, 507}, statuses
        answer = await send(server.port, Request(b"POST", b"/?cmd=quota"))
        usage = json.loads(answer.body)["usage"]
        on_disk = disk_usage(store)
        assert 0 <= usage <= limit and on_disk <= limit, (round_number, usage, on_disk, statuses)
        assert usage == on_disk, (round_number, usage, on_disk)
        for i in range(4):  # room for the next round
            await send(server.port, Request(b"DELETE", f"/data/n{round_number}-{i}".encode()))
    # a declared length past the quota is refused before the body is read
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    head = f"POST /data/big HTTP/1.1\r\nHost: x\r\nAccept: {ACCEPT}\r\nContent-Length: {50 * MiB}\r\n\r\n"
    writer.write(head.encode() + b"x" * 1000)  # the rest of the body never comes
    async with asyncio.timeout(10):
        status_line = await reader.readline()
    writer.close()
    assert status_line.split()[1] == b"507", status_line
    assert not (store / "data" / "big").exists()


async def test_append_only_holds_against_a_stalled_upload(tmp_path: Path, start: object) -> None:
    """A chunked POST of a new name stalls; a normal store of the same name comes meanwhile; then the first
    body finishes. Whatever the order, exactly one wins, and the stored value is never replaced."""
    store = tmp_path / "store"
    PosixFSBackend(store)  # the directory is made by create
    server = start("--backend", store.as_uri(), "--no-auth", "--append-only")  # type: ignore[operator]
    assert (await send(server.port, Request(b"POST", b"/?cmd=create"))).status == 200
    for attempt in range(12):
        target = f"/data/item{attempt}".encode()
        stall = asyncio.Event()
        first = asyncio.create_task(stalled_upload(server.port, target, [b"first-", b"body"], stall))
        await asyncio.sleep(0.1)
        second = asyncio.create_task(send(server.port, Request(b"POST", target, b"second-body")))
        await asyncio.sleep(0.1)
        stall.set()
        statuses = sorted([await first, (await second).status])
        assert statuses == [200, 403], (attempt, statuses)
        value = (store / "data" / f"item{attempt}").read_bytes()
        assert value in (b"first-body", b"second-body")
        again = await send(server.port, Request(b"POST", target, b"third"))
        assert again.status == 403 and (store / "data" / f"item{attempt}").read_bytes() == value


async def test_posixfs_append_only_commit_cannot_replace(tmp_path: Path) -> None:
    """Without the server's lock: a streamed store that found the name free, finishing after another store
    of that name, is refused at its commit (a link cannot replace) and leaves the value alone."""
    backend = PosixFSBackend(tmp_path / "store", permissions={"": "lrw"})
    await backend.create()
    await backend.open()
    try:
        for attempt in range(20):
            name = f"data/x{attempt}"
            go = asyncio.Event()

            async def slow(go: asyncio.Event = go) -> AsyncIterator[bytes]:
                yield b"slow-"
                await go.wait()
                yield b"value"

            streamed = asyncio.create_task(backend.store_chunks(name, slow()))
            await asyncio.sleep(0.02)
            await backend.store(name, b"quick")
            go.set()
            with pytest.raises(PermissionDenied):
                await streamed
            assert await backend.load(name) == b"quick"
        assert not list((tmp_path / "store").rglob("*.tmp"))
    finally:
        await backend.close()


# resources --------------------------------------------------------------------------------------------------


def keepalive_requests(port: int, targets: list[str], method: str = "GET") -> Counter[int]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    statuses: Counter[int] = Counter()
    try:
        for target in targets:
            connection.putrequest(method, target, skip_accept_encoding=True)
            connection.putheader("Accept", ACCEPT)
            connection.putheader("Content-Length", "0")
            connection.endheaders()
            response = connection.getresponse()
            response.read()
            statuses[response.status] += 1
    finally:
        connection.close()
    return statuses


async def test_many_repository_names_cost_no_threads_or_memory(layout: Layout, start: object) -> None:
    """5,000 distinct repository names (4,900 that do not exist, 100 made and used) with a small cap on open
    repositories: the thread count and the memory stay bounded."""
    server = start("--repos", layout.repos.as_uri(), "--no-auth", "--max-open-repos", "8")  # type: ignore[operator]
    keepalive_requests(server.port, ["/alice/data/real", "/bob/data/real", "/nosuch/x"])  # warm up
    threads, rss = server.thread_count(), server.rss()
    missing = await asyncio.to_thread(keepalive_requests, server.port, [f"/r{i}/data/x" for i in range(4900)])
    assert missing == Counter({410: 4900}), missing
    made = await asyncio.to_thread(keepalive_requests, server.port, [f"/m{i}/?cmd=create" for i in range(100)], "POST")
    assert made == Counter({200: 100}), made
    used = await asyncio.to_thread(keepalive_requests, server.port, [f"/m{i}/data/x" for i in range(100)])
    assert used == Counter({404: 100}), used
    assert server.thread_count() <= threads + 8 * 3, (threads, server.thread_count())
    grown = server.rss() - rss
    assert grown < 40 * MiB, grown / MiB
    assert not list(layout.repos.glob("r*")), "a request for a missing repository made something"
    print(f"5,000 repository names: threads {threads} -> {server.thread_count()}, RSS +{grown / MiB:.1f} MiB")


async def test_gather_streams_with_bounded_memory(tmp_path: Path, start: object) -> None:
    """An 8 MiB item named 30 times (240 MiB) streams out with the server's peak memory far below the answer;
    past --max-gather-size the request is refused with 413 before anything is read."""
    store = tmp_path / "store"
    server = start("--backend", store.as_uri(), "--no-auth")  # type: ignore[operator]
    assert (await send(server.port, Request(b"POST", b"/?cmd=create"))).status == 200
    value = os.urandom(8 * MiB)
    assert (await send(server.port, Request(b"POST", b"/data/big", value))).status == 200
    peak_before = server.rss("VmHWM")

    def gather(times: int) -> tuple[int, int, str]:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        body = json.dumps([["data/big", 0, 8 * MiB]] * times)
        connection.request("POST", "/?cmd=gather", body, {"Accept": ACCEPT})
        response = connection.getresponse()
        digest, size = hashlib.sha256(), 0
        while chunk := response.read(MiB):
            digest.update(chunk)
            size += len(chunk)
        connection.close()
        return response.status, size, digest.hexdigest()

    status, size, digest = await asyncio.to_thread(gather, 30)
    expected = hashlib.sha256()
    for _ in range(30):
        expected.update(value)
    assert (status, size, digest) == (200, 30 * 8 * MiB, expected.hexdigest())
    peak = server.rss("VmHWM") - peak_before
    assert peak < 100 * MiB, f"peak RSS grew {peak / MiB:.0f} MiB for a 240 MiB answer"
    assert (await asyncio.to_thread(gather, 40))[0] == 413
    print(f"gather of 240 MiB: server peak RSS +{peak / MiB:.1f} MiB")


# authentication ---------------------------------------------------------------------------------------------


async def test_auth_costs_the_same_for_unknown_wrong_and_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unknown user, known user with a wrong password, a wrong password for a user whose right one is
    remembered, and a password past 72 bytes each cost exactly one bcrypt check at the users' cost (so the
    time taken tells no user names) and are refused, never an error; the right remembered password is
    confirmed without one. Counted, not timed."""
    auth = HtpasswdAuth(htpasswd(tmp_path / "users", {"alice": "wonderland", "bob": "builder"}, rounds=10))
    checked: list[bytes] = []  # the hash of each bcrypt check
    check = auth_module._checkpw

    def counted(password: bytes, hashed: bytes | None) -> bool:
        assert hashed is not None
        checked.append(hashed)
        return check(password, hashed)

    monkeypatch.setattr(auth_module, "_checkpw", counted)
    assert await auth.authenticate(basic("alice", "wonderland").decode()) == "alice"  # now remembered
    assert len(checked) == 1

    kinds = {"unknown": ("mallory", "guess"), "wrong": ("bob", "guess"), "cached-wrong": ("alice", "guess")}
    kinds["too long"] = ("bob", "x" * 100)
    for kind, (user, password) in kinds.items():
        checked.clear()
        assert await auth.authenticate(basic(user, password).decode()) is None, kind
        assert [hashed.split(b"$")[2] for hashed in checked] == [b"10"], kind  # one check, of the users' cost
    checked.clear()
    for _ in range(20):
        assert await auth.authenticate(basic("alice", "wonderland").decode()) == "alice"
    assert checked == []


async def test_long_password_is_401_on_the_wire(tmp_path: Path, start: object) -> None:
    users = htpasswd(tmp_path / "users", {"alice": "wonderland"})
    server = start("--backend", (tmp_path / "store").as_uri(), "--htpasswd", str(users))  # type: ignore[operator]
    for password in ("x" * 73, "y" * 1000, "wonderland" + "z" * 80):
        answer = await send(server.port, Request(b"POST", b"/?cmd=quota"), basic("alice", password))
        assert answer.status == 401, answer
        answer = await send(server.port, Request(b"POST", b"/?cmd=quota"), basic("nobody", password))
        assert answer.status == 401, answer


def test_access_log_escapes_quotes_and_controls() -> None:
    assert _escaped('GET /"x"\n') == 'GET /\\"x\\"\\n'
    assert '"' not in _escaped('"').replace('\\"', "")
