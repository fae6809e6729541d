"""The S3 backend's hooks: the backend contract as requests to an S3-compatible service."""

from __future__ import annotations

import builtins
import contextlib
import logging
import math
import warnings
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any, ClassVar, Literal, Self

from botocore.exceptions import EndpointConnectionError  # type: ignore[import-untyped]

from ..._threads import Offloader
from ...errors import (
    BackendError,
    BackendURLInvalid,
    ObjectExists,
    ObjectNotFound,
    ReadRangeError,
    StoreError,
    StoreExists,
    StoreNotFound,
    ValueChanged,
)
from ...items import ItemInfo, StoreValue
from ...names import DEL_SUFFIX
from .._objectstore import (
    DELIMITER,
    KeyLayout,
    ListingPage,
    content_range_total,
    get_with_retry,
    is_ours,
    merge_listing,
    range_header,
)
from ..base import Backend, Capabilities, FirstRange, pwrite_all
from ..options import Limits, Rename, RetryPolicy, Timeouts, legacy_options
from ._checksums import Checksum
from ._direct import DirectBody, DirectS3
from ._errors import ERRORS, is_precondition_failure
from ._multipart import MAX_PART_SIZE, MIN_PART_SIZE, MiB
from ._session import client_config, make_session
from ._uploads import Uploads
from ._url import Endpoint, parse_url

__all__ = ["S3Backend"]

logger = logging.getLogger("aiodepot.backends.s3")

_DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys

_RENAMED: dict[str, Rename] = {
    "max_concurrency": ("limits", "connections", None),
    "multipart_concurrency": ("limits", "parts", None),
    "max_attempts": ("retry", "attempts", None),
    "connect_timeout": ("timeouts", "connect", None),
    "read_timeout": ("timeouts", "read", None),
}
"""The keywords before ``retry=``/``limits=``/``timeouts=`` (deprecated)."""


def _check_sizes(part_size: int | None, multipart_threshold: int | None, copy_threshold: int, page: int) -> None:
    for option, value, least in (
        ("part_size", part_size, 1),
        ("multipart_threshold", multipart_threshold, MIN_PART_SIZE),
        ("copy_threshold", copy_threshold, MIN_PART_SIZE),
        ("list_page_size", page, 1),
    ):
        if value is not None and (not isinstance(value, int) or value < least):
            raise ValueError(f"{option} must be an int >= {least}, got {value!r}")
    if copy_threshold > MAX_PART_SIZE:
        raise ValueError(f"copy_threshold must be at most {MAX_PART_SIZE} (S3 copies no more at once)")


MAX_PRESIGN_SECONDS = 7 * 24 * 3600
"""The longest a SigV4 presigned URL may last."""


def _whole_size(reply: dict[str, Any], *, ranged: bool) -> int | None:
    """The object's size from a GET's reply: the total of its ``Content-Range``, else (a GET of the whole
    object) its ``Content-Length``; None for a ranged reply that does not say."""
    if reply.get("ContentRange"):
        return content_range_total(reply["ContentRange"])
    return None if ranged else int(reply["ContentLength"])


