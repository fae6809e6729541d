"""The rclone backend against rclone's local remote, through a real ``rclone rcd`` per open store."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from aiodepot import BackendError, BackendURLInvalid, ConnectionLost, ObjectNotFound, Store, StoreNotFound
from aiodepot.backends import Limits, Timeouts, backend_from_url
from aiodepot.backends.rclone import RcloneBackend, _raise_rc_error
from tests.conformance.suite import CONFIG, BackendConformance, MakeBackend, StoreConformance, key
from tests.servers.rclone import require_rclone


@pytest.fixture(scope="session")
def rclone() -> str:
    return require_rclone()


class TestRcloneStore(StoreConformance):
    @pytest.fixture
    def make_backend(self, rclone: str, tmp_path: Path) -> MakeBackend:
        return lambda: RcloneBackend(str(tmp_path / "store"), rclone=rclone)


class TestRcloneBackend(BackendConformance):
    @pytest.fixture
    def make_backend(self, rclone: str, tmp_path: Path) -> MakeBackend:
        return lambda: RcloneBackend(f":local:{tmp_path / 'store'}", rclone=rclone)  # an on-the-fly remote


def test_url_parsing() -> None:
    for url, remote, fs in (
        ("rclone:remote:", "remote:", "remote:"),
        ("rclone:remote:bucket/depot", "remote:bucket/depot", "remote:bucket/depot/"),
        ("rclone::local:/srv/depot/", ":local:/srv/depot/", ":local:/srv/depot/"),
        ("rclone:/srv/my%20depot", "/srv/my%20depot", "/srv/my%20depot/"),  # handed to rclone as it is
    ):
        backend = backend_from_url(url)
        assert isinstance(backend, RcloneBackend) and (backend.remote, backend.fs) == (remote, fs)
    with pytest.raises(BackendURLInvalid):
        backend_from_url("rclone:")


async def test_layout_and_no_temp_files(rclone: str, tmp_path: Path) -> None:
    base = tmp_path / "store"
    store = Store(f"rclone:{base}", config=CONFIG, backend_options={"rclone": rclone})
    await store.create()
    async with store:
        await store.store("data/" + key(1), b"one")
        await store.store("config/main", b"cfg")
        await store.move("config/main", delete=True)
        (base / "config" / "half.abc.tmp").write_bytes(b"an upload in progress")
        assert await store.hash("data/" + key(1), "sha256") == hashlib.sha256(b"one").hexdigest()  # by rclone
        assert await store.hash("data/" + key(1), "sha512") == hashlib.sha512(b"one").hexdigest()  # read through
        assert [i.name async for i in store.list("config", deleted=True)] == ["main"]
        with pytest.raises(ObjectNotFound):
            await store.hash("data/" + key(2), "md5")
    k = key(1)
    assert (base / "data" / k[:2] / k[2:4] / k).read_bytes() == b"one"
    assert (base / "config" / "main.del").read_bytes() == b"cfg"
    assert [p.name for p in base.rglob("*.tmp")] == ["half.abc.tmp"]
    await store.destroy()
    assert not base.exists()


async def test_ranges(rclone: str, tmp_path: Path) -> None:
    backend = RcloneBackend(str(tmp_path / "r"), rclone=rclone)
    await backend.create()
    value = os.urandom(300_000)
    async with backend:
        await backend.store("v", value)
        cases = [(0, None), (5, 10), (-10, None), (-10, 4), (-200_000, 5), (299_990, 100), (400_000, None), (-1, 0)]
        for offset, size in cases:
            expected = value[offset:][:size] if size is not None else value[offset:]
            assert await backend.load("v", offset=offset, size=size) == expected, (offset, size)
        with pytest.raises(ObjectNotFound):
            await backend.load("missing", offset=-3, size=2)
    await backend.destroy()


async def test_a_load_during_a_slow_replace_in_this_process_finds_a_value(
    rclone: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rclone replaces an item by deleting it, then moving the new one in; on a busy machine that gap outlasts
    the load's few quick looks. Widened here to 300 ms (the same delete and move, as two calls), a load
    of this process still gets the old or the new value, never ``ObjectNotFound``."""
    backend = RcloneBackend(str(tmp_path / "g"), rclone=rclone)
    await backend.create()
    old, new = b"o" * 100_000, b"n" * 100_000
    real_rpc = RcloneBackend._rpc
    gap_open = asyncio.Event()

    async def slow_replace(self: RcloneBackend, rcd: Any, command: str, what: str, **params: Any) -> Any:
        if command == "operations/movefile" and params["dstRemote"] == "v":
            await real_rpc(self, rcd, "operations/deletefile", what, fs=self.fs, remote="v")
            gap_open.set()
            await asyncio.sleep(0.3)
        return await real_rpc(self, rcd, command, what, **params)

    async with backend:
        await backend.store("v", old)
        monkeypatch.setattr(RcloneBackend, "_rpc", slow_replace)
        writer = asyncio.create_task(backend.store("v", new))
        await gap_open.wait()
        assert not (tmp_path / "g" / "v").exists()  # the gap is open: the item is missing on disk
        assert await backend.load("v") == new  # looked again after the move
        await writer
        with pytest.raises(ObjectNotFound):  # a plain miss is not held up
            await backend.load("missing")
    await backend.destroy()


