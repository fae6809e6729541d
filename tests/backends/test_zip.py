"""The zip backend: the conformance suite (less what a write-once archive cannot do), export and import."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from aiodepot import BackendError, BackendURLInvalid, ObjectNotFound, Store, StoreError, StoreExists
from aiodepot.backends import Limits, backend_from_url
from aiodepot.backends.zip import WriteOnce, ZipBackend
from tests.conformance.suite import (
    CONFIG,
    BackendConformance,
    MakeBackend,
    StoreConformance,
    key,
    pool_threads,
    threads_settle,
)


class WriteOnceFlags:
    """A zip archive is write-once: the suite skips what needs overwrite, delete or move."""

    supports_overwrite = False
    supports_delete = False
    supports_move = False


class TestZipStore(WriteOnceFlags, StoreConformance):
    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> MakeBackend:
        return lambda: ZipBackend(tmp_path / "store.zip")


class TestZipBackend(WriteOnceFlags, BackendConformance):
    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> MakeBackend:
        return lambda: ZipBackend(tmp_path / "store.zip")


class TestDeflatedZipStore(WriteOnceFlags, StoreConformance):
    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> MakeBackend:
        return lambda: ZipBackend(tmp_path / "store.zip", compression="deflated")


def test_url_parsing() -> None:
    backend = backend_from_url("zip:///srv/export%201.zip")
    assert isinstance(backend, ZipBackend) and backend.path == "/srv/export 1.zip"
    for bad in ("zip://host/x.zip", "zip:x.zip", "zip:///"):
        with pytest.raises(BackendURLInvalid):
            backend_from_url(bad)
    with pytest.raises(ValueError, match="compression"):
        ZipBackend("/x.zip", compression="zstd")


async def test_write_once_refusals_are_clear(tmp_path: Path) -> None:
    backend = ZipBackend(tmp_path / "a.zip")
    await backend.create()
    async with backend:
        await backend.store("ns/a", b"A")
        await backend.mkdir("ns/dir")
        for call in (
            backend.store("ns/a", b"again"),
            backend.delete("ns/a"),
            backend.move("ns/a", "ns/b"),
            backend.rmdir("ns/dir"),
        ):
            with pytest.raises(WriteOnce, match="write-once") as caught:
                await call
            assert isinstance(caught.value, BackendError)
            assert str(caught.value).startswith(f"zip://{tmp_path / 'a.zip'} does not support ")
        for call in (backend.delete("ns/x"), backend.move("ns/x", "ns/y"), backend.rmdir("ns/x")):
            with pytest.raises(ObjectNotFound):
                await call
        results = await backend.store_batch([("ns/b", b"B"), ("ns/a", b"again")])
        assert results[0] is None and isinstance(results[1], WriteOnce)
        with pytest.raises(BackendError, match="not a directory"):
            await backend.store("ns/a/under", b"x")
        assert await backend.load("ns/a") == b"A"
    await backend.destroy()


async def test_export_and_import(tmp_path: Path) -> None:
    source = Store(f"file://{tmp_path / 'src'}", config=CONFIG)
    values = {f"data/{key(i)}": os.urandom(i * 100) for i in range(50)} | {"config/main": b"cfg"}
    await source.create()
    async with source:
        await source.store_many(values)
        await source.move("data/" + key(3), delete=True)
        names = [f"data/{info.name}" async for info in source.list("data")] + ["config/main"]

    archive = tmp_path / "export.zip"
    export = Store(archive.as_uri().replace("file:", "zip:"), config=CONFIG)
    await export.create()
    async with source, export:
        await export.store_many({name: await source.load(name) for name in names})
    with zipfile.ZipFile(archive) as plain:  # any zip tool reads it
        assert plain.testzip() is None
        k = key(1)
        assert plain.read(f"data/{k[:2]}/{k[2:4]}/{k}") == values["data/" + k]

    imported = Store(f"memory://{tmp_path.name}", config=CONFIG)
    await imported.create()
    async with Store(backend=ZipBackend(archive), config=CONFIG) as reader, imported:
        assert [info.name async for info in reader.list("data")] == [n.split("/")[1] for n in names[:-1]]
        async for info in reader.list("data"):
            await imported.store("data/" + info.name, await reader.load("data/" + info.name))
        assert await reader.load("data/" + key(7), offset=100, size=50) == values["data/" + key(7)][100:150]
        await imported.store("config/main", await reader.load("config/main"))
        assert await imported.load_many(names) == [values[name] for name in names]
        assert not (await reader.info("data/" + key(3))).exists
    await imported.destroy()


async def test_create_and_open_other_files(tmp_path: Path) -> None:
    other = tmp_path / "other.zip"
    other.write_bytes(b"not a zip")
    with pytest.raises(StoreExists):
        await ZipBackend(other).create()
    with pytest.raises(BackendError, match="not a zip"):
        await ZipBackend(other).open()
    empty = tmp_path / "empty.zip"
    await ZipBackend(empty).create()
    await ZipBackend(empty).create()  # an empty archive may be created again


async def test_foreign_members_are_ignored(tmp_path: Path) -> None:
    archive = tmp_path / "foreign.zip"
    with zipfile.ZipFile(archive, "w") as plain:
        plain.writestr("README.TXT", b"not ours")
        plain.writestr("ns/ok", b"ours")
        plain.writestr("ns/half.tmp", b"temp")
    async with ZipBackend(archive) as backend:
        assert [info.name async for info in backend.list("")] == ["ns"]
        assert [info.name async for info in backend.list("ns")] == ["ok"]


async def test_store_file_streams_into_a_member(tmp_path: Path) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 5)
    (tmp_path / "big.bin").write_bytes(payload)
    store = Store(f"zip://{tmp_path / 'files.zip'}", config=CONFIG)
    await store.create()
    async with store:
        assert await store.store_file("flat/big", tmp_path / "big.bin") == len(payload)
        assert await store.load("flat/big", offset=-7) == payload[-7:]
        assert await store.load_file("flat/big", tmp_path / "out.bin") == len(payload)
    assert (tmp_path / "out.bin").read_bytes() == payload


def test_the_old_workers_option_warns_and_still_works(tmp_path: Path) -> None:
    with pytest.warns(DeprecationWarning, match=r"workers=…\) is deprecated.*Limits\(threads=3\)"):
        backend = ZipBackend(tmp_path / "a.zip", workers=3)
    assert backend.limits.threads == 3
    assert ZipBackend(tmp_path / "a.zip", limits=Limits(threads=5)).limits.threads == 5


async def test_create_and_destroy_keep_no_thread(tmp_path: Path) -> None:
    """A closed backend holds no worker thread after create/destroy, worked or failed."""

    before = pool_threads("aiodepot-zip-")
    await ZipBackend(tmp_path / "a.zip").create()
    (tmp_path / "b.zip").write_bytes(b"not a zip")
    with pytest.raises(StoreExists):
        await ZipBackend(tmp_path / "b.zip").create()
    await ZipBackend(tmp_path / "a.zip").destroy()
    with pytest.raises(StoreError):
        await ZipBackend(tmp_path / "a.zip").destroy()
    assert await threads_settle("aiodepot-zip-", before)
