"""The gs:// backend against fake-gcs-server: the conformance suites, then what is GCS's own.

One fake-gcs-server per test session (per xdist worker); every test gets a bucket of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from aiodepot.backends.gcs import GcsBackend
from tests.conformance.suite import BackendConformance, MakeBackend, StoreConformance
from tests.servers.gcs import FakeGcsServer, start_fake_gcs_server

MiB = 1024 * 1024


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[FakeGcsServer]:
    server = start_fake_gcs_server()
    yield server
    server.stop()


def fresh_bucket() -> str:
    return f"aiodepot-{uuid.uuid4().hex[:20]}"


@pytest.fixture
async def backend_at(gcs_server: FakeGcsServer) -> AsyncIterator[Any]:
    """``await backend_at(**options)``: a created and opened backend in a fresh bucket (closed afterwards)."""
    opened: list[GcsBackend] = []

    async def make(**options: Any) -> GcsBackend:
        backend = GcsBackend.from_url(gcs_server.url(fresh_bucket(), "depot/store"), create_bucket=True, **options)
        await backend.create()
        await backend.open()
        opened.append(backend)
        return backend

    yield make
    for backend in opened:
        if backend.opened:
            await backend.close()


# the conformance suites ------------------------------------------------------------------------------------


class TestGcsStore(StoreConformance):
    @pytest.fixture
    def make_backend(self, gcs_server: FakeGcsServer) -> MakeBackend:
        url = gcs_server.url(fresh_bucket(), "depot/store")
        return lambda: GcsBackend.from_url(url, create_bucket=True)


class TestGcsBackend(BackendConformance):
    supports_quota = False

    @pytest.fixture
    def make_backend(self, gcs_server: FakeGcsServer) -> MakeBackend:
        url = gcs_server.url(fresh_bucket(), "depot/store")
        return lambda: GcsBackend.from_url(url, create_bucket=True)
