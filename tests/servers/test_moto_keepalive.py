"""moto kept alive (the S3 benchmark's second server): several requests on one connection, bodies the app
leaves unread do not spill into the next request, a chunked body closes, and a Store works on it."""

from __future__ import annotations

import http.client
import os
from collections.abc import Iterator

import pytest

from aiodepot import Store
from tests.servers.moto import MotoServer, start_moto_server


@pytest.fixture(scope="module")
def kept_alive() -> Iterator[MotoServer]:
    server = start_moto_server(keep_alive=True)
    try:
        yield server
    finally:
        server.stop()


def _send(connection: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None) -> int:
    connection.request(method, path, body=body)
    response = connection.getresponse()
    response.read()
    assert response.getheader("Connection") is None, (method, path)
    return response.status


def test_one_connection_carries_many_requests(kept_alive: MotoServer) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", kept_alive.port, timeout=30)
    try:
        assert _send(connection, "PUT", "/kept") == 200
        sock = connection.sock
        value = os.urandom(5000)
        assert _send(connection, "PUT", "/kept/item", value) == 200
        # a body moto never reads (the bucket is missing) is not taken for the next request
        assert _send(connection, "PUT", "/missing-bucket/item", os.urandom(3000)) == 404
        assert _send(connection, "GET", "/kept/none", os.urandom(3000)) == 404  # a body a GET never reads
        assert _send(connection, "GET", "/kept?list-type=2") == 200
        assert _send(connection, "PUT", "/kept/other", value) == 200
        assert connection.sock is sock  # never reconnected
    finally:
        connection.close()


def test_a_chunked_body_closes_the_connection(kept_alive: MotoServer) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", kept_alive.port, timeout=30)
    try:
        connection.request("PUT", "/chunked")
        assert connection.getresponse().read() == b""
        connection.request("PUT", "/chunked/item", body=iter([b"abc", b"def"]), encode_chunked=True)
        response = connection.getresponse()
        response.read()
        assert response.status == 200
        assert response.getheader("Connection") == "close"
    finally:
        connection.close()


async def test_a_store_round_trip(kept_alive: MotoServer) -> None:
    store = Store(
        kept_alive.url("store-kept", "depot"),
        config={"data/": {"levels": [0]}},
        backend_options={"create_bucket": True},
    )
    values = {f"data/{i:064x}": os.urandom(100 + i) for i in range(50)}
    await store.create()
    async with store:
        await store.store_many(values)
        assert await store.load_many(list(values)) == list(values.values())
        await store.delete_many(list(values))
