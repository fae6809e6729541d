"""Wire compatibility with borgstore 0.7: every client/server pair runs the same scenario.

aiodepot's client talks to aiodepot's and to borgstore's server; borgstore's client (``borgstore.store.Store``
over ``requests``) talks to both too. The scenario covers every operation of the protocol.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

import aiodepot
from tests.servers import require_module
from tests.servers.rest import aiodepot_server_process, borgstore_server_process

CONFIG = {"config/": {"levels": [0]}, "data/": {"levels": [1]}}
KEYS = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(30)]


def aiodepot_client(url: str) -> Any:
    return aiodepot.SyncStore(url, config=CONFIG)


def borgstore_client(url: str) -> Any:
    require_module("requests", pip="requests")
    from borgstore.store import Store

    return Store(url=url, config=CONFIG)


SERVERS: dict[str, Callable[[str], AbstractContextManager[str]]] = {
    "aiodepot-server": aiodepot_server_process,
    "borgstore-server": borgstore_server_process,
}
CLIENTS: dict[str, Callable[[str], Any]] = {"aiodepot-client": aiodepot_client, "borgstore-client": borgstore_client}


def not_found_errors() -> tuple[type[BaseException], ...]:
    from borgstore.backends.errors import ObjectNotFound as BorgObjectNotFound

    return (aiodepot.ObjectNotFound, BorgObjectNotFound)


def scenario(store: Any, base: Path) -> None:
    store.create()
    with store:
        values = {f"data/{k}": os.urandom(i * 97) for i, k in enumerate(KEYS)}
        for name, value in values.items():
            store.store(name, value)
        big = os.urandom(9 * 1024 * 1024)  # streamed by aiodepot's server in both directions
        store.store("config/big", big)
        store.store("config/main", b"0123456789")
        for name, value in values.items():
            assert store.load(name) == value
        assert store.load("config/big") == big
        assert store.load("config/main", offset=2, size=3) == b"234"
        assert store.load("config/main", offset=-4) == b"6789"
        assert store.load("config/main", offset=-4, size=2) == b"67"
        assert store.load("config/main", offset=8, size=10) == b"89"
        assert store.load("config/big", offset=5_000_000, size=10) == big[5_000_000:5_000_010]
        info = store.info("config/main")
        assert info.exists
        assert info.size == 10
        assert not info.directory
        assert not store.info("config/missing").exists
        assert [i.name for i in store.list("data")] == sorted(KEYS)
        assert {i.name: i.size for i in store.list("data")} == {n[5:]: len(v) for n, v in values.items()}
        store.move("data/" + KEYS[3], delete=True)
        assert [i.name for i in store.list("data", deleted=True)] == [KEYS[3]]
        assert KEYS[3] not in [i.name for i in store.list("data")]
        store.move("data/" + KEYS[3], undelete=True)
        store.move("config/main", "config/renamed")
        assert store.load("config/renamed") == b"0123456789"
        assert store.hash("config/renamed") == hashlib.sha256(b"0123456789").hexdigest()
        assert store.hash("config/renamed", algorithm="md5") == hashlib.md5(b"0123456789").hexdigest()
        first, second = values["data/" + KEYS[5]], values["data/" + KEYS[6]]
        sources = [(KEYS[5], 0, 10), (KEYS[6], 20, 30)]
        assert store.gather(sources, namespace="data") == first[:10] + second[20:50]
        target = store.defrag(sources, algorithm="sha256", namespace="data")
        assert target == hashlib.sha256(first[:10] + second[20:50]).hexdigest()
        assert store.load("data/" + target) == first[:10] + second[20:50]
        quota = store.quota()
        assert set(quota) == {"limit", "usage"}
        store.delete("config/renamed")
        with pytest.raises(not_found_errors()):
            store.load("config/renamed")
        with pytest.raises(not_found_errors()):
            store.delete("config/renamed")
    # what the server wrote is borgstore's on-disk layout
    k = KEYS[0]
    assert (base / "data" / k[:2] / k).read_bytes() == values["data/" + k]
    assert (base / "config" / "big").stat().st_size == len(big)
    store.destroy()
    assert not base.exists() or not any(base.iterdir())


@pytest.mark.parametrize("server_name", SERVERS)
@pytest.mark.parametrize("client_name", CLIENTS)
def test_client_server_pairs(tmp_path: Path, server_name: str, client_name: str) -> None:
    base = tmp_path / "store"
    with SERVERS[server_name](base.as_uri()) as url:
        scenario(CLIENTS[client_name](url), base)


@pytest.fixture
def borgstore_server(tmp_path: Path) -> Iterator[str]:
    with borgstore_server_process((tmp_path / "store").as_uri()) as url:
        yield url


def test_aiodepot_client_errors_against_borgstore_server(borgstore_server: str) -> None:
    store = aiodepot.SyncStore(borgstore_server, config=CONFIG)
    with pytest.raises(aiodepot.StoreNotFound):
        store.open()
    store.create()
    store.create()  # an empty store may be created again
    with store:
        store.store("config/main", b"x")
        with pytest.raises(aiodepot.InvalidName):
            store.store("config/Upper", b"x")  # rejected before it leaves the client
    with pytest.raises(aiodepot.StoreExists):
        store.create()
    store.destroy()


def test_if_absent_needs_the_servers_extension(tmp_path: Path, borgstore_server: str) -> None:
    """borgstore's server would ignore ?if_absent=1 and overwrite: the client refuses with NotSupported there,
    and uses the extension with aiodepot's server, which announces it."""
    store = aiodepot.SyncStore(borgstore_server, config=CONFIG)
    store.create()
    with store:
        assert not store.backend.capabilities.atomic_create
        store.store("config/main", b"first")
        with pytest.raises(aiodepot.NotSupported):
            store.store("config/main", b"second", if_absent=True)
        assert store.load("config/main") == b"first"
    store.destroy()
    with aiodepot_server_process((tmp_path / "ours").as_uri()) as url:
        store = aiodepot.SyncStore(url, config=CONFIG)
        store.create()
        with store:
            assert store.backend.capabilities.atomic_create
            store.store("config/main", b"first", if_absent=True)
            with pytest.raises(aiodepot.ObjectExists):
                store.store("config/main", b"second", if_absent=True)
            assert store.load("config/main") == b"first"
        store.destroy()