async def _receive_into(body: Any, buffer: memoryview) -> int:
    """Read a GET's body into ``buffer`` (up to its length); the direct body receives piece by piece,
    botocore's is read in ``len(buffer)``-bounded reads."""
    if isinstance(body, DirectBody):
        return await body.readinto(buffer)
    filled = 0
    while filled < len(buffer):
        piece = await body.read(len(buffer) - filled)
        if not piece:
            break
        buffer[filled : filled + len(piece)] = piece
        filled += len(piece)
    return filled


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
            means the bytes were damaged on the way and the service did not check the checksum; the PUT or
            part is sent once more, then ``IntegrityError``. None (default): check where the upload carries
            that MD5 already (``checksum="md5"``: no extra hashing); with ``"sha256"`` the service checks
            the checksum (and the signed payload hash, the same digest), so an MD5 of every byte would be a
            second check. True: check always, for a service that does not verify checksums (moto's
            server); False: never, for a service whose ETags are not MD5s.
        direct_requests: with an ``endpoint_url`` and the ``standard`` retry mode, send GetObject,
            HeadObject, PutObject and UploadPart signed with botocore's SigV4 signer on the client's own
            connection pool, without botocore's request pipeline (about a fifth of the CPU per small
            request; errors, codes and retries stay the service's). False: every request through botocore.
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
        atomic_create=True,  # If-None-Match: * (a service without conditional writes ignores it)
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
        verify_etag: bool | None = None,
        direct_requests: bool = True,
        permissions: str | dict[str, str] | None = None,
        **deprecated: Any,
    ) -> None:
        super().__init__(permissions=permissions)
        if not bucket or "/" in bucket:
            raise BackendURLInvalid(f"invalid bucket name: {bucket!r}")
        if not path.strip(DELIMITER):
            raise BackendURLInvalid("an s3 store needs a path inside the bucket (s3:/bucket/path)")
        self.endpoint = Endpoint(endpoint_url, profile, access_key_id, secret_access_key)
        if checksum not in (None, "sha256", "md5"):
            raise ValueError(f"checksum must be 'sha256' or 'md5', got {checksum!r}")
        _check_sizes(part_size, multipart_threshold, copy_threshold, list_page_size)
        self.bucket = bucket
        self.layout = KeyLayout(path.strip(DELIMITER) + DELIMITER)
        self.b2, self.create_bucket, self.verify_etag = b2, create_bucket, verify_etag
        self.region = region if region is not None or not b2 else self.endpoint.b2_region()
        self.checksum: Checksum = checksum or ("md5" if b2 else "sha256")
        self.retry, limits, self.timeouts = legacy_options(
            "S3Backend", deprecated, _RENAMED, retry=retry, limits=limits, timeouts=timeouts, defaults=self
        )
        self.limits = limits.or_defaults(Limits(threads=max(4, limits.parts or 1)))
        # the Store takes its defaults from this instance's capabilities
        self.capabilities = self.capabilities.replace(
            preferred_concurrency=limits.connections, part_size=part_size or type(self).capabilities.part_size
        )
        self.max_concurrency: int = limits.connections or 1
        self.multipart_concurrency: int = limits.parts or 1
        self.multipart_threshold = multipart_threshold or max(self.capabilities.part_size, MIN_PART_SIZE)
        self.copy_threshold, self.list_page_size = copy_threshold, list_page_size
        style = addressing_style or ("path" if endpoint_url else "auto")
        self._config = client_config(
            self.retry, self.limits, self.timeouts, retry_mode=retry_mode, addressing_style=style
        )
        self.direct_requests = direct_requests and endpoint_url is not None and retry_mode == "standard"
        self._session: Any = None
        self._client: Any = None
        self._direct: DirectS3 | None = None
        self._reached = False  # a request of this session got a reply: botocore may retry connection errors
        self._exit_stack: contextlib.AsyncExitStack | None = None
        self._offloader = Offloader(f"aiodepot-s3-{bucket}", self.limits.threads or 4)
        self._uploads = Uploads(self, self._call, self._offloader)

    @property
    def base(self) -> str:
        """The key prefix of the store, ending in ``/``."""
        return self.layout.base

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """``s3:[profile|key:secret@][scheme://host[:port]]/bucket/path`` (``b2:`` likewise).

        Key and secret may be percent-encoded (a ``/`` or ``@`` in a secret must be); so may the path.
        """
        bucket, path, parsed = parse_url(url)
        return cls(bucket, path, **parsed, **options)

    def __repr__(self) -> str:
        where = f"{self.endpoint.endpoint_url or 's3'}/{self.bucket}/{self.base}"
        return f"<S3Backend {where!r} {'open' if self.opened else 'closed'}>"

    # the boundary: every request, its errors translated by the one table ---------------------------------

    async def _call(self, operation: str, name: str, /, **params: Any) -> Any:
        """``operation`` of the open client on the bucket; errors leave as aiodepot errors (see ``ERRORS``).

        The hot operations go the direct way when it is open (see ``direct_requests``)."""
        direct = self._direct
        if direct is not None and direct.takes(operation, params):
            with ERRORS.boundary(name):
                return await direct.call(operation, **params)
        if isinstance(params.get("Body"), memoryview):  # botocore sends bytes only
            params["Body"] = bytes(params["Body"])
        return await self._request(self._client, operation, name, **params)

    async def _request(self, client: Any, operation: str, name: str, /, **params: Any) -> Any:
        with ERRORS.boundary(name):
            return await getattr(client, operation)(Bucket=self.bucket, **params)

    @contextlib.asynccontextmanager
    async def _connect(self) -> AsyncIterator[Any]:
        """An S3 client with its connection pool (closed on exit)."""
        with ERRORS.boundary(""):
            if self._session is None:
                self._session = await self._offloader.run(make_session, self.endpoint, self.region, b2=self.b2)
            context = self._session.client("s3", endpoint_url=self.endpoint.endpoint_url, config=self._config)
            client = await context.__aenter__()
            service = client.meta.service_model.service_id.hyphenize()
            client.meta.events.register_first(f"needs-retry.{service}", self._refused_before_any_reply)
            client.meta.events.register(f"after-call.{service}", self._replied)
        try:
            yield client
        finally:
            await context.__aexit__(None, None, None)

    def _refused_before_any_reply(self, caught_exception: BaseException | None = None, **_: Any) -> None:
        """A ``needs-retry`` handler that runs before botocore's: a connection that could not be made before
        any request of this session got a reply (a wrong address, a server that is not running) fails at
        once. Retries are for connections that worked before; botocore would retry for seconds."""
        if not self._reached and isinstance(caught_exception, EndpointConnectionError):
            raise caught_exception

    def _replied(self, **_: Any) -> None:
        self._reached = True

    async def _first_keys(self, client: Any, prefix: str, count: int, name: str = "") -> builtins.list[str]:
        """Up to ``count`` keys that start with ``prefix``."""
        page = await self._request(client, "list_objects_v2", name, Prefix=prefix, MaxKeys=count)
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
            await self._request(client, "put_object", "", Key=self.base, Body=b"")

    async def _make_bucket(self, client: Any) -> None:
        region = self.region or client.meta.region_name
        extra: dict[str, Any] = {}
        if region and region not in ("us-east-1", "aws-global") and not self.endpoint.endpoint_url:
            extra["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            await self._request(client, "create_bucket", "", **extra)
        except StoreError as exc:
            code = ERRORS.code_of(exc)
            if code == "InvalidBucketName":  # the service's message need not name it (moto's does not)
                cause = exc.__cause__
                reason = (ERRORS.native(cause).message if cause is not None else "") or "no reason given"
                raise BackendURLInvalid(
                    f"bucket {self.bucket!r}: the service refuses this bucket name ({code}: {reason})"
                ) from exc.__cause__
            if code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise

    async def _destroy(self) -> None:
        """Delete every object below the store's prefix, and abort its unfinished uploads."""
        async with self._connect() as client:
            found = False
            token: str | None = None
            while True:
                extra = {"ContinuationToken": token} if token else {}
                page = await self._request(client, "list_objects_v2", "", Prefix=self.base, **extra)
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
        objects = {"Objects": [{"Key": key} for key in keys], "Quiet": True}
        response = await self._request(client, "delete_objects", "", Delete=objects)
        errors = response.get("Errors") or []
        if errors:
            first = errors[0]
            raise BackendError(f"{len(errors)} objects were not deleted, e.g. {first.get('Key')}: {first.get('Code')}")

    async def _abort_uploads(self, client: Any) -> None:
        """Abort the multipart uploads left below the store's prefix (by crashed writers)."""
        try:
            with ERRORS.boundary(""):
                paginator = client.get_paginator("list_multipart_uploads")
                async for page in paginator.paginate(Bucket=self.bucket, Prefix=self.base):
                    for upload in page.get("Uploads", ()):
                        await client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
        except BackendError as exc:
            if ERRORS.code_of(exc) != "NotImplemented":  # a service without the listing has none to abort
                raise

    async def _open(self) -> None:
        """Connect (one client, one connection pool for this backend) and check that the store exists."""
        self._reached = False
        stack = contextlib.AsyncExitStack()
        try:
            client = await stack.enter_async_context(self._connect())
            if not await self._first_keys(client, self.base, 1):
                raise StoreNotFound(f"the s3 store does not exist: {self.bucket}/{self.base}")
            if self.direct_requests:
                with ERRORS.boundary(""):
                    self._direct = await DirectS3.attach(
                        client, self.bucket, self.retry, reached=lambda: self._reached, replied=self._replied
                    )
                if self._direct is not None:
                    stack.push_async_callback(self._direct.close)
        except BaseException:
            await stack.aclose()
            raise
        self._client, self._exit_stack = client, stack

    async def _close(self) -> None:
        """Close the client and its connections."""
        stack, self._exit_stack, self._client, self._direct = self._exit_stack, None, None, None
        try:
            if stack is not None:
                await stack.aclose()
        finally:
            self._offloader.shutdown()

    # directories -----------------------------------------------------------------------------------------

    async def _mkdir(self, name: str) -> None:
        """Put the marker object ``name/`` (parents need none: they exist through their children)."""
        await self._call("put_object", name, Key=self.layout.dir_prefix(name), Body=b"")

    async def _rmdir(self, name: str) -> None:
        """Remove the marker of an empty directory."""
        prefix = self.layout.dir_prefix(name)
        keys = await self._first_keys(self._client, prefix, 2, name)
        if not keys:
            raise ObjectNotFound(name)
        if keys != [prefix]:
            raise BackendError(f"directory {name!r} is not empty")
        await self._call("delete_object", name, Key=prefix)

    async def _list(self, name: str) -> AsyncIterator[ItemInfo]:
        """Yield a directory's entries sorted by name: objects, and "directories" from common prefixes.

        Pages of ``list_page_size`` keys are fetched as the iteration goes on.
        """
        async for info in merge_listing(name, self._pages(name)):
            yield info

    async def _count(self, name: str, deleted: bool) -> int:
        """List the keys below the directory without a delimiter, page by page, and count the items."""
        prefix = self.layout.dir_prefix(name)
        token: str | None = None
        total, seen = 0, False
        while True:
            extra = {"ContinuationToken": token} if token else {}
            page = await self._call("list_objects_v2", name, Prefix=prefix, MaxKeys=1000, **extra)
            for entry in page.get("Contents", ()):
                seen = True
                relative = entry["Key"][len(prefix) :]
                if not relative or relative.endswith(DELIMITER) or relative.endswith(DEL_SUFFIX) != deleted:
                    continue  # a directory marker, or the other kind
                if all(is_ours(part) for part in relative.split(DELIMITER)):
                    total += 1
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                break
        if not seen:
            raise ObjectNotFound(name)
        return total

    async def _list_range(self, name: str, prefix: str, start_after: str | None) -> AsyncIterator[ItemInfo]:
        """`_list` with ``Prefix`` and ``StartAfter`` given to the service (S3 lists in key order)."""
        async for info in merge_listing(name, self._pages(name, prefix, start_after), missing_if_empty=False):
            yield info

    async def _pages(self, name: str, prefix: str = "", start_after: str | None = None) -> AsyncIterator[ListingPage]:
        directory = self.layout.dir_prefix(name)
        token: str | None = None
        extra: dict[str, str] = {"StartAfter": directory + start_after} if start_after else {}
        while True:
            page = await self._call(
                "list_objects_v2",
                name,
                Prefix=directory + prefix,
                Delimiter=DELIMITER,
                MaxKeys=self.list_page_size,
                **extra,
            )
            prefix_len = len(directory)
            yield ListingPage(
                files=[
                    (entry["Key"][prefix_len:], entry["Size"], entry["LastModified"].timestamp())
                    for entry in page.get("Contents", ())
                ],
                directories=[entry["Prefix"][prefix_len:] for entry in page.get("CommonPrefixes", ())],
            )
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return
            extra = {"ContinuationToken": token}

    # items -----------------------------------------------------------------------------------------------

    async def _head(self, name: str, key: str) -> dict[str, Any] | None:
        """The object's metadata, or None if there is no object ``key``."""
        try:
            response: dict[str, Any] = await self._call("head_object", name, Key=key)
        except ObjectNotFound:
            return None
        return response

    async def _size(self, name: str, key: str) -> int:
        head = await self._head(name, key)
        if head is None:
            raise ObjectNotFound(name)
        size: int = head["ContentLength"]
        return size

    async def _info(self, name: str) -> ItemInfo:
        """An object (HEAD), else a directory (a key below ``name/``), else ``exists=False``."""
        leaf = name.rpartition(DELIMITER)[2]
        head = await self._head(name, self.layout.key(name)) if name else None
        if head is not None:
            return ItemInfo.for_file(leaf, head["ContentLength"], mtime=head["LastModified"].timestamp())
        if await self._first_keys(self._client, self.layout.dir_prefix(name), 1, name):
            return ItemInfo.for_directory(leaf)
        return ItemInfo.missing(leaf)

    async def _range(self, name: str, key: str, offset: int, size: int | None) -> str | None:
        """The Range header for ``size`` bytes at ``offset`` (None: the whole object)."""
        return await range_header(offset, size, lambda: self._size(name, key))

    async def _get_object(
        self, name: str, key: str, range_header: str | None, *, if_match: str | None = None
    ) -> dict[str, Any] | None:
        """GET the object or a range of it (None: the range starts at or past the end). ``if_match``: only
        from the content with this ETag, else ``ValueChanged``."""
        request: dict[str, Any] = {"Key": key}
        if range_header is not None:
            request["Range"] = range_header
        elif self.checksum == "sha256":
            request["ChecksumMode"] = "ENABLED"
        if if_match is not None:
            request["IfMatch"] = if_match
        try:
            response: dict[str, Any] = await self._call("get_object", name, **request)
        except BackendError as exc:
            if ERRORS.code_of(exc) == "InvalidRange":
                return None
            if if_match is not None and is_precondition_failure(exc):
                raise ValueChanged(f"{name} was replaced: it is no longer the content with ETag {if_match}") from exc
            raise
        return response

    async def _get(self, name: str, key: str, range_header: str | None, *, limit: int | None = None) -> bytes:
        """GET the object or a range of it; past the end is empty. A whole object is checked against the
        checksum the service stored with it. ``limit`` stops reading after that many bytes."""
        return (await self._get_with_reply(name, key, range_header, limit=limit))[0]

    async def _get_with_reply(
        self, name: str, key: str, range_header: str | None, *, limit: int | None = None
    ) -> tuple[bytes, dict[str, Any] | None]:
        """`_get`, and the reply's fields (size, range, ETag, mtime; None past the end).

        botocore retries a request until its reply begins; a connection lost while the body streams in, or
        a body that fails its checksum on the way, is fetched again (``retry.attempts`` in all).
        """

        async def get_once(began: Callable[[], None]) -> tuple[bytes, dict[str, Any] | None]:
            response = await self._get_object(name, key, range_header)
            if response is None:
                return b"", None
            began()
            body = response["Body"]
            try:
                with ERRORS.boundary(name):
                    if limit is None or response["ContentLength"] <= limit:
                        data: bytes = await body.read()
                        return data, response
                    parts = []
                    remaining = limit
                    while remaining > 0:
                        chunk = await body.read(remaining)
                        if not chunk:
                            break
                        parts.append(chunk)
                        remaining -= len(chunk)
                    return b"".join(parts), response
            finally:
                body.close()

        return await get_with_retry(self.retry, get_once, logger=logger, what=f"s3 GET {name}")

    async def _load(self, name: str, offset: int, size: int | None) -> bytes:
        """GET the value or a range; a whole value is checked against its stored checksum."""
        key = self.layout.key(name)
        if size == 0:
            await self._size(name, key)
            return b""
        if offset == 0 and size is not None and size >= self.capabilities.part_size:
            # The Store's first range of a big load: a plain GET read up to ``size`` bytes. A value that
            # fits comes whole, so its checksum is checked; a bigger one costs the rest of the connection.
            return await self._get(name, key, None, limit=size)
        data = await self._get(name, key, await self._range(name, key, offset, size))
        return data if size is None or len(data) <= size else data[:size]

    async def _load_first(self, name: str, offset: int, size: int) -> FirstRange:
        """The first range of a ranged load, and from the same reply the object's size (``Content-Length``
        of a whole GET, ``Content-Range`` of a ranged one) and ETag, which the other ranges are asked with
        (``If-Match``): one request where a HEAD before and after the ranges made three."""
        key = self.layout.key(name)
        if offset == 0 and size >= self.capabilities.part_size:  # as _load's: a value that fits comes whole,
            # its checksum checked
            data, reply = await self._get_with_reply(name, key, None, limit=size)
        else:
            data, reply = await self._get_with_reply(name, key, f"bytes={offset}-{offset + size - 1}")
        if reply is None:  # the range starts past the end
            return FirstRange(b"", offset)
        whole = _whole_size(reply, ranged=offset > 0)
        if len(data) < size and whole is None:
            whole = offset + len(data)
        modified = reply.get("LastModified")
        mtime = modified.timestamp() if modified is not None else None
        if whole is None:  # a reply without the object's size (no Content-Range): as the generic way
            info = await self._info(name)
            return FirstRange(data, info.size, info.mtime)
        return FirstRange(data, whole, mtime, reply.get("ETag"))

    async def _load_into(self, name: str, offset: int, buffer: memoryview) -> int:
        """GET the range that fills ``buffer`` and receive the body into it piece by piece (a big value's
        ranges land in the Store's one buffer without a joined copy each)."""
        return await self._receive(name, offset, buffer, None)

    async def _load_into_if(self, name: str, offset: int, buffer: memoryview, version: str) -> int:
        """`_load_into` with ``If-Match: version`` (an ETag from `_load_first`): a replaced object raises
        ``ValueChanged``."""
        return await self._receive(name, offset, buffer, version)

    async def _receive(self, name: str, offset: int, buffer: memoryview, if_match: str | None) -> int:
        key = self.layout.key(name)
        if not buffer:
            await self._size(name, key)
            return 0
        range_header = f"bytes={offset}-{offset + len(buffer) - 1}"

        async def get_once(began: Callable[[], None]) -> int:
            response = await self._get_object(name, key, range_header, if_match=if_match)
            if response is None:
                return 0
            began()
            body = response["Body"]
            try:
                with ERRORS.boundary(name):
                    return await _receive_into(body, buffer)
            finally:
                body.close()

        return await get_with_retry(self.retry, get_once, logger=logger, what=f"s3 GET {name}")

    async def _check_replace(self, name: str, key: str, replace: bool) -> None:
        if not replace and await self._head(name, key) is not None:
            self._refuse_replace(name)

    async def _store(self, name: str, value: bytes | memoryview, *, replace: bool) -> None:
        """PUT the value with its checksum (big values as a parallel multipart upload); ``replace=False``
        sends ``If-None-Match: *`` (on the completion of a multipart upload), so the service decides."""
        key = self.layout.key(name)
        if not await self._uploads.put(name, key, value, if_none_match=not replace):
            self._refuse_replace(name)

    async def store_if_absent(self, name: str, value: StoreValue) -> bool:
        """Deprecated: use ``store(name, value, if_absent=True)``, which raises ``ObjectExists``.

        Returns False, storing nothing, if ``name`` exists.
        """
        warnings.warn(
            "S3Backend.store_if_absent() is deprecated: use store(name, value, if_absent=True)",
            DeprecationWarning,
            stacklevel=2,
        )
        try:
            await self.store(name, value, if_absent=True)
        except ObjectExists:
            return False
        return True

    async def _url_for(self, name: str, *, expires: float, method: str) -> str:
        """A SigV4 presigned ``GetObject`` or ``PutObject`` URL (at most 7 days: SigV4's limit)."""
        seconds = math.ceil(expires)
        if seconds > MAX_PRESIGN_SECONDS:
            raise ValueError(f"s3 presigned URLs last at most {MAX_PRESIGN_SECONDS} s (7 days), not {expires}")
        operation = "get_object" if method == "GET" else "put_object"
        with ERRORS.boundary(name):
            url: str = await self._client.generate_presigned_url(
                operation, Params={"Bucket": self.bucket, "Key": self.layout.key(name)}, ExpiresIn=seconds
            )
        return url

    async def _delete(self, name: str) -> None:
        """DELETE the object (a HEAD first: S3 deletes missing objects without complaint)."""
        key = self.layout.key(name)
        await self._size(name, key)
        await self._call("delete_object", name, Key=key)

    async def _move(self, src: str, dst: str, *, replace: bool) -> None:
        """Copy inside the service (part by part above ``copy_threshold``), then delete the source."""
        src_key, dst_key = self.layout.key(src), self.layout.key(dst)
        await self._check_replace(dst, dst_key, replace)
        head = await self._head(src, src_key)
        if head is None:
            raise ObjectNotFound(src)
        if src_key == dst_key:
            return
        size = head["ContentLength"]
        if size > self.copy_threshold:
            await self._uploads.copy_in_parts(src, src_key, dst_key, size)
        else:
            extra = {"ChecksumAlgorithm": "SHA256"} if self.checksum == "sha256" else {}
            await self._call(
                "copy_object",
                src,
                Key=dst_key,
                CopySource={"Bucket": self.bucket, "Key": src_key},
                CopySourceIfMatch=head["ETag"],  # the object we sized, not one that replaced it
                **extra,
            )
        await self._call("delete_object", src, Key=src_key)

    # streaming and files ---------------------------------------------------------------------------------

    async def _store_file(self, name: str, path: str, size: int, *, replace: bool) -> None:
        """Upload a local file: one PUT, or a multipart upload whose parts are read and sent in parallel."""
        key = self.layout.key(name)
        if not await self._uploads.file(name, key, path, size, if_none_match=not replace):
            self._refuse_replace(name)

    async def _store_chunks(self, name: str, chunks: AsyncIterable[bytes], size: int | None, *, replace: bool) -> None:
        """Upload a stream: one PUT if it ends within ``multipart_threshold``, else parts sent as they fill.

        At most ``multipart_concurrency`` parts are held in memory; a stream that fails, ends early or runs
        long aborts the upload, so nothing is stored.
        """
        key = self.layout.key(name)
        if not await self._uploads.stream(name, key, chunks, size, if_none_match=not replace):
            self._refuse_replace(name)

    def _part_size_for(self, size: int) -> int:
        """The part size for a ``size``-byte upload: the configured one, grown to need at most 10,000 parts."""
        return self._uploads.part_size_for(size)

    async def _read_chunks(self, name: str, offset: int, size: int | None, chunk_size: int) -> AsyncIterator[bytes]:
        """Stream the value (or a range) from one GET; a whole value is checked against its checksum."""
        key = self.layout.key(name)
        if size == 0:
            await self._size(name, key)
            return
        response = await self._get_object(name, key, await self._range(name, key, offset, size))
        if response is None:
            return
        body = response["Body"]
        remaining = size
        try:
            while remaining is None or remaining > 0:
                with ERRORS.boundary(name):
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
        key = self.layout.key(name)
        data = await self._get(name, key, f"bytes={offset}-{offset + size - 1}") if size else b""
        if len(data) != size:
            raise ReadRangeError(f"{name}: wanted {size} bytes at offset {offset}, got {len(data)}")
        await self._offloader.run(pwrite_all, fd, data, offset)
