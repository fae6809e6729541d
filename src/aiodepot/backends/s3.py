"""``s3:`` and ``b2:`` — items as objects below a key prefix of an S3-compatible bucket (aioboto3).

URLs are borgstore's::

    s3:[profile|key:secret@][scheme://host[:port]]/bucket/path
    b2:[profile|key:secret@][scheme://host[:port]]/bucket/path

The layout is borgstore's too, so either library opens the other's stores: the object of item ``name``
is ``path/name``; a directory is emulated by the keys below it (delimiter listings) and, once made with
``mkdir``, by an empty marker object ``path/name/``; the store itself is the marker ``path/``.

An S3 PUT is atomic, so values are written in place (no temporary objects). Big values go up as multipart
uploads with parallel parts, and every PUT and part carries a checksum (SHA-256, or Content-MD5 on B2)
that the service checks; whole-object GETs ask for the stored checksum and verify it.
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import contextlib
import dataclasses
import hashlib
import heapq
import itertools
import logging
import math
import os
import re
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, ClassVar, Literal, Self
from urllib.parse import unquote

import aioboto3  # type: ignore[import-untyped]
import aiohttp
from aiobotocore.config import AioConfig  # type: ignore[import-untyped]
from aiobotocore.session import AioSession  # type: ignore[import-untyped]
from botocore import exceptions as boto_errors  # type: ignore[import-untyped]
from botocore import handlers as botocore_handlers

from .._threads import Offloader
from ..errors import (
    BackendError,
    BackendURLInvalid,
    ConnectionLost,
    IntegrityError,
    ObjectNotFound,
    PermissionDenied,
    QuotaExceeded,
    ReadRangeError,
    StoreError,
    StoreExists,
    StoreNotFound,
)
from ..items import ItemInfo, StoreValue, validate_value
from ..names import validate_backend_name
from ..transfer import run_bounded
from .base import Backend, Capabilities, pwrite_all
from .options import Limits, Rename, RetryPolicy, Timeouts, legacy_options

__all__ = ["S3Backend"]

logger = logging.getLogger(__name__)

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
MIN_PART_SIZE = 5 * MiB
"""S3's smallest part (all parts of a multipart upload but the last)."""
MAX_PART_SIZE = 5 * GiB
"""S3's biggest part, and the biggest object a single CopyObject copies."""
MAX_PARTS = 10_000
"""S3's most parts in one multipart upload."""
MAX_OBJECT_SIZE = 5 * 1024 * GiB
"""S3's biggest object (5 TiB)."""
DELIMITER = "/"
"""What separates the levels of a key, for delimiter listings."""
_OFFLOAD_AT = 1 * MiB  # hash and copy smaller values on the event loop: a thread hop costs more
_SUFFIX_SLACK = 64 * KiB  # a tail range wastes at most this much before a HEAD for the exact range pays
_DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys

Checksum = Literal["sha256", "md5"]
"""The upload checksum: ``x-amz-checksum-sha256`` or ``Content-MD5``."""

_URL = re.compile(
    r"""
    (?P<scheme>s3|b2):
    (?:(?:
        (?P<profile>[^@:/]+)                               # a profile (no colon)
        |
        (?P<access_key_id>[^:@/]+):(?P<secret_access_key>[^@]+)   # or key:secret
    )@)?
    (?P<endpoint>
        (?P<endpoint_scheme>[a-z][a-z0-9+.-]*)://
        (?P<host>\[[0-9a-fA-F:.]+\]|[^:/\[\]]+)
        (?::(?P<port>\d+))?
    )?
    /(?P<bucket>[^/]+)
    /(?P<path>.+)
    """,
    re.VERBOSE,
)
_shared_loader: Any = None  # botocore's loader of service models, filled by the first session
_B2_REGION = re.compile(r"s3\.([a-z0-9-]+)\.backblazeb2\.com$")

# error codes -> the aiodepot error they mean (anything else is a BackendError)
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_DENIED_CODES = frozenset(
    {"AccessDenied", "403", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled"}
)
_INTEGRITY_CODES = frozenset({"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch", "InvalidChecksum"})
_QUOTA_CODES = frozenset({"QuotaExceeded", "StorageQuotaExceeded", "ServiceQuotaExceeded"})
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    boto_errors.ConnectionError,
    boto_errors.HTTPClientError,
    boto_errors.IncompleteReadError,
    aiohttp.ClientError,
    asyncio.TimeoutError,
    ConnectionError,
)


_RENAMED: dict[str, Rename] = {
    "max_concurrency": ("limits", "connections", None),
    "multipart_concurrency": ("limits", "parts", None),
    "max_attempts": ("retry", "attempts", None),
    "connect_timeout": ("timeouts", "connect", None),
    "read_timeout": ("timeouts", "read", None),
}
"""The keywords before ``retry=``/``limits=``/``timeouts=`` (deprecated)."""


