"""The ftp backend: the conformance suites against pyftpdlib (plain and explicit TLS); URLs; bad input — a
wrong password, a server that is down, an untrusted certificate, a path that is a file, a server without
MLSD or REST — each a one-line aiodepot error with nothing half-written left behind."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from aiodepot import (
    BackendURLInvalid,
    ConnectionLost,
    NotSupported,
    ObjectNotFound,
    PermissionDenied,
    Store,
    StoreNotFound,
)
from aiodepot.backends import Limits, Timeouts, backend_from_url
from aiodepot.errors import BackendError
from tests.conformance.suite import CONFIG, BackendConformance, MakeBackend, StoreConformance, key
from tests.servers import free_port, in_ci

try:
    from aiodepot.backends.ftp import FtpBackend
except ImportError:  # pragma: no cover - aioftp comes with the dev extras
    if in_ci():
        raise
    pytest.skip("aioftp is not installed (pip install -e '.[dev]')", allow_module_level=True)

from tests.servers.ftp import FtpServer, ftp_server


@pytest.fixture(scope="session")
def ftpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FtpServer]:
    with ftp_server(tmp_path_factory.mktemp("ftpd")) as server:
        yield server


@pytest.fixture(scope="session")
def ftpsd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FtpServer]:
    with ftp_server(tmp_path_factory.mktemp("ftpsd"), tls=True) as server:
        yield server


_counter = iter(range(1_000_000))


def _fresh(server: FtpServer) -> MakeBackend:
    """A maker of backends for a new directory in the server's home (each test gets its own)."""
    path = f"store{next(_counter)}"
    return lambda: FtpBackend.from_url(server.url(path), **server.options())


# the conformance suites -----------------------------------------------------------------------------------


class TestFtpStore(StoreConformance):
    @pytest.fixture
    def make_backend(self, ftpd: FtpServer) -> MakeBackend:
        return _fresh(ftpd)


class TestFtpBackend(BackendConformance):
    @pytest.fixture
    def make_backend(self, ftpd: FtpServer) -> MakeBackend:
        return _fresh(ftpd)


class TestFtpsStore(StoreConformance):
    @pytest.fixture
    def make_backend(self, ftpsd: FtpServer) -> MakeBackend:
        return _fresh(ftpsd)


class TestFtpsBackend(BackendConformance):
    @pytest.fixture
    def make_backend(self, ftpsd: FtpServer) -> MakeBackend:
        return _fresh(ftpsd)


# URLs and registry ----------------------------------------------------------------------------------------


def test_url_forms() -> None:
    backend = backend_from_url("ftp://host/relative/path")
    assert isinstance(backend, FtpBackend)
    assert (backend.host, backend.port, backend.username, backend.password, backend.path, backend.tls) == (
        "host",
        21,
        None,
        None,
        "relative/path",
        False,
    )
    backend = backend_from_url("ftps://me%40corp:p%40ss%3Aw%2Frd@example.org:2121//srv/my%20depot/")
    assert isinstance(backend, FtpBackend)
    assert (backend.host, backend.port, backend.username, backend.password, backend.path, backend.tls) == (
        "example.org",
        2121,
        "me@corp",
        "p@ss:w/rd",
        "/srv/my depot",
        True,
    )
    assert "p@ss" not in repr(backend) and "example.org:2121" in repr(backend)
    assert FtpBackend.from_url("ftp://[::1]:21/x").host == "::1"
    assert FtpBackend.from_url("ftp://anon@h/x").password is None
    for bad in ("ftp://host", "ftp://host/", "ftp:host/path", "ftp://host:port/x", "ftp://host:99999/x"):
        with pytest.raises(BackendURLInvalid):
            FtpBackend.from_url(bad)
    with pytest.raises(BackendURLInvalid) as caught:
        FtpBackend.from_url("ftp://u:secret@host:0/x")
    assert "secret" not in str(caught.value)
    with pytest.raises(ValueError, match="connections"):
        FtpBackend("host", "path", limits=Limits(connections=0))
    assert FtpBackend("h", "p", limits=Limits(connections=7)).capabilities.preferred_concurrency == 7


def test_if_absent_is_not_offered() -> None:
    """FTP cannot refuse an existing rename target atomically: no if_absent (see the module docs)."""
    assert not FtpBackend("h", "p").capabilities.atomic_create


# bad input ------------------------------------------------------------------------------------------------


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text, text
    return text


