"""The sftp backend: the conformance suite against OpenSSH's sshd and asyncssh's server; URLs, SSH
configuration and host keys; fallbacks for servers without OpenSSH's extensions; lost connections."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from aiodepot import (
    BackendURLInvalid,
    ConnectionLost,
    ObjectNotFound,
    PermissionDenied,
    QuotaExceeded,
    Store,
    SyncStore,
    ValueChanged,
)
from aiodepot.backends import Limits, Timeouts, backend_from_url
from aiodepot.errors import BackendError
from aiodepot.transfer import Progress
from tests.conformance.suite import CONFIG, BackendConformance, MakeBackend, StoreConformance, key
from tests.conformance.versions import count_infos, replace_before_next_range
from tests.servers import in_ci, require_program, stop_process

try:
    import asyncssh
except ImportError:  # pragma: no cover - asyncssh comes with the dev extras
    if in_ci():
        raise
    pytest.skip("asyncssh is not installed (pip install -e '.[dev]')", allow_module_level=True)

from aiodepot.backends.sftp import SftpBackend
from aiodepot.backends.sftp._errors import raise_translated, translate
from tests.servers.sshd import AsyncsshServer, Sshd, asyncssh_server, sshd

# fast failure detection for the tests that cut connections
QUICK_RETRY = SftpBackend.default_retry.with_backoff(0.02)
QUICK = {
    "retry": QUICK_RETRY,
    "keepalive_interval": 0.2,
    "keepalive_count_max": 2,
    "timeouts": Timeouts(read=5.0),
}


@pytest.fixture(scope="session")
def openssh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    with sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture
def own_sshd(tmp_path: Path) -> Iterator[Sshd]:
    """An sshd for one test, whose sessions the test may kill or stop."""
    with sshd(tmp_path / "sshd") as server:
        yield server


@pytest.fixture
async def inprocess(tmp_path: Path) -> AsyncIterator[AsyncsshServer]:
    async with asyncssh_server(tmp_path / "asyncssh") as server:
        yield server


class NoExtensions(asyncssh.SFTPServer):
    """A server without posix-rename@openssh.com and statvfs@openssh.com whose plain rename does not
    replace (as OpenSSH's), for the fallbacks."""

    def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPOpUnsupported("posix-rename not supported")

    def statvfs(self, path: bytes) -> Any:
        raise asyncssh.SFTPOpUnsupported("statvfs not supported")


@pytest.fixture
async def no_extensions(tmp_path: Path) -> AsyncIterator[AsyncsshServer]:
    async with asyncssh_server(tmp_path / "asyncssh", sftp_server=NoExtensions, sftp_version=3) as server:
        yield server


# the conformance suite ------------------------------------------------------------------------------------


class TestOpenSSHStore(StoreConformance):
    @pytest.fixture
    def make_backend(self, openssh: Sshd, tmp_path: Path) -> MakeBackend:
        return lambda: SftpBackend.from_url(openssh.url(tmp_path / "store"), **openssh.options())


class TestOpenSSHBackend(BackendConformance):
    @pytest.fixture
    def make_backend(self, openssh: Sshd, tmp_path: Path) -> MakeBackend:
        return lambda: SftpBackend.from_url(openssh.url(tmp_path / "store"), **openssh.options())


class TestAsyncsshStore(StoreConformance):
    @pytest.fixture
    def make_backend(self, inprocess: AsyncsshServer) -> MakeBackend:
        return lambda: SftpBackend.from_url(inprocess.url("store"), **inprocess.options())


class TestAsyncsshBackend(BackendConformance):
    @pytest.fixture
    def make_backend(self, inprocess: AsyncsshServer) -> MakeBackend:
        return lambda: SftpBackend.from_url(inprocess.url("store"), **inprocess.options())


class TestNoExtensionsBackend(BackendConformance):
    """SFTP version 3 without OpenSSH's extensions: replacing by remove and rename, no quota figures."""

    @pytest.fixture
    def make_backend(self, no_extensions: AsyncsshServer) -> MakeBackend:
        return lambda: SftpBackend.from_url(no_extensions.url("store"), **no_extensions.options())


# URLs and registry ----------------------------------------------------------------------------------------


def test_url_forms() -> None:
    backend = backend_from_url("sftp://host/relative/path")
    assert isinstance(backend, SftpBackend)
    assert (backend.host, backend.port, backend.username, backend.path) == ("host", None, None, "relative/path")
    backend = SftpBackend.from_url("sftp://me%40corp@example.org:2222//srv/my%20depot/")
    assert (backend.host, backend.port, backend.username, backend.path) == (
        "example.org",
        2222,
        "me@corp",
        "/srv/my depot",
    )
    assert SftpBackend.from_url("sftp://[::1]:22/x").host == "::1"
    assert "example.org:2222" in repr(backend)
    for bad in ("sftp://host", "sftp://host/", "sftp:host/path", "sftp://host:port/x", "sftp://host:99999/x"):
        with pytest.raises(BackendURLInvalid):
            SftpBackend.from_url(bad)
    with pytest.raises(ValueError, match="connections"):
        SftpBackend("host", "path", limits=Limits(connections=0))


def test_the_old_option_names_warn_and_still_work() -> None:
    with pytest.warns(DeprecationWarning, match=r"retries=…\) is deprecated.*RetryPolicy\(attempts=6\)") as warned:
        backend = SftpBackend("host", "path", retries=5)
    assert warned[0].filename == __file__  # the warning names the caller's line
    assert backend.retry.attempts == 6
    with pytest.warns(DeprecationWarning, match="is deprecated") as caught:
        backend = SftpBackend.from_url(
            "sftp://host/path", connections=3, timeout=7.0, connect_timeout=2.0, retry_wait=0.5
        )
    assert len(caught) == 4
    assert backend.limits.connections == 3
    assert backend.timeouts == Timeouts(connect=2.0, read=7.0, pool=None)
    assert backend.timeout == 7.0
    assert backend.retry == SftpBackend.default_retry.with_backoff(0.5)
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        SftpBackend("host", "path", colour=1)


# SSH configuration, host keys, authentication -------------------------------------------------------------


def _write_ssh_home(home: Path, openssh: Sshd, *, known_hosts: str) -> None:
    ssh = home / ".ssh"
    ssh.mkdir(parents=True, exist_ok=True)
    (ssh / "config").write_text(
        f"Host depot\n  HostName 127.0.0.1\n  Port {openssh.port}\n  User {openssh.user}\n"
        f"  IdentityFile {openssh.client_key}\n"
    )
    (ssh / "known_hosts").write_text(known_hosts)


@pytest.fixture
def ssh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return home


async def test_ssh_config_and_known_hosts_are_honoured(openssh: Sshd, ssh_home: Path, tmp_path: Path) -> None:
    _write_ssh_home(ssh_home, openssh, known_hosts=f"[127.0.0.1]:{openssh.port} {openssh.host_key_line}\n")
    store = Store(f"sftp://depot/{tmp_path}/store", config=CONFIG)  # alias, port, user and key from the config
    await store.create()
    async with store:
        await store.store("config/x", b"via ssh config")
        assert await store.load("config/x") == b"via ssh config"
    await store.destroy()


async def test_unknown_host_is_refused_unless_accepted(openssh: Sshd, ssh_home: Path, tmp_path: Path) -> None:
    _write_ssh_home(ssh_home, openssh, known_hosts="")
    url = f"sftp://depot/{tmp_path}/store"
    with pytest.raises(BackendError, match="host key") as caught:
        await Store(url).create()
    assert isinstance(caught.value.__cause__, asyncssh.HostKeyNotVerifiable)
    store = Store(url, backend_options={"accept_unknown_host": True})
    await store.create()
    async with store:
        await store.store("x", b"1")
    # a host that known_hosts lists with another key is refused even so
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    (ssh_home / ".ssh" / "known_hosts").write_text(f"[127.0.0.1]:{openssh.port} {other}")
    with pytest.raises(BackendError, match="host key"):
        await Store(url, backend_options={"accept_unknown_host": True}).open()


@pytest.fixture
def ssh_agent(openssh: Sshd, tmp_path: Path) -> Iterator[str]:
    """An ssh-agent holding the test server's user key; yields its socket."""
    agent = require_program("ssh-agent", apt="openssh-client")
    ssh_add = require_program("ssh-add", apt="openssh-client")
    socket_path = tmp_path / "agent.sock"
    process = subprocess.Popen([agent, "-D", "-a", str(socket_path)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not socket_path.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        env = {**os.environ, "SSH_AUTH_SOCK": str(socket_path)}
        subprocess.run([ssh_add, "-q", str(openssh.client_key)], env=env, check=True, capture_output=True)
        yield str(socket_path)
    finally:
        stop_process(process)


async def test_keys_from_the_ssh_agent(
    openssh: Sshd, ssh_home: Path, ssh_agent: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSH_AUTH_SOCK", ssh_agent)
    # no key option, and the home has no .ssh at all: the agent's key logs in
    store = Store(openssh.url(tmp_path / "store"), backend_options={"known_hosts": str(openssh.known_hosts)})
    await store.create()
    async with store:
        await store.store("x", b"via the agent")
        assert await store.load("x") == b"via the agent"
    await store.destroy()


async def test_authentication_failure(openssh: Sshd, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(stranger))
    backend = SftpBackend.from_url(openssh.url(tmp_path / "store"), **openssh.options(client_keys=[stranger]))
    with pytest.raises(PermissionDenied) as caught:
        await backend.create()
    assert isinstance(caught.value.__cause__, asyncssh.PermissionDenied)


async def test_nothing_listening_raises_connection_lost_within_the_budget(tmp_path: Path, openssh: Sshd) -> None:
    options = openssh.options(**{**QUICK, "retry": QUICK_RETRY.with_attempts(3)})
    backend = SftpBackend.from_url(openssh.url(tmp_path / "store", port=1), **options)
    started = time.monotonic()
    with pytest.raises(ConnectionLost) as caught:
        await backend.open()
    assert time.monotonic() - started < 2
    assert isinstance(caught.value.__cause__, OSError)


# features ---------------------------------------------------------------------------------------------------


async def test_quota_reports_the_server_filesystem(openssh: Sshd, tmp_path: Path) -> None:
    backend = SftpBackend.from_url(openssh.url(tmp_path / "store"), **openssh.options())
    await backend.create()
    async with backend:
        quota = await backend.quota()
    st = os.statvfs(tmp_path)
    assert 0 < quota["usage"] <= quota["limit"]
    assert quota["limit"] - quota["usage"] == pytest.approx(st.f_bavail * st.f_frsize, rel=0.05)


async def test_permissions(inprocess: AsyncsshServer) -> None:
    store = Store(backend=SftpBackend.from_url(inprocess.url("store"), **inprocess.options()), config=CONFIG)
    await store.create()
    async with store:
        await store.store("config/main", b"cfg")
    limited = SftpBackend.from_url(inprocess.url("store"), **inprocess.options(permissions={"": "lr", "data": "lrw"}))
    store = Store(backend=limited, config=CONFIG)
    async with store:
        await store.store("data/" + key(1), b"new items may be added")
        for denied in (
            store.store("data/" + key(1), b"but not overwritten"),
            store.delete("data/" + key(1)),
            store.move("data/" + key(1), delete=True),
            store.store("config/main", b"nor anything outside data/"),
        ):
            with pytest.raises(PermissionDenied):
                await denied
        assert await store.load("data/" + key(1)) == b"new items may be added"
        assert await store.load("config/main") == b"cfg"
    with pytest.raises(PermissionDenied):
        await store.destroy()


async def test_fallbacks_without_openssh_extensions(no_extensions: AsyncsshServer) -> None:
    store = Store(backend=SftpBackend.from_url(no_extensions.url("store"), **no_extensions.options()))
    await store.create()
    async with store:
        await store.store("a", b"first")
        await store.store("a", b"second")  # replaces without posix-rename
        await store.store("b", b"other")
        await store.move("b", "a")
        assert await store.load("a") == b"other"
        assert await store.quota() == {"limit": -1, "usage": -1}
        assert sorted(os.listdir(no_extensions.root / "store")) == ["a"]
    await store.destroy()


async def test_reads_answered_short_before_the_end(tmp_path: Path) -> None:
    """A server that answers reads with less than asked before the end of a file (SFTP guarantees whole
    answers for regular files; this one breaks that): where a later answer of the same burst holds data, a
    ranged load and a range read into a buffer fall back to one request at a time and still get it all."""

    class Stingy(asyncssh.SFTPServer):
        def read(self, file_obj: object, offset: int, size: int) -> Any:
            return super().read(file_obj, offset, min(size, 1_000_000))

    value = os.urandom(10 * 1024 * 1024)  # more than one of asyncssh's 4 MiB reads per range
    async with asyncssh_server(tmp_path / "stingy", sftp_server=Stingy) as server:
        backend = SftpBackend.from_url(server.url("store"), **server.options())
        await backend.create()
        async with backend:
            await backend.store("v", value)
            assert await backend.load("v", offset=10, size=9_000_000) == value[10:9_000_010]
            buffer = bytearray(len(value))
            assert await backend.load_into("v", 1000, buffer) == len(value) - 1000
            assert buffer[: len(value) - 1000] == value[1000:]


@pytest.mark.parametrize("algorithm", ["sha256", "md5", "blake2b", "blake3"])
async def test_hash_on_the_server(openssh: Sshd, tmp_path: Path, algorithm: str) -> None:
    backend = SftpBackend.from_url(openssh.url(tmp_path / "store"), **openssh.options(remote_hash_min_size=0))
    value = os.urandom(300_000)
    await backend.create()
    async with backend:
        await backend.store("v", value)
        if algorithm == "blake3":
            from blake3 import blake3

            expected = blake3(value).hexdigest()
        else:
            expected = hashlib.new(algorithm, value).hexdigest()
        assert await backend.hash("v", algorithm) == expected
        assert await backend.hash("v", algorithm) == expected  # after a fallback too
        with pytest.raises(ObjectNotFound):
            await backend.hash("missing", algorithm)
        assert "*" not in backend._no_remote_hash  # the server ran the commands it has


async def test_hash_where_the_server_runs_no_commands(inprocess: AsyncsshServer) -> None:
    backend = SftpBackend.from_url(inprocess.url("store"), **inprocess.options(remote_hash_min_size=0))
    await backend.create()
    async with backend:
        await backend.store("v", b"abc" * 1000)
        assert await backend.hash("v") == hashlib.sha256(b"abc" * 1000).hexdigest()
        assert "*" in backend._no_remote_hash


async def test_pool_of_connections_and_parallel_ranges(openssh: Sshd, tmp_path: Path) -> None:
    backend = SftpBackend.from_url(openssh.url(tmp_path / "store"), **openssh.options(limits=Limits(connections=3)))
    backend.capabilities = backend.capabilities.replace(part_size=100_000)
    store = Store(backend=backend, config=CONFIG)
    value = os.urandom(1_000_003)
    await store.create()
    async with store:
        await store.store_many({f"data/{key(i)}": value[i : i + 5000] for i in range(200)})
        assert len(backend._pool.links) == 3
        await store.store("flat/big", value)
        assert await store.load("flat/big") == value  # eleven ranges in parallel
        assert await store.load("flat/big", offset=99_999, size=300_000) == value[99_999:399_999]
        assert store.stats["backend_load_calls"] >= 11
        assert b"".join([c async for c in backend.read_chunks("flat/big", chunk_size=300_000)]) == value
    await store.destroy()


async def test_a_ranged_load_asks_the_attributes_with_its_reads(openssh: Sshd, tmp_path: Path) -> None:
    """Each range of a big load asks the open file's attributes (``fstat``) with its reads: the first one's
    size and mtime are the version the others check, so the Store asks no ``stat`` before or after them,
    and a file replaced between the ranges is loaded again."""
    backend = SftpBackend.from_url(openssh.url(tmp_path / "store"), **openssh.options())
    backend.capabilities = backend.capabilities.replace(part_size=100_000)
    store = Store(backend=backend, config=CONFIG)
    value, replacement = os.urandom(250_003), os.urandom(260_000)  # another size: OpenSSH's mtimes are seconds
    await store.create()
    async with store:
        await store.store("flat/big", value)
        first = await backend.load_first("flat/big", 0, 100_000)
        assert (first.data, first.size) == (value[:100_000], len(value)) and first.version and first.mtime
        assert (await backend.load_first("flat/big", 100_001, 100_000)).version == first.version
        buffer = bytearray(1000)
        assert await backend.load_into("flat/big", 5, buffer, version=first.version) == 1000
        assert buffer == value[5:1005]
        asked = count_infos(backend)
        assert await store.load("flat/big") == value and asked == []  # three opens with their reads
        replace_before_next_range(backend, replacement)
        assert await store.load("flat/big") == replacement  # never a mix of the two
        assert asked == []
        with pytest.raises(ValueChanged, match="no longer the file of size and mtime"):
            await backend.load_into("flat/big", 0, buffer, version=first.version)
        del backend._info  # type: ignore[method-assign]
    await store.destroy()


async def test_no_space_left(tmp_path: Path) -> None:
    class Full(asyncssh.SFTPServer):
        def write(self, file_obj: object, offset: int, data: bytes) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    for version in (6, 3):  # 6 has a code for it; 3 answers "failure" and the backend asks statvfs

        class FullV3(Full):
            def statvfs(self, path: bytes) -> Any:
                return asyncssh.SFTPVFSAttrs(4096, 4096, 1000, 0, 0, 1000, 0, 0, 0, 0, 255)

        server_class = Full if version == 6 else FullV3
        async with asyncssh_server(tmp_path / str(version), sftp_server=server_class, sftp_version=version) as server:
            backend = SftpBackend.from_url(server.url("store"), **server.options())
            await backend.create()
            async with backend:
                with pytest.raises(QuotaExceeded) as caught:
                    await backend.store("x", b"data")
                assert isinstance(caught.value.__cause__, asyncssh.SFTPError)
            assert os.listdir(server.root / "store") == []  # the temp file is gone


# lost connections -------------------------------------------------------------------------------------------


async def test_server_sessions_killed_during_bulk_transfers(own_sshd: Sshd, tmp_path: Path) -> None:
    backend = SftpBackend.from_url(own_sshd.url(tmp_path / "store"), **own_sshd.options(**QUICK))
    store = Store(backend=backend, config=CONFIG)
    values = {f"data/{key(i)}": os.urandom(20_000) for i in range(300)}
    killed = []

    def kill_once(progress: Progress) -> None:
        if progress.items_done == 50 and not killed:
            killed.extend(own_sshd.signal_sessions(signal.SIGKILL))

    await store.create()
    async with store:
        async with asyncio.timeout(20):
            await store.store_many(values, progress=kill_once)
            assert killed
            killed.clear()
            assert await store.load_many(values, progress=kill_once) == list(values.values())
            assert killed
    assert not [p for p in (tmp_path / "store").rglob("*.tmp")]
    await store.destroy()


async def test_server_sessions_killed_during_a_big_load(own_sshd: Sshd, tmp_path: Path) -> None:
    backend = SftpBackend.from_url(own_sshd.url(tmp_path / "store"), **own_sshd.options(**QUICK))
    backend.capabilities = backend.capabilities.replace(part_size=256 * 1024)
    store = Store(backend=backend)
    value = os.urandom(16 * 1024 * 1024)
    source, target = tmp_path / "source", tmp_path / "target"
    source.write_bytes(value)
    killed = []

    def kill_once(progress: Progress) -> None:
        if not killed:
            killed.extend(own_sshd.signal_sessions(signal.SIGKILL))

    await store.create()
    async with store:
        await store.store_file("big", source)
        async with asyncio.timeout(20):
            await store.load_file("big", target, progress=kill_once)
        assert killed and target.read_bytes() == value
    await store.destroy()


async def test_server_sessions_killed_during_a_big_upload(own_sshd: Sshd, tmp_path: Path) -> None:
    backend = SftpBackend.from_url(own_sshd.url(tmp_path / "store"), **own_sshd.options(**QUICK))
    value = os.urandom(48 * 1024 * 1024)
    source = tmp_path / "source"
    source.write_bytes(value)
    await backend.create()
    async with backend:

        async def kill_when_half_written() -> None:
            while True:
                temps = list((tmp_path / "store").glob("*.tmp"))
                if temps and temps[0].stat().st_size > 8 * 1024 * 1024:
                    own_sshd.signal_sessions(signal.SIGKILL)
                    return
                await asyncio.sleep(0.002)

        killer = asyncio.ensure_future(kill_when_half_written())
        async with asyncio.timeout(30):
            await backend.store_file("big", str(source), size=len(value))
        assert killer.done()
        assert await backend.hash("big") == hashlib.sha256(value).hexdigest()
        assert sorted(os.listdir(tmp_path / "store")) == ["big"]  # the first try's temp file was removed
    await backend.destroy()


@pytest.mark.parametrize("detected_by", ["keepalive", "timeout"])
async def test_dead_peer_never_hangs_a_call(own_sshd: Sshd, tmp_path: Path, detected_by: str) -> None:
    options = dict(QUICK)
    if detected_by == "timeout":
        options.update(keepalive_interval=0, timeouts=Timeouts(read=0.5))
    backend = SftpBackend.from_url(own_sshd.url(tmp_path / "store"), **own_sshd.options(**options))
    await backend.create()
    async with backend:
        await backend.store("x", b"value")
        own_sshd.signal_sessions(signal.SIGSTOP)  # the connection stays up, nothing answers
        started = time.monotonic()
        async with asyncio.timeout(10):
            assert await backend.load("x") == b"value"  # on a new connection
        assert time.monotonic() - started < 3
    await backend.destroy()


async def test_retry_budget_ends_in_connection_lost(own_sshd: Sshd, tmp_path: Path) -> None:
    options = own_sshd.options(
        **{**QUICK, "retry": QUICK_RETRY.with_attempts(3), "timeouts": Timeouts(connect=0.3, read=5.0)}
    )
    backend = SftpBackend.from_url(own_sshd.url(tmp_path / "store"), **options)
    await backend.create()
    async with backend:
        await backend.store("x", b"value")
        own_sshd.signal_sessions(signal.SIGSTOP)
        os.kill(own_sshd.process.pid, signal.SIGSTOP)  # new connections hang in the handshake
        try:
            started = time.monotonic()
            with pytest.raises(ConnectionLost) as caught:
                async with asyncio.timeout(10):
                    await backend.load("x")
            assert time.monotonic() - started < 5
            assert isinstance(caught.value.__cause__, TimeoutError | asyncssh.Error)
        finally:
            os.kill(own_sshd.process.pid, signal.SIGCONT)
    await backend.destroy()


async def test_read_chunks_goes_on_after_a_reconnect(own_sshd: Sshd, tmp_path: Path) -> None:
    backend = SftpBackend.from_url(own_sshd.url(tmp_path / "store"), **own_sshd.options(**QUICK))
    value = os.urandom(1_000_000)
    await backend.create()
    async with backend:
        await backend.store("v", value)
        chunks = []
        async with asyncio.timeout(10):
            async for chunk in backend.read_chunks("v", chunk_size=100_000):
                chunks.append(chunk)
                if len(chunks) == 3:
                    own_sshd.signal_sessions(signal.SIGKILL)
        assert b"".join(chunks) == value
    await backend.destroy()


async def test_lost_replies_count_as_done(tmp_path: Path) -> None:
    """The server does the operation, then the connection drops before the reply: the retry finds the
    item gone, which is success for delete, move and rmdir."""
    armed: set[str] = set()

    class DropsReplies(asyncssh.SFTPServer):
        def _drop(self, operation: str) -> None:
            if operation in armed:
                armed.discard(operation)
                self.connection.abort()

        def remove(self, path: bytes) -> None:
            super().remove(path)
            self._drop("remove")

        def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
            super().posix_rename(oldpath, newpath)
            self._drop("rename")

        def rmdir(self, path: bytes) -> None:
            super().rmdir(path)
            self._drop("rmdir")

    async with asyncssh_server(tmp_path, sftp_server=DropsReplies) as server:
        backend = SftpBackend.from_url(server.url("store"), **server.options(**QUICK))
        await backend.create()
        async with backend:
            await backend.store("ns/a", b"A")
            await backend.store("ns/b", b"B")
            armed.update({"remove", "rename", "rmdir"})
            await backend.delete("ns/a")
            await backend.move("ns/b", "ns/c")  # the store's own renames are armed too: this one drops
            assert await backend.load("ns/c") == b"B"
            assert not (await backend.info("ns/b")).exists
            await backend.mkdir("empty")
            await backend.rmdir("empty")
            assert not armed  # every operation lost its reply once
            with pytest.raises(ObjectNotFound):  # without a lost reply, missing is still an error
                await backend.delete("ns/a")
        await backend.destroy()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork() in a process with threads
def test_a_forked_child_makes_its_own_connections(openssh: Sshd, tmp_path: Path) -> None:
    store = SyncStore(openssh.url(tmp_path / "store"), backend_options=openssh.options())
    store.create()
    with store:
        store.store("parent", b"from the parent")
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child; coverage does not follow it
            code = 1
            try:
                signal.alarm(10)
                store.store("child", b"from the child")
                os.write(write_end, store.load("parent"))
                code = 0
            finally:
                os._exit(code)
        os.close(write_end)
        _, status = os.waitpid(pid, 0)
        with os.fdopen(read_end, "rb") as pipe:
            assert pipe.read() == b"from the parent"
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        assert store.load("child") == b"from the child"  # the parent's connection still works
        store.store("parent", b"again")
    store.destroy()


@pytest.mark.parametrize(
    ("native", "kind", "message"),
    [
        (asyncssh.SFTPNoSuchFile("gone"), ObjectNotFound, "ns/a"),
        (asyncssh.SFTPError(asyncssh.FX_NO_SUCH_PATH, "gone"), ObjectNotFound, "ns/a"),
        (asyncssh.SFTPError(asyncssh.FX_PERMISSION_DENIED, "nope"), PermissionDenied, "ns/a: nope"),
        (asyncssh.SFTPError(asyncssh.FX_CANNOT_DELETE, "nope"), PermissionDenied, "ns/a: nope"),
        (asyncssh.SFTPError(asyncssh.FX_QUOTA_EXCEEDED, "full"), QuotaExceeded, "ns/a: full"),
        (asyncssh.SFTPError(asyncssh.FX_NO_SPACE_ON_FILESYSTEM, "full"), QuotaExceeded, "ns/a: full"),
        (asyncssh.SFTPError(asyncssh.FX_CONNECTION_LOST, "cut"), ConnectionLost, "ns/a: cut"),
        (asyncssh.SFTPError(asyncssh.FX_FAILURE, ""), BackendError, "ns/a: SFTP error 4"),
        (asyncssh.SFTPError(asyncssh.FX_FAILURE, "odd"), BackendError, "ns/a: odd"),
        (asyncssh.PermissionDenied("no key"), PermissionDenied, "SSH authentication failed: no key"),
        (
            asyncssh.HostKeyNotVerifiable("unknown"),
            BackendError,
            "the SSH host key was not verified (unknown): add the host to known_hosts "
            "(e.g. connect once with ssh), or pass accept_unknown_host=True",
        ),
        (asyncssh.ConnectionLost("eof"), ConnectionLost, "ns/a: ConnectionLost('eof')"),
        (ConnectionResetError("reset"), ConnectionLost, "ns/a: ConnectionResetError('reset')"),
        (asyncssh.KeyExchangeFailed("kex"), BackendError, "ns/a: KeyExchangeFailed('kex')"),
    ],
)
def test_native_errors_translate_by_the_table(native: BaseException, kind: type[Exception], message: str) -> None:
    with pytest.raises(kind) as raised:
        raise_translated(native, "ns/a")
    assert type(raised.value) is kind
    assert raised.value.args == (message,)
    assert raised.value.__cause__ is native


def test_other_errors_pass_the_boundary_unchanged() -> None:
    error = ValueError("the stream gave more bytes")
    with pytest.raises(ValueError) as raised:
        raise_translated(error, "ns/a")
    assert raised.value is error
    assert translate(RuntimeError("x"), "ns/a").args == ("ns/a: RuntimeError('x')",)
