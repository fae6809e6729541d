"""The Azure backend against Azurite: the conformance suites, then what is Azure's own.

One Azurite per test session (per xdist worker); every test gets a container of its own.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from aiodepot import (
    BackendURLInvalid,
    ConnectionLost,
    IntegrityError,
    ObjectExists,
    ObjectNotFound,
    PermissionDenied,
    ReadRangeError,
    Store,
    StoreExists,
    StoreNotFound,
    ValueChanged,
)
from aiodepot.backends import Limits, RetryPolicy, backend_from_url
from aiodepot.backends.azure import DEVELOPMENT_KEY, AzureBackend, parse_connection_string
from tests.conformance.listing import check_list_range, check_listing_pushed_down
from tests.conformance.suite import CONFIG, BackendConformance, MakeBackend, StoreConformance, key
from tests.servers import free_port, require_module
from tests.servers.azurite import ACCOUNT, KEY, Azurite, start_azurite
from tests.servers.faultproxy import FaultProxy

MiB = 1024 * 1024


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    require_module("azure.storage.blob", pip="aiodepot[azure]")
    server = start_azurite()
    yield server
    server.stop()


def fresh_container() -> str:
    return f"aiodepot-{uuid.uuid4().hex[:20]}"


@pytest.fixture
async def backend_at(azurite: Azurite) -> AsyncIterator[Any]:
    """``await backend_at(**options)``: a created and opened backend in a fresh container (closed afterwards)."""
    opened: list[AzureBackend] = []

    async def make(**options: Any) -> AzureBackend:
        backend = AzureBackend.from_url(azurite.url(fresh_container(), "depot/store"), create_container=True, **options)
        await backend.create()
        await backend.open()
        opened.append(backend)
        return backend

    yield make
    for backend in opened:
        if backend.opened:
            await backend.close()


# the conformance suites ------------------------------------------------------------------------------------


class TestAzureStore(StoreConformance):
    @pytest.fixture
    def make_backend(self, azurite: Azurite) -> MakeBackend:
        url = azurite.url(fresh_container(), "depot/store")
        return lambda: AzureBackend.from_url(url, create_container=True)


class TestAzureBackend(BackendConformance):
    supports_quota = False

    @pytest.fixture
    def make_backend(self, azurite: Azurite) -> MakeBackend:
        url = azurite.url(fresh_container(), "depot/store")
        return lambda: AzureBackend.from_url(url, create_container=True)


class TestAzureSmallBlocks(BackendConformance):
    """Every value bigger than 64 KiB goes up as staged blocks of 64 KiB (and loads in 64 KiB ranges)."""

    supports_quota = False

    @pytest.fixture
    def make_backend(self, azurite: Azurite) -> MakeBackend:
        url = azurite.url(fresh_container(), "depot/store")
        return lambda: AzureBackend.from_url(url, create_container=True, part_size=64 * 1024)


# URLs, credentials, options ----------------------------------------------------------------------------


def test_url_forms(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = backend_from_url(f"azure://acct:{KEY}@box/path/to/store")
    assert isinstance(plain, AzureBackend)
    assert (plain.container, plain.base, plain.account.name) == ("box", "path/to/store/", "acct")
    assert plain.account.endpoint == "https://acct.blob.core.windows.net" and plain.account.key == KEY
    assert KEY not in repr(plain) and KEY not in repr(plain.account)

    emulated = AzureBackend.from_url(f"azure://{ACCOUNT}:{KEY}@box/p?endpoint=http://127.0.0.1:10000/{ACCOUNT}")
    assert emulated.account.endpoint == f"http://127.0.0.1:10000/{ACCOUNT}"
    encoded = AzureBackend.from_url("azure://acct:" + KEY.replace("/", "%2F").replace("+", "%2B") + "@box/my%20depot")
    assert encoded.account.key == KEY and encoded.base == "my depot/"

    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    for bad in (
        f"azure://acct:{KEY}@box",  # no path
        f"azure://acct:{KEY}@box/",
        f"azure://acct:{KEY}@Box/p",  # container names are lowercase
        f"azure://acct:{KEY}@box/p?region=x",  # an unknown option
        f"azure://acct:{KEY}@box/p?endpoint=ftp://host/acct",
        "azure://acct:not*base64@box/p",
        "azure://box/p",  # no account, no connection string
    ):
        with pytest.raises(BackendURLInvalid) as caught:
            backend_from_url(bad)
        assert KEY not in str(caught.value)

    monkeypatch.setenv(
        "AZURE_STORAGE_CONNECTION_STRING", f"DefaultEndpointsProtocol=https;AccountName=envacct;AccountKey={KEY}"
    )
    from_env = AzureBackend.from_url("azure://box/p")
    assert (from_env.account.name, from_env.account.endpoint) == ("envacct", "https://envacct.blob.core.windows.net")
    development = parse_connection_string("UseDevelopmentStorage=true")
    assert (development.name, development.key) == (ACCOUNT, DEVELOPMENT_KEY)


def test_options_shape_the_store() -> None:
    store = Store(f"azure://acct:{KEY}@box/path", backend_options={"limits": Limits(connections=48), "part_size": MiB})
    assert store.max_concurrency == 48
    backend = store.backend
    assert isinstance(backend, AzureBackend)
    assert backend.capabilities.part_size == MiB and backend.block_threshold == MiB
    assert backend.capabilities.atomic_create and backend.capabilities.parallel_ranges
    assert AzureBackend.capabilities.preferred_concurrency == 32  # the class default is untouched
    with pytest.raises(ValueError):
        AzureBackend.from_url(f"azure://acct:{KEY}@box/path", list_page_size=5001)


def test_azurite_runs_without_telemetry(azurite: Azurite) -> None:
    """The emulator the tests start sends nothing home: its command line turns telemetry off."""
    command = Path(f"/proc/{azurite.process.pid}/cmdline").read_bytes().split(b"\0")
    assert b"--disableTelemetry" in command


async def test_connection_string_from_the_environment(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    backend = AzureBackend.from_url(f"azure://{fresh_container()}/env", create_container=True)
    await backend.create()
    async with backend:
        await backend.store("item", b"env")
        assert await backend.load("item") == b"env"


# lifecycle and listing ---------------------------------------------------------------------------------------


async def test_container_and_prefix_lifecycle(azurite: Azurite) -> None:
    container = fresh_container()
    with pytest.raises(StoreNotFound, match="create_container"):
        await AzureBackend.from_url(azurite.url(container, "a/store")).create()
    with pytest.raises(StoreNotFound, match="container does not exist"):
        await AzureBackend.from_url(azurite.url(container, "a/store")).open()
    first = AzureBackend.from_url(azurite.url(container, "a/store"), create_container=True)
    await first.create()
    await first.create()  # an empty store is accepted
    second = AzureBackend.from_url(azurite.url(container, "a/other"))
    with pytest.raises(StoreNotFound, match="store does not exist"):
        await second.open()
    await second.create()
    async with first:
        await first.store("x/item", b"1")
    with pytest.raises(StoreExists):
        await first.create()
    await first.destroy()
    with pytest.raises(StoreNotFound):
        await first.destroy()
    async with second:  # the other store in the container is untouched
        assert [info async for info in second.list("")] == []


async def test_listing_is_sorted_by_name_across_pages(backend_at: Any) -> None:
    backend = await backend_at(list_page_size=2)
    names = ["ns/a", "ns/a.del", "ns/a-b", "ns/a/x", "ns/a0", "ns/b.del", "ns/b/y", "ns/c"]
    await asyncio.gather(*(backend.store(name, name.encode()) for name in names))
    for foreign in ("Upper", "half.tmp", "quota.hid"):  # not ours: never listed
        blob = backend._container.get_blob_client(backend.base + "ns/" + foreign)
        await blob.upload_blob(b"?")
    listing = [(info.name, info.directory) async for info in backend.list("ns")]
    assert listing == [
        ("a", False),
        ("a", True),
        ("a-b", False),
        ("a.del", False),
        ("a0", False),
        ("b", True),
        ("b.del", False),
        ("c", False),
    ]


async def test_list_range_gives_what_the_filtered_listing_gives(backend_at: Any) -> None:
    await check_list_range(await backend_at(list_page_size=2))


async def test_prefix_is_listed_by_the_service(azurite: Azurite) -> None:
    """A flat namespace listed by a prefix asks Azure for those names only (``name_starts_with``): through a
    proxy that counts bytes, the narrowed listings fetch a small part of what the whole listing does. The
    Blob service has no start key: ``start_after`` alone is filtered here, with a prefix the prefix narrows."""
    with FaultProxy(azurite.port) as proxy:
        url = azurite.url(fresh_container(), "depot", port=proxy.port)
        backend = AzureBackend.from_url(url, create_container=True, list_page_size=20)
        await check_listing_pushed_down(proxy, backend, start_key=False)


async def test_borgstore_layout(backend_at: Any) -> None:
    backend = await backend_at()
    store = Store(backend=backend, config=CONFIG)
    await store.store("data/" + key(1), b"v")
    await store.store("config/main", b"cfg")
    await store.move("config/main", delete=True)
    keys = sorted([blob.name async for blob in backend._container.list_blobs()])
    k1 = key(1)
    assert keys == ["depot/store/", "depot/store/config/main.del", f"depot/store/data/{k1[:2]}/{k1[2:4]}/{k1}"]
    await store.close()


# big values: blocks, ranges, copies ----------------------------------------------------------------------------


async def test_big_values_as_staged_blocks(backend_at: Any, tmp_path: Path) -> None:
    backend = await backend_at(part_size=MiB, limits=Limits(parts=3))
    value = os.urandom(5 * MiB + 12345)
    await backend.store("big/value", memoryview(bytearray(value)))

    async def chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
        for start in range(0, len(data), size):
            yield data[start : start + size]

    await backend.store_chunks("big/streamed", chunks(value, 777_777), size=len(value))
    await backend.store_chunks("big/unsized", chunks(value, 3 * MiB))
    source = tmp_path / "source"
    source.write_bytes(value)
    await backend.store_file("big/file", str(source), size=len(value))
    for name in ("value", "streamed", "unsized", "file"):
        blob = backend._container.get_blob_client(backend.base + "big/" + name)
        committed, _ = await blob.get_block_list()
        assert len(committed) == 6, name  # six blocks of 1 MiB
        assert await backend.load("big/" + name) == value

    store = Store(backend=backend, max_bytes_in_flight=2 * MiB)
    assert await store.load("big/value") == value  # parallel ranges
    target = tmp_path / "copy"
    assert await store.load_file("big/file", target) == len(value)
    assert target.read_bytes() == value
    assert store.stats["backend_load_calls"] >= 6
    await store.close()


async def test_failed_streams_store_nothing(backend_at: Any) -> None:
    backend = await backend_at(part_size=MiB)

    async def failing() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield bytes(MiB)
        raise RuntimeError("the source broke")

    with pytest.raises(RuntimeError, match="source broke"):
        await backend.store_chunks("big/broken", failing())

    async def stream(total: int) -> AsyncIterator[bytes]:
        for _ in range(total // MiB):
            yield bytes(MiB)

    with pytest.raises(ValueError):
        await backend.store_chunks("big/short", stream(4 * MiB), size=5 * MiB)
    with pytest.raises(ValueError):
        await backend.store_chunks("big/long", stream(4 * MiB), size=3 * MiB)
    with pytest.raises(ObjectNotFound):
        await anext(backend.list("big"))


async def test_ranges(backend_at: Any) -> None:
    backend = await backend_at(part_size=MiB)
    value = os.urandom(2 * MiB + 100)
    await backend.store("big/value", value)  # blocks: ranges cross block boundaries
    cases = [
        (MiB - 10, 20),
        (0, 3 * MiB),
        (0, MiB),
        (2 * MiB, None),
        (-50, None),
        (-MiB - 50, 10),
        (len(value), 10),
        (len(value) + 100, None),
    ]
    for offset, size in cases:
        start = offset if offset >= 0 else len(value) + offset
        expected = value[start:] if size is None else value[start : start + size]
        assert await backend.load("big/value", offset=offset, size=size) == expected, (offset, size)
        streamed = b"".join([c async for c in backend.read_chunks("big/value", offset=offset, size=size)])
        assert streamed == expected, (offset, size)
    target = os.open(os.devnull, os.O_WRONLY)
    try:
        with pytest.raises(ReadRangeError):
            await backend.read_into("big/value", target, offset=len(value) - 5, size=10)
    finally:
        os.close(target)


async def test_a_ranged_load_learns_size_and_etag_from_its_first_range(azurite: Azurite) -> None:
    """The first range's reply gives the blob's size (``Content-Range``'s total) and ETag; the other ranges
    are asked ``If-Match`` it, so the Store's ranged load asks no properties, and a blob replaced between
    the ranges is loaded again."""
    backend = AzureBackend.from_url(azurite.url(fresh_container(), "depot"), create_container=True, part_size=MiB)
    store = Store(backend=backend, config={"big/": {"levels": [0]}})
    await store.create()
    value = os.urandom(2 * MiB + 100)
    async with store:
        await store.store("big/value", value)
        first = await backend.load_first("big/value", 0, MiB)
        assert (first.data, first.size) == (value[:MiB], len(value)) and first.version and first.mtime
        later = await backend.load_first("big/value", MiB + 1, MiB)
        assert (later.data, later.size, later.version) == (value[MiB + 1 : 2 * MiB + 1], len(value), first.version)
        assert (await backend.load_first("big/value", len(value) + 5, MiB)).data == b""
        buffer = bytearray(100)
        assert await backend.load_into("big/value", MiB, buffer, version=first.version) == 100
        assert buffer == value[MiB : MiB + 100]
        properties = backend._properties
        asked: list[str] = []

        async def counted(name: str) -> Any:
            asked.append(name)
            return await properties(name)

        backend._properties = counted  # type: ignore[method-assign]
        assert await store.load("big/value") == value and asked == []  # three GETs, nothing else
        assert await store.load("big/value", offset=10, size=MiB + 20) == value[10 : MiB + 30] and asked == []
        await store.store("big/value", value[::-1])  # a new ETag
        with pytest.raises(ValueChanged, match="no longer the blob with ETag"):
            await backend.load_into("big/value", MiB, buffer, version=first.version)
        backend._properties = properties  # type: ignore[method-assign]
    await store.destroy()


async def test_move_copies_inside_the_service(backend_at: Any) -> None:
    backend = await backend_at(part_size=MiB)
    value = os.urandom(3 * MiB + 1)
    await backend.store("a/big", value)
    await backend.move("a/big", "b/moved")
    assert await backend.load("b/moved") == value
    assert not (await backend.info("a/big")).exists
    with pytest.raises(ObjectNotFound):
        await backend.move("a/big", "b/again")


# conditional create -----------------------------------------------------------------------------------------


async def test_create_only_is_one_atomic_request(backend_at: Any) -> None:
    backend = await backend_at(part_size=MiB)
    assert await backend._upload("ns/once", b"first", replace=False)
    assert not await backend._upload("ns/once", b"second", replace=False)
    assert await backend.load("ns/once") == b"first"
    big = os.urandom(MiB + 1)
    assert await backend._upload("ns/big", big, replace=False)  # blocks: the condition is on the commit
    assert not await backend._upload("ns/big", bytes(MiB + 1), replace=False)
    assert await backend.load("ns/big") == big
    for value in (b"small", bytes(2 * MiB)):  # 16 writers race for one new name: exactly one wins
        name = f"ns/race-{len(value)}"
        results = await asyncio.gather(*(backend._upload(name, value, replace=False) for _ in range(16)))
        assert sorted(results) == [False] * 15 + [True]
    with pytest.raises(ObjectExists):
        await backend.store("ns/once", b"third", if_absent=True)


async def test_create_only_permissions(azurite: Azurite) -> None:
    url = azurite.url(fresh_container(), "store")
    writer = AzureBackend.from_url(url, create_container=True)
    await writer.create()
    async with writer:
        await writer.store("data/a", b"a")
    reader = AzureBackend.from_url(url, permissions={"": "lr"})
    async with reader:
        assert await reader.load("data/a") == b"a"
        with pytest.raises(PermissionDenied):
            await reader.store("data/b", b"b")
    appender = AzureBackend.from_url(url, permissions={"": "lrw"})
    async with appender:
        await appender.store("data/new", b"n")
        with pytest.raises(PermissionDenied):
            await appender.store("data/a", b"overwrite")
        await appender.store("data/moved", b"m")
        with pytest.raises(PermissionDenied):
            await appender.move("data/moved", "data/a")
    async with writer:
        assert await writer.load("data/a") == b"a"


# signed URLs ------------------------------------------------------------------------------------------------


async def test_signed_urls_work_without_credentials(backend_at: Any) -> None:
    backend = await backend_at()
    await backend.store("ns/shared", b"for a third party")
    async with aiohttp.ClientSession() as http:
        url = await backend.url_for("ns/shared", expires=60, method="GET")
        async with http.get(url) as response:
            assert response.status == 200 and await response.read() == b"for a third party"
        url = await backend.url_for("ns/upload", expires=60, method="PUT")
        async with http.put(url, data=b"from outside", headers={"x-ms-blob-type": "BlockBlob"}) as response:
            assert response.status == 201, await response.text()
        assert await backend.load("ns/upload") == b"from outside"

        read_only = await backend.url_for("ns/shared", expires=60, method="GET")
        async with http.put(read_only, data=b"x", headers={"x-ms-blob-type": "BlockBlob"}) as response:
            assert response.status == 403  # a GET URL does not write
        tampered = url.replace("ns/upload", "ns/other")  # the signature covers the blob's name
        async with http.put(tampered, data=b"x", headers={"x-ms-blob-type": "BlockBlob"}) as response:
            assert response.status == 403
        signature = read_only.rpartition("sig=")[2]
        forged = read_only.replace(signature, ("A" if signature[0] != "A" else "B") + signature[1:])
        async with http.get(forged) as response:
            assert response.status == 403
        expiring = await backend.url_for("ns/shared", expires=1, method="GET")
        await asyncio.sleep(2.5)
        async with http.get(expiring) as response:
            assert response.status == 403
    assert await backend.load("ns/shared") == b"for a third party"
    assert not (await backend.info("ns/other")).exists
    with pytest.raises(ValueError):
        await backend.url_for("ns/shared", expires=60, method="DELETE")


# errors ----------------------------------------------------------------------------------------------------


async def test_bad_key_missing_container_and_emulator_down(azurite: Azurite) -> None:
    container = fresh_container()
    good = AzureBackend.from_url(azurite.url(container, "store"), create_container=True)
    await good.create()
    wrong_key = "A" * 86 + "=="
    with pytest.raises(PermissionDenied) as denied:
        await AzureBackend.from_url(azurite.url(container, "store", key=wrong_key)).open()
    assert "\n" not in str(denied.value) and "authenticate" in str(denied.value)

    with pytest.raises(StoreNotFound) as missing:
        await AzureBackend.from_url(azurite.url(fresh_container(), "store")).open()
    assert str(missing.value) == "the store: the container does not exist"

    down = AzureBackend.from_url(azurite.url(container, "store", port=free_port()), retry=RetryPolicy(attempts=3))
    started = asyncio.get_running_loop().time()
    with pytest.raises(ConnectionLost) as lost:
        await down.open()
    assert asyncio.get_running_loop().time() - started < 5  # a server that is not there fails at once
    assert "\n" not in str(lost.value) and "Cannot connect" in str(lost.value)
    assert isinstance(lost.value, ConnectionError)

    async with good:
        with pytest.raises(ObjectNotFound) as not_found:
            await good.load("ns/missing")
        assert not_found.value.__cause__ is not None


def test_error_translation_table() -> None:
    from azure.core.exceptions import AzureError, ResourceNotFoundError, ServiceRequestError

    from aiodepot.backends.azure import ERRORS

    assert type(ERRORS.translate(ServiceRequestError("refused"), "x")) is ConnectionLost
    assert type(ERRORS.translate(AzureError("MD5 mismatch. Expected value is 'a'"), "x")) is IntegrityError
    assert type(ERRORS.translate(ResourceNotFoundError("gone"), "x")) is ObjectNotFound
    assert ERRORS.translate(ValueError("not ours"), "x") is None
