"""The memory backend: the conformance suite plus what is particular to it."""

from __future__ import annotations

import uuid

import pytest

from aiodepot import Store, StoreNotFound
from aiodepot.backends import backend_from_url
from aiodepot.backends.memory import MemoryBackend
from tests.conformance.suite import BackendConformance, MakeBackend, StoreConformance


@pytest.fixture
def make_backend() -> MakeBackend:
    name = f"test-{uuid.uuid4().hex}"
    return lambda: MemoryBackend(name)


class TestMemoryStore(StoreConformance):
    @pytest.fixture
    def make_backend(self) -> MakeBackend:
        name = f"test-{uuid.uuid4().hex}"
        return lambda: MemoryBackend(name)


class TestMemoryBackend(BackendConformance):
    @pytest.fixture
    def make_backend(self) -> MakeBackend:
        name = f"test-{uuid.uuid4().hex}"
        return lambda: MemoryBackend(name)


async def test_named_stores_share_data() -> None:
    url = f"memory://{uuid.uuid4().hex}"
    writer, reader = Store(url), Store(url)
    await writer.create()
    async with writer, reader:
        await writer.store("k", b"shared")
        assert await reader.load("k") == b"shared"
    await writer.destroy()
    with pytest.raises(StoreNotFound):
        await reader.open()


async def test_private_store_is_private() -> None:
    a, b = Store("memory://"), Store("memory://")
    await a.create()
    async with a:
        await a.store("k", b"mine")
    with pytest.raises(StoreNotFound):
        await b.open()
    await a.destroy()


def test_url_parsing() -> None:
    backend = backend_from_url("memory://some%20name/")
    assert isinstance(backend, MemoryBackend) and backend.name == "some name"
    assert backend_from_url("memory://").name is None  # type: ignore[attr-defined]
