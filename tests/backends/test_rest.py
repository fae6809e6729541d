"""The REST client backend against aiodepot's server: the conformance suite, in-process and as a
subprocess, plus the ``rest://`` stdio mode and reconnects."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiodepot import (
    BackendError,
    BackendURLInvalid,
    ConnectionLost,
    ObjectNotFound,
    PermissionDenied,
    Store,
    ValueChanged,
)
from aiodepot.backends import Limits, RetryPolicy, Timeouts, backend_from_url
from aiodepot.backends.memory import MemoryBackend
from aiodepot.backends.rest import RestBackend
from tests.conformance.suite import CONFIG, BackendConformance, MakeBackend, StoreConformance, key
from tests.conformance.versions import count_infos, replace_before_next_range
from tests.servers import free_port
from tests.servers.rest import ThreadedServer, aiodepot_server_process, borgstore_server_process


@pytest.fixture
def threaded_server() -> Iterator[ThreadedServer]:
    with ThreadedServer(MemoryBackend(f"rest-{uuid.uuid4().hex}")) as server:
        yield server


class TestRestStore(StoreConformance):
    @pytest.fixture
    def make_backend(self, threaded_server: ThreadedServer) -> MakeBackend:
        return lambda: RestBackend(threaded_server.url, retry=RestBackend.default_retry.with_backoff(0.01))


class TestRestBackend(BackendConformance):
    @pytest.fixture
    def make_backend(self, threaded_server: ThreadedServer) -> MakeBackend:
        return lambda: RestBackend(threaded_server.url, retry=RestBackend.default_retry.with_backoff(0.01))


@pytest.fixture(scope="module")
def server_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    store = tmp_path_factory.mktemp("rest-subprocess") / "store"
    with aiodepot_server_process(store.as_uri()) as url:
        yield url


class TestRestSubprocessStore(StoreConformance):
    """The same suite against ``python -m aiodepot.server`` on a file:// store (one server per module)."""

    @pytest.fixture
    def make_backend(self, server_process: str) -> MakeBackend:
        return lambda: RestBackend(server_process, retry=RestBackend.default_retry.with_backoff(0.01))


def test_url_forms() -> None:
    backend = backend_from_url("http://user:p%40ss@127.0.0.1:8080/sub/path")
    assert isinstance(backend, RestBackend)
    assert backend.base_url == "http://127.0.0.1:8080/sub/path"
    assert (backend.username, backend.password) == ("user", "p@ss")
    local = backend_from_url("rest:////srv/depot")  # as in borgstore: rest:///relative, rest:////absolute
    assert isinstance(local, RestBackend)
    assert local.command == ["aiodepot-server-rest", "--stdio", "--backend", "FILE:/srv/depot"]
    relative = backend_from_url("rest:///depot")
    assert isinstance(relative, RestBackend)
    assert relative.command == ["aiodepot-server-rest", "--stdio", "--backend", "FILE:depot"]
    remote = backend_from_url("rest://borg@backup.example:2222/repos/one", server_command="borgstore-server-rest")
    assert isinstance(remote, RestBackend)
    assert remote.command is not None
    assert remote.command[0] == "ssh"
    assert remote.command[-5:] == [
        "borg@backup.example",
        "borgstore-server-rest",
        "--stdio",
        "--backend",
        "FILE:repos/one",
    ]
    assert "-p" in remote.command
    for bad in ("http://", "rest://host", "http://host:port/x"):
        with pytest.raises(BackendURLInvalid):
            backend_from_url(bad)


def test_credentials_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BORGSTORE_REST_USERNAME", "env-user")
    monkeypatch.setenv("BORGSTORE_REST_PASSWORD", "env-pass")
    backend = backend_from_url("https://store.example/")
    assert isinstance(backend, RestBackend)
    assert (backend.username, backend.password) == ("env-user", "env-pass")


async def test_stdio_mode(tmp_path: Path) -> None:
    """``rest:///path``: the client runs ``aiodepot-server-rest --stdio`` and speaks HTTP over its pipes."""
    store = Store(f"rest:///{tmp_path}/store", config=CONFIG)  # four slashes: an absolute path
    await store.create()
    async with store:
        await store.store("config/main", b"over a pipe")
        big = os.urandom(9 * 1024 * 1024)  # above the server's streaming threshold
        await store.store("data/" + key(1), big)
        assert await store.load("data/" + key(1)) == big
        assert await store.load("config/main", offset=-4) == b"pipe"
        info = await store.info("config/main")
        assert info.size == 11
        assert info.mtime > 0
        await store.move("config/main", delete=True)
        assert [i.name async for i in store.list("config", deleted=True)] == ["main"]
        assert await store.gather([(key(1), 0, 3)], namespace="data") == big[:3]
        with pytest.raises(ObjectNotFound):
            await store.load("config/missing")
    assert (tmp_path / "store" / "config" / "main.del").read_bytes() == b"over a pipe"
    await store.destroy()


