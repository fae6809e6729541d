"""DepotZarrStore: zarr's own StoreTests on memory://, file:// and sftp://, and arrays through zarr's API."""

from __future__ import annotations

import os
import pickle
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

zarr = pytest.importorskip("zarr")  # the [zarr] extra, part of the dev extras
import numpy as np  # noqa: E402
from zarr.abc.store import OffsetByteRequest, RangeByteRequest, SuffixByteRequest  # noqa: E402
from zarr.core.buffer import Buffer, cpu, default_buffer_prototype  # noqa: E402
from zarr.testing.store import StoreTests  # noqa: E402

from aiodepot import Portal, Store  # noqa: E402
from aiodepot.integrations.paths import path_key  # noqa: E402
from aiodepot.integrations.zarr import DepotZarrStore  # noqa: E402
from tests.servers.sshd import Sshd, sshd  # noqa: E402


@pytest.fixture(scope="module")
def openssh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    with sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


class DepotStoreTests(StoreTests[DepotZarrStore, cpu.Buffer]):  # type: ignore[misc]
    store_cls = DepotZarrStore
    buffer_cls = cpu.Buffer
    kind = "memory"

    @pytest.fixture
    def depot(self, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Store, Portal]]:
        """An aiodepot store, opened on a portal (its own event loop thread), as a SyncStore would."""
        if self.kind == "memory":
            store = Store(f"memory://zarr-{uuid.uuid4().hex}")
        elif self.kind == "file":
            store = Store(f"file://{tmp_path}/depot")
        else:
            server: Sshd = request.getfixturevalue("openssh")
            store = Store(server.url(tmp_path / "depot"), backend_options=server.options())
        portal = Portal("zarr-tests")
        portal.call(store.create)
        portal.call(store.open)
        yield store, portal
        portal.call(store.close)
        portal.call(store.destroy)
        portal.stop()

    @pytest.fixture
    def store_kwargs(self, depot: tuple[Store, Portal]) -> dict[str, Any]:
        store, portal = depot
        return {"store": store, "portal": portal}

    async def set(self, store: DepotZarrStore, key: str, value: Buffer) -> None:
        data = value.to_bytes()
        await store._call(lambda: store.store.store(path_key(key), data))

    async def get(self, store: DepotZarrStore, key: str) -> Buffer:
        name = path_key(key)
        return self.buffer_cls.from_bytes(await store._call(lambda: store.store.load(name)))

    def test_store_repr(self, store: DepotZarrStore) -> None:
        assert repr(store).startswith("DepotZarrStore(")

    def test_store_supports_writes(self, store: DepotZarrStore) -> None:
        assert store.supports_writes

    def test_store_supports_listing(self, store: DepotZarrStore) -> None:
        assert store.supports_listing


class TestMemoryStore(DepotStoreTests):
    kind = "memory"


class TestFileStore(DepotStoreTests):
    kind = "file"


class TestSftpStore(DepotStoreTests):
    kind = "sftp"


@pytest.fixture(params=["memory", "file"])
async def zstore(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[DepotZarrStore]:
    url = f"memory://arrays-{uuid.uuid4().hex}" if request.param == "memory" else f"file://{tmp_path}/arrays"
    store = await DepotZarrStore.open(Store(url))
    yield store
    await store.store.close()
    store.close()
    await store.store.destroy()


async def test_chunked_array_through_zarrs_public_api(zstore: DepotZarrStore) -> None:
    data = np.arange(200 * 300, dtype="float32").reshape(200, 300)
    array = await zarr.api.asynchronous.create_array(
        zstore, name="Temperature", shape=data.shape, chunks=(50, 64), dtype="f4"
    )
    await array.setitem(slice(None), data)
    again = await zarr.api.asynchronous.open_array(store=zstore, path="Temperature")
    np.testing.assert_array_equal(await again.getitem(slice(None)), data)
    np.testing.assert_array_equal(await again.getitem((slice(10, 20), slice(250, 300))), data[10:20, 250:300])
    keys = sorted([key async for key in zstore.list_prefix("Temperature/c/")])
    assert len(keys) == 4 * 5
    assert [key async for key in zstore.list_dir("Temperature")] == ["c", "zarr.json"]


def test_sync_api_on_a_file_store(tmp_path: Path) -> None:
    store = DepotZarrStore(Store(f"file://{tmp_path}/sync"))
    array = zarr.create_array(store, shape=(1000,), chunks=(100,), dtype="i4")
    array[:] = np.arange(1000)
    assert zarr.open_array(store, mode="r")[995:].tolist() == [995, 996, 997, 998, 999]
    store.close()
    assert sorted(os.listdir(tmp_path / "sync"))[:2] == ["c%2f0", "c%2f1"]


def test_a_pickled_store_signs_in_again_and_its_repr_hides_the_password() -> None:
    zstore = DepotZarrStore(Store("http://alice:s3cret@127.0.0.1:9/depot"))
    again = pickle.loads(pickle.dumps(zstore))
    assert again == zstore and again.store.backend.password == "s3cret"
    assert repr(again) == "DepotZarrStore('http://alice:***@127.0.0.1:9/depot', namespace='')"


async def test_ranges_and_bad_input(zstore: DepotZarrStore) -> None:
    proto = default_buffer_prototype()
    await zstore.set("k", cpu.Buffer.from_bytes(b"0123456789"))
    assert (await zstore.get("k", proto, RangeByteRequest(2, 5))).to_bytes() == b"234"
    assert (await zstore.get("k", proto, OffsetByteRequest(8))).to_bytes() == b"89"
    assert (await zstore.get("k", proto, SuffixByteRequest(3))).to_bytes() == b"789"
    assert (await zstore.get("k", proto, SuffixByteRequest(0))).to_bytes() == b""
    assert (await zstore.get("k", proto, RangeByteRequest(8, 50))).to_bytes() == b"89"  # short at the end
    assert await zstore.get("missing", proto) is None
    with pytest.raises(ValueError):
        await zstore.get("k", proto, RangeByteRequest(5, 2))
    with pytest.raises(ValueError):
        await zstore.set("x" * 200, cpu.Buffer.from_bytes(b"too long a key"))
    reader = zstore.with_read_only(True)
    with pytest.raises(ValueError, match="read-only"):
        await reader.set("k", cpu.Buffer.from_bytes(b"no"))
    assert (await zstore.get("k", proto)).to_bytes() == b"0123456789"
