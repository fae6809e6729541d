"""The S3 backend against moto's S3 server: the conformance suite, then what is S3's own.

One moto server per test session (per xdist worker); every test gets a bucket of its own.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import hashlib
import itertools
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aioboto3  # type: ignore[import-untyped]
import aiohttp
import pytest
from aiobotocore.config import AioConfig  # type: ignore[import-untyped]
from botocore import auth as botocore_auth  # type: ignore[import-untyped]
from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
from botocore.credentials import Credentials  # type: ignore[import-untyped]
from botocore.exceptions import ClientError, EndpointConnectionError, FlexibleChecksumError  # type: ignore[import-untyped]

from aiodepot import (
    BackendError,
    BackendURLInvalid,
    ConnectionLost,
    IntegrityError,
    NotSupported,
    ObjectExists,
    ObjectNotFound,
    PermissionDenied,
    ReadRangeError,
    Store,
    StoreExists,
    StoreNotFound,
    ValueChanged,
)
from aiodepot.backends import Limits, RetryPolicy, Timeouts, backend_from_url
from aiodepot.backends.s3 import MAX_PARTS, MiB, S3Backend, _name_bound, _stored_other_bytes, _translate
from aiodepot.backends.s3._direct import DirectBody, _SigV4
from tests.conformance.listing import check_listing_pushed_down
from tests.conformance.suite import CONFIG, BackendConformance, MakeBackend, StoreConformance, key
from tests.servers import free_port, require_module
from tests.servers.faultproxy import Fault, FaultProxy
from tests.servers.moto import MotoServer, start_moto_server

PART = 5 * MiB  # S3's (and moto's) smallest part


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    require_module("moto.server", pip="moto[server]")
    server = start_moto_server()
    yield server
    server.stop()


def fresh_bucket() -> str:
    return f"aiodepot-{uuid.uuid4().hex[:20]}"


@contextlib.asynccontextmanager
async def raw_client(server: MotoServer) -> AsyncIterator[Any]:
    """A plain aioboto3 client, to look at the bucket behind the backend's back."""
    session = aioboto3.Session(
        aws_access_key_id=server.access_key, aws_secret_access_key=server.secret_key, region_name="us-east-1"
    )
    config = AioConfig(request_checksum_calculation="when_required", response_checksum_validation="when_required")
    async with session.client("s3", endpoint_url=server.endpoint_url, config=config) as client:
        yield client


async def open_uploads(server: MotoServer, bucket: str) -> list[dict[str, Any]]:
    async with raw_client(server) as client:
        response = await client.list_multipart_uploads(Bucket=bucket)
    uploads: list[dict[str, Any]] = response.get("Uploads", [])
    return uploads


@pytest.fixture
async def backend_at(moto_server: MotoServer) -> AsyncIterator[Any]:
    """``await backend_at(**options)``: a created and opened backend in a fresh bucket (closed afterwards)."""
    opened: list[S3Backend] = []

    async def make(**options: Any) -> S3Backend:
        backend = S3Backend.from_url(moto_server.url(fresh_bucket(), "depot/store"), create_bucket=True, **options)
        await backend.create()
        await backend.open()
        opened.append(backend)
        return backend

    yield make
    for backend in opened:
        if backend.opened:
            await backend.close()


# the conformance suite -------------------------------------------------------------------------------------


class TestS3Store(StoreConformance):
    @pytest.fixture
    def make_backend(self, moto_server: MotoServer) -> MakeBackend:
        url = moto_server.url(fresh_bucket(), "depot/store")
        return lambda: S3Backend.from_url(url, create_bucket=True)


class TestS3Backend(BackendConformance):
    supports_quota = False

    @pytest.fixture
    def make_backend(self, moto_server: MotoServer) -> MakeBackend:
        url = moto_server.url(fresh_bucket(), "depot/store")
        return lambda: S3Backend.from_url(url, create_bucket=True)


class TestS3BackendThroughBotocore(BackendConformance):
    """``direct_requests=False``: every request through botocore's pipeline (as on AWS itself)."""

    supports_quota = False

    @pytest.fixture
    def make_backend(self, moto_server: MotoServer) -> MakeBackend:
        url = moto_server.url(fresh_bucket(), "depot/store")
        return lambda: S3Backend.from_url(url, create_bucket=True, direct_requests=False)


class TestB2Backend(BackendConformance):
    """``b2:`` URLs: Content-MD5 instead of x-amz-checksum headers (also for DeleteObjects)."""

    supports_quota = False

    @pytest.fixture
    def make_backend(self, moto_server: MotoServer) -> MakeBackend:
        url = moto_server.url(fresh_bucket(), "depot/store", scheme="b2")
        return lambda: S3Backend.from_url(url, create_bucket=True)


# URLs, credentials, options ----------------------------------------------------------------------------


def test_url_forms() -> None:
    plain = backend_from_url("s3:/bucket/path/to/store")
    assert isinstance(plain, S3Backend)
    assert (plain.bucket, plain.base, plain.endpoint.endpoint_url, plain.checksum) == (
        "bucket",
        "path/to/store/",
        None,
        "sha256",
    )
    assert plain.endpoint.profile is None and plain.endpoint.access_key_id is None

    profiled = S3Backend.from_url("s3:work@https://s3.example.com:9000/b/p")
    assert profiled.endpoint.profile == "work" and profiled.endpoint.endpoint_url == "https://s3.example.com:9000"

    keyed = S3Backend.from_url("s3:AKIA:se%2Fcr%40et:with:colons@http://127.0.0.1:9000/b/my%20depot/")
    assert keyed.endpoint.access_key_id == "AKIA"
    assert keyed.endpoint.secret_access_key == "se/cr@et:with:colons"
    assert keyed.base == "my depot/"
    assert "se/cr" not in repr(keyed) and "AKIA" not in repr(keyed)

    b2 = backend_from_url("b2:keyid:appkey@https://s3.us-west-004.backblazeb2.com/bucket/borg")
    assert isinstance(b2, S3Backend)
    assert b2.b2 and b2.checksum == "md5" and b2.region == "us-west-004"

    for bad in (
        "s3:bucket/path",  # no leading slash
        "s3:/bucket",  # no path in the bucket
        "s3:/bucket/",
        "s3:ftp://host/bucket/path",
        "b2:/bucket/path",  # B2 has no default endpoint
        "s3:key:secret@",
    ):
        with pytest.raises(BackendURLInvalid):
            backend_from_url(bad)
    with pytest.raises(BackendURLInvalid) as caught:
        backend_from_url("s3:key:topsecret@ftp://host/b/p")
    assert "topsecret" not in str(caught.value)