async def test_rcd_is_private_and_stops(rclone: str, tmp_path: Path) -> None:
    backend = RcloneBackend(str(tmp_path / "p"), rclone=rclone)
    await backend.create()
    await backend.open()
    rcd = backend._rcd
    assert rcd is not None and rcd.url.startswith("http://127.0.0.1:")
    async with aiohttp.ClientSession() as anonymous, anonymous.post(rcd.url + "rc/noop", json={}) as response:
        assert response.status == 401  # user and password are random and needed
    await backend.close()
    assert rcd.process.returncode is not None
    await backend.destroy()
    with pytest.raises(StoreNotFound):
        await backend.open()


def test_the_old_option_names_warn_and_still_work(tmp_path: Path) -> None:
    with pytest.warns(DeprecationWarning, match=r"connections=…\) is deprecated.*Limits\(connections=4\)") as warned:
        backend = RcloneBackend(str(tmp_path), connections=4)
    assert warned[0].filename == __file__  # the warning names the caller's line
    assert backend.limits.connections == backend.connections == 4
    with pytest.warns(DeprecationWarning, match=r"timeout=…\) is deprecated.*Timeouts\(connect=5\.0\)"):
        backend = RcloneBackend(str(tmp_path), timeout=5.0)
    assert backend.timeouts.connect == backend.timeout == 5.0
    backend = RcloneBackend(str(tmp_path), limits=Limits(connections=2), timeouts=Timeouts(connect=3.0))
    assert (backend.connections, backend.timeout) == (2, 3.0)
    with pytest.raises(ValueError, match="connections"):
        RcloneBackend(str(tmp_path), limits=Limits(connections=0))


@pytest.mark.parametrize(
    ("status", "body", "kind", "message"),
    [
        (404, {"error": "object not found"}, ObjectNotFound, "ns/a: object not found"),
        (404, None, ObjectNotFound, "ns/a"),
        (500, {"error": "boom"}, BackendError, "rclone: ns/a: error 500: boom"),
        (400, "bad request", BackendError, "rclone: ns/a: error 400: bad request"),
    ],
)
def test_rclone_statuses_translate_by_the_table(status: int, body: object, kind: type[Exception], message: str) -> None:
    with pytest.raises(kind) as raised:
        _raise_rc_error(status, body, "ns/a")
    assert type(raised.value) is kind
    assert raised.value.args == (message,)


@pytest.mark.parametrize(
    ("native", "kind"),
    [
        (aiohttp.ServerDisconnectedError(), ConnectionLost),
        (aiohttp.ClientOSError(104, "reset"), ConnectionLost),
        (aiohttp.ServerTimeoutError("slow"), ConnectionLost),
        (aiohttp.ClientPayloadError("short"), BackendError),
        (TimeoutError(), BackendError),
    ],
)
def test_aiohttp_errors_translate_by_the_table(tmp_path: Path, native: Exception, kind: type[Exception]) -> None:
    backend = RcloneBackend(str(tmp_path))
    with pytest.raises(kind) as raised, backend._translated("ns/a"):
        raise native
    assert type(raised.value) is kind
    assert raised.value.args == (f"rclone: ns/a: {native}",)
    assert raised.value.__cause__ is native
