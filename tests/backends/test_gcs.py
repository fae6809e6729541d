"""The gs:// backend against fake-gcs-server: the conformance suites, then what is GCS's own.

One fake-gcs-server per test session (per xdist worker); every test gets a bucket of its own.
"""

from __future__ import annotations

import base64
import datetime
import json
import random
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import google_crc32c
import pytest
from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from aiodepot import (
    BackendError,
    BackendURLInvalid,
    ConnectionLost,
    IntegrityError,
    NotSupported,
    ObjectExists,
    ObjectNotFound,
    PermissionDenied,
    Store,
    StoreExists,
    StoreNotFound,
    ValueChanged,
)
from aiodepot.backends import Limits, backend_from_url
from aiodepot.backends.gcs import ERRORS, GcsBackend
from aiodepot.backends.gcs._signing import canonical_request, string_to_sign
from tests.conformance.listing import check_list_range, check_listing_pushed_down
from tests.conformance.suite import CONFIG, BackendConformance, MakeBackend, StoreConformance
from tests.servers import free_port
from tests.servers.faultproxy import FaultProxy
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


# listing ---------------------------------------------------------------------------------------------------


async def test_list_range_gives_what_the_filtered_listing_gives(backend_at: Any) -> None:
    # fake-gcs-server repeats every prefix on every page: each is listed once, in order
    await check_list_range(await backend_at(list_page_size=2))


async def test_prefix_and_start_after_are_listed_by_the_service(gcs_server: FakeGcsServer) -> None:
    """A flat namespace listed from a start key or by a prefix asks GCS for those names only (``prefix``,
    ``startOffset``): through a proxy that counts bytes, the narrowed listings fetch a small part of what the
    whole listing does."""
    with FaultProxy(gcs_server.port) as proxy:
        url = gcs_server.url(fresh_bucket(), "depot").replace(f":{gcs_server.port}", f":{proxy.port}")
        await check_listing_pushed_down(proxy, GcsBackend.from_url(url, create_bucket=True, list_page_size=20))


# URLs, options ----------------------------------------------------------------------------------------------


def test_url_forms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    plain = backend_from_url("gs://bucket/path/to/store")
    assert isinstance(plain, GcsBackend)
    assert (plain.bucket, plain.base, plain.endpoint, plain.anonymous) == ("bucket", "path/to/store/", None, False)
    emulated = GcsBackend.from_url("gs://b/my%20depot/?endpoint=http://127.0.0.1:4443&project=p")
    assert (emulated.base, emulated.endpoint, emulated.project, emulated.anonymous) == (
        "my depot/",
        "http://127.0.0.1:4443",
        "p",
        True,
    )
    keyed = GcsBackend.from_url("gs://b/p?endpoint=http://127.0.0.1:1&credentials=/keys/sa.json")
    assert keyed.credentials == "/keys/sa.json" and not keyed.anonymous  # credentials given: requests carry tokens
    for bad in (
        "gs://bucket",
        "gs://bucket/",
        "gs:///path",
        "gs://user:secret@bucket/path",
        "gs://bucket/path?nonsense=1",
        "gs://bucket/path?endpoint=ftp://host",
        "gs://bucket/path?endpoint=",
        "gs://bucket/path#fragment",
    ):
        with pytest.raises(BackendURLInvalid):
            backend_from_url(bad)


def test_emulator_host_from_environment_and_the_url_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "127.0.0.1:9023")
    from_env = GcsBackend.from_url("gs://b/p")
    assert from_env.endpoint == "http://127.0.0.1:9023" and from_env.anonymous
    from_url = GcsBackend.from_url("gs://b/p?endpoint=http://127.0.0.1:7777")
    assert from_url.endpoint == "http://127.0.0.1:7777"