def test_options_shape_the_store() -> None:
    store = Store("s3:/bucket/path", backend_options={"limits": Limits(connections=48), "part_size": 16 * MiB})
    assert store.max_concurrency == 48
    backend = store.backend
    assert isinstance(backend, S3Backend)
    assert backend.capabilities.part_size == 16 * MiB and backend.multipart_threshold == 16 * MiB
    assert S3Backend.capabilities.preferred_concurrency == 32  # the class default is untouched
    assert backend.capabilities.parallel_ranges and backend.capabilities.multipart
    with pytest.raises(ValueError, match="does not take"):
        Store("s3:/bucket/path", backend_options={"nonsense": 1})
    with pytest.raises(ValueError):
        S3Backend("bucket", "path", multipart_threshold=MiB)  # below S3's part minimum
    with pytest.raises(ValueError):
        S3Backend("bucket", "path", checksum="crc64")  # type: ignore[arg-type]


def test_the_old_option_names_warn_and_still_work() -> None:
    with pytest.warns(DeprecationWarning, match=r"max_concurrency=…\) is deprecated.*Limits\(connections=12\)"):
        backend = S3Backend("bucket", "path", max_concurrency=12)
    assert backend.capabilities.preferred_concurrency == backend.limits.connections == 12
    with pytest.warns(DeprecationWarning, match="is deprecated") as caught:
        backend = S3Backend.from_url(
            "s3:/bucket/path",
            multipart_concurrency=3,
            max_attempts=2,
            connect_timeout=1.0,
            read_timeout=2.0,
        )
    assert len(caught) == 4
    assert backend.limits == Limits(connections=32, threads=4, parts=3)
    assert backend.retry == S3Backend.default_retry.with_attempts(2)
    assert backend.timeouts == Timeouts(connect=1.0, read=2.0)
    assert backend._config.retries == {"mode": "standard", "total_max_attempts": 2}
    assert (backend._config.connect_timeout, backend._config.read_timeout) == (1.0, 2.0)
    with pytest.raises(ValueError, match="parts"):
        S3Backend("bucket", "path", limits=Limits(parts=0))


def test_part_size_keeps_within_10000_parts() -> None:
    backend = S3Backend("bucket", "path", part_size=5 * MiB)
    assert backend._part_size_for(1) == 5 * MiB
    for size in (50 * 1024 * MiB, 100 * 1024 * MiB, 1024 * 1024 * MiB, 5 * 1024 * 1024 * MiB):
        part = backend._part_size_for(size)
        assert part % MiB == 0 and part >= 5 * MiB
        assert -(-size // part) <= MAX_PARTS
    with pytest.raises(ValueError):
        backend._part_size_for(5 * 1024 * 1024 * MiB + 1)


async def test_credentials_from_environment_and_profile(
    moto_server: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text("[depot]\naws_access_key_id = from-profile\naws_secret_access_key = profile-secret\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-environment")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "environment-secret")
    bucket = fresh_bucket()
    endpoint = moto_server.endpoint_url

    from_env = S3Backend.from_url(f"s3:{endpoint}/{bucket}/env", create_bucket=True)
    await from_env.create()
    async with from_env:
        await from_env.store("item", b"env")
        assert (await from_env._session.get_credentials()).access_key == "from-environment"

    from_profile = S3Backend.from_url(f"s3:depot@{endpoint}/{bucket}/env")
    async with from_profile:
        assert await from_profile.load("item") == b"env"
        assert (await from_profile._session.get_credentials()).access_key == "from-profile"

    with pytest.raises(BackendError, match="nosuchprofile"):
        await S3Backend.from_url(f"s3:nosuchprofile@{endpoint}/{bucket}/env").open()


async def test_one_pool_per_backend_sized_by_its_connections(backend_at: Any) -> None:
    backend = await backend_at(limits=Limits(connections=12), retry=RetryPolicy(attempts=7))
    client = backend._client
    assert client.meta.config.max_pool_connections == 12
    assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 7}
    await asyncio.gather(*(backend.store(f"ns/{i}", b"x") for i in range(30)))
    assert backend._client is client  # every request went through the one client


# lifecycle -------------------------------------------------------------------------------------------------


async def test_bucket_and_prefix_lifecycle(moto_server: MotoServer) -> None:
    bucket = fresh_bucket()
    with pytest.raises(StoreNotFound, match="create_bucket"):
        await S3Backend.from_url(moto_server.url(bucket, "a/store")).create()
    first = S3Backend.from_url(moto_server.url(bucket, "a/store"), create_bucket=True)
    await first.create()
    await first.create()  # an empty store is accepted (as an empty directory is on posixfs)
    second = S3Backend.from_url(moto_server.url(bucket, "a/other"))  # the bucket exists now
    with pytest.raises(StoreNotFound):
        await second.open()
    await second.create()
    async with first:
        await first.store("x/item", b"1")
    with pytest.raises(StoreExists):
        await first.create()
    async with raw_client(moto_server) as client:
        # a writer that crashed mid-upload left this behind; destroy cleans it up
        await client.create_multipart_upload(Bucket=bucket, Key="a/store/x/unfinished")
        await first.destroy()
        keys = [o["Key"] for o in (await client.list_objects_v2(Bucket=bucket)).get("Contents", [])]
    assert keys == ["a/other/"]  # the other store in the same bucket is untouched
    assert await open_uploads(moto_server, bucket) == []
    with pytest.raises(StoreNotFound):
        await first.destroy()