async def test_reconnect_after_the_server_restarts(tmp_path: Path) -> None:
    """A call whose connection breaks reconnects and retries until a server answers again."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    uri = (tmp_path / "store").as_uri()
    store = Store(backend=RestBackend(url, retry=RetryPolicy(attempts=31, backoff=0.3, multiplier=1.0)), config=CONFIG)
    with aiodepot_server_process(uri, port=port):
        await store.create()
        await store.open()
        await store.store("config/a", b"before")
    # the server is down: start the next call, and bring a server back while it retries
    pending = asyncio.create_task(store.load("config/a"))
    await asyncio.sleep(0.5)
    assert not pending.done()
    with aiodepot_server_process(uri, port=port):
        assert await asyncio.wait_for(pending, 30) == b"before"
        await store.delete("config/a")
        await store.close()
        await store.destroy()


def test_a_dead_server_is_a_clear_error() -> None:
    async def main() -> None:
        backend = RestBackend(
            "http://127.0.0.1:9", retry=RetryPolicy(attempts=2, backoff=0.01), timeouts=Timeouts(connect=1.0)
        )
        with pytest.raises(ConnectionLost, match=r"127\.0\.0\.1"):
            await Store(backend=backend).create()

    asyncio.run(main())


async def test_client_credentials() -> None:
    with ThreadedServer(MemoryBackend(f"auth-{uuid.uuid4().hex}"), username="borg", password="s3cret") as server:
        with pytest.raises(PermissionDenied, match="401"):
            await Store(backend=RestBackend(server.url)).create()
        with pytest.raises(PermissionDenied):
            await Store(server.url.replace("http://", "http://borg:wrong@")).create()
        store = Store(server.url.replace("http://", "http://borg:s3cret@"))
        await store.create()
        async with store:
            await store.store("x", b"authorized")
            assert await store.load("x") == b"authorized"
        await store.destroy()


def test_the_old_option_names_warn_and_still_work() -> None:
    with pytest.warns(
        DeprecationWarning, match=r"reconnect_tries=…\) is deprecated.*RetryPolicy\(attempts=1\)"
    ) as warned:
        backend = RestBackend("http://127.0.0.1:9", reconnect_tries=0)
    assert warned[0].filename == __file__  # the warning names the caller's line
    assert backend.retry == RestBackend.default_retry.with_attempts(1)
    with pytest.warns(DeprecationWarning, match="is deprecated") as caught:
        backend = RestBackend.from_url(
            "http://127.0.0.1:9/x", reconnect_wait=0.5, pool_size=4, timeout=7.0, connect_timeout=2.0
        )
    assert len(caught) == 4
    assert backend.retry.backoff == 0.5
    assert backend.limits.connections == 4
    assert backend.timeouts == Timeouts(connect=2.0, read=7.0)
    assert backend.timeout == 7.0
    with pytest.raises(ValueError, match="connections"):
        RestBackend("http://127.0.0.1:9", limits=Limits(connections=0))


async def test_load_into_refuses_more_than_it_asked_for() -> None:
    """A server that ignores ``Range`` and sends the whole value: ``load_into`` raises rather than write past
    the caller's buffer (a plain ranged load would have got the wrong bytes as silently)."""
    from aiohttp import web

    value = os.urandom(100_000)

    async def whole(request: web.Request) -> web.Response:
        return web.Response(body=b"" if request.method == "HEAD" else value)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", whole)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with RestBackend(f"http://127.0.0.1:{port}", retry=RetryPolicy(attempts=1)) as backend:
            buffer = bytearray(1000)
            with pytest.raises(BackendError, match="more than the 1000 bytes"):
                await backend.load_into("ns/big", 5000, buffer)
            whole_buffer = bytearray(len(value))
            assert await backend.load_into("ns/big", 0, whole_buffer) == len(value) and whole_buffer == value
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("server", ["aiodepot", "borgstore"])
async def test_a_ranged_load_gets_size_and_version_with_its_first_range(tmp_path: Path, server: str) -> None:
    """aiodepot's server sends ``Content-Range`` and an ``ETag`` (from an ``fstat`` of the file it read)
    with a range and answers ``If-Match`` with 412 for another version: the client's ranged load asks no
    HEAD, and a value replaced between its ranges is loaded again. borgstore's server sends neither: the
    HEADs stay."""
    versioned = server == "aiodepot"
    launch = aiodepot_server_process if versioned else borgstore_server_process
    value, replacement = os.urandom(250_003), os.urandom(250_003)  # the same size: the version still differs
    with launch((tmp_path / "store").as_uri()) as url:
        backend = RestBackend(url, retry=RetryPolicy(attempts=1))
        backend.capabilities = backend.capabilities.replace(part_size=100_000)
        store = Store(backend=backend, config=CONFIG)
        await store.create()
        async with store:
            await store.store("flat/big", value)
            first = await backend.load_first("flat/big", 0, 100_000)
            assert (first.data, first.size, first.version is not None) == (value[:100_000], len(value), versioned)
            heads = count_infos(backend)
            assert await store.load("flat/big") == value
            assert len(heads) == (0 if versioned else 2)  # borgstore's server: one before, one after
            assert await store.load("flat/big", offset=99_999, size=100_002) == value[99_999:200_001]
            if first.version is not None:
                buffer = bytearray(1000)
                assert await backend.load_into("flat/big", 7, buffer, version=first.version) == 1000
                assert buffer == value[7:1007]
                replace_before_next_range(backend, replacement)
                assert await store.load("flat/big") == replacement  # never a mix of the two
                assert heads == []
                with pytest.raises(ValueChanged, match="no longer the version"):
                    await backend.load_into("flat/big", 7, buffer, version=first.version)
        await store.destroy()