def test_options_shape_the_store() -> None:
    store = Store("gs://bucket/path", backend_options={"limits": Limits(connections=48), "part_size": 16 * MiB})
    backend = store.backend
    assert isinstance(backend, GcsBackend)
    assert store.max_concurrency == 48
    assert backend.capabilities.part_size == 16 * MiB and backend.resumable_threshold == 16 * MiB
    assert backend.capabilities.atomic_create and backend.capabilities.parallel_ranges
    assert GcsBackend.capabilities.preferred_concurrency == 32  # the class default is untouched
    with pytest.raises(ValueError, match="256 KiB"):
        GcsBackend("bucket", "path", part_size=MiB + 1)
    with pytest.raises(ValueError):
        GcsBackend("bucket", "path", list_page_size=0)
    assert backend.composite_threshold == 150 * MiB and backend.limits.parts == 8
    with pytest.raises(ValueError):
        GcsBackend("bucket", "path", composite_threshold=-1)


# big values, ranges, checksums ------------------------------------------------------------------------------


async def test_resumable_uploads_from_memory_streams_and_files(backend_at: Any, tmp_path: Path) -> None:
    backend = await backend_at(part_size=256 * 1024)  # resumable above 256 KiB, in 256 KiB chunks
    value = random.Random(5).randbytes(1024 * 1024 + 12345)
    await backend.store("ns/memory", value)
    assert await backend.load("ns/memory") == value

    async def stream() -> AsyncIterator[bytes]:
        for start in range(0, len(value), 100_000):
            yield value[start : start + 100_000]

    await backend.store_chunks("ns/stream", stream())  # size unknown: "bytes a-b/*" until the end
    assert await backend.load("ns/stream") == value
    path = tmp_path / "big"
    path.write_bytes(value)
    await backend.store_file("ns/file", str(path), size=len(value))
    assert await backend.load("ns/file", offset=1000, size=300_000) == value[1000:301_000]
    assert await backend.load("ns/file", offset=-5000) == value[-5000:]
    with pytest.raises(ObjectExists):
        await backend.store_chunks("ns/stream", stream(), if_absent=True)
    assert await backend.load("ns/stream") == value

    async def broken() -> AsyncIterator[bytes]:
        yield value[:600_000]
        raise RuntimeError("the source broke")

    with pytest.raises(RuntimeError):
        await backend.store_chunks("ns/broken", broken())
    assert not (await backend.info("ns/broken")).exists  # the upload was cancelled: nothing half-written
    with pytest.raises(ValueError, match="expected"):
        await backend.store_chunks("ns/short", stream(), size=len(value) + 1)
    assert not (await backend.info("ns/short")).exists


async def test_big_values_load_in_parallel_ranges(gcs_server: FakeGcsServer) -> None:
    url = gcs_server.url(fresh_bucket(), "depot")
    store = Store(url, backend_options={"create_bucket": True, "part_size": 256 * 1024}, config=CONFIG)
    await store.create()
    value = random.Random(7).randbytes(3 * 1024 * 1024 + 17)
    async with store:
        await store.store("flat/big", value)
        assert await store.load("flat/big") == value
        assert await store.load("flat/big", offset=300_000, size=1_000_000) == value[300_000:1_300_000]


async def test_a_ranged_load_learns_size_and_generation_from_its_first_range(gcs_server: FakeGcsServer) -> None:
    """The first range's reply gives the object's size and generation; the other ranges are asked
    ``ifGenerationMatch`` it, so the Store's ranged load asks no metadata, and a replaced object raises
    ``ValueChanged`` on a range."""
    url = gcs_server.url(fresh_bucket(), "depot")
    part = 256 * 1024
    store = Store(url, backend_options={"create_bucket": True, "part_size": part}, config=CONFIG)
    await store.create()
    value = random.Random(8).randbytes(2 * part + 99)
    async with store:
        backend = store.backend
        await store.store("flat/big", value)
        key = "flat/big"  # flat: the backend's name is the Store's
        first = await backend.load_first(key, 0, part)
        assert (first.data, first.size) == (value[:part], len(value)) and first.version and first.mtime
        later = await backend.load_first(key, part + 1, part)
        assert (later.data, later.size, later.version) == (value[part + 1 : 2 * part + 1], len(value), first.version)
        assert (await backend.load_first(key, len(value) + 5, part)).data == b""
        buffer = bytearray(100)
        assert await backend.load_into(key, part, buffer, version=first.version) == 100
        assert buffer == value[part : part + 100]
        metadata = backend._metadata
        asked: list[str] = []

        async def counted(name: str, key: str) -> Any:
            asked.append(name)
            return await metadata(name, key)

        backend._metadata = counted
        assert await store.load("flat/big") == value and asked == []  # three GETs, nothing else
        assert await store.load("flat/big", offset=10, size=part + 20) == value[10 : part + 30] and asked == []
        await store.store("flat/big", value[::-1])  # a new generation
        with pytest.raises(ValueChanged, match="no longer generation"):
            await backend.load_into(key, part, buffer, version=first.version)
        backend._metadata = metadata