async def test_wrong_password(ftpd: FtpServer) -> None:
    backend = FtpBackend.from_url(ftpd.url("store-pw", password="wrong"))
    with pytest.raises(PermissionDenied) as caught:
        await backend.create()
    text = _one_line(caught.value)
    assert "login as" in text and "refused" in text and "530" in text and f"127.0.0.1:{ftpd.port}" in text
    assert "wrong" not in text
    assert not (ftpd.home / "store-pw").exists()


async def test_server_down_fails_at_once() -> None:
    backend = FtpBackend.from_url(f"ftp://u:p@127.0.0.1:{free_port()}/store")
    started = asyncio.get_running_loop().time()
    with pytest.raises(ConnectionLost) as caught:
        await backend.open()
    assert asyncio.get_running_loop().time() - started < 5  # a refused connection is not retried
    assert "refused" in _one_line(caught.value).lower()
    assert not backend.opened


async def test_missing_store(ftpd: FtpServer) -> None:
    backend = FtpBackend.from_url(ftpd.url("no-such-store"))
    with pytest.raises(StoreNotFound):
        await backend.open()
    with pytest.raises(StoreNotFound):
        await backend.destroy()


async def test_untrusted_certificate(ftpsd: FtpServer) -> None:
    backend = FtpBackend.from_url(ftpsd.url("store-cert"))  # no cafile: the self-signed one is not trusted
    with pytest.raises(BackendError) as caught:
        await backend.create()
    assert "TLS" in _one_line(caught.value) and "certificate" in str(caught.value)
    insecure = FtpBackend.from_url(ftpsd.url("store-cert"), ssl=False)  # test servers only
    await insecure.create()
    async with insecure:
        await insecure.store("ns/x", b"x")
    await insecure.destroy()


async def test_plain_client_on_a_tls_only_server(ftpsd: FtpServer) -> None:
    plain = FtpBackend.from_url(ftpsd.url("store-plain").replace("ftps://", "ftp://"))
    with pytest.raises(PermissionDenied) as caught:
        await plain.create()
    assert "TLS required" in _one_line(caught.value)
    assert not (ftpsd.home / "store-plain").exists()


@pytest.fixture
async def backend(ftpd: FtpServer) -> AsyncIterator[FtpBackend]:
    backend = FtpBackend.from_url(ftpd.url(f"store{next(_counter)}"), timeouts=Timeouts(read=10))
    await backend.create()
    async with backend:
        yield backend
    await backend.destroy()


def _leftovers(ftpd: FtpServer, backend: FtpBackend) -> list[str]:
    return sorted(str(p.relative_to(ftpd.home)) for p in (ftpd.home / backend.path).rglob("*") if p.is_file())


async def test_a_path_that_is_a_file(ftpd: FtpServer, backend: FtpBackend) -> None:
    await backend.store("ns/file", b"I am a file")
    with pytest.raises(ObjectNotFound) as caught:
        await backend.store("ns/file/below", b"x")
    assert "ns/file/below" in _one_line(caught.value)
    with pytest.raises(ObjectNotFound):
        await backend.load("ns/file/below")
    with pytest.raises(ObjectNotFound):
        await anext(backend.list("ns/file"))
    with pytest.raises(ObjectNotFound):
        await backend.move("ns/file", "ns/file/x")
    assert await backend.load("ns/file") == b"I am a file"
    assert _leftovers(ftpd, backend) == [f"{backend.path}/ns/file"]  # no .tmp left


async def test_failed_streams_leave_nothing(ftpd: FtpServer, backend: FtpBackend) -> None:
    async def stream(fail: bool) -> AsyncIterator[bytes]:
        yield b"x" * 100_000
        if fail:
            raise RuntimeError("the producer broke")
        yield b"y" * 100_000

    with pytest.raises(RuntimeError, match="producer"):
        await backend.store_chunks("ns/broken", stream(True))
    with pytest.raises(ValueError, match="expected"):
        await backend.store_chunks("ns/short", stream(False), size=300_000)
    await backend.store_chunks("ns/good", stream(False), size=200_000)  # the connections still work
    assert _leftovers(ftpd, backend) == [f"{backend.path}/ns/good"]


