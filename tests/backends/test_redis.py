"""The redis backend against a real redis-server (and a three-node Redis Cluster), one of each per session."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
import redis
from redis.crc import key_slot

from aiodepot import (
    BackendError,
    BackendURLInvalid,
    ConnectionLost,
    ObjectNotFound,
    PermissionDenied,
    QuotaExceeded,
    Store,
    StoreExists,
    StoreNotFound,
)
from aiodepot.backends import Limits, RetryPolicy, backend_from_url
from aiodepot.backends.redis import RedisBackend, _translated
from tests.conformance.suite import CONFIG, BackendConformance, MakeBackend, StoreConformance, key
from tests.servers import free_port
from tests.servers.redis import redis_cluster, redis_server


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_cluster(tmp_path_factory.mktemp("redis-cluster")) as url:
        yield url


def fresh(url: str) -> MakeBackend:
    """A maker of backends for one new store (its own prefix) on the server at ``url``."""
    location = f"{url}/0/test/{uuid.uuid4().hex}"
    return lambda: RedisBackend.from_url(location)


class TestRedisStore(StoreConformance):
    @pytest.fixture
    def make_backend(self, redis_url: str) -> MakeBackend:
        return fresh(redis_url)


class TestRedisBackend(BackendConformance):
    @pytest.fixture
    def make_backend(self, redis_url: str) -> MakeBackend:
        return fresh(redis_url)


class TestRedisClusterStore(StoreConformance):
    @pytest.fixture
    def make_backend(self, redis_cluster_url: str) -> MakeBackend:
        return fresh(redis_cluster_url)


class TestRedisClusterBackend(BackendConformance):
    @pytest.fixture
    def make_backend(self, redis_cluster_url: str) -> MakeBackend:
        return fresh(redis_cluster_url)


def test_url_parsing() -> None:
    backend = backend_from_url("redis://:s%40cret@cache.example:6380/3/borg/repo1")
    assert isinstance(backend, RedisBackend)
    assert (backend.host, backend.port, backend.db, backend.prefix) == ("cache.example", 6380, 3, "borg/repo1")
    assert backend.password == "s@cret" and backend.username is None and not backend.cluster and not backend.tls
    plain = backend_from_url("redis://localhost")
    assert isinstance(plain, RedisBackend) and (plain.port, plain.db, plain.prefix) == (6379, 0, "aiodepot")
    cluster = backend_from_url("rediss+cluster://user:pw@node1:7000/0/x")
    assert isinstance(cluster, RedisBackend) and cluster.cluster and cluster.tls and cluster.username == "user"
    for bad in ("redis://", "redis://host/db", "redis://host/0?x=1", "redis+cluster://host/1", "redis://h/0/a{b}"):
        with pytest.raises(BackendURLInvalid):
            backend_from_url(bad)
    with pytest.raises(ValueError, match="default_ttl"):
        backend_from_url("redis://host", default_ttl=0)


async def test_key_layout(redis_url: str) -> None:
    prefix = f"layout-{uuid.uuid4().hex}"
    store = Store(f"{redis_url}/0/{prefix}", config=CONFIG)
    await store.create()
    async with store:
        await store.store("data/" + key(1), b"one")
        await store.store("config/main", b"cfg")
    client = redis.Redis.from_url(redis_url)
    try:
        keys = sorted(k.decode() for k in client.scan_iter(match=f"{{{prefix}}}/*"))
        k = key(1)
        base = f"{{{prefix}}}/"
        nested = f"{base}data/{k[:2]}/{k[2:4]}/"
        expected = [base, base + "config/", base + "config/main", base + "data/", f"{base}data/{k[:2]}/", nested]
        assert keys == sorted([*expected, nested + k, base + "layout.hid"])  # layout.hid: the remembered levels
        raw = client.get(base + "config/main")
        assert isinstance(raw, bytes) and raw[8:] == b"cfg" and len(raw) == 11  # mtime header + value
    finally:
        client.close()
    await store.destroy()


async def test_stores_share_a_database_by_prefix(redis_url: str) -> None:
    a, b = Store(f"{redis_url}/0/share-{uuid.uuid4().hex}"), Store(f"{redis_url}/0/share-{uuid.uuid4().hex}")
    await a.create()
    await b.create()
    async with a, b:
        await a.store("k", b"in a")
        assert not (await b.info("k")).exists
        assert [i.name async for i in b.list()] == []
    await a.destroy()
    async with b:  # untouched by a's destroy
        await b.store("k", b"in b")
    with pytest.raises(StoreExists):
        await b.create()
    await b.destroy()
    with pytest.raises(StoreNotFound):
        await b.destroy()


async def test_glob_characters_in_names(redis_url: str) -> None:
    backend = fresh(redis_url)()
    await backend.create()
    async with backend:
        for name in ("ns/a*", "ns/a?", "ns/[x]", "ns/a"):
            await backend.store(name, name.encode())
        await backend.mkdir("n*")
        assert [i.name async for i in backend.list("ns")] == ["[x]", "a", "a*", "a?"]
        assert [i.name async for i in backend.list("n*")] == []
        with pytest.raises(ObjectNotFound):
            await anext(backend.list("n?"))
        assert await backend.load("ns/a*", offset=-1) == b"*"
    await backend.destroy()


async def test_ttl(redis_url: str) -> None:
    backend = fresh(redis_url)()
    await backend.create()
    async with backend:
        await backend.store_with_ttl("ns/short", b"gone soon", 0.2)
        await backend.store("ns/forever", b"stays")
        await backend.move("ns/short", "ns/moved")  # the expiry moves along
        assert await backend.load("ns/moved") == b"gone soon"
        with pytest.raises(ValueError, match="ttl"):
            await backend.store_with_ttl("ns/x", b"", 0)
        await asyncio.sleep(0.4)
        assert not (await backend.info("ns/moved")).exists
        assert [i.name async for i in backend.list("ns")] == ["forever"]
    await backend.destroy()

    store = Store(f"{redis_url}/0/ttl-{uuid.uuid4().hex}", backend_options={"default_ttl": 0.2})
    await store.create()
    async with store:
        await store.store_many({"a": b"1", "b": b"2"})
        await store.store("c", b"3")
        assert await store.load_many(["a", "b", "c"]) == [b"1", b"2", b"3"]
        await asyncio.sleep(0.4)
        assert [info.exists for info in await store.info_many(["a", "b", "c"])] == [False] * 3
    await store.destroy()


async def test_unreachable_server_is_connection_lost() -> None:
    backend = RedisBackend(port=free_port())
    with pytest.raises(ConnectionLost) as caught:
        await backend.open()
    assert isinstance(caught.value, ConnectionError)


def test_cluster_keys_share_one_slot(redis_cluster_url: str) -> None:
    backend = RedisBackend.from_url(f"{redis_cluster_url}/0/slot")
    keys = [backend._key(name).encode() for name in ("a", "data/01/x", "zz/top")] + [backend._dir_key("data").encode()]
    assert len({key_slot(k) for k in keys}) == 1  # different keys in one hash slot, thanks to the {prefix} tag


def test_the_old_option_names_warn_and_still_work() -> None:
    with pytest.warns(
        DeprecationWarning, match=r"max_connections=…\) is deprecated.*Limits\(connections=8\)"
    ) as warned:
        backend = RedisBackend(max_connections=8)
    assert warned[0].filename == __file__  # the warning names the caller's line
    assert backend.limits.connections == backend.max_connections == 8
    with pytest.raises(ValueError, match="connections"):
        RedisBackend(limits=Limits(connections=0))


async def test_a_killed_connection_is_retried_with_the_policy(redis_url: str) -> None:
    """With ``retry``, a command whose connection was killed goes out again on a new one; without, it fails."""
    location = f"{redis_url}/0/test/{uuid.uuid4().hex}"
    admin = redis.Redis.from_url(redis_url)
    retrying = RedisBackend.from_url(location, retry=RetryPolicy(attempts=3, backoff=0.01))
    await retrying.create()
    plain = RedisBackend.from_url(location)
    async with retrying, plain:
        await retrying.store("x", b"value")
        await plain.store("y", b"other")
        admin.client_kill_filter(_type="normal", skipme=True)  # every connection of both backends
        assert await retrying.load("x") == b"value"
        with pytest.raises(ConnectionLost):
            await plain.load("y")
    admin.close()
    await retrying.destroy()


@pytest.mark.parametrize(
    ("native", "kind"),
    [
        (redis.exceptions.AuthenticationError("invalid password"), PermissionDenied),
        (redis.exceptions.NoPermissionError("NOPERM no rights"), PermissionDenied),
        (redis.exceptions.ConnectionError("connection refused"), ConnectionLost),
        (redis.exceptions.TimeoutError("timed out"), ConnectionLost),
        (redis.exceptions.ClusterDownError("CLUSTERDOWN the cluster is down"), ConnectionLost),
        (redis.exceptions.ResponseError("OOM command not allowed"), QuotaExceeded),
        (redis.exceptions.ResponseError("NOPERM this user has no permissions"), PermissionDenied),
        (redis.exceptions.ResponseError("NOAUTH Authentication required."), PermissionDenied),
        (redis.exceptions.ResponseError("WRONGTYPE Operation against a key"), BackendError),
    ],
)
def test_redis_errors_translate_by_the_table(native: redis.exceptions.RedisError, kind: type[Exception]) -> None:
    with pytest.raises(kind) as raised, _translated("ns/a"):
        raise native
    assert type(raised.value) is kind
    assert raised.value.args == (f"ns/a: {native}",)
    assert raised.value.__cause__ is native