async def bucket_keys(gcs_server: FakeGcsServer, bucket: str) -> list[str]:
    """Every object name in ``bucket``, looked at behind the backend's back."""
    url = f"{gcs_server.endpoint}/storage/v1/b/{bucket}/o"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        listing = await response.json(content_type=None)
    return sorted(item["name"] for item in listing.get("items", ()) if item["name"] != "depot/layout.hid")


class PartFails(GcsBackend):
    """A gs backend whose upload of one part object of a composite upload fails (the other requests are real)."""

    failing_part = "-03.tmp"

    async def _upload(self, name: str, key: str, data: bytes | memoryview, *, replace: bool) -> bool:
        if key.endswith(self.failing_part):
            raise ConnectionLost(f"{name}: the test broke this part's upload")
        return await super()._upload(name, key, data, replace=replace)


async def test_big_values_as_parallel_composite_uploads(gcs_server: FakeGcsServer) -> None:
    """Above composite_threshold a value goes up as parts composed into one object: at most 32 parts, the
    composed object's CRC32C checked, the parts deleted afterwards; if_absent holds on the composed object."""
    bucket = fresh_bucket()
    options = {"create_bucket": True, "part_size": 256 * 1024, "composite_threshold": MiB}
    store = Store(gcs_server.url(bucket, "depot"), backend_options=options, config=CONFIG)
    await store.create()
    rng = random.Random(11)
    value = rng.randbytes(3 * MiB + 17)  # 13 parts of 256 KiB
    many = rng.randbytes(10 * MiB + 5)  # would be 41 parts of 256 KiB: 32 bigger ones instead
    async with store:
        await store.store("flat/big", value)
        await store.store("flat/many", many)
        assert await store.load("flat/big") == value
        assert await store.load("flat/many") == many
        assert [info.name async for info in store.list("flat")] == ["big", "many"]
        assert await bucket_keys(gcs_server, bucket) == ["depot/", "depot/flat/big", "depot/flat/many"]
        metadata = await store.backend._metadata("flat/big", "depot/flat/big")  # type: ignore[attr-defined]
        assert metadata["crc32c"] == base64.b64encode(google_crc32c.value(value).to_bytes(4, "big")).decode()
        with pytest.raises(ObjectExists):
            await store.store("flat/big", many, if_absent=True)
        await store.store("flat/new", many, if_absent=True)
        assert await store.load("flat/big") == value and await store.load("flat/new") == many
        assert await bucket_keys(gcs_server, bucket) == [
            "depot/",
            "depot/flat/big",
            "depot/flat/many",
            "depot/flat/new",
        ]
    await store.destroy()


async def test_a_failed_composite_upload_leaves_no_part_objects(gcs_server: FakeGcsServer) -> None:
    bucket = fresh_bucket()
    backend = PartFails.from_url(
        gcs_server.url(bucket, "depot"), create_bucket=True, part_size=256 * 1024, composite_threshold=MiB
    )
    store = Store(backend=backend, config=CONFIG)
    await store.create()
    async with store:
        with pytest.raises(ConnectionLost, match="broke"):
            await store.store("flat/big", random.Random(3).randbytes(2 * MiB))
        assert not await store.exists("flat/big")
        assert await bucket_keys(gcs_server, bucket) == ["depot/"]  # the parts that went up were deleted
    await store.destroy()