async def test_create_only_permissions_check_then_rename(backend: FtpBackend) -> None:
    """The permission map's create-only rule (``w`` without ``W``) works, by a check before the rename."""
    everything = backend.permissions
    backend.permissions = type(everything)({"": "lrwD"})  # create, no replace
    try:
        await backend.store("ns/new", b"1")
        with pytest.raises(PermissionDenied):
            await backend.store("ns/new", b"2")
        assert await backend.load("ns/new") == b"1"
        await backend.move("ns/new", "ns/moved")
        await backend.store("ns/new", b"3")
        with pytest.raises(PermissionDenied):
            await backend.move("ns/new", "ns/moved")
        with pytest.raises(NotSupported):
            await backend.store("ns/other", b"x", if_absent=True)
    finally:
        backend.permissions = everything


async def test_many_connections_and_a_big_value(ftpd: FtpServer, tmp_path: Path) -> None:
    store = Store(
        backend=FtpBackend.from_url(ftpd.url(f"store{next(_counter)}"), limits=Limits(connections=8)),
        config=CONFIG,
    )
    await store.create()
    async with store:
        values = {f"data/{key(i)}": key(i).encode() * 64 for i in range(100)}
        await store.store_many(values)
        assert await store.load_many(list(values)) == list(values.values())
        big = bytes(range(256)) * (24 * 1024 * 4)  # 24 MiB: three parallel ranges
        source = tmp_path / "big"
        source.write_bytes(big)
        await store.store_file("data/" + key(1000), source)
        await store.load_file("data/" + key(1000), tmp_path / "back")
        assert (tmp_path / "back").read_bytes() == big
    await store.destroy()


@pytest.mark.parametrize("without", ["MLST,MLSD", "REST"])
async def test_server_without_rfc3659(tmp_path: Path, without: str) -> None:
    with ftp_server(tmp_path, without=without) as server:
        backend = FtpBackend.from_url(server.url("store"))
        with pytest.raises(NotSupported) as caught:
            await backend.create()
        assert ("MLST" if "MLST" in without else "REST STREAM") in _one_line(caught.value)


@pytest.mark.parametrize("tls", [False, True], ids=["ftp", "ftps"])
async def test_ranged_loads_into_one_buffer_are_exact(ftpd: FtpServer, ftpsd: FtpServer, tls: bool) -> None:
    server = ftpsd if tls else ftpd
    backend = FtpBackend.from_url(server.url(f"store{next(_counter)}"), **server.options())
    store = Store(backend=backend, config=CONFIG)
    part = backend.capabilities.part_size
    value = bytes(range(251)) * ((2 * part + 12345) // 251)  # three ranges; a prime period shows misplaced bytes
    await store.create()
    async with store:
        name = "data/" + key(1)
        await store.store(name, value)
        assert await store.load(name) == value  # the probe, then the other ranges straight into one buffer
        assert await store.load(name, offset=part - 7, size=part + 100) == value[part - 7 : 2 * part + 93]
        assert await store.load(name, offset=len(value) - part - 5, size=2 * part) == value[-part - 5 :]
    await store.destroy()


async def test_load_into_and_a_healthy_pool_after_cut_transfers(ftpd: FtpServer, ftpsd: FtpServer) -> None:
    for server in (ftpd, ftpsd):
        backend = FtpBackend.from_url(
            server.url(f"store{next(_counter)}"), limits=Limits(connections=1), **server.options()
        )
        await backend.create()
        async with backend:
            value = bytes(range(251)) * 4000  # about 1 MiB: the server is still sending when a range is full
            await backend.store("ns/item", value)
            (connection,) = backend._pool._idle
            buffer = bytearray(5000)
            for offset in (0, 1, 250_000, len(value) - 5000):
                assert await backend.load_into("ns/item", offset, buffer) == 5000
                assert buffer == value[offset : offset + 5000]
            assert await backend.load_into("ns/item", len(value) - 100, buffer) == 100  # short at the end
            assert buffer[:100] == value[-100:]
            assert await backend.load_into("ns/item", len(value) + 10, buffer) == 0  # past the end
            assert await backend.load_into("ns/item", 0, bytearray()) == 0
            with pytest.raises(ObjectNotFound):
                await backend.load_into("ns/missing", 0, buffer)
            for size in (1, 4096, 300_000):
                assert await backend.load("ns/item", offset=3, size=size) == value[3 : 3 + size]  # cut downloads
            # one connection served every cut transfer above and is still in step
            assert await backend.load("ns/item") == value
            assert [info.name async for info in backend.list("ns")] == ["item"]
            assert backend._pool._idle == [connection]  # never dropped and replaced
            await backend.delete("ns/item")
        await backend.destroy()