def _error_code(exc: object) -> str:
    """The service's error code of a botocore ``ClientError`` ("" for anything else)."""
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def _translate(exc: Exception, name: str) -> StoreError | None:
    """The [`StoreError`][aiodepot.errors.StoreError] for a botocore or aiohttp error (None: not ours)."""
    where = name or "the store"
    if isinstance(exc, boto_errors.ClientError):
        code = _error_code(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        message = exc.response.get("Error", {}).get("Message") or code
        if code == "NoSuchBucket":
            return StoreNotFound(f"{where}: the bucket does not exist")
        if code in _NOT_FOUND_CODES or (status == 404 and code != "NoSuchUpload"):
            return ObjectNotFound(name)
        if code in _DENIED_CODES or status == 403:
            return PermissionDenied(f"{where}: {code}: {message}")
        if code in _INTEGRITY_CODES:
            return IntegrityError(f"{where}: the service rejected the data's checksum ({code}: {message})")
        if code in _QUOTA_CODES:
            return QuotaExceeded(f"{where}: {code}: {message}")
        return BackendError(f"{where}: {code or status}: {message}")
    if isinstance(exc, boto_errors.FlexibleChecksumError | boto_errors.ChecksumError):
        return IntegrityError(f"{where}: the data does not match its stored checksum ({exc})")
    if isinstance(exc, boto_errors.NoCredentialsError | boto_errors.PartialCredentialsError):
        return PermissionDenied(f"{where}: {exc}")
    if isinstance(exc, _CONNECTION_ERRORS):
        return ConnectionLost(f"{where}: {type(exc).__name__}: {exc}")
    if isinstance(exc, boto_errors.BotoCoreError):
        return BackendError(f"{where}: {exc}")
    return None


class _Translated:
    """``with _Translated(name):`` — botocore and aiohttp errors leave as aiodepot errors, the original as cause."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if isinstance(exc, Exception) and not isinstance(exc, StoreError):
            translated = _translate(exc, self.name)
            if translated is not None:
                raise translated from exc


def _checksum_args(data: bytes | memoryview, checksum: Checksum) -> dict[str, str]:
    """The request parameters that make the service check ``data`` (for PutObject and UploadPart)."""
    if checksum == "md5":
        return {"ContentMD5": base64.b64encode(hashlib.md5(data).digest()).decode()}
    return {"ChecksumAlgorithm": "SHA256", "ChecksumSHA256": base64.b64encode(hashlib.sha256(data).digest()).decode()}


def _prepare(data: bytes | memoryview, checksum: Checksum) -> tuple[bytes, dict[str, str]]:
    """A request body (botocore takes no memoryview) and its checksum parameters."""
    return bytes(data), _checksum_args(data, checksum)


def _md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _stored_other_bytes(response: Mapping[str, Any], md5_hex: str) -> bool:
    """True when the ETag of a PUT or part says the service stored other bytes than those sent.

    The ETag is the MD5 of the stored bytes unless the object is encrypted with SSE-KMS or SSE-C; then (and
    for anything that does not look like an MD5) it says nothing.
    """
    if response.get("SSECustomerAlgorithm") or response.get("ServerSideEncryption", "AES256") != "AES256":
        return False
    etag = str(response.get("ETag", "")).strip('"').lower()
    return len(etag) == 32 and all(c in "0123456789abcdef" for c in etag) and etag != md5_hex


def _read_part(fd: int, offset: int, size: int, checksum: Checksum) -> tuple[bytes, dict[str, str]]:
    """Read ``size`` bytes at ``offset`` of a local file and checksum them (one thread job)."""
    data = os.pread(fd, size, offset)
    while len(data) < size:
        more = os.pread(fd, size - len(data), offset + len(data))
        if not more:
            raise ValueError(f"the file ended at {offset + len(data)} bytes, before the {offset + size} expected")
        data += more
    return data, _checksum_args(data, checksum)


def _name_bound(relative_key: str) -> str:
    """The smallest entry name a delimiter listing can still yield after the key ``relative_key``.

    Listings come in key order, but a directory is listed by its key ``name/``: after ``a.del`` may come
    the directory ``a`` (key ``a/``), which sorts before ``a.del`` by name, because ``.`` < ``/``. So an
    entry can only be yielded once the listing has moved past the keys of every directory that would come
    before it by name.
    """
    for i, char in enumerate(relative_key):
        if char < DELIMITER:
            return relative_key[:i]
    return relative_key


@dataclasses.dataclass(slots=True)
class _Endpoint:
    """Where and as whom to connect: what a URL says besides bucket and path."""

    endpoint_url: str | None = None
    profile: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None


class _Multipart:
    """One multipart upload (or multipart copy) of ``key``: parts are sent in any order, then completed."""

    def __init__(self, backend: S3Backend, key: str, name: str, upload_id: str) -> None:
        self.backend = backend
        self.key = key
        self.name = name
        self.upload_id = upload_id
        self.parts: dict[int, dict[str, str]] = {}

    @classmethod
    async def begin(cls, backend: S3Backend, key: str, name: str) -> _Multipart:
        extra = {"ChecksumAlgorithm": "SHA256"} if backend.checksum == "sha256" else {}
        with _Translated(name):
            response = await backend._client.create_multipart_upload(Bucket=backend.bucket, Key=key, **extra)
        return cls(backend, key, name, response["UploadId"])

    async def send(self, number: int, body: bytes, checksum: Mapping[str, str]) -> None:
        """Upload part ``number`` (1-based); the service checks it against ``checksum``."""

        async def upload_part() -> Any:
            with _Translated(self.name):
                return await self.backend._client.upload_part(
                    Bucket=self.backend.bucket,
                    Key=self.key,
                    UploadId=self.upload_id,
                    PartNumber=number,
                    Body=body,
                    **checksum,
                )

        response = await self.backend._verified(self.name, f"part {number}", body, upload_part)
        part = {"PartNumber": number, "ETag": response["ETag"]}
        if "ChecksumSHA256" in checksum:
            part["ChecksumSHA256"] = checksum["ChecksumSHA256"]
        self.parts[number] = part

    async def copy(self, number: int, source: str, start: int, size: int) -> None:
        """Make part ``number`` from a range of the object ``source``, inside the service."""
        with _Translated(self.name):
            response = await self.backend._client.upload_part_copy(
                Bucket=self.backend.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                PartNumber=number,
                CopySource={"Bucket": self.backend.bucket, "Key": source},
                CopySourceRange=f"bytes={start}-{start + size - 1}",
            )
        result = response["CopyPartResult"]
        part = {"PartNumber": number, "ETag": result["ETag"]}
        if result.get("ChecksumSHA256"):
            part["ChecksumSHA256"] = result["ChecksumSHA256"]
        self.parts[number] = part

    async def complete(self, *, if_none_match: bool = False) -> bool:
        """Make the object from the parts; False if ``if_none_match`` found an object there already."""
        parts = [self.parts[number] for number in sorted(self.parts)]
        extra = {"IfNoneMatch": "*"} if if_none_match else {}
        try:
            with _Translated(self.name):
                await self.backend._client.complete_multipart_upload(
                    Bucket=self.backend.bucket,
                    Key=self.key,
                    UploadId=self.upload_id,
                    MultipartUpload={"Parts": parts},
                    **extra,
                )
        except BackendError as exc:
            if if_none_match and _is_precondition_failure(exc.__cause__):
                return False
            raise
        return True

    async def abort(self) -> None:
        """Drop the upload and its parts (errors are swallowed: there is an error on its way already)."""
        with contextlib.suppress(StoreError), _Translated(self.name):
            await self.backend._client.abort_multipart_upload(
                Bucket=self.backend.bucket, Key=self.key, UploadId=self.upload_id
            )

    async def run(self, work: Callable[[_Multipart], Awaitable[None]], *, if_none_match: bool = False) -> bool:
        """Send the parts with ``await work(self)``, then complete; abort on any failure or cancellation."""
        try:
            await work(self)
            done = await self.complete(if_none_match=if_none_match)
        except BaseException:
            await asyncio.shield(self.abort())  # a cancelled upload is aborted too
            raise
        if not done:
            await asyncio.shield(self.abort())
        return done


def _is_precondition_failure(exc: BaseException | None) -> bool:
    if not isinstance(exc, boto_errors.ClientError):
        return False
    return _error_code(exc) == "PreconditionFailed" or exc.response["ResponseMetadata"].get("HTTPStatusCode") == 412


class S3Backend(Backend):
    """Items as objects below ``path/`` in ``bucket`` of an S3-compatible service (AWS S3, B2, MinIO, …).

    Args:
        bucket: the bucket's name.
        path: the key prefix of the store inside the bucket (``/`` separated, without leading ``/``).
        endpoint_url: ``scheme://host[:port]`` of an S3-compatible service; None for AWS.
        profile: a profile of the AWS config files to take credentials and settings from.
        access_key_id: the access key (with ``secret_access_key``); without it and ``profile``, the
            standard chain finds the credentials (environment, config files, instance metadata, …).
        secret_access_key: the secret for ``access_key_id``.
        region: the region to sign requests for (default: from the config chain; on B2, from the endpoint).
        b2: talk to Backblaze B2 (Content-MD5 instead of the ``x-amz-checksum-*`` headers it lacks).
        create_bucket: let ``create()`` create the bucket if it does not exist.
        checksum: ``"sha256"`` (default; verified by the service on upload and by this backend on whole
            loads) or ``"md5"`` (Content-MD5, checked on upload only; the default on B2).
        retry: ``attempts`` bounds the tries of every request, the first included: botocore retries
            throttling, 5xx and connection errors until a reply begins (with its own backoff, see
            ``retry_mode``); a GET whose body breaks off or fails its checksum is fetched again with this
            policy's backoff (default ``default_retry``: 5 attempts, waits from 0.1 s doubling up to 2 s).
        limits: ``connections``: the pool, and the store's default for bulk calls (default 32); ``parts``:
            parts of one upload in flight (memory: this many parts; default 8); ``threads``: for hashing
            and reading files (default: ``max(4, parts)``).
        timeouts: ``connect`` (default 10 s) and ``read`` (for data on a connection, default 60 s).
        part_size: range size of parallel loads and multipart parts (at least 5 MiB for parts; default 8 MiB).
        multipart_threshold: values bigger than this are uploaded in parts (default: ``part_size``).
        copy_threshold: ``move`` copies bigger objects part by part (default 5 GiB, S3's limit for one copy).
        list_page_size: keys per listing request (S3 returns at most 1000).
        retry_mode: botocore's retry mode, ``"standard"`` or ``"adaptive"`` (client-side rate limiting).
        addressing_style: ``"path"``, ``"virtual"`` or ``"auto"`` (default: ``"path"`` with an
            ``endpoint_url``, which every S3-compatible service understands; else ``"auto"``).
        verify_etag: compare the ETag the service returns for each PUT and part with the MD5 of the bytes
            sent (unless SSE-KMS or SSE-C is in use, the ETag is the MD5 of the bytes stored). A mismatch
            means the bytes were damaged on the way and the service did not check the checksum (not every
            S3-compatible service does); the PUT or part is sent once more, then ``IntegrityError``. Turn it
            off for a service whose ETags are not MD5s.
        permissions: a permission map, shortcut name or JSON (see [`aiodepot.permissions`][aiodepot.permissions]).
    """

    default_retry: ClassVar[RetryPolicy] = RetryPolicy(attempts=5, backoff=0.1, multiplier=2.0, cap=2.0, jitter=0.5)
    """The retry policy without ``retry=``."""
    default_limits: ClassVar[Limits] = Limits(connections=32, parts=8)
    """The limits that ``limits=`` leaves ``None``."""
    default_timeouts: ClassVar[Timeouts] = Timeouts(connect=10.0, read=60.0)
    """The timeouts that ``timeouts=`` leaves ``None``."""

    capabilities = Capabilities(
        ranged_reads=True,
        server_side_copy=True,
        multipart=True,
        atomic_store=True,
        parallel_ranges=True,
        preferred_concurrency=32,
        part_size=8 * MiB,
    )

    def __init__(
        self,
        bucket: str,
        path: str,
        *,
        endpoint_url: str | None = None,
        profile: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        region: str | None = None,
        b2: bool = False,
        create_bucket: bool = False,
        checksum: Checksum | None = None,
        retry: RetryPolicy | None = None,
        limits: Limits | None = None,
        timeouts: Timeouts | None = None,
        part_size: int | None = None,
        multipart_threshold: int | None = None,
        copy_threshold: int = MAX_PART_SIZE,
        list_page_size: int = 1000,
        retry_mode: Literal["standard", "adaptive"] = "standard",
        addressing_style: Literal["path", "virtual", "auto"] | None = None,
        verify_etag: bool = True,
        permissions: str | dict[str, str] | None = None,
        **deprecated: Any,
    ) -> None:
        super().__init__(permissions=permissions)
        if not bucket or "/" in bucket:
            raise BackendURLInvalid(f"invalid bucket name: {bucket!r}")
        base = path.strip(DELIMITER)
        if not base:
            raise BackendURLInvalid("an s3 store needs a path inside the bucket (s3:/bucket/path)")
        if profile is not None and access_key_id is not None:
            raise BackendURLInvalid("give a profile or an access key, not both")
        if (access_key_id is None) != (secret_access_key is None):
            raise BackendURLInvalid("an access key needs its secret (key:secret@)")
        if checksum not in (None, "sha256", "md5"):
            raise ValueError(f"checksum must be 'sha256' or 'md5', got {checksum!r}")
        for option, value, least in (
            ("part_size", part_size, 1),
            ("multipart_threshold", multipart_threshold, MIN_PART_SIZE),
            ("copy_threshold", copy_threshold, MIN_PART_SIZE),
            ("list_page_size", list_page_size, 1),
        ):
            if value is not None and (not isinstance(value, int) or value < least):
                raise ValueError(f"{option} must be an int >= {least}, got {value!r}")
        if copy_threshold > MAX_PART_SIZE:
            raise ValueError(f"copy_threshold must be at most {MAX_PART_SIZE} (S3 copies no more at once)")
        self.bucket = bucket
        self.base = base + DELIMITER
        """The key prefix of the store, ending in ``/``."""
        self.endpoint = _Endpoint(endpoint_url, profile, access_key_id, secret_access_key)
        self.b2 = b2
        if region is None and b2 and endpoint_url:
            match = _B2_REGION.search(endpoint_url.rstrip("/"))
            region = match.group(1) if match else None
        self.region = region
        self.create_bucket = create_bucket
        self.verify_etag = verify_etag
        self.checksum: Checksum = checksum or ("md5" if b2 else "sha256")
        self.retry, limits, self.timeouts = legacy_options(
            "S3Backend",
            deprecated,
            _RENAMED,
            retry=retry or self.default_retry,
            limits=(limits or Limits()).or_defaults(self.default_limits),
            timeouts=(timeouts or Timeouts()).or_defaults(self.default_timeouts),
        )
        assert limits.connections is not None  # the defaults fill them
        assert limits.parts is not None
        self.limits = limits.or_defaults(Limits(threads=max(4, limits.parts)))
        # the Store takes its defaults from this instance's capabilities
        self.capabilities = self.capabilities.replace(
            preferred_concurrency=limits.connections, part_size=part_size or type(self).capabilities.part_size
        )
        self.max_concurrency = limits.connections
        self.multipart_threshold = multipart_threshold or max(self.capabilities.part_size, MIN_PART_SIZE)
        self.multipart_concurrency = limits.parts
        self.copy_threshold = copy_threshold
        self.list_page_size = list_page_size
        self._config = AioConfig(
            max_pool_connections=max(self.max_concurrency, self.multipart_concurrency),
            connect_timeout=self.timeouts.connect,
            read_timeout=self.timeouts.read,
            retries={"mode": retry_mode, "total_max_attempts": self.retry.attempts},
            tcp_keepalive=True,
            # The checksums are ours (set on each request, see _checksum_args); botocore only checks the
            # ones the service returns when a GET asks for them (ChecksumMode).
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            s3={"addressing_style": addressing_style or ("path" if endpoint_url else "auto")},
        )
        self._session: Any = None
        self._client: Any = None
        self._exit_stack: contextlib.AsyncExitStack | None = None
        self._offloader = Offloader(f"aiodepot-s3-{bucket}", self.limits.threads or 4)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """``s3:[profile|key:secret@][scheme://host[:port]]/bucket/path`` (``b2:`` likewise).

        Key and secret may be percent-encoded (a ``/`` or ``@`` in a secret must be); so may the path.
        """
        match = _URL.fullmatch(url)
        if match is None:
            raise BackendURLInvalid(
                f"not an s3:/b2: URL (s3:[profile|key:secret@][scheme://host[:port]]/bucket/path): {_redact(url)!r}"
            )
        endpoint = match["endpoint"]
        if match["endpoint_scheme"] not in (None, "http", "https"):
            raise BackendURLInvalid(f"the endpoint must be http:// or https://: {_redact(url)!r}")
        b2 = match["scheme"] == "b2"
        if b2 and not endpoint:
            raise BackendURLInvalid("b2: URLs need the endpoint, e.g. b2:https://s3.us-west-004.backblazeb2.com/b/p")
        key, secret = match["access_key_id"], match["secret_access_key"]
        return cls(
            match["bucket"],
            unquote(match["path"]),
            endpoint_url=endpoint,
            profile=match["profile"],
            access_key_id=unquote(key) if key is not None else None,
            secret_access_key=unquote(secret) if secret is not None else None,
            b2=b2,
            **options,
        )

    def __repr__(self) -> str:
        where = f"{self.endpoint.endpoint_url or 's3'}/{self.bucket}/{self.base}"
        return f"<S3Backend {where!r} {'open' if self.opened else 'closed'}>"

    # sessions and clients --------------------------------------------------------------------------------

    def _make_session(self) -> Any:
        """The aioboto3 session, with the service model and config files loaded (a thread job: file I/O)."""
        global _shared_loader
        core = AioSession(profile=self.endpoint.profile)
        if _shared_loader is None:  # the models are the same for every session: load them once per process
            loader = core.get_component("data_loader")
            for kind in ("service-2", "endpoint-rule-set-1"):
                loader.load_service_model("s3", kind)
            for data in ("partitions", "endpoints", "_retry", "sdk-default-configuration"):
                loader.load_data(data)
            _shared_loader = loader
        core.register_component("data_loader", _shared_loader)
        core.get_scoped_config()
        # botocore asks for "100 Continue" before a PUT's body, and aiohttp waits for it with no timeout: a
        # server or link that never answers would hold the upload for ever. The body goes out at once.
        core.unregister("before-call.s3", botocore_handlers.add_expect_header)
        if self.b2:
            core.register("before-sign.s3", _content_md5_instead_of_crc32)
        return aioboto3.Session(
            aws_access_key_id=self.endpoint.access_key_id,
            aws_secret_access_key=self.endpoint.secret_access_key,
            region_name=self.region,
            botocore_session=core,
        )

    @contextlib.asynccontextmanager
    async def _connect(self) -> AsyncIterator[Any]:
        """An S3 client with its connection pool (closed on exit)."""
        session = self._session
        if session is None:
            with _Translated(""):
                session = self._session = await self._offloader.run(self._make_session)
        with _Translated(""):
            context = session.client("s3", endpoint_url=self.endpoint.endpoint_url, config=self._config)
            client = await context.__aenter__()
        try:
            yield client
        finally:
            await context.__aexit__(None, None, None)

    def _key(self, name: str) -> str:
        return self.base + name

    def _dir_prefix(self, name: str) -> str:
        return self.base + name + DELIMITER if name else self.base

    async def _first_keys(self, client: Any, prefix: str, count: int, name: str = "") -> builtins.list[str]:
        """Up to ``count`` keys that start with ``prefix``."""
        with _Translated(name):
            page = await client.list_objects_v2(Bucket=self.bucket, Prefix=prefix, MaxKeys=count)
        return [entry["Key"] for entry in page.get("Contents", ())]

    # lifecycle -------------------------------------------------------------------------------------------

    async def _create(self) -> None:
        """Create the store's marker object (and the bucket, with ``create_bucket=True``).

        An existing store without items is accepted; one with items raises ``StoreExists``.
        """
        async with self._connect() as client:
            if self.create_bucket:
                await self._make_bucket(client)
            try:
                keys = await self._first_keys(client, self.base, 2)
            except StoreNotFound as exc:
                raise StoreNotFound(
                    f"bucket {self.bucket!r} does not exist (backend option create_bucket=True creates it)"
                ) from exc.__cause__
            if any(key != self.base for key in keys):
                raise StoreExists(f"the s3 store is not empty: {self.bucket}/{self.base}")
            with _Translated(""):
                await client.put_object(Bucket=self.bucket, Key=self.base, Body=b"")

    async def _make_bucket(self, client: Any) -> None:
        region = self.region or client.meta.region_name
        extra: dict[str, Any] = {}
        if region and region not in ("us-east-1", "aws-global") and not self.endpoint.endpoint_url:
            extra["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            with _Translated(""):
                await client.create_bucket(Bucket=self.bucket, **extra)
        except StoreError as exc:
            if _error_code(exc.__cause__) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise

    async def _destroy(self) -> None:
        """Delete every object below the store's prefix, and abort its unfinished uploads."""
        async with self._connect() as client:
            found = False
            token: str | None = None
            while True:
                extra = {"ContinuationToken": token} if token else {}
                with _Translated(""):
                    page = await client.list_objects_v2(Bucket=self.bucket, Prefix=self.base, **extra)
                keys = [entry["Key"] for entry in page.get("Contents", ())]
                found = found or bool(keys)
                for start in range(0, len(keys), _DELETE_BATCH):
                    await self._delete_keys(client, keys[start : start + _DELETE_BATCH])
                token = page.get("NextContinuationToken")
                if not page.get("IsTruncated") or not token:
                    break
            await self._abort_uploads(client)
            if not found:
                raise StoreNotFound(f"the s3 store does not exist: {self.bucket}/{self.base}")
        self._offloader.shutdown()

    async def _delete_keys(self, client: Any, keys: builtins.list[str]) -> None:
        with _Translated(""):
            response = await client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True}
            )
        errors = response.get("Errors") or []
        if errors:
            first = errors[0]
            raise BackendError(f"{len(errors)} objects were not deleted, e.g. {first.get('Key')}: {first.get('Code')}")

    async def _abort_uploads(self, client: Any) -> None:
        """Abort the multipart uploads left below the store's prefix (by crashed writers)."""
        try:
            with _Translated(""):
                paginator = client.get_paginator("list_multipart_uploads")
                async for page in paginator.paginate(Bucket=self.bucket, Prefix=self.base):
                    for upload in page.get("Uploads", ()):
                        await client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
        except BackendError as exc:
            if _error_code(exc.__cause__) != "NotImplemented":  # a service without the listing has none to abort
                raise

    async def _open(self) -> None:
        """Connect (one client, one connection pool for this backend) and check that the store exists."""
        stack = contextlib.AsyncExitStack()
        try:
            client = await stack.enter_async_context(self._connect())
            if not await self._first_keys(client, self.base, 1):
                raise StoreNotFound(f"the s3 store does not exist: {self.bucket}/{self.base}")
        except BaseException:
            await stack.aclose()
            raise
        self._client, self._exit_stack = client, stack

    async def _close(self) -> None:
        """Close the client and its connections."""
        stack, self._exit_stack, self._client = self._exit_stack, None, None
        try:
            if stack is not None:
                await stack.aclose()
        finally:
            self._offloader.shutdown()

    # directories -----------------------------------------------------------------------------------------

    async def _mkdir(self, name: str) -> None:
        """Put the marker object ``name/`` (parents need none: they exist through their children)."""
        with _Translated(name):
            await self._client.put_object(Bucket=self.bucket, Key=self._dir_prefix(name), Body=b"")

    async def _rmdir(self, name: str) -> None:
        """Remove the marker of an empty directory."""
        prefix = self._dir_prefix(name)
        keys = await self._first_keys(self._client, prefix, 2, name)
        if not keys:
            raise ObjectNotFound(name)
        if keys != [prefix]:
            raise BackendError(f"directory {name!r} is not empty")
        with _Translated(name):
            await self._client.delete_object(Bucket=self.bucket, Key=prefix)

    # items -----------------------------------------------------------------------------------------------

    async def _head(self, name: str, key: str) -> dict[str, Any] | None:
        """The object's metadata, or None if there is no object ``key``."""
        try:
            with _Translated(name):
                response: dict[str, Any] = await self._client.head_object(Bucket=self.bucket, Key=key)
        except ObjectNotFound:
            return None
        return response

    async def _info(self, name: str) -> ItemInfo:
        """An object (HEAD), else a directory (a key below ``name/``), else ``exists=False``."""
        leaf = name.rpartition(DELIMITER)[2]
        head = await self._head(name, self.base + name) if name else None
        if head is not None:
            return ItemInfo.for_file(leaf, head["ContentLength"], mtime=head["LastModified"].timestamp())
        if await self._first_keys(self._client, self._dir_prefix(name), 1, name):
            return ItemInfo.for_directory(leaf)
        return ItemInfo.missing(leaf)

    async def _range(self, name: str, key: str, offset: int, size: int | None) -> str | None:
        """The Range header for ``size`` bytes at ``offset`` (None: the whole object)."""
        if offset >= 0:
            if size is None:
                return f"bytes={offset}-" if offset else None
            return f"bytes={offset}-{offset + size - 1}"
        if size is None or -offset - size <= _SUFFIX_SLACK:
            return f"bytes={offset}"  # the last -offset bytes (all of them if the object is shorter)
        head = await self._head(name, key)
        if head is None:
            raise ObjectNotFound(name)
        start = max(head["ContentLength"] + offset, 0)
        return f"bytes={start}-{start + size - 1}"

    async def _get(self, name: str, key: str, range_header: str | None, *, limit: int | None = None) -> bytes:
        """GET the object or a range of it; past the end is empty. A whole object is checked against the
        checksum the service stored with it. ``limit`` stops reading after that many bytes.

        botocore retries a request until its reply begins; a connection lost while the body streams in, or
        a body that fails its checksum on the way, is fetched again here (``retry.attempts`` in all).
        """
        began: list[bool] = []

        async def attempt() -> bytes:
            began.clear()
            return await self._get_once(name, key, range_header, limit=limit, began=began)

        def retryable(exc: BaseException) -> bool:  # before the body, botocore has retried
            return bool(began) and isinstance(exc, ConnectionLost | IntegrityError)

        def on_retry(exc: BaseException, number: int, wait: float) -> None:
            logger.warning("s3 GET %s: %s; attempt %d of %d", name, exc, number, self.retry.attempts)

        return await self.retry.run(attempt, retryable=retryable, on_retry=on_retry)

    async def _get_once(
        self, name: str, key: str, range_header: str | None, *, limit: int | None, began: list[bool]
    ) -> bytes:
        request: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if range_header is not None:
            request["Range"] = range_header
        elif self.checksum == "sha256":
            request["ChecksumMode"] = "ENABLED"
        with _Translated(name):
            try:
                response = await self._client.get_object(**request)
            except boto_errors.ClientError as exc:
                if _error_code(exc) == "InvalidRange":  # the range starts at or past the end
                    return b""
                raise
            began.append(True)
            body = response["Body"]
            try:
                if limit is None or response["ContentLength"] <= limit:
                    data: bytes = await body.read()
                    return data
                parts = []
                remaining = limit
                while remaining > 0:
                    chunk = await body.read(remaining)
                    if not chunk:
                        break
                    parts.append(chunk)
                    remaining -= len(chunk)
                return b"".join(parts)
            finally:
                body.close()

    async def _load(self, name: str, offset: int, size: int | None) -> bytes:
        """GET the value or a range; a whole value is checked against its stored checksum."""
        key = self._key(name)
        if size == 0:
            if await self._head(name, key) is None:
                raise ObjectNotFound(name)
            return b""
        if offset == 0 and size is not None and size >= self.capabilities.part_size:
            # The Store's first range of a big load: a plain GET read up to ``size`` bytes. A value that
            # fits comes whole, so its checksum is checked; a bigger one costs the rest of the connection.
            return await self._get(name, key, None, limit=size)
        data = await self._get(name, key, await self._range(name, key, offset, size))
        return data if size is None or len(data) <= size else data[:size]

    async def _check_replace(self, name: str, key: str, replace: bool) -> None:
        if not replace and await self._head(name, key) is not None:
            self._refuse_replace(name)

    async def _store(self, name: str, value: bytes | memoryview, *, replace: bool) -> None:
        """PUT the value with its checksum (big values as a parallel multipart upload)."""
        key = self._key(name)
        await self._check_replace(name, key, replace)
        await self._put(name, key, value)

    async def store_if_absent(self, name: str, value: StoreValue) -> bool:
        """Store ``value`` only if nothing is stored under ``name`` (``If-None-Match: *``).

        Returns False, storing nothing, if ``name`` exists. The service decides atomically, so of several
        writers racing for a new name exactly one wins. It needs a service with conditional writes
        (AWS S3 since 2024, MinIO, …); one without them overwrites.
        """
        self._require_open()
        data = validate_value(value)
        key = self._key(validate_backend_name(name))
        self.permissions.check(name, "wW")
        return await self._put(name, key, data, if_none_match=True)

    async def _put(self, name: str, key: str, data: bytes | memoryview, *, if_none_match: bool = False) -> bool:
        if len(data) > self.multipart_threshold:
            view = memoryview(data)
            part_size = self._part_size_for(len(data))
            spans = [(start, min(part_size, len(data) - start)) for start in range(0, len(data), part_size)]

            async def send_all(upload: _Multipart) -> None:
                async def send(span: tuple[int, int]) -> None:
                    start, length = span
                    body, checksum = await self._offloader.run(_prepare, view[start : start + length], self.checksum)
                    await upload.send(start // part_size + 1, body, checksum)

                await run_bounded(spans, send, max_concurrency=self.multipart_concurrency)

            upload = await _Multipart.begin(self, key, name)
            return await upload.run(send_all, if_none_match=if_none_match)
        if len(data) < _OFFLOAD_AT:
            body, checksum = _prepare(data, self.checksum)
        else:
            body, checksum = await self._offloader.run(_prepare, data, self.checksum)
        return await self._put_object(name, key, body, checksum, if_none_match=if_none_match)

    async def _put_object(
        self, name: str, key: str, body: bytes, checksum: Mapping[str, str], *, if_none_match: bool = False
    ) -> bool:
        extra = {"IfNoneMatch": "*"} if if_none_match else {}

        async def put() -> Any:
            with _Translated(name):
                return await self._client.put_object(Bucket=self.bucket, Key=key, Body=body, **checksum, **extra)

        try:
            await self._verified(name, "PUT", body, put)
        except BackendError as exc:
            if if_none_match and _is_precondition_failure(exc.__cause__):
                return False
            raise
        return True

    async def _verified(self, name: str, what: str, body: bytes, send: Callable[[], Awaitable[Any]]) -> Any:
        """``send()`` a PUT or part of ``body``; with ``verify_etag``, check that the service stored those
        bytes (its ETag), and send them once more if it did not. Returns the service's response."""
        if not self.verify_etag:
            return await send()
        md5 = asyncio.ensure_future(self._md5(body))  # hashed while the bytes travel
        try:
            for attempt in (1, 2):
                response = await send()
                expected = await md5
                if not _stored_other_bytes(response, expected):
                    return response
                if attempt == 1:
                    logger.warning("s3 %s %s: the service stored other bytes than were sent; sending again", name, what)
            raise IntegrityError(
                f"{name}: {what}: the service stored other bytes than were sent, twice (ETag {response.get('ETag')} "
                f"is not the MD5 {expected} of the data; verify_etag=False if this service's ETags are not MD5s)"
            )
        finally:
            md5.cancel()

    async def _md5(self, body: bytes) -> str:
        return _md5_hex(body) if len(body) < _OFFLOAD_AT else await self._offloader.run(_md5_hex, body)

    def _part_size_for(self, size: int) -> int:
        """The part size for a ``size``-byte upload: the configured one, grown to need at most 10,000 parts."""
        if size > MAX_OBJECT_SIZE:
            raise ValueError(f"S3 objects are at most 5 TiB, this one would be {size} bytes")
        part = max(self.capabilities.part_size, MIN_PART_SIZE, math.ceil(size / MAX_PARTS))
        return min(math.ceil(part / MiB) * MiB, MAX_PART_SIZE)

    async def _delete(self, name: str) -> None:
        """DELETE the object (a HEAD first: S3 deletes missing objects without complaint)."""
        key = self._key(name)
        if await self._head(name, key) is None:
            raise ObjectNotFound(name)
        with _Translated(name):
            await self._client.delete_object(Bucket=self.bucket, Key=key)

    async def _move(self, src: str, dst: str, *, replace: bool) -> None:
        """Copy inside the service (part by part above ``copy_threshold``), then delete the source."""
        src_key, dst_key = self._key(src), self._key(dst)
        await self._check_replace(dst, dst_key, replace)
        head = await self._head(src, src_key)
        if head is None:
            raise ObjectNotFound(src)
        if src_key == dst_key:
            return
        size = head["ContentLength"]
        if size > self.copy_threshold:
            await self._copy_in_parts(src, src_key, dst_key, size)
        else:
            extra = {"ChecksumAlgorithm": "SHA256"} if self.checksum == "sha256" else {}
            with _Translated(src):
                await self._client.copy_object(
                    Bucket=self.bucket,
                    Key=dst_key,
                    CopySource={"Bucket": self.bucket, "Key": src_key},
                    CopySourceIfMatch=head["ETag"],  # the object we sized, not one that replaced it
                    **extra,
                )
        with _Translated(src):
            await self._client.delete_object(Bucket=self.bucket, Key=src_key)

    async def _copy_in_parts(self, name: str, src_key: str, dst_key: str, size: int) -> None:
        part_size = self._part_size_for(size)
        spans = [(start, min(part_size, size - start)) for start in range(0, size, part_size)]

        async def copy_all(upload: _Multipart) -> None:
            async def copy(span: tuple[int, int]) -> None:
                start, length = span
                await upload.copy(start // part_size + 1, src_key, start, length)

            await run_bounded(spans, copy, max_concurrency=self.max_concurrency)

        upload = await _Multipart.begin(self, dst_key, name)
        await upload.run(copy_all)

    async def _list(self, name: str) -> AsyncIterator[ItemInfo]:
        """Yield a directory's entries sorted by name: objects, and "directories" from common prefixes.

        Pages of 1000 keys are fetched as the iteration goes on.
        """
        prefix = self._dir_prefix(name)
        pending: builtins.list[tuple[str, int, ItemInfo]] = []  # a heap by name: see _name_bound
        tiebreak = itertools.count()
        token: str | None = None
        first_page = True
        while True:
            extra = {"ContinuationToken": token} if token else {}
            with _Translated(name):
                page = await self._client.list_objects_v2(
                    Bucket=self.bucket, Prefix=prefix, Delimiter=DELIMITER, MaxKeys=self.list_page_size, **extra
                )
            objects = page.get("Contents", ())
            prefixes = page.get("CommonPrefixes", ())
            if first_page and not objects and not prefixes:
                raise ObjectNotFound(name)
            first_page = False
            entries: builtins.list[tuple[str, ItemInfo | None]] = []
            for entry in objects:
                relative = entry["Key"][len(prefix) :]
                info = ItemInfo.for_file(relative, entry["Size"], mtime=entry["LastModified"].timestamp())
                entries.append((relative, info if relative and _is_ours(relative) else None))
            for entry in prefixes:
                relative = entry["Prefix"][len(prefix) :]
                leaf = relative.rstrip(DELIMITER)
                entries.append((relative, ItemInfo.for_directory(leaf) if _is_ours(leaf) else None))
            entries.sort(key=lambda entry: entry[0])
            for relative, listed in entries:
                if listed is not None:
                    heapq.heappush(pending, (listed.name, next(tiebreak), listed))
                bound = _name_bound(relative)
                while pending and pending[0][0] < bound:
                    yield heapq.heappop(pending)[2]
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                break
        while pending:
            yield heapq.heappop(pending)[2]

    # streaming and files ---------------------------------------------------------------------------------

    async def _read_chunks(self, name: str, offset: int, size: int | None, chunk_size: int) -> AsyncIterator[bytes]:
        """Stream the value (or a range) from one GET; a whole value is checked against its checksum."""
        key = self._key(name)
        if size == 0:
            if await self._head(name, key) is None:
                raise ObjectNotFound(name)
            return
        range_header = await self._range(name, key, offset, size)
        request: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if range_header is not None:
            request["Range"] = range_header
        elif self.checksum == "sha256":
            request["ChecksumMode"] = "ENABLED"
        with _Translated(name):
            try:
                response = await self._client.get_object(**request)
            except boto_errors.ClientError as exc:
                if _error_code(exc) == "InvalidRange":
                    return
                raise
        body = response["Body"]
        remaining = size
        try:
            while remaining is None or remaining > 0:
                with _Translated(name):
                    chunk = await body.read(chunk_size if remaining is None else min(chunk_size, remaining))
                if not chunk:
                    return
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
        finally:
            body.close()

    async def _read_into(self, name: str, fd: int, offset: int, size: int) -> None:
        """GET one exact range and write it into ``fd`` at the same offset."""
        key = self._key(name)
        data = await self._get(name, key, f"bytes={offset}-{offset + size - 1}") if size else b""
        if len(data) != size:
            raise ReadRangeError(f"{name}: wanted {size} bytes at offset {offset}, got {len(data)}")
        await self._offloader.run(pwrite_all, fd, data, offset)

    async def _store_file(self, name: str, path: str, size: int, *, replace: bool) -> None:
        """Upload a local file: one PUT, or a multipart upload whose parts are read and sent in parallel."""
        key = self._key(name)
        await self._check_replace(name, key, replace)
        fd = await self._offloader.run(os.open, path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            if size <= self.multipart_threshold:
                body, checksum = await self._offloader.run(_read_part, fd, 0, size, self.checksum)
                if await self._offloader.run(os.pread, fd, 1, size):
                    raise ValueError(f"{path} is longer than the {size} bytes expected")
                await self._put_object(name, key, body, checksum)
                return
            part_size = self._part_size_for(size)
            spans = [(start, min(part_size, size - start)) for start in range(0, size, part_size)]

            async def send_all(upload: _Multipart) -> None:
                async def send(span: tuple[int, int]) -> None:
                    start, length = span
                    body, checksum = await self._offloader.run(_read_part, fd, start, length, self.checksum)
                    await upload.send(start // part_size + 1, body, checksum)

                await run_bounded(spans, send, max_concurrency=self.multipart_concurrency)
                if await self._offloader.run(os.pread, fd, 1, size):
                    raise ValueError(f"{path} is longer than the {size} bytes expected")

            upload = await _Multipart.begin(self, key, name)
            await upload.run(send_all)
        finally:
            await self._offloader.run(os.close, fd)

    async def _store_chunks(self, name: str, chunks: AsyncIterable[bytes], size: int | None, *, replace: bool) -> None:
        """Upload a stream: one PUT if it ends within ``multipart_threshold``, else parts sent as they fill.

        At most ``multipart_concurrency`` parts are held in memory; a stream that fails, ends early or runs
        long aborts the upload, so nothing is stored.
        """
        key = self._key(name)
        await self._check_replace(name, key, replace)
        part_size = self._part_size_for(size) if size is not None else self._part_size_for(0)
        buffer = bytearray()
        total = 0
        stream = aiter(chunks)

        def check_total() -> None:
            if size is not None and total > size:
                raise ValueError(f"{name}: the stream gave more than the expected {size} bytes")

        async for chunk in stream:  # fill the buffer until the value is too big for one PUT
            buffer += chunk
            total += len(chunk)
            check_total()
            if len(buffer) > self.multipart_threshold:
                break
        else:
            if size is not None and total != size:
                raise ValueError(f"{name}: expected {size} bytes, the stream gave {total}")
            await self._put(name, key, bytes(buffer))
            return

        async def send_all(upload: _Multipart) -> None:
            nonlocal buffer, total
            slots = asyncio.Semaphore(self.multipart_concurrency)
            number = 0

            async def send(number: int, part: bytes) -> None:
                try:
                    checksum = await self._offloader.run(_checksum_args, part, self.checksum)
                    await upload.send(number, part, checksum)
                finally:
                    slots.release()

            async def take_parts(final: bool) -> None:
                nonlocal buffer, number
                while len(buffer) >= part_size or (final and buffer):
                    await slots.acquire()
                    number += 1
                    if number > MAX_PARTS:
                        raise ValueError(f"{name}: more than {MAX_PARTS} parts: give the size to store_chunks")
                    with memoryview(buffer) as view:
                        part = bytes(view[:part_size])
                    del buffer[:part_size]
                    group.create_task(send(number, part))

            try:
                async with asyncio.TaskGroup() as group:
                    await take_parts(False)
                    async for chunk in stream:
                        buffer += chunk
                        total += len(chunk)
                        check_total()
                        await take_parts(False)
                    if size is not None and total != size:
                        raise ValueError(f"{name}: expected {size} bytes, the stream gave {total}")
                    await take_parts(True)
            except BaseExceptionGroup as failures:
                raise failures.exceptions[0] from None

        upload = await _Multipart.begin(self, key, name)
        await upload.run(send_all)


def _is_ours(leaf: str) -> bool:
    """True for a listed name that could be an item or directory of ours (not ``.tmp``, ``.hid``, foreign)."""
    try:
        validate_backend_name(leaf)
    except StoreError:
        return False
    return DELIMITER not in leaf


def _content_md5_instead_of_crc32(request: Any, **_: Any) -> None:
    """B2 rejects the CRC32 checksum botocore adds where one is required (DeleteObjects): send Content-MD5."""
    headers = request.headers
    if "x-amz-checksum-crc32" not in headers:
        return
    del headers["x-amz-checksum-crc32"]
    if "x-amz-sdk-checksum-algorithm" in headers:
        del headers["x-amz-sdk-checksum-algorithm"]
    body = request.body
    if "Content-MD5" not in headers and isinstance(body, bytes | bytearray):
        headers["Content-MD5"] = base64.b64encode(hashlib.md5(body).digest()).decode()


def _redact(url: str) -> str:
    """``url`` without the secret of ``key:secret@``."""
    return re.sub(r"^((?:s3|b2):[^:@/]+:)[^@]+@", r"\1***@", url)