async def test_borgstore_layout_and_interop(moto_server: MotoServer) -> None:
    from borgstore.store import Store as BorgStore

    bucket = fresh_bucket()
    url = moto_server.url(bucket, "repo")
    store = Store(url, config=CONFIG, backend_options={"create_bucket": True})
    await store.create()
    async with store:
        await store.store("data/" + key(1), b"from aiodepot")
        await store.store("config/main", b"cfg")
        await store.move("config/main", delete=True)
    k1 = key(1)
    async with raw_client(moto_server) as client:
        keys = sorted(o["Key"] for o in (await client.list_objects_v2(Bucket=bucket)).get("Contents", []))
    # layout.hid: the nesting aiodepot remembers (borgstore ignores .hid names, see below)
    assert keys == ["repo/", "repo/config/main.del", f"repo/data/{k1[:2]}/{k1[2:4]}/{k1}", "repo/layout.hid"]

    def borg_side() -> tuple[bytes, list[str]]:
        borg = BorgStore(url=url, config=CONFIG)
        with borg:
            borg.store("data/" + key(2), b"from borgstore")
            names = sorted(info.name for info in borg.list("data"))
            return borg.load("data/" + key(1)), names

    loaded, names = await asyncio.to_thread(borg_side)
    assert loaded == b"from aiodepot" and names == sorted([key(1), key(2)])
    async with store:
        assert await store.load("data/" + key(2)) == b"from borgstore"
    await store.destroy()


# listing ---------------------------------------------------------------------------------------------------


async def test_listing_is_sorted_by_name_across_pages(backend_at: Any, moto_server: MotoServer) -> None:
    backend = await backend_at(list_page_size=2)
    # in key order "a.del" and "a-b" come before the directory "a/": by name they come after it
    names = ["ns/a", "ns/a.del", "ns/a-b", "ns/a/x", "ns/a0", "ns/b.del", "ns/b/y", "ns/c"]
    await asyncio.gather(*(backend.store(name, name.encode()) for name in names))
    async with raw_client(moto_server) as client:  # not ours: never listed
        for foreign in ("Upper", "half.tmp", "quota.hid"):
            await client.put_object(Bucket=backend.bucket, Key=backend.base + "ns/" + foreign, Body=b"?")
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
    assert _name_bound("a.del") == "a" and _name_bound("a/") == "a/" and _name_bound("ab") == "ab"


async def test_prefix_and_start_after_are_listed_by_the_service(moto_server: MotoServer) -> None:
    """A flat namespace listed from a start key or by a prefix asks S3 for those keys only: through a proxy
    that counts bytes, the narrowed listings fetch a small part of what the whole listing does."""
    with FaultProxy(moto_server.port) as proxy:
        url = moto_server.url(fresh_bucket(), "depot").replace(f":{moto_server.port}/", f":{proxy.port}/")
        await check_listing_pushed_down(proxy, S3Backend.from_url(url, create_bucket=True, list_page_size=20))


async def test_pagination_over_more_than_1000_keys(backend_at: Any) -> None:
    store = Store(backend=await backend_at(), config={"flat/": {"levels": [0]}, "deep/": {"levels": [1]}})
    values = {f"flat/{i:05d}": b"" for i in range(1100)}
    values.update({f"deep/{key(i)}": b"x" for i in range(30)})
    await store.store_many(values, max_concurrency=64)
    listed = [info.name async for info in store.list("flat")]
    assert listed == [f"{i:05d}" for i in range(1100)]
    assert [info.name async for info in store.list("deep")] == sorted(key(i) for i in range(30))
    directories = [info async for info in store.backend.list("deep")]
    assert all(info.directory for info in directories)
    assert [info.name for info in directories] == sorted({key(i)[:2] for i in range(30)})
    await store.close()
    await store.destroy()  # two DeleteObjects batches
    with pytest.raises(StoreNotFound):
        await store.open()


# big values: multipart, ranges, files ----------------------------------------------------------------------


async def test_multipart_upload_with_5_mib_parts(backend_at: Any, moto_server: MotoServer, tmp_path: Path) -> None:
    backend = await backend_at(part_size=PART, limits=Limits(parts=3))
    value = os.urandom(2 * PART + 12345)
    await backend.store("big/value", memoryview(bytearray(value)))

    async def chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
        for start in range(0, len(data), size):
            yield data[start : start + size]

    await backend.store_chunks("big/streamed", chunks(value, 777_777), size=len(value))
    await backend.store_chunks("big/unsized", chunks(value, 3 * MiB))
    source = tmp_path / "source"
    source.write_bytes(value)
    await backend.store_file("big/file", str(source), size=len(value))
    async with raw_client(moto_server) as client:
        for name in ("value", "streamed", "unsized", "file"):
            head = await client.head_object(Bucket=backend.bucket, Key=backend.base + "big/" + name)
            assert head["ETag"].endswith('-3"'), name  # three parts
            assert await backend.load("big/" + name) == value
    assert await open_uploads(moto_server, backend.bucket) == []

    store = Store(backend=backend, max_bytes_in_flight=2 * PART)
    assert await store.load("big/value") == value  # parallel ranges, one part at a time in flight
    target = tmp_path / "copy"
    assert await store.load_file("big/file", target) == len(value)
    assert target.read_bytes() == value
    assert store.stats["backend_load_calls"] >= 6
    await store.close()


