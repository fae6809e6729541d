"""The Azure backend's hooks: the backend contract as requests to the Blob service (azure-storage-blob, asyncio)."""

from __future__ import annotations

import asyncio
import base64
import builtins
import datetime
import logging
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any, ClassVar, Self, TypeVar

import aiohttp
from azure.core import MatchConditions
from azure.core.pipeline.transport import AioHttpTransport
from azure.storage.blob import BlobSasPermissions, generate_blob_sas
from azure.storage.blob.aio import BlobServiceClient

from ..._threads import Offloader
from ...errors import (
    BackendError,
    BackendURLInvalid,
    ConnectionLost,
    IntegrityError,
    ObjectNotFound,
    ReadRangeError,
    StoreExists,
    StoreNotFound,
    ValueChanged,
)
from ...items import ItemInfo
from ...transfer import run_bounded
from .._objectstore import DELIMITER, KeyLayout, ListingPage, content_range_total, merge_listing, send_stream
from ..base import Backend, Capabilities, FirstRange, pwrite_all
from ..options import Limits, RetryPolicy, Timeouts, never_reached
from ._blocks import BLOCKS, MAX_BLOCKS, BlockUpload, md5
from ._errors import ERRORS, is_conflict, status_of
from ._url import Account, parse_url

__all__ = ["AzureBackend"]

logger = logging.getLogger("aiodepot.backends.azure")