async def test_crc32c_is_sent_and_checked(backend_at: Any, gcs_server: FakeGcsServer) -> None:
    backend = await backend_at()
    await backend.store("item", b"checked")
    async with aiohttp.ClientSession() as session:
        url = f"{gcs_server.endpoint}/storage/v1/b/{backend.bucket}/o/{backend.base.replace('/', '%2F')}item"
        async with session.get(url) as response:
            metadata = await response.json(content_type=None)
    assert metadata["crc32c"] == base64.b64encode(google_crc32c.value(b"checked").to_bytes(4, "big")).decode()


# signed URLs --------------------------------------------------------------------------------------------------


@pytest.fixture
async def token_server() -> AsyncIterator[dict[str, Any]]:
    """A stand-in for Google's OAuth token endpoint on loopback: grants a token, or refuses when told to."""
    state: dict[str, Any] = {"refuse": False, "grants": 0}

    async def token(request: web.Request) -> web.Response:
        if state["refuse"]:
            return web.json_response(
                {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}, status=400
            )
        state["grants"] += 1
        return web.json_response({"access_token": "test-token", "expires_in": 3600, "token_type": "Bearer"})

    app = web.Application()
    app.router.add_post("/token", token)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    state["uri"] = f"http://127.0.0.1:{port}/token"
    yield state
    await runner.cleanup()


def service_account_key(tmp_path: Path, token_uri: str) -> tuple[Path, rsa.RSAPrivateKey]:
    """A service account key file made for the test (its own RSA key), as GCP's console writes them."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    data = {
        "type": "service_account",
        "project_id": "aiodepot-test",
        "private_key_id": "k1",
        "private_key": pem.decode(),
        "client_email": "depot@aiodepot-test.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": token_uri,
    }
    path = tmp_path / "sa.json"
    path.write_text(json.dumps(data))
    return path, key


def verify_v4(url: str, public_key: rsa.RSAPublicKey, method: str) -> None:
    """Check a V4 signed URL as GCS would (fake-gcs-server does not): rebuild the string to sign, verify."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    signature = bytes.fromhex(query.pop("X-Goog-Signature"))
    canonical = canonical_request(method, parts.path, query, parts.netloc)
    scope = query["X-Goog-Credential"].split("/", 1)[1]
    to_sign = string_to_sign(query["X-Goog-Date"], scope, canonical).encode()
    public_key.verify(signature, to_sign, padding.PKCS1v15(), hashes.SHA256())


async def test_url_for_get_and_put_without_credentials(
    gcs_server: FakeGcsServer, token_server: dict[str, Any], tmp_path: Path
) -> None:
    key_file, key = service_account_key(tmp_path, token_server["uri"])
    url = gcs_server.url(fresh_bucket(), "depot", credentials=str(key_file))
    store = Store(url, backend_options={"create_bucket": True}, config=CONFIG)
    await store.create()
    async with store:
        assert token_server["grants"] >= 1  # the requests carried the service account's token
        await store.store("flat/item", b"signed content")
        get_url = await store.url_for("flat/item", expires=60)
        put_url = await store.url_for("flat/upload", expires=datetime.timedelta(minutes=5), method="PUT")
        assert get_url.startswith(f"{gcs_server.endpoint}/") and "X-Goog-Signature=" in get_url
        verify_v4(get_url, key.public_key(), "GET")
        verify_v4(put_url, key.public_key(), "PUT")
        with pytest.raises(InvalidSignature):
            verify_v4(get_url.replace("X-Goog-Expires=60", "X-Goog-Expires=61"), key.public_key(), "GET")
        async with aiohttp.ClientSession() as plain:  # no credentials at all
            async with plain.get(get_url) as response:
                assert response.status == 200 and await response.read() == b"signed content"
            async with plain.put(put_url, data=b"uploaded by a third party") as response:
                assert response.status == 200
        assert await store.load("flat/upload") == b"uploaded by a third party"
        with pytest.raises(ValueError):
            await store.url_for("flat/item", expires=datetime.timedelta(days=8))
        with pytest.raises(ValueError):
            await store.url_for("flat/item", expires=60, method="DELETE")