async def test_failed_uploads_are_aborted(backend_at: Any, moto_server: MotoServer, tmp_path: Path) -> None:
    backend = await backend_at(part_size=PART)

    async def failing() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield bytes(PART)
        raise RuntimeError("the source broke")

    with pytest.raises(RuntimeError, match="source broke"):
        await backend.store_chunks("big/broken", failing())

    async def stream(total: int) -> AsyncIterator[bytes]:
        for _ in range(total // MiB):
            yield bytes(MiB)

    with pytest.raises(ValueError):
        await backend.store_chunks("big/short", stream(12 * MiB), size=13 * MiB)
    with pytest.raises(ValueError):
        await backend.store_chunks("big/long", stream(12 * MiB), size=11 * MiB)
    grown = tmp_path / "grown"
    grown.write_bytes(bytes(11 * MiB))
    with pytest.raises(ValueError, match="longer"):
        await backend.store_file("big/grown", str(grown), size=10 * MiB)

    # cancelled in the middle: two parts sent, the third never comes
    sent_two = asyncio.Event()

    async def stalling() -> AsyncIterator[bytes]:
        yield bytes(2 * PART + 1)
        sent_two.set()
        await asyncio.Event().wait()
        yield b""  # never reached

    upload = asyncio.create_task(backend.store_chunks("big/cancelled", stalling()))
    await sent_two.wait()
    for _ in range(1000):
        uploads = await open_uploads(moto_server, backend.bucket)
        if uploads:
            break
    assert [u["Key"] for u in uploads] == [backend.base + "big/cancelled"]
    upload.cancel()
    with pytest.raises(asyncio.CancelledError):
        await upload

    assert await open_uploads(moto_server, backend.bucket) == []
    with pytest.raises(ObjectNotFound):
        await anext(backend.list("big"))


async def test_ranges(backend_at: Any) -> None:
    backend = await backend_at(part_size=PART)
    value = os.urandom(2 * PART + 100)
    await backend.store("big/value", value)  # multipart: ranges cross part boundaries
    cases = [
        (PART - 10, 20),
        (0, 3 * PART),  # a whole-value probe bigger than the value
        (0, PART),  # a probe smaller than the value: exactly that much comes back
        (2 * PART, None),
        (-50, None),
        (-PART - 50, 10),  # far from the end: sized by a HEAD, then one exact range
        (-60, 10),
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
    chunks = [c async for c in backend.read_chunks("big/value", chunk_size=64 * 1024)]
    assert b"".join(chunks) == value and max(map(len, chunks)) <= 64 * 1024


async def test_move_copies_big_objects_in_parts(backend_at: Any, moto_server: MotoServer) -> None:
    backend = await backend_at(part_size=PART, copy_threshold=PART)
    value = os.urandom(2 * PART + 1)
    await backend.store("a/big", value)
    await backend.move("a/big", "b/moved")
    assert await backend.load("b/moved") == value
    assert not (await backend.info("a/big")).exists
    async with raw_client(moto_server) as client:
        head = await client.head_object(Bucket=backend.bucket, Key=backend.base + "b/moved")
    assert head["ETag"].endswith('-3"')  # copied part by part
    assert await open_uploads(moto_server, backend.bucket) == []


# integrity -------------------------------------------------------------------------------------------------


async def test_checksums_are_sent_and_verified(backend_at: Any, moto_server: MotoServer) -> None:
    backend = await backend_at()
    value = b"checked value"
    await backend.store("ns/item", value)
    async with raw_client(moto_server) as client:
        head = await client.head_object(Bucket=backend.bucket, Key=backend.base + "ns/item", ChecksumMode="ENABLED")
        assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(value).digest()).decode()
        # An object whose bytes do not match the checksum stored with it, as after corruption at rest: moto
        # keeps the checksum it is given without checking it (S3 would refuse this upload with BadDigest).
        wrong = base64.b64encode(hashlib.sha256(b"other bytes").digest()).decode()
        await client.put_object(
            Bucket=backend.bucket,
            Key=backend.base + "ns/corrupt",
            Body=b"x" * 100,
            ChecksumAlgorithm="SHA256",
            ChecksumSHA256=wrong,
        )
        # the same with a body big enough to be received into one buffer rather than joined
        await client.put_object(
            Bucket=backend.bucket,
            Key=backend.base + "ns/corrupt-big",
            Body=b"x" * (300 * 1024),
            ChecksumAlgorithm="SHA256",
            ChecksumSHA256=wrong,
        )
    store = Store(backend=backend)
    for read in (
        backend.load("ns/corrupt"),
        backend.hash("ns/corrupt"),
        store.load("ns/corrupt"),  # the store's first range of a load is a whole GET
        backend.load("ns/corrupt-big"),  # received into one buffer, hashed piece by piece
    ):
        with pytest.raises(IntegrityError) as caught:
            await read
        assert isinstance(caught.value.__cause__, FlexibleChecksumError)
    assert await backend.load("ns/corrupt", offset=10, size=5) == b"xxxxx"  # ranges carry no checksum
    assert await backend.load("ns/item") == value
    await store.close()  # and the backend: a store collected later (its failed load's traceback) never warns


async def test_a_flipped_bit_in_a_whole_body_is_caught_and_fetched_again(moto_server: MotoServer) -> None:
    """A whole GET is hashed as its pieces arrive and checked against the stored checksum: a bit flipped on
    the way down (through a proxy) fails the check, and the GET is sent again; small and big bodies, on
    the direct path and through botocore."""
    bucket = fresh_bucket()
    with FaultProxy(moto_server.port) as proxy:
        url = moto_server.url(bucket, "depot").replace(f":{moto_server.port}/", f":{proxy.port}/")
        for direct in (True, False):
            backend = S3Backend.from_url(url, create_bucket=True, direct_requests=direct)
            if direct:
                await backend.create()
            async with backend:
                for size in (1000, 3 * MiB):
                    value = os.urandom(size)
                    await backend.store(f"ns/{size}", value)
                    flips = proxy.counters().flips
                    proxy.arm(Fault.flip(size // 2, "down", bit=3))  # inside the body, past the headers
                    assert await backend.load(f"ns/{size}") == value
                    assert proxy.counters().flips == flips + 1, (direct, size)
    async with raw_client(moto_server) as client:
        keys = [{"Key": f"depot/ns/{size}"} for size in (1000, 3 * MiB)] + [{"Key": "depot/"}]
        await client.delete_objects(Bucket=bucket, Delete={"Objects": keys})


async def test_a_direct_body_read_in_parts_then_whole(backend_at: Any) -> None:
    """``read(n)`` then ``read()`` of a direct GET body gives the rest (not a buffer of the whole length),
    and the checksum covers both parts; a body received whole is checked too."""
    backend = await backend_at()
    value = os.urandom(300 * 1024)  # big enough to be received into one buffer when read whole
    await backend.store("ns/item", value)
    key = backend.layout.key("ns/item")
    for whole, first in itertools.product((True, False), (0, 1000)):
        # the whole object carries its checksum; a range (all but the last byte) carries none
        response = await backend._get_object("ns/item", key, None if whole else f"bytes=0-{len(value) - 2}")
        body = response["Body"]
        assert isinstance(body, DirectBody) and (body._expected is not None) == whole
        try:
            head = await body.read(first) if first else b""
            assert head + await body.read() == (value if whole else value[:-1])
            assert (body._hash is not None) == whole
        finally:
            body.close()


async def test_one_hash_per_upload_and_the_etag_check_where_it_is_free(backend_at: Any) -> None:
    """``verify_etag=None`` (the default) compares ETags where the upload carries the MD5 already
    (``checksum="md5"``): with SHA-256, which the service verifies, an MD5 of every byte would be a second
    check of the same bytes. True and False force it."""
    value = os.urandom(PART + 10)  # a PUT, and an upload of two parts
    hashed: list[int] = []
    real_md5 = hashlib.md5

    def counting_md5(data: Any = b"", **kwargs: Any) -> Any:
        hashed.append(len(data))
        return real_md5(data, **kwargs)

    for options, md5_hashed in (
        ({}, 0),  # SHA-256 only: the service verifies it
        ({"checksum": "md5"}, 1),  # Content-MD5, and the ETag compared with that same digest
        ({"verify_etag": True}, 1),  # SHA-256, and an MD5 for the ETag (a service that verifies nothing)
        ({"checksum": "md5", "verify_etag": False}, 1),
    ):
        backend = await backend_at(part_size=PART, **options)
        hashed.clear()
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("aiodepot.backends.s3._checksums.hashlib.md5", counting_md5)
            await backend.store("ns/small", value[:1000])
            await backend.store("ns/big", value)
        assert sum(hashed) == md5_hashed * (len(value) + 1000), options  # never an MD5 of a byte twice
        assert await backend.load("ns/small") == value[:1000] and await backend.load("ns/big") == value


async def test_store_if_absent(backend_at: Any) -> None:
    backend = await backend_at(part_size=PART)
    await backend.store("ns/once", b"first", if_absent=True)
    with pytest.raises(ObjectExists):
        await backend.store("ns/once", b"second", if_absent=True)
    assert await backend.load("ns/once") == b"first"
    big = os.urandom(PART + 1)
    await backend.store("ns/big", big, if_absent=True)  # multipart: the condition is on the completion
    with pytest.raises(ObjectExists):
        await backend.store("ns/big", bytes(PART + 1), if_absent=True)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield bytes(PART)

    with pytest.raises(ObjectExists):
        await backend.store_chunks("ns/big", chunks(), if_absent=True)  # a streamed multipart upload
    assert await backend.load("ns/big") == big
    await backend.store_chunks("ns/streamed", chunks(), if_absent=True)
    assert await backend.load("ns/streamed") == bytes(3 * PART)


async def test_store_if_absent_alias_is_deprecated(backend_at: Any) -> None:
    backend = await backend_at()
    with pytest.warns(DeprecationWarning, match="if_absent=True"):
        assert await backend.store_if_absent("ns/once", b"first")
    with pytest.warns(DeprecationWarning, match="deprecated"):
        assert not await backend.store_if_absent("ns/once", b"second")
    assert await backend.load("ns/once") == b"first"


# presigned URLs --------------------------------------------------------------------------------------------


async def test_url_for_get_and_put_without_credentials(moto_server: MotoServer) -> None:
    store = Store(moto_server.url(fresh_bucket(), "depot/store"), backend_options={"create_bucket": True})
    await store.create()
    async with store, aiohttp.ClientSession() as http:
        await store.store("data", b"shared value")
        url = await store.url_for("data", expires=60)
        assert "X-Amz-Signature=" in url and "X-Amz-Credential=" in url and "X-Amz-Expires=60&" in url
        async with http.get(url) as response:  # no credentials: only the URL
            assert response.status == 200
            assert await response.read() == b"shared value"
        put_url = await store.url_for("upload", expires=datetime.timedelta(minutes=5), method="PUT")
        async with http.put(put_url, data=b"from a third party") as response:
            assert response.status == 200
        assert await store.load("upload") == b"from a third party"
        with pytest.raises(ValueError, match="expires"):
            await store.url_for("data", expires=0)
        with pytest.raises(ValueError, match="method"):
            await store.url_for("data", expires=60, method="DELETE")
        with pytest.raises(ValueError, match="7 days"):
            await store.url_for("data", expires=datetime.timedelta(days=8))
    await store.destroy()


def sigv4_check(url: str, server: MotoServer, *, now: datetime.datetime) -> str:
    """What an S3 service decides for a presigned GET ``url``: "ok", "expired" or "mismatch".

    moto serves presigned URLs without checking their signature or expiry, so the check S3 makes is done
    here with botocore's own SigV4 signer: the URL's fields are signed again with the server's secret.
    """
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    from botocore.auth import S3SigV4QueryAuth  # type: ignore[import-untyped]
    from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
    from botocore.credentials import Credentials  # type: ignore[import-untyped]

    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    signed_at = datetime.datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)
    expires = int(query["X-Amz-Expires"])
    signature = query.pop("X-Amz-Signature")
    region = query["X-Amz-Credential"].split("/")[2]
    request = AWSRequest(method="GET", url=urlunsplit(parts._replace(query=urlencode(query))))
    request.context["timestamp"] = query["X-Amz-Date"]
    auth = S3SigV4QueryAuth(Credentials(server.access_key, server.secret_key), "s3", region, expires=expires)
    if auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request) != signature:
        return "mismatch"
    return "expired" if now > signed_at + datetime.timedelta(seconds=expires) else "ok"


async def test_url_for_expired_or_tampered_fails(moto_server: MotoServer) -> None:
    store = Store(moto_server.url(fresh_bucket(), "depot/store"), backend_options={"create_bucket": True})
    await store.create()
    async with store:
        await store.store("data", b"secret")
        good = await store.url_for("data", expires=1)
        assert "X-Amz-Expires=1&" in good
        assert sigv4_check(good, moto_server, now=datetime.datetime.now(datetime.UTC)) == "ok"
        tampered = good.replace("/data?", "/other?")
        assert tampered != good
        assert sigv4_check(tampered, moto_server, now=datetime.datetime.now(datetime.UTC)) == "mismatch"
        longer = good.replace("X-Amz-Expires=1&", "X-Amz-Expires=3600&")
        assert sigv4_check(longer, moto_server, now=datetime.datetime.now(datetime.UTC)) == "mismatch"
        await asyncio.sleep(2.1)
        assert sigv4_check(good, moto_server, now=datetime.datetime.now(datetime.UTC)) == "expired"
    await store.destroy()


async def test_url_for_checks_permissions(moto_server: MotoServer) -> None:
    url = moto_server.url(fresh_bucket(), "depot/store")
    creator = Store(url, backend_options={"create_bucket": True})
    await creator.create()
    reader = Store(url, permissions={"": "lr"})
    async with reader:
        assert await reader.url_for("x", expires=10)
        with pytest.raises(PermissionDenied):
            await reader.url_for("x", expires=10, method="PUT")
    await creator.destroy()


async def test_url_for_not_supported_through_a_transform(moto_server: MotoServer) -> None:
    from aiodepot.layers.transforms import Compress

    backend = S3Backend.from_url(moto_server.url(fresh_bucket(), "depot/store"), create_bucket=True)
    store = Store(backend=Compress(backend))
    await store.create()
    async with store:
        with pytest.raises(NotSupported, match="url_for"):
            await store.url_for("x", expires=10)
    await store.destroy()


# errors ----------------------------------------------------------------------------------------------------


async def test_errors_keep_their_cause(backend_at: Any) -> None:
    backend = await backend_at()
    with pytest.raises(ObjectNotFound) as missing:
        await backend.load("ns/missing")
    assert isinstance(missing.value.__cause__, ClientError)
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    unreachable = S3Backend.from_url(f"s3:k:s@{endpoint}/bucket/path", retry=RetryPolicy(attempts=1))
    with pytest.raises(ConnectionLost) as lost:
        await unreachable.open()
    assert isinstance(lost.value.__cause__, EndpointConnectionError)
    assert isinstance(lost.value, ConnectionError)
    anonymous = S3Backend("bucket", "path", endpoint_url=endpoint, retry=RetryPolicy(attempts=1))
    with pytest.MonkeyPatch.context() as patch:
        for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
            patch.delenv(variable, raising=False)
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
        patch.setenv("AWS_CONFIG_FILE", os.devnull)
        patch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        with pytest.raises(PermissionDenied, match="credentials"):
            await anonymous.open()


def test_error_translation_table() -> None:
    def client_error(code: str, status: int) -> ClientError:
        return ClientError(
            {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op"
        )

    cases: list[tuple[Exception, type[Exception]]] = [
        (client_error("NoSuchKey", 404), ObjectNotFound),
        (client_error("404", 404), ObjectNotFound),
        (client_error("NoSuchBucket", 404), StoreNotFound),
        (client_error("AccessDenied", 403), PermissionDenied),
        (client_error("InvalidAccessKeyId", 403), PermissionDenied),
        (client_error("BadDigest", 400), IntegrityError),
        (client_error("SlowDown", 503), BackendError),
        (client_error("InternalError", 500), BackendError),
        (EndpointConnectionError(endpoint_url="http://x"), ConnectionLost),
        (FlexibleChecksumError(error_msg="mismatch"), IntegrityError),
    ]
    for native, expected in cases:
        translated = _translate(native, "ns/item")
        assert type(translated) is expected, native
    assert _translate(ValueError("not ours"), "x") is None


async def test_permissions_are_enforced(moto_server: MotoServer) -> None:
    url = moto_server.url(fresh_bucket(), "store")
    writer = S3Backend.from_url(url, create_bucket=True)
    await writer.create()
    async with writer:
        await writer.store("data/a", b"a")
    reader = S3Backend.from_url(url, permissions={"": "lr"})
    async with reader:
        assert await reader.load("data/a") == b"a"
        with pytest.raises(PermissionDenied):
            await reader.store("data/b", b"b")
        with pytest.raises(PermissionDenied):
            await reader.delete("data/a")
    appender = S3Backend.from_url(url, permissions={"": "lrw"})
    async with appender:
        await appender.store("data/new", b"n")
        with pytest.raises(PermissionDenied):
            await appender.store("data/a", b"overwrite")


def test_etag_tells_when_the_service_stored_other_bytes() -> None:
    """The ETag of a PUT or part is the MD5 of the stored bytes, except under SSE-KMS and SSE-C."""
    md5 = hashlib.md5(b"data").hexdigest()
    other = hashlib.md5(b"dat4").hexdigest()
    assert not _stored_other_bytes({"ETag": f'"{md5}"'}, md5)
    assert not _stored_other_bytes({"ETag": f'"{md5.upper()}"', "ServerSideEncryption": "AES256"}, md5)
    assert _stored_other_bytes({"ETag": f'"{other}"'}, md5)
    assert _stored_other_bytes({"ETag": other, "ServerSideEncryption": "AES256"}, md5)
    # encrypted with a key, or not an MD5 at all: the ETag says nothing
    assert not _stored_other_bytes({"ETag": f'"{other}"', "ServerSideEncryption": "aws:kms"}, md5)
    assert not _stored_other_bytes({"ETag": f'"{other}"', "SSECustomerAlgorithm": "AES256"}, md5)
    assert not _stored_other_bytes({"ETag": f'"{other}-2"'}, md5)
    assert not _stored_other_bytes({}, md5)


# the direct requests ----------------------------------------------------------------------------------------


async def test_direct_requests_answer_as_botocore_does(backend_at: Any, moto_server: MotoServer) -> None:
    """GET, HEAD and PUT sent directly fail with the errors, codes and statuses botocore gives, and return
    the fields the backend reads typed as botocore types them."""
    direct = await backend_at()
    plain = await backend_at(direct_requests=False)
    assert direct._direct is not None and plain._direct is None
    assert direct._direct.base_url == f"{moto_server.endpoint_url}/{direct.bucket}/"
    found: dict[str, list[tuple[type[BaseException], str, int | None]]] = {}
    for backend in (direct, plain):
        await backend.store("ns/there", b"value")
        outcomes = found.setdefault("direct" if backend is direct else "plain", [])
        for attempt in (
            backend.load("ns/missing"),  # GET: NoSuchKey
            backend.load("ns/there", offset=50, size=5),  # GET past the end: InvalidRange, read as empty
            backend.info("ns/missing"),  # HEAD: a bare 404
            backend.store("ns/there", b"other", if_absent=True),  # PUT If-None-Match: 412 PreconditionFailed
        ):
            outcomes.append(await _outcome(attempt))
        info = await backend.info("ns/there")
        assert info.size == 5 and abs(info.mtime - datetime.datetime.now().timestamp()) < 600
    assert found["direct"] == found["plain"]
    assert found["direct"][0] == (ObjectNotFound, "NoSuchKey:NoSuchKey", 404)
    assert found["direct"][3][0] is ObjectExists
    # the bucket gone: the service's NoSuchBucket
    async with raw_client(moto_server) as client:
        for backend in (direct, plain):
            await client.delete_object(Bucket=backend.bucket, Key=backend.base + "ns/there")
            await client.delete_object(Bucket=backend.bucket, Key=backend.base)
            await client.delete_bucket(Bucket=backend.bucket)
    for backend in (direct, plain):
        with pytest.raises(StoreNotFound):
            await backend.store("ns/again", b"x")


def test_direct_signatures_are_botocores(monkeypatch: pytest.MonkeyPatch) -> None:
    """The direct path signs with a SigV4 signer of its own; the headers it sends are those botocore's signer
    gives the same request (moto checks no signature, so this is compared here): payloads hashed or given,
    a query, an encoded path, session tokens, a value with runs of blanks, two days (the cached key)."""
    body = b"signed body" * 100
    sha256 = base64.b64encode(hashlib.sha256(body).digest()).decode()
    origin, base = "http://127.0.0.1:9000", "/bucket/depot/store/ns/"
    cases: list[tuple[str, str, str, dict[str, str], bytes]] = [
        ("PUT", "item", "", {"x-amz-sdk-checksum-algorithm": "SHA256", "x-amz-checksum-sha256": sha256}, body),
        ("PUT", "item", "", {"content-md5": "abc=", "if-none-match": "*"}, body),
        ("PUT", "item", "uploadId=a%2Fb&partNumber=3", {"x-amz-checksum-sha256": sha256}, body),
        ("GET", "it%20em~", "", {"range": "bytes=5-10", "x-amz-checksum-mode": "ENABLED"}, b""),
        ("GET", "item", "", {"range": "  bytes=0-1   "}, b""),
        ("HEAD", "item", "", {}, b""),
    ]
    for now in (datetime.datetime(2026, 12, 5, 8, 30, 15), datetime.datetime(2026, 12, 6, 0, 0, 1)):
        monkeypatch.setattr(botocore_auth, "get_current_datetime", lambda now=now: now)
        for token in (None, "session-token"):
            credentials = Credentials("AKIDEXAMPLE", "secret/key+", token).get_frozen_credentials()
            for method, leaf, query, headers, data in cases:
                ours = {"host": "127.0.0.1:9000", **headers}
                payload = hashlib.sha256(data).hexdigest()
                signer = _SigV4("eu-west-1")
                signer.sign(credentials, method, base + leaf, query, ours, payload, now.strftime("%Y%m%dT%H%M%SZ"))
                url = origin + base + leaf + (f"?{query}" if query else "")
                theirs = AWSRequest(method=method, url=url, headers={"host": "127.0.0.1:9000", **headers}, data=data)
                botocore_auth.S3SigV4Auth(credentials, "s3", "eu-west-1").add_auth(theirs)
                assert ours == {name.lower(): value for name, value in theirs.headers.items()}, (url, token)
                assert "Signature=" in ours["authorization"]


def _ranged_store(url: str, *, direct: bool) -> tuple[S3Backend, Store]:
    """A backend of ``PART``-sized ranges at ``url`` (creating its bucket), direct or through botocore, and
    a Store over it whose ``ns/`` namespace is flat."""
    backend = S3Backend.from_url(url, create_bucket=True, part_size=PART, direct_requests=direct)
    return backend, Store(backend=backend, config={"ns/": {"levels": [0]}})


async def test_load_into_receives_each_range_in_place(moto_server: MotoServer) -> None:
    """``load_into`` (what the Store's ranged loads use) on the direct path and through botocore: ranges,
    short and past the end, a missing object; a body cut off midway is fetched again (through a proxy)."""
    bucket = fresh_bucket()
    value = os.urandom(3 * PART + 1000)
    with FaultProxy(moto_server.port) as proxy:
        url = moto_server.url(bucket, "depot").replace(f":{moto_server.port}/", f":{proxy.port}/")
        for direct in (True, False):
            backend, store = _ranged_store(url, direct=direct)
            if direct:
                await store.create()
            async with store:
                assert (backend._direct is not None) == direct
                await store.store("ns/item", value)
                buffer = bytearray(300_000)
                for offset in (0, 1, PART - 7, len(value) - len(buffer)):
                    assert await backend.load_into("ns/item", offset, buffer) == len(buffer)
                    assert buffer == value[offset : offset + len(buffer)]
                assert await backend.load_into("ns/item", len(value) - 100, buffer) == 100  # short at the end
                assert buffer[:100] == value[-100:]
                assert await backend.load_into("ns/item", len(value) + 10, buffer) == 0  # past the end
                assert await backend.load_into("ns/item", 0, bytearray()) == 0
                with pytest.raises(ObjectNotFound):
                    await backend.load_into("ns/missing", 0, buffer)
                proxy.arm(Fault.reset(100_000, "down"))  # the next connection breaks off inside its body
                assert await backend.load_into("ns/item", 5, buffer) == len(buffer)
                assert buffer == value[5 : 5 + len(buffer)]
                assert proxy.counters().resets >= 1
                # the Store's ranged load: the first range, then the others straight into one buffer
                assert await store.load("ns/item") == value
                assert await store.load("ns/item", offset=PART + 3, size=2 * PART) == value[PART + 3 : 3 * PART + 3]
        await store.destroy()


class _Calls:
    """Records a backend's S3 calls (operation, ``Range``, ``IfMatch``); ``replace_at_condition`` stores
    that value before the next call made ``If-Match``, once."""

    def __init__(self, backend: S3Backend) -> None:
        self.backend = backend
        self.calls: list[tuple[str, str | None, str | None]] = []
        self.replace_at_condition: bytes | None = None
        self._call = backend._call
        backend._call = self  # type: ignore[method-assign]

    async def __call__(self, operation: str, name: str, /, **params: Any) -> Any:
        self.calls.append((operation, params.get("Range"), params.get("IfMatch")))
        replacement = self.replace_at_condition
        if replacement is not None and "IfMatch" in params:
            self.replace_at_condition = None
            await self.backend.store(name, replacement)
        return await self._call(operation, name, **params)


async def test_a_ranged_load_learns_size_and_etag_from_its_first_range(moto_server: MotoServer) -> None:
    """The Store's ranged load asks no HEAD: the first GET's reply has the size (``Content-Length``, or the
    total of ``Content-Range``) and the ETag, and the other ranges are asked ``If-Match`` it; a replacement
    between them (412) makes the Store load the value again. Direct and through botocore."""
    bucket = fresh_bucket()
    value, replacement = os.urandom(2 * PART + 1000), os.urandom(2 * PART + 5)
    url = moto_server.url(bucket, "depot")
    for direct in (True, False):
        backend, store = _ranged_store(url, direct=direct)
        if direct:
            await store.create()
        async with store:
            await store.store("ns/item", value)
            etag = (await backend._head("ns/item", backend.layout.key("ns/item")) or {})["ETag"]
            recorded = _Calls(backend)
            calls = recorded.calls
            assert await store.load("ns/item") == value
            assert len(calls) == 3 and calls[0] == ("get_object", None, None)  # no HEAD before or after
            assert sorted(calls[1:]) == [
                ("get_object", f"bytes={2 * PART}-{2 * PART + 999}", etag),
                ("get_object", f"bytes={PART}-{2 * PART - 1}", etag),
            ]
            calls.clear()
            assert await store.load("ns/item", offset=7, size=PART + 10) == value[7 : PART + 17]
            assert calls[0] == ("get_object", f"bytes=7-{PART + 6}", None) and calls[1][2] == etag
            first = await backend.load_first("ns/item", PART + 1, PART)  # the size from Content-Range's total
            assert (first.data, first.size, first.version) == (value[PART + 1 : 2 * PART + 1], len(value), etag)
            assert (await backend.load_first("ns/item", len(value) + 3, PART)).data == b""
            calls.clear()
            recorded.replace_at_condition = replacement
            assert await store.load("ns/item") == replacement  # never a mix of the two
            assert [operation for operation, _, _ in calls] == ["get_object"] * 6  # three, then three again
            buffer = bytearray(100)
            with pytest.raises(ValueChanged, match="no longer the content with ETag"):
                await backend.load_into("ns/item", 0, buffer, version=etag)
            with pytest.raises(ObjectNotFound):
                await backend.load_first("ns/missing", 0, PART)
            await store.store("ns/item", value)
    await store.destroy()


async def test_direct_requests_follow_the_options(moto_server: MotoServer) -> None:
    """The direct path is for an endpoint_url with standard retries; AWS and adaptive retries keep botocore."""
    url = moto_server.url(fresh_bucket(), "depot/store")
    assert S3Backend.from_url(url).direct_requests
    assert not S3Backend.from_url(url, retry_mode="adaptive").direct_requests
    assert not S3Backend.from_url(url, direct_requests=False).direct_requests
    assert not S3Backend("bucket", "path").direct_requests  # AWS: region redirects stay botocore's


async def _outcome(attempt: Any) -> tuple[type[BaseException] | type, str, int | None]:
    """The error an awaitable raises, with the code and status of its botocore cause (or the result's type)."""
    from aiodepot.backends.s3._errors import native

    try:
        result = await attempt
    except Exception as exc:  # what is compared is the error itself
        cause = exc.__cause__
        if cause is None:
            return type(exc), "", None
        found = native(cause)
        return type(exc), f"{type(cause).__name__}:{found.code}", found.status
    return type(result), "", None