MiB = 1024 * 1024
T = TypeVar("T")
_OFFLOAD_AT = 256 * 1024  # hash bigger bodies on a thread
_COPY_POLL = (0.05, 1.0)  # first and longest wait between looks at a pending copy
_MD5_RANGE = 4 * MiB  # the longest range the service sends the MD5 of
_SINGLE_PUT = MiB  # aiohttp sends a bigger body from bytes only with a warning (a stream is used for blocks)
_TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class AzureBackend(Backend):
    """Items as block blobs below ``path/`` in ``container`` of an Azure storage account (or Azurite).

    Args:
        container: the container's name.
        path: the blob name prefix of the store inside the container (``/`` separated).
        account: the account, its endpoint and key (see ``azure://`` URLs and ``from_url``).
        create_container: let ``create()`` create the container if it does not exist.
        retry: every request is tried ``attempts`` times when its connection breaks, it times out, a body
            fails its MD5 check, or the service answers 408, 429 or 5xx (the SDK's own retries are off, so
            they do not compound). Default ``default_retry``: 5 attempts, waits from 0.1 s doubling to 2 s.
        limits: ``connections``: the pool and the store's default for bulk calls (default 32); ``parts``:
            blocks of one upload in flight (default 8); ``threads``: for hashing (default ``max(4, parts)``).
        timeouts: ``connect`` (default 10 s) and ``read`` (for data on a connection, default 60 s).
        part_size: range size of parallel loads and the block size of big values (default 4 MiB: a range
            of at most 4 MiB comes with the service's MD5 of it, which every load checks).
        block_threshold: values bigger than this go up as staged blocks (default: ``part_size``, at most 1 MiB).
        list_page_size: names per listing request (the service returns at most 5000).
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
        atomic_create=True,
        parallel_ranges=True,
        preferred_concurrency=32,
        part_size=4 * MiB,
    )

    def __init__(
        self,
        container: str,
        path: str,
        *,
        account: Account,
        create_container: bool = False,
        retry: RetryPolicy | None = None,
        limits: Limits | None = None,
        timeouts: Timeouts | None = None,
        part_size: int | None = None,
        block_threshold: int | None = None,
        list_page_size: int = 5000,
        permissions: str | dict[str, str] | None = None,
    ) -> None:
        super().__init__(permissions=permissions)
        if not path.strip(DELIMITER):
            raise BackendURLInvalid("an azure store needs a path inside the container (azure://…@container/path)")
        for option, value in (("part_size", part_size), ("block_threshold", block_threshold)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{option} must be an int >= 1, got {value!r}")
        if not isinstance(list_page_size, int) or not 1 <= list_page_size <= 5000:
            raise ValueError(f"list_page_size must be an int from 1 to 5000, got {list_page_size!r}")
        self.container = container
        self.account = account
        self.layout = KeyLayout(path.strip(DELIMITER) + DELIMITER)
        self.create_container = create_container
        self.retry = retry or self.default_retry
        limits = (limits or Limits()).or_defaults(self.default_limits)
        self.limits = limits.or_defaults(Limits(threads=max(4, limits.parts or 1)))
        self.timeouts = (timeouts or Timeouts()).or_defaults(self.default_timeouts)
        self.capabilities = self.capabilities.replace(
            preferred_concurrency=self.limits.connections, part_size=part_size or type(self).capabilities.part_size
        )
        self.block_threshold = block_threshold or min(self.capabilities.part_size, _SINGLE_PUT)
        self.list_page_size = list_page_size
        self._service: Any = None
        self._container: Any = None
        self._session: aiohttp.ClientSession | None = None
        self._opening = False
        self._offloader = Offloader(f"aiodepot-azure-{container}", self.limits.threads or 4)

    @property
    def base(self) -> str:
        """The blob name prefix of the store, ending in ``/``."""
        return self.layout.base

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """``azure://ACCOUNT:KEY@CONTAINER/PATH[?endpoint=URL]``, or ``azure://CONTAINER/PATH`` with the
        account from ``$AZURE_STORAGE_CONNECTION_STRING``.

        ``endpoint`` is the blob service's URL for an emulator or another cloud (Azurite:
        ``http://127.0.0.1:10000/devstoreaccount1``).
        """
        container, path, account = parse_url(url)
        return cls(container, path, account=account, **options)

    def __repr__(self) -> str:
        where = f"{self.account.endpoint}/{self.container}/{self.base}"
        return f"<AzureBackend {where!r} {'open' if self.opened else 'closed'}>"

    def _describe_location(self) -> str:
        endpoint = self.account.endpoint
        query = "" if endpoint.endswith(".blob.core.windows.net") else f"?endpoint={endpoint}"
        return f"azure://{self.account.name}@{self.container}/{self.base.rstrip('/')}{query}"

    # the boundary: every request, its errors translated by the one table, retried by the one policy ------

    def _retryable(self, exc: BaseException) -> bool:
        if isinstance(exc, ConnectionLost):
            return not (self._opening and never_reached(exc))  # a server that is not there fails at once
        if isinstance(exc, IntegrityError):
            return True  # a damaged body (or block) is fetched (or sent) again
        return isinstance(exc, BackendError) and status_of(exc) in _TRANSIENT_STATUSES

    async def _call(self, name: str, request: Callable[[], Awaitable[T]]) -> T:
        """``await request()`` with its errors translated (see ``ERRORS``), retried by ``retry``."""

        async def attempt() -> T:
            with ERRORS.boundary(name):
                return await request()

        def on_retry(exc: BaseException, number: int, wait: float) -> None:
            logger.warning("azure %s: %s; attempt %d of %d", name or "store", exc, number, self.retry.attempts)

        return await self.retry.run(attempt, retryable=self._retryable, on_retry=on_retry)

    def _blob(self, name: str, key: str | None = None) -> Any:
        return self._container.get_blob_client(self.layout.key(name) if key is None else key)

    def _connect(self) -> None:
        """The client and its connection pool (one per open backend)."""
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max(self.limits.connections or 1, self.limits.parts or 1)),
            auto_decompress=False,
        )
        # aiohttp sends an idempotent request again, unseen, when a reused connection turns out dead; the
        # retries are ours (a DELETE that reached the service must not come back as a 404 from its repeat)
        if hasattr(self._session, "_retry_connection"):
            self._session._retry_connection = False
        transport = AioHttpTransport(
            session=self._session,
            session_owner=False,
            connection_timeout=self.timeouts.connect,
            read_timeout=self.timeouts.read,
            connection_data_block_size=256 * 1024,
        )
        self._service = BlobServiceClient(
            self.account.endpoint,
            credential=self.account.credential,
            transport=transport,
            retry_total=0,  # ours is the one retry loop (self._call)
            connection_timeout=self.timeouts.connect,
            read_timeout=self.timeouts.read,
            max_single_put_size=max(self.block_threshold, 1),
            max_single_get_size=4 * MiB,  # the most a ranged GET with the service's MD5 can ask for
            max_chunk_get_size=4 * MiB,
        )
        self._container = self._service.get_container_client(self.container)

    async def _disconnect(self) -> None:
        service, session = self._service, self._session
        self._service = self._container = self._session = None
        try:
            if service is not None:
                await service.close()
        finally:
            if session is not None:
                await session.close()

    async def _first_keys(self, prefix: str, count: int, name: str = "") -> builtins.list[str]:
        """Up to ``count`` blob names that start with ``prefix``."""

        async def first_page() -> builtins.list[str]:
            pages = self._container.list_blobs(name_starts_with=prefix, results_per_page=count).by_page()
            async for page in pages:
                return [blob.name async for blob in page][:count]
            return []

        return await self._call(name, first_page)

    # lifecycle -------------------------------------------------------------------------------------------

    async def _create(self) -> None:
        """Create the store's marker blob (and the container, with ``create_container=True``).

        An existing store without items is accepted; one with items raises ``StoreExists``.
        """
        self._connect()
        self._opening = True
        try:
            if self.create_container:
                try:
                    await self._call("", self._container.create_container)
                except BackendError as exc:
                    if status_of(exc) != 409:  # ContainerAlreadyExists
                        raise
            try:
                keys = await self._first_keys(self.base, 2)
            except StoreNotFound as exc:
                raise StoreNotFound(
                    f"container {self.container!r} does not exist (backend option create_container=True creates it)"
                ) from exc.__cause__
            if any(key != self.base for key in keys):
                raise StoreExists(f"the azure store is not empty: {self.container}/{self.base}")
            await self._put(self.base, self.base, b"", replace=True)
        finally:
            self._opening = False
            await self._disconnect()

    async def _destroy(self) -> None:
        """Delete every blob below the store's prefix."""
        self._connect()
        try:
            keys: builtins.list[str] = []

            async def names() -> None:
                keys.extend([blob.name async for blob in self._container.list_blobs(name_starts_with=self.base)])

            await self._call("", names)
            if not keys:
                raise StoreNotFound(f"the azure store does not exist: {self.container}/{self.base}")

            async def delete(key: str) -> None:
                try:
                    await self._call(key, lambda: self._container.delete_blob(key))
                except ObjectNotFound:
                    pass

            await run_bounded(keys, delete, max_concurrency=self.limits.connections or 1)
        finally:
            await self._disconnect()
            self._offloader.shutdown()

    async def _open(self) -> None:
        """Connect (one client, one connection pool for this backend) and check that the store exists."""
        self._connect()
        self._opening = True
        try:
            if not await self._first_keys(self.base, 1):
                raise StoreNotFound(f"the azure store does not exist: {self.container}/{self.base}")
        except BaseException:
            await self._disconnect()
            raise
        finally:
            self._opening = False

    async def _close(self) -> None:
        """Close the client and its connections."""
        try:
            await self._disconnect()
        finally:
            self._offloader.shutdown()

    # directories -----------------------------------------------------------------------------------------

    async def _mkdir(self, name: str) -> None:
        """Put the marker blob ``name/`` (parents need none: they exist through their children)."""
        key = self.layout.dir_prefix(name)
        await self._put(name, key, b"", replace=True)

    async def _rmdir(self, name: str) -> None:
        """Remove the marker of an empty directory."""
        prefix = self.layout.dir_prefix(name)
        keys = await self._first_keys(prefix, 2, name)
        if not keys:
            raise ObjectNotFound(name)
        if keys != [prefix]:
            raise BackendError(f"directory {name!r} is not empty")
        await self._call(name, lambda: self._container.delete_blob(prefix))

    async def _list(self, name: str) -> AsyncIterator[ItemInfo]:
        """Yield a directory's entries sorted by name: blobs, and "directories" from blob prefixes.

        Pages of ``list_page_size`` names are fetched as the iteration goes on.
        """
        async for info in merge_listing(name, self._pages(name)):
            yield info

    async def _list_range(self, name: str, prefix: str, start_after: str | None) -> AsyncIterator[ItemInfo]:
        """`_list` with ``prefix`` given to the service (``name_starts_with``); the Blob service has no start
        key, so the entries up to ``start_after`` are dropped here (the prefix still narrows what comes)."""
        async for info in merge_listing(name, self._pages(name, prefix, start_after), missing_if_empty=False):
            yield info

    async def _pages(self, name: str, narrow: str = "", start_after: str | None = None) -> AsyncIterator[ListingPage]:
        directory = self.layout.dir_prefix(name)
        prefix = directory + narrow
        token: str | None = None
        while True:

            async def fetch(token: str | None = token) -> tuple[ListingPage, str | None]:
                walk = self._container.walk_blobs(
                    name_starts_with=prefix, delimiter=DELIMITER, results_per_page=self.list_page_size
                )
                pages = walk.by_page(continuation_token=token)
                page = ListingPage()
                async for entries in pages:
                    async for entry in entries:
                        relative = entry.name[len(directory) :]
                        if start_after is not None and relative <= start_after:
                            continue
                        if entry.name.endswith(DELIMITER) and not hasattr(entry, "size"):
                            page.directories.append(relative)
                        else:
                            page.files.append((relative, entry.size, entry.last_modified.timestamp()))
                    return page, pages.continuation_token
                return page, None

            page, token = await self._call(name, fetch)
            yield page
            if not token:
                return

    # items -----------------------------------------------------------------------------------------------

    async def _properties(self, name: str, key: str | None = None) -> Any | None:
        """The blob's properties, or None if there is no blob."""
        blob = self._blob(name, key)
        try:
            return await self._call(name, blob.get_blob_properties)
        except ObjectNotFound:
            return None

    async def _size(self, name: str) -> int:
        properties = await self._properties(name)
        if properties is None:
            raise ObjectNotFound(name)
        size: int = properties.size
        return size

    async def _info(self, name: str) -> ItemInfo:
        """A blob, else a directory (a blob below ``name/``), else ``exists=False``."""
        leaf = name.rpartition(DELIMITER)[2]
        properties = await self._properties(name) if name else None
        if properties is not None:
            return ItemInfo.for_file(leaf, properties.size, mtime=properties.last_modified.timestamp())
        if await self._first_keys(self.layout.dir_prefix(name), 1, name):
            return ItemInfo.for_directory(leaf)
        return ItemInfo.missing(leaf)

    async def _get(self, name: str, offset: int, size: int | None) -> bytes:
        """GET ``size`` bytes (None: to the end) from ``offset`` >= 0; past the end is empty.

        Each range of at most 4 MiB comes with the service's MD5 of it, which is checked; a body that
        breaks off or fails the check is fetched again (``retry``). One request of a range (the ranges of a
        big load) is checked here, a big body on a thread, so the loop goes on receiving the other ranges
        meanwhile; the SDK checks the requests of a longer read, on the event loop.
        """
        return (await self._get_with_properties(name, offset, size))[0]

    async def _get_with_properties(
        self, name: str, offset: int, size: int | None, *, etag: str | None = None
    ) -> tuple[bytes, Any]:
        """`_get`, and the blob's properties from the reply (whole size, ETag, mtime; None past the end).
        ``etag``: only from the blob with this ETag (``If-Match``), else ``ValueChanged``."""
        blob = self._blob(name)
        condition: dict[str, Any] = (
            {} if etag is None else {"etag": etag, "match_condition": MatchConditions.IfNotModified}
        )
        properties: Any = None

        async def get() -> bytes:
            nonlocal properties
            downloader = await blob.download_blob(
                offset=offset, length=size, validate_content="md5", max_concurrency=1, **condition
            )
            properties = downloader.properties
            data: bytes = await downloader.readall()
            return data

        async def get_checked() -> bytes:
            nonlocal properties
            replies: builtins.list[Any] = []
            downloader = await blob.download_blob(
                offset=offset,
                length=size,
                max_concurrency=1,
                headers={"x-ms-range-get-content-md5": "true"},
                raw_response_hook=lambda pipeline: replies.append(pipeline.http_response),
                **condition,
            )
            properties = downloader.properties
            data = b"".join([chunk async for chunk in downloader.chunks()])  # one request: its body, uncopied
            await self._check_md5(name, data, replies[-1].headers.get("Content-MD5") if replies else None)
            return data

        try:
            data = await self._call(name, get_checked if size is not None and 0 < size <= _MD5_RANGE else get)
        except BackendError as exc:
            status = status_of(exc)
            if status == 416:  # the range starts at or past the end (so the blob exists)
                return b"", None
            if etag is not None and status == 412:
                raise ValueChanged(f"{name} was replaced: it is no longer the blob with ETag {etag}") from exc
            raise
        return data, properties

    async def _load_first(self, name: str, offset: int, size: int) -> FirstRange:
        """The first range of a ranged load, with the blob's size, ETag and mtime from the same reply; the
        other ranges are asked ``If-Match`` the ETag (one request where ``info`` before and after made
        three)."""
        data, properties = await self._get_with_properties(name, offset, size)
        if properties is None:  # the range starts past the end
            return FirstRange(b"", offset)
        whole = content_range_total(properties.content_range)  # the SDK's .size is the range's
        if whole is None:
            whole = await self._size(name)
        return FirstRange(data, whole, properties.last_modified.timestamp(), properties.etag)

    async def _load_into_if(self, name: str, offset: int, buffer: memoryview, version: str) -> int:
        """The range that fills ``buffer``, from the blob with ETag ``version`` only (else ``ValueChanged``),
        copied into it."""
        if not buffer:
            await self._size(name)
            return 0
        data, _ = await self._get_with_properties(name, offset, len(buffer), etag=version)
        buffer[: len(data)] = data
        return len(data)

    async def _check_md5(self, name: str, data: bytes, expected: str | None) -> None:
        """Raise ``IntegrityError`` unless ``data``'s MD5 is ``expected`` (the base64 ``Content-MD5``)."""
        digest = md5(data) if len(data) < _OFFLOAD_AT else await self._offloader.run(md5, data)
        if expected is None or base64.b64decode(expected) != digest:
            raise IntegrityError(
                f"{name}: the data does not match the MD5 the service sent ({base64.b64encode(digest).decode()} != "
                f"{expected})"
            )

    async def _load(self, name: str, offset: int, size: int | None) -> bytes:
        """GET the value or a range of it (a range from the end needs the size first)."""
        if size == 0:
            await self._size(name)
            return b""
        if offset < 0:
            offset = max(await self._size(name) + offset, 0)
        return await self._get(name, offset, size)

    async def _put(self, name: str, key: str, data: bytes | memoryview, *, replace: bool) -> bool:
        """One Put Blob with its Content-MD5 (False: ``replace=False`` found a blob there already)."""
        blob = self._blob(name, key)
        body = bytes(data)
        digest = md5(body) if len(body) < _OFFLOAD_AT else await self._offloader.run(md5, body)

        async def put() -> None:  # overwrite=False is If-None-Match: *; the service checks the MD5
            await blob.upload_blob(body, length=len(body), overwrite=replace, transactional_content_md5=digest)

        try:
            await self._call(name, put)
        except BackendError as exc:
            if not replace and is_conflict(exc):
                return False
            raise
        return True

    async def _upload(self, name: str, data: bytes | memoryview, *, replace: bool) -> bool:
        """Store ``data``: one Put Blob, or blocks staged in parallel above ``block_threshold``."""
        key = self.layout.key(name)
        if len(data) <= self.block_threshold:
            return await self._put(name, key, data, replace=replace)
        view = memoryview(data)
        part_size = BLOCKS.part_size(len(data), self.capabilities.part_size)

        async def read(start: int, length: int) -> tuple[bytes, bytes]:
            body = bytes(view[start : start + length])
            return body, await self._offloader.run(md5, body)

        async def send_all(upload: BlockUpload) -> None:
            spans = BLOCKS.spans(len(data), part_size)
            await upload.send_spans(spans, part_size, read, max_concurrency=self.limits.parts or 1)

        return await BlockUpload(self._call, self._blob(name), name).run(send_all, if_none_match=not replace)

    async def _store(self, name: str, value: bytes | memoryview, *, replace: bool) -> None:
        """Put the value with its MD5 (big ones as parallel blocks); ``replace=False`` is one atomic
        create (``If-None-Match: *``)."""
        if not await self._upload(name, value, replace=replace):
            self._refuse_replace(name)

    async def _delete(self, name: str) -> None:
        """Delete the blob (a retry that finds it gone counts: the first attempt deleted it)."""
        blob = self._blob(name)
        attempts = 0

        async def delete() -> None:
            nonlocal attempts
            attempts += 1
            try:
                with ERRORS.boundary(name):
                    await blob.delete_blob()
            except ObjectNotFound:
                if attempts == 1:
                    raise

        await self.retry.run(delete, retryable=self._retryable)

    async def _move(self, src: str, dst: str, *, replace: bool) -> None:
        """Copy inside the service (from the source as it was sized), then delete the source."""
        properties = await self._properties(src)
        if properties is None:
            raise ObjectNotFound(src)
        if src == dst:
            if not replace:
                self._refuse_replace(dst)
            return
        source, target = self._blob(src), self._blob(dst)
        extra = {} if replace else {"match_condition": MatchConditions.IfMissing}

        async def copy() -> dict[str, Any]:
            started: dict[str, Any] = await target.start_copy_from_url(
                source.url,
                source_etag=properties.etag,
                source_match_condition=MatchConditions.IfNotModified,
                **extra,
            )
            return started

        try:
            started = await self._call(dst, copy)
        except BackendError as exc:
            if not replace and is_conflict(exc):
                self._refuse_replace(dst)
            raise
        await self._wait_for_copy(dst, started.get("copy_status"))
        await self._delete(src)

    async def _wait_for_copy(self, name: str, status: str | None) -> None:
        """Wait until a copy the service runs in the background is done (one in the account mostly is at once)."""
        wait = _COPY_POLL[0]
        while status == "pending":
            await asyncio.sleep(wait)
            wait = min(wait * 2, _COPY_POLL[1])
            properties = await self._properties(name)
            status = None if properties is None else properties.copy.status
        if status not in (None, "success"):
            raise BackendError(f"{name}: the copy inside the service ended as {status!r}")

    # streaming and files ---------------------------------------------------------------------------------

    async def _store_chunks(self, name: str, chunks: AsyncIterable[bytes], size: int | None, *, replace: bool) -> None:
        """Upload a stream: one Put Blob if it ends within ``block_threshold``, else blocks staged as they fill.

        At most ``limits.parts`` blocks are held in memory; a stream that fails, ends early or runs long
        commits nothing, so nothing is stored.
        """
        stream = aiter(chunks)
        buffer = bytearray()
        async for chunk in stream:
            buffer += chunk
            if len(buffer) > self.block_threshold:
                break
        else:
            if size is not None and len(buffer) != size:
                raise ValueError(f"{name}: expected {size} bytes, the stream gave {len(buffer)}")
            await self._store(name, bytes(buffer), replace=replace)
            return
        part_size = BLOCKS.part_size(size, self.capabilities.part_size) if size else self.capabilities.part_size

        async def checksum(part: bytes) -> bytes:
            return await self._offloader.run(md5, part)

        async def send_all(upload: BlockUpload) -> None:
            await send_stream(
                upload,
                buffer,
                stream,
                name=name,
                size=size,
                part_size=part_size,
                max_parts=MAX_BLOCKS,
                max_concurrency=self.limits.parts or 1,
                checksum=checksum,
            )

        if not await BlockUpload(self._call, self._blob(name), name).run(send_all, if_none_match=not replace):
            self._refuse_replace(name)

    async def _read_into(self, name: str, fd: int, offset: int, size: int) -> None:
        """GET one exact range and write it into ``fd`` at the same offset."""
        data = await self._get(name, offset, size) if size else b""
        if len(data) != size:
            raise ReadRangeError(f"{name}: wanted {size} bytes at offset {offset}, got {len(data)}")
        await self._offloader.run(pwrite_all, fd, data, offset)

    # signed URLs -----------------------------------------------------------------------------------------

    async def _url_for(self, name: str, *, expires: float, method: str) -> str:
        """A SAS URL of the blob of ``name``: ``GET`` reads it, ``PUT`` creates or replaces it (a plain PUT
        with the header ``x-ms-blob-type: BlockBlob``), until ``expires`` seconds from now."""
        if method not in ("GET", "PUT"):
            raise ValueError(f"method must be 'GET' or 'PUT', got {method!r}")
        if not expires > 0:
            raise ValueError(f"expires must be > 0 seconds, got {expires!r}")
        if self.account.key is None:
            raise self._not_supported("url_for", "it signs in with a SAS or anonymously, not with the account key")
        permission = BlobSasPermissions(read=True) if method == "GET" else BlobSasPermissions(create=True, write=True)
        key = self.layout.key(name)
        token = generate_blob_sas(
            self.account.name,
            self.container,
            key,
            account_key=self.account.key,
            permission=permission,
            expiry=datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=expires),
        )
        return f"{self._blob(name).url}?{token}"