async def test_url_for_without_a_service_account_key_is_not_supported(
    backend_at: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    backend = await backend_at()
    with pytest.raises(NotSupported, match="service account key"):
        await backend.url_for("item", expires=60)


# bad input: one line, aiodepot's error, nothing half-written --------------------------------------------------


async def test_missing_bucket(gcs_server: FakeGcsServer) -> None:
    backend = GcsBackend.from_url(gcs_server.url(fresh_bucket(), "depot"))
    with pytest.raises(StoreNotFound, match=r"bucket .* does not exist") as caught:
        await backend.open()
    assert "\n" not in str(caught.value)
    with pytest.raises(StoreNotFound, match="create_bucket=True"):
        await backend.create()


async def test_missing_store_and_existing_store(backend_at: Any, gcs_server: FakeGcsServer) -> None:
    backend = await backend_at()
    with pytest.raises(StoreNotFound, match="store does not exist"):
        await GcsBackend.from_url(gcs_server.url(backend.bucket, "elsewhere")).open()
    await backend.store("item", b"x")
    with pytest.raises(StoreExists):
        await GcsBackend.from_url(gcs_server.url(backend.bucket, "depot/store")).create()


async def test_bad_credentials(gcs_server: FakeGcsServer, token_server: dict[str, Any], tmp_path: Path) -> None:
    key_file, _ = service_account_key(tmp_path, token_server["uri"])
    token_server["refuse"] = True
    backend = GcsBackend.from_url(gcs_server.url(fresh_bucket(), "depot", credentials=str(key_file)))
    with pytest.raises(PermissionDenied, match=r"400 invalid_grant: Invalid JWT Signature\.$") as caught:
        await backend.open()
    assert "\n" not in str(caught.value) and not backend.opened
    missing = GcsBackend.from_url(gcs_server.url(fresh_bucket(), "depot", credentials=str(tmp_path / "nope.json")))
    with pytest.raises(PermissionDenied, match="does not exist"):
        await missing.open()
    (tmp_path / "garbled.json").write_text("{not json")
    garbled = GcsBackend.from_url(gcs_server.url(fresh_bucket(), "depot", credentials=str(tmp_path / "garbled.json")))
    with pytest.raises(PermissionDenied, match="not JSON"):
        await garbled.open()


async def test_emulator_down_is_a_quick_clear_error() -> None:
    backend = GcsBackend.from_url(f"gs://b/depot?endpoint=http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    with pytest.raises(ConnectionLost, match=r"127\.0\.0\.1") as caught:
        await backend.open()
    assert time.monotonic() - started < 5 and "\n" not in str(caught.value)


async def test_errors_keep_their_cause(backend_at: Any) -> None:
    backend = await backend_at()
    with pytest.raises(ObjectNotFound) as caught:
        await backend.load("missing")
    assert isinstance(caught.value.__cause__, aiohttp.ClientResponseError)
    with pytest.raises(ObjectNotFound):
        await backend.delete("missing")
    with pytest.raises(ObjectNotFound):
        await backend.move("missing", "elsewhere")


def test_error_translation_table() -> None:
    def reply(status: int, reason: str, body: str) -> aiohttp.ClientResponseError:
        return aiohttp.ClientResponseError(None, (), status=status, message=f"{reason}: {body}")  # type: ignore[arg-type]

    denied = ERRORS.translate(
        reply(
            403, "Forbidden", '{"error": {"code": 403, "message": "no access", "errors": [{"reason": "forbidden"}]}}'
        ),
        "x",
    )
    assert isinstance(denied, PermissionDenied) and str(denied) == "x: 403: no access"
    message = "Provided CRC32C 'AAAA' doesn't match calculated CRC32C"
    crc = json.dumps({"error": {"code": 400, "message": message, "errors": [{"reason": "invalid"}]}})
    assert isinstance(ERRORS.translate(reply(400, "Bad Request", crc), "x"), IntegrityError)
    assert isinstance(ERRORS.translate(reply(404, "Not Found", "not json"), "x"), ObjectNotFound)
    other = ERRORS.translate(reply(503, "Service Unavailable", "busy\nnow"), "x")
    assert isinstance(other, BackendError) and "\n" not in str(other)
