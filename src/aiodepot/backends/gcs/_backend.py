"""The GCS backend's hooks: the backend contract as requests to Google Cloud Storage's JSON API."""

from __future__ import annotations

import asyncio
import builtins
import datetime
import io
import json
import logging
import math
import os
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Self, TypeVar
from urllib.parse import quote, urlsplit

import aiohttp
from gcloud.aio.auth import Token
from gcloud.aio.storage import Storage

from ..._threads import Offloader
from ...errors import (
    BackendError,
    BackendURLInvalid,
    ConnectionLost,
    IntegrityError,
    NotSupported,
    ObjectNotFound,
    PermissionDenied,
    ReadRangeError,
    StoreError,
    StoreExists,
    StoreNotFound,
    ValueChanged,
)
from ...items import ItemInfo
from ...transfer import run_bounded
from .._objectstore import (
    DELIMITER,
    KeyLayout,
    ListingPage,
    content_range_total,
    get_with_retry,
    merge_listing,
    range_header,
)
from ..base import Backend, Capabilities, FirstRange, pwrite_all
from ..options import Limits, RetryPolicy, Timeouts, never_reached
from ._checksums import OFFLOAD_AT, Crc32c, check_stored, crc32c_b64, stored_crc32c
from ._errors import ERRORS, is_precondition_failure, is_transient, raise_for_status
from ._signing import MAX_SECONDS, Signer
from ._url import parse_url

__all__ = ["GcsBackend"]

logger = logging.getLogger("aiodepot.backends.gcs")

T = TypeVar("T")
OCTETS = "application/octet-stream"
KiB = 1024
MiB = 1024 * KiB
CHUNK_GRAIN = 256 * KiB
"""Every chunk of a resumable upload but the last is a multiple of this (GCS's rule)."""
COMPOSITE_THRESHOLD = 150 * MiB
"""Values bigger than this go up as a parallel composite upload by default (``gcloud storage``'s threshold)."""
MAX_COMPOSE = 32
"""The most source objects one ``compose`` request takes."""
ADC_FILE = os.path.join("~", ".config", "gcloud", "application_default_credentials.json")
"""Where ``gcloud auth application-default login`` leaves the user's credentials."""


def _read_credentials(path: str | None) -> tuple[dict[str, Any], str]:
    """The JSON of the credentials file ``path`` (else ``GOOGLE_APPLICATION_CREDENTIALS``, else gcloud's
    application-default file; ``{}`` if none: the metadata server of the machine then gives tokens)."""
    explicit = path or os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    source = explicit or os.path.expanduser(ADC_FILE)
    try:
        with open(source, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError as exc:
        if not explicit:
            return {}, "the metadata server"
        raise PermissionDenied(f"gs: the credentials file {source!r} does not exist") from exc
    except OSError as exc:
        raise PermissionDenied(f"gs: the credentials file {source!r} cannot be read: {exc.strerror}") from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise PermissionDenied(f"gs: the credentials file {source!r} is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise PermissionDenied(f"gs: the credentials file {source!r} is not a JSON object")
    return data, source


def _mtime(stamp: str | None) -> float:
    return datetime.datetime.fromisoformat(stamp).timestamp() if stamp else 0.0


class GcsBackend(Backend):
    """Items as objects below ``path/`` in ``bucket`` of Google Cloud Storage (or fake-gcs-server).

    Args:
        bucket: the bucket's name.
        path: the object-name prefix of the store inside the bucket (``/`` separated).
        endpoint: ``scheme://host[:port]`` of an emulator or a private endpoint (default: the
            ``STORAGE_EMULATOR_HOST`` environment variable, else GCS itself). Requests to an endpoint go
            without credentials unless ``credentials`` is given.
        credentials: a credentials JSON file (a service account key, an authorized user, …); default:
            ``GOOGLE_APPLICATION_CREDENTIALS``, then gcloud's application-default credentials, then the
            metadata server of a Google Cloud machine.
        project: the project in which ``create_bucket`` creates the bucket (default: the key's).
        create_bucket: let ``create()`` create the bucket if it does not exist.
        retry: how often a request that lost its connection or got a 408/429/5xx is tried again, and a
            GET whose body broke off (default ``default_retry``: 5 attempts, 0.1 s doubling up to 2 s).
        limits: ``connections``: the pool, and the store's default for bulk calls (default 32);
            ``parts``: parts of a composite upload in flight (default 8); ``threads``: for checksums of big
            values (default 4).
        timeouts: ``connect`` (default 10 s) and ``read`` (for data on a connection, default 60 s).
        part_size: range size of parallel loads and chunk size of resumable uploads (a multiple of
            256 KiB; default 8 MiB).
        resumable_threshold: values bigger than this go up as resumable uploads in ``part_size`` chunks
            (default: ``part_size``); smaller ones in one request.
        composite_threshold: values in memory bigger than this go up as parallel parts (``limits.parts`` in
            flight), each an object of its own with its CRC32C, joined by one ``compose`` (default 150 MiB, as
            ``gcloud storage``; 0: never). See "Parallel composite uploads" in the docs before you lower it.
        list_page_size: objects per listing request (GCS returns at most 1000).
        permissions: a permission map, shortcut name or JSON (see [`aiodepot.permissions`][aiodepot.permissions]).
    """

    default_retry: ClassVar[RetryPolicy] = RetryPolicy(attempts=5, backoff=0.1, multiplier=2.0, cap=2.0, jitter=0.5)
    """The retry policy without ``retry=``."""
    default_limits: ClassVar[Limits] = Limits(connections=32, threads=4, parts=8)
    """The limits that ``limits=`` leaves ``None``."""
    default_timeouts: ClassVar[Timeouts] = Timeouts(connect=10.0, read=60.0)
    """The timeouts that ``timeouts=`` leaves ``None``."""

    capabilities = Capabilities(
        ranged_reads=True,
        server_side_copy=True,
        multipart=False,  # a resumable upload is sequential
        atomic_store=True,
        atomic_create=True,  # ifGenerationMatch=0
        parallel_ranges=True,
        preferred_concurrency=32,
        part_size=8 * MiB,
    )

    def __init__(
        self,
        bucket: str,
        path: str,
        *,
        endpoint: str | None = None,
        credentials: str | None = None,
        project: str | None = None,
        create_bucket: bool = False,
        retry: RetryPolicy | None = None,
        limits: Limits | None = None,
        timeouts: Timeouts | None = None,
        part_size: int | None = None,
        resumable_threshold: int | None = None,
        composite_threshold: int = COMPOSITE_THRESHOLD,
        list_page_size: int = 1000,
        permissions: str | dict[str, str] | None = None,
    ) -> None:
        super().__init__(permissions=permissions)
        if not bucket or "/" in bucket:
            raise BackendURLInvalid(f"invalid bucket name: {bucket!r}")
        if not path.strip(DELIMITER):
            raise BackendURLInvalid("a gs store needs a path inside the bucket (gs://BUCKET/PATH)")
        if part_size is not None and (not isinstance(part_size, int) or part_size < 1 or part_size % CHUNK_GRAIN):
            raise ValueError(f"part_size must be a positive multiple of {CHUNK_GRAIN} (256 KiB), got {part_size!r}")
        for option, value in (("resumable_threshold", resumable_threshold), ("list_page_size", list_page_size)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{option} must be an int >= 1, got {value!r}")
        if endpoint is None and os.environ.get("STORAGE_EMULATOR_HOST"):
            endpoint = os.environ["STORAGE_EMULATOR_HOST"]
            endpoint = endpoint if "://" in endpoint else f"http://{endpoint}"
        self.bucket = bucket
        self.layout = KeyLayout(path.strip(DELIMITER) + DELIMITER)
        self.endpoint = endpoint.rstrip("/") if endpoint else None
        self.credentials, self.project, self.create_bucket = credentials, project, create_bucket
        self.anonymous = self.endpoint is not None and credentials is None
        """Requests go without credentials (to an emulator named by ``endpoint``, without ``credentials``)."""
        self.retry = retry or self.default_retry
        self.limits = (limits or Limits()).or_defaults(self.default_limits)
        self.timeouts = (timeouts or Timeouts()).or_defaults(self.default_timeouts)
        self.capabilities = self.capabilities.replace(
            preferred_concurrency=self.limits.connections, part_size=part_size or type(self).capabilities.part_size
        )
        self.resumable_threshold = resumable_threshold or self.capabilities.part_size
        if not isinstance(composite_threshold, int) or composite_threshold < 0:
            raise ValueError(f"composite_threshold must be an int >= 0, got {composite_threshold!r}")
        self.composite_threshold = composite_threshold
        self.list_page_size = min(list_page_size, 1000)
        self._api = (self.endpoint or "https://storage.googleapis.com") + "/storage/v1/b/" + quote(bucket, safe="")
        self._upload_api = (
            (self.endpoint or "https://storage.googleapis.com") + "/upload/storage/v1/b/" + quote(bucket, safe="")
        )
        self._http: aiohttp.ClientSession | None = None
        self._storage: Storage | None = None
        self._service: dict[str, Any] = {}
        self._source = ""
        self._offloader = Offloader(f"aiodepot-gcs-{bucket}", self.limits.threads or 4)

    @property
    def base(self) -> str:
        """The object-name prefix of the store, ending in ``/``."""
        return self.layout.base

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """``gs://BUCKET/PATH[?endpoint=URL&credentials=FILE&project=ID]`` (the path may be percent-encoded)."""
        bucket, path, parsed = parse_url(url)
        return cls(bucket, path, **{**parsed, **options})

    def __repr__(self) -> str:
        where = f"{self.endpoint + ' ' if self.endpoint else ''}gs://{self.bucket}/{self.base}"
        return f"<GcsBackend {where!r} {'open' if self.opened else 'closed'}>"

    def _describe_location(self) -> str:
        endpoint = f"?endpoint={self.endpoint}" if self.endpoint else ""
        return f"gs://{self.bucket}/{self.base.rstrip('/')}{endpoint}"

    # the boundary: every request, its errors translated by the one table, transient ones retried --------

    @property
    def _timeout(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=None, sock_connect=self.timeouts.connect, sock_read=self.timeouts.read)

    def _client(self) -> Storage:
        if self._storage is None:
            raise StoreError("the gs backend is not connected")  # a hook called outside open/close
        return self._storage

    async def _call(self, name: str, op: Callable[[], Awaitable[T]]) -> T:
        """``await op()`` with errors translated (``ERRORS``); transient failures are tried again."""

        async def attempt() -> T:
            with ERRORS.boundary(name):
                return await op()

        def retryable(exc: BaseException) -> bool:
            return is_transient(exc) and not never_reached(exc)

        def on_retry(exc: BaseException, number: int, wait: float) -> None:
            logger.warning("gs %s: %s; attempt %d of %d", name or self.bucket, exc, number, self.retry.attempts)

        return await self.retry.run(attempt, retryable=retryable, on_retry=on_retry)

    async def _auth(self) -> dict[str, str]:
        """The Authorization header (none for an emulator without credentials)."""
        if self.anonymous:
            return {}
        try:
            token = await self._client().token.get()
        except aiohttp.ClientResponseError as exc:
            found = ERRORS.native(exc)
            raise PermissionDenied(
                f"gs: {self._source} gave no access token: {found.status} {found.code}: {found.message}"
            ) from exc
        return {"Authorization": f"Bearer {token}"}

    async def _request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        data: Any = None,
        json_body: Any = None,
    ) -> aiohttp.ClientResponse:
        """One request of our own on the pool (status >= 400 raises as gcloud-aio's do); release the reply."""
        assert self._http is not None
        response = await self._http.request(
            method,
            url,
            params=params,
            headers={**(headers or {}), **await self._auth()},
            data=data,
            json=json_body,
            timeout=self._timeout,
            allow_redirects=False,  # a resumable upload answers 308 for "go on", not a redirect
        )
        await raise_for_status(response)
        return response

    async def _json(self, method: str, url: str, name: str, **kwargs: Any) -> dict[str, Any]:
        async def once() -> dict[str, Any]:
            response = await self._request(method, url, **kwargs)
            async with response:
                found: dict[str, Any] = await response.json(content_type=None) if response.status != 204 else {}
            return found or {}

        return await self._call(name, once)

    async def _list_page(
        self, name: str, prefix: str, count: int, *, delimiter: bool, token: str = "", start: str = ""
    ) -> dict[str, Any]:
        params = {"prefix": prefix, "maxResults": str(count)}
        if delimiter:
            params["delimiter"] = DELIMITER
        if start:
            params["startOffset"] = start
        if token:
            params["pageToken"] = token
        return await self._call(
            name,
            lambda: self._client().list_objects(self.bucket, params=dict(params), timeout=self._timeout),  # type: ignore[arg-type]
        )

    async def _first_keys(self, prefix: str, count: int, name: str = "") -> builtins.list[str]:
        page = await self._list_page(name, prefix, count, delimiter=False)
        return [item["name"] for item in page.get("items", ())]

    async def _metadata(self, name: str, key: str) -> dict[str, Any] | None:
        """The object's metadata, or None if there is no object ``key``."""
        try:
            return await self._call(
                name,
                lambda: self._client().download_metadata(self.bucket, key, timeout=self._timeout),  # type: ignore[arg-type]
            )
        except ObjectNotFound:
            return None

    # lifecycle -------------------------------------------------------------------------------------------

    async def _connect(self) -> None:
        """The pool and the gcloud-aio client (credentials read on a thread); a bad key fails here."""
        if self._http is not None:
            return
        if self.anonymous:
            service: dict[str, Any] = {}
            self._source = "no credentials (an emulator)"
        else:
            service, self._source = await self._offloader.run(_read_credentials, self.credentials)
            self._source = (
                self._source if self._source == "the metadata server" else f"the credentials {self._source!r}"
            )
        connector = aiohttp.TCPConnector(limit=self.limits.connections or 32, keepalive_timeout=30)
        self._http = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        token = Token(service_file=io.StringIO(json.dumps(service)), session=self._http)  # type: ignore[arg-type]
        self._storage = Storage(token=token, session=self._http, api_root=self.endpoint, api_is_dev=self.anonymous)  # type: ignore[arg-type]
        self._service = service
        if not self.anonymous:
            try:
                await self._auth()
            except BaseException:
                await self._disconnect()
                raise

    async def _disconnect(self) -> None:
        http, self._http, self._storage = self._http, None, None
        if http is not None:
            await http.close()

    async def _check_bucket(self) -> None:
        try:
            await self._json("GET", self._api, "", params={"fields": "name"})
        except ObjectNotFound as exc:
            raise StoreNotFound(f"gs: the bucket {self.bucket!r} does not exist") from exc.__cause__

    async def _create(self) -> None:
        """Create the store's marker object (and the bucket, with ``create_bucket=True``).

        An existing store without items is accepted; one with items raises ``StoreExists``.
        """
        await self._connect()
        try:
            if self.create_bucket:
                await self._make_bucket()
            try:
                await self._check_bucket()
            except StoreNotFound as exc:
                raise StoreNotFound(f"{exc} (backend option create_bucket=True creates it)") from exc.__cause__
            keys = await self._first_keys(self.base, 2)
            if any(key != self.base for key in keys):
                raise StoreExists(f"the gs store is not empty: gs://{self.bucket}/{self.base}")
            await self._upload("", self.base, b"", replace=True)
        finally:
            await self._disconnect()

    async def _make_bucket(self) -> None:
        project = self.project or self._service.get("project_id") or "aiodepot"
        url = (self.endpoint or "https://storage.googleapis.com") + "/storage/v1/b"
        try:
            await self._json("POST", url, "", params={"project": project}, json_body={"name": self.bucket})
        except BackendError as exc:
            if ERRORS.code_of(exc) not in ("conflict", "Conflict") and getattr(exc.__cause__, "status", None) != 409:
                raise

    async def _destroy(self) -> None:
        """Delete every object below the store's prefix."""
        await self._connect()
        try:
            found = False
            token = ""
            while True:
                page = await self._list_page("", self.base, 1000, delimiter=False, token=token)
                keys = [item["name"] for item in page.get("items", ())]
                found = found or bool(keys)
                await run_bounded(keys, self._delete_key, max_concurrency=self.limits.connections or 32)
                token = page.get("nextPageToken") or ""
                if not token:
                    break
            if not found:
                raise StoreNotFound(f"the gs store does not exist: gs://{self.bucket}/{self.base}")
        finally:
            await self._disconnect()
            self._offloader.shutdown()

    async def _delete_key(self, key: str, name: str = "") -> None:
        await self._call(name, lambda: self._client().delete(self.bucket, key, timeout=self._timeout))  # type: ignore[arg-type]

    async def _open(self) -> None:
        """Connect (one pool for this backend) and check that bucket and store exist."""
        await self._connect()
        try:
            await self._check_bucket()
            if not await self._first_keys(self.base, 1):
                raise StoreNotFound(f"the gs store does not exist: gs://{self.bucket}/{self.base}")
        except BaseException:
            await self._disconnect()
            raise

    async def _close(self) -> None:
        try:
            await self._disconnect()
        finally:
            self._offloader.shutdown()

    # directories -----------------------------------------------------------------------------------------

    async def _mkdir(self, name: str) -> None:
        """Put the marker object ``name/`` (parents need none: they exist through their children)."""
        await self._upload(name, self.layout.dir_prefix(name), b"", replace=True)

    async def _rmdir(self, name: str) -> None:
        """Remove the marker of an empty directory."""
        prefix = self.layout.dir_prefix(name)
        keys = await self._first_keys(prefix, 2, name)
        if not keys:
            raise ObjectNotFound(name)
        if keys != [prefix]:
            raise BackendError(f"directory {name!r} is not empty")
        await self._delete_key(prefix, name)

    async def _list(self, name: str) -> AsyncIterator[ItemInfo]:
        """Yield a directory's entries sorted by name: objects, and "directories" from prefixes."""
        async for info in merge_listing(name, self._pages(name)):
            yield info

    async def _list_range(self, name: str, prefix: str, start_after: str | None) -> AsyncIterator[ItemInfo]:
        """`_list` with ``prefix`` and ``startOffset`` given to the service (GCS lists in name order).

        ``startOffset`` is inclusive and ``start_after`` is not: the service starts at ``start_after``'s key
        and the one entry of that very key is dropped here.
        """
        async for info in merge_listing(name, self._pages(name, prefix, start_after), missing_if_empty=False):
            yield info

    async def _pages(self, name: str, narrow: str = "", start_after: str | None = None) -> AsyncIterator[ListingPage]:
        # fake-gcs-server gives every page all the prefixes of the whole listing: a prefix is passed on once,
        # with the first page whose objects reach it (the merge needs pages in key order), or with the last
        directory = self.layout.dir_prefix(name)
        start = directory + start_after if start_after else ""
        token = ""
        seen: set[str] = set()
        waiting: set[str] = set()
        while True:
            page = await self._list_page(
                name, directory + narrow, self.list_page_size, delimiter=True, token=token, start=start
            )
            token = page.get("nextPageToken") or ""
            files = [
                (item["name"][len(directory) :], int(item.get("size", 0)), _mtime(item.get("updated")))
                for item in page.get("items", ())
            ]
            reached = max((entry[0] for entry in files), default="") if token else None
            waiting.update(prefix[len(directory) :] for prefix in page.get("prefixes", ()))
            waiting -= seen
            directories = sorted(entry for entry in waiting if reached is None or entry <= reached)
            seen.update(directories)
            waiting.difference_update(directories)
            if start_after:
                files = [entry for entry in files if entry[0] > start_after]
                directories = [entry for entry in directories if entry > start_after]
            yield ListingPage(files=files, directories=directories)
            if not token:
                return

    # items: reads ----------------------------------------------------------------------------------------

    async def _size(self, name: str, key: str) -> int:
        metadata = await self._metadata(name, key)
        if metadata is None:
            raise ObjectNotFound(name)
        return int(metadata.get("size", 0))

    async def _info(self, name: str) -> ItemInfo:
        """An object (its metadata), else a directory (an object below ``name/``), else ``exists=False``."""
        leaf = name.rpartition(DELIMITER)[2]
        metadata = await self._metadata(name, self.layout.key(name)) if name else None
        if metadata is not None:
            return ItemInfo.for_file(leaf, int(metadata.get("size", 0)), mtime=_mtime(metadata.get("updated")))
        if await self._first_keys(self.layout.dir_prefix(name), 1, name):
            return ItemInfo.for_directory(leaf)
        return ItemInfo.missing(leaf)

    def _media_url(self, key: str) -> str:
        return f"{self._api}/o/{quote(key, safe='')}"

    async def _get(self, name: str, key: str, range_: str | None, *, limit: int | None = None) -> bytes:
        """GET the object or a range of it (our own request: gcloud-aio hides the reply's headers); past the
        end is empty. A whole object is checked against the CRC32C the service stored with it; a body that
        breaks off or fails the check is fetched again (``retry``)."""
        return (await self._get_with_headers(name, key, range_, limit=limit))[0]

    async def _get_with_headers(
        self, name: str, key: str, range_: str | None, *, limit: int | None = None, generation: str | None = None
    ) -> tuple[bytes, aiohttp.ClientResponse | None]:
        """`_get`, and the reply (its status and headers; None past the end). ``generation``: only from that
        generation of the object (``ifGenerationMatch``; the reply's ``x-goog-generation`` is checked too),
        else ``ValueChanged``."""
        params = {"alt": "media"} if generation is None else {"alt": "media", "ifGenerationMatch": generation}

        async def get_once(began: Callable[[], None]) -> tuple[bytes, aiohttp.ClientResponse | None]:
            async def open_reply() -> aiohttp.ClientResponse:
                headers = {"Range": range_} if range_ else {}
                return await self._request("GET", self._media_url(key), params=params, headers=headers)

            try:
                response = await self._call(name, open_reply)
            except BackendError as exc:
                status = getattr(exc.__cause__, "status", None)
                if status == 416:
                    return b"", None
                if generation is not None and status == 412:
                    raise ValueChanged(f"{name} was replaced: it is no longer generation {generation}") from exc
                raise
            began()
            async with response:
                served = response.headers.get("x-goog-generation")
                if generation is not None and served is not None and served != generation:
                    # a server that does not keep to ifGenerationMatch (fake-gcs-server): the reply says so
                    raise ValueChanged(f"{name} was replaced: it is no longer generation {generation}")
                with ERRORS.boundary(name):
                    if limit is None or (response.content_length or 0) <= limit:
                        data = await response.read()
                    else:
                        data = await response.content.readexactly(limit)
            if response.status == 200 and len(data) == response.content_length:
                stored = stored_crc32c(response.headers.get("x-goog-hash"))
                if stored is not None:
                    computed = (
                        crc32c_b64(data) if len(data) < OFFLOAD_AT else await self._offloader.run(crc32c_b64, data)
                    )
                    if computed != stored:
                        raise IntegrityError(
                            f"{name}: the data does not match its stored CRC32C ({computed} != {stored})"
                        )
            return data, response

        return await get_with_retry(self.retry, get_once, logger=logger, what=f"gs GET {name}")

    async def _load_first(self, name: str, offset: int, size: int) -> FirstRange:
        """The first range of a ranged load, with the object's size (``Content-Length`` of a whole GET,
        ``Content-Range``'s total of a ranged one) and generation from the same reply; the other ranges are
        asked ``ifGenerationMatch`` it (one request where metadata before and after made three)."""
        key = self.layout.key(name)
        if offset == 0 and size >= self.capabilities.part_size:  # as _load's: a value that fits comes whole,
            # its checksum checked
            data, reply = await self._get_with_headers(name, key, None, limit=size)
        else:
            data, reply = await self._get_with_headers(name, key, f"bytes={offset}-{offset + size - 1}")
        if reply is None:  # the range starts past the end
            return FirstRange(b"", offset)
        headers = reply.headers
        if reply.status == 200 and reply.content_length is not None:
            whole: int | None = reply.content_length
        else:
            whole = content_range_total(headers.get("Content-Range"))
        generation = headers.get("x-goog-generation")
        if whole is None or generation is None:  # a reply that does not say: as the generic way
            info = await self._info(name)
            return FirstRange(data, info.size, info.mtime)
        modified = headers.get("Last-Modified")
        mtime = parsedate_to_datetime(modified).timestamp() if modified else None
        return FirstRange(data, whole, mtime, generation)

    async def _load_into_if(self, name: str, offset: int, buffer: memoryview, version: str) -> int:
        """The range that fills ``buffer``, from generation ``version`` only (else ``ValueChanged``), copied
        into it."""
        key = self.layout.key(name)
        if not buffer:
            await self._size(name, key)
            return 0
        range_ = f"bytes={offset}-{offset + len(buffer) - 1}"
        data, _ = await self._get_with_headers(name, key, range_, generation=version)
        buffer[: len(data)] = data
        return len(data)

    async def _load(self, name: str, offset: int, size: int | None) -> bytes:
        """GET the value or a range; a whole value is checked against its stored CRC32C."""
        key = self.layout.key(name)
        if size == 0:
            await self._size(name, key)
            return b""
        if offset == 0 and size is not None and size >= self.capabilities.part_size:
            # The Store's first range of a big load: a plain GET read up to ``size`` bytes. A value that fits
            # comes whole, so its checksum is checked.
            return await self._get(name, key, None, limit=size)
        data = await self._get(name, key, await range_header(offset, size, lambda: self._size(name, key)))
        return data if size is None or len(data) <= size else data[:size]

    async def _read_into(self, name: str, fd: int, offset: int, size: int) -> None:
        """GET one exact range and write it into ``fd`` at the same offset."""
        key = self.layout.key(name)
        data = await self._get(name, key, f"bytes={offset}-{offset + size - 1}") if size else b""
        if len(data) != size:
            raise ReadRangeError(f"{name}: wanted {size} bytes at offset {offset}, got {len(data)}")
        await self._offloader.run(pwrite_all, fd, data, offset)

    # items: writes ---------------------------------------------------------------------------------------

    async def _crc(self, data: bytes | memoryview) -> str:
        return crc32c_b64(data) if len(data) < OFFLOAD_AT else await self._offloader.run(crc32c_b64, data)

    async def _upload(self, name: str, key: str, data: bytes | memoryview, *, replace: bool) -> bool:
        """One multipart upload (metadata and media) through gcloud-aio, its CRC32C in the metadata for the
        service to check; ``replace=False`` sends ``ifGenerationMatch=0``. False: an object was there."""
        crc = await self._crc(data)
        body = bytes(data)
        attempts = 0

        async def once() -> dict[str, Any]:
            nonlocal attempts
            attempts += 1
            return await self._client().upload(
                self.bucket,
                key,
                body,
                content_type="application/octet-stream",
                metadata={"crc32c": crc},
                parameters={} if replace else {"ifGenerationMatch": "0"},
                force_resumable_upload=False,
                timeout=self._timeout,  # type: ignore[arg-type]
            )

        try:
            stored = await self._call(name, once)
        except BackendError as exc:
            if replace or not is_precondition_failure(exc):
                raise
            # after a retry the object there may be our own first attempt, whose reply was lost
            return attempts > 1 and await self._is_ours(name, key, crc, len(body))
        if stored.get("crc32c") not in (None, crc):
            await self._replace_damaged(name, key, body, crc, stored)
        return True

    async def _replace_damaged(self, name: str, key: str, body: bytes, crc: str, damaged: dict[str, Any]) -> None:
        """The service stored other bytes than were sent (an emulator that does not check the CRC32C sent):
        send them once more in place of that object (its generation pinned); if that fails too, delete it
        and raise ``IntegrityError``."""
        generation = str(damaged.get("generation", ""))
        logger.warning("gs %s: the service stored other bytes than were sent; sending again", name)
        try:
            stored = await self._call(
                name,
                lambda: self._client().upload(
                    self.bucket,
                    key,
                    body,
                    content_type="application/octet-stream",
                    metadata={"crc32c": crc},
                    parameters={"ifGenerationMatch": generation} if generation else {},
                    force_resumable_upload=False,
                    timeout=self._timeout,  # type: ignore[arg-type]
                ),
            )
            check_stored(name, "upload", crc, stored.get("crc32c"))
        except BaseException:
            await asyncio.shield(self._drop_damaged(name, key, generation))
            raise

    async def _drop_damaged(self, name: str, key: str, generation: str) -> None:
        """Delete the damaged object we wrote (only that generation of it), swallowing errors."""
        try:
            params = {"ifGenerationMatch": generation} if generation else {}
            await self._call(
                name,
                lambda: self._client().delete(self.bucket, key, params=dict(params), timeout=self._timeout),  # type: ignore[arg-type]
            )
        except StoreError as exc:
            logger.warning("gs %s: the damaged object could not be deleted: %s", name, exc)

    async def _is_ours(self, name: str, key: str, crc: str, size: int) -> bool:
        metadata = await self._metadata(name, key)
        return metadata is not None and metadata.get("crc32c") == crc and int(metadata.get("size", -1)) == size

    async def _store(self, name: str, value: bytes | memoryview, *, replace: bool) -> None:
        """One upload, or a resumable upload in ``part_size`` chunks above ``resumable_threshold``;
        ``replace=False`` sends ``ifGenerationMatch=0``, so the service decides."""
        key = self.layout.key(name)
        if self.composite_threshold and len(value) > self.composite_threshold:
            done = await self._composite(name, key, memoryview(value), replace=replace)
        elif len(value) > self.resumable_threshold:
            view = memoryview(value)
            step = self.capabilities.part_size

            async def pieces() -> AsyncIterator[bytes | memoryview]:
                for start in range(0, len(view), step):
                    yield view[start : start + step]

            done = await self._resumable(name, key, pieces(), len(value), replace=replace)
        else:
            done = await self._upload(name, key, value, replace=replace)
        if not done:
            self._refuse_replace(name)

    async def _composite(self, name: str, key: str, view: memoryview, *, replace: bool) -> bool:
        """A parallel composite upload: at most ``MAX_COMPOSE`` parts of at least ``part_size`` bytes, each
        uploaded as an object of its own with its CRC32C (``limits.parts`` in flight), then one ``compose``
        into ``key`` whose CRC32C must be the value's. The part objects (``.tmp`` names, never listed) are
        deleted afterwards, whether it worked or not. ``replace=False`` sends ``ifGenerationMatch=0`` with the
        compose, after a look at the key (fake-gcs-server ignores the precondition there). False: an object
        was there."""
        if not replace and await self._metadata(name, key) is not None:
            return False
        size = len(view)
        step = max(self.capabilities.part_size, -(-size // MAX_COMPOSE))
        spans = [(start, min(step, size - start)) for start in range(0, size, step)]
        token = os.urandom(6).hex()
        part_keys = [f"{key}.{token}-{i:02d}.tmp" for i in range(len(spans))]
        whole = asyncio.ensure_future(self._offloader.run(crc32c_b64, view))  # on a thread, while parts go up

        async def send(index: int) -> None:
            start, length = spans[index]
            await self._upload(name, part_keys[index], view[start : start + length], replace=True)

        try:
            await run_bounded(range(len(spans)), send, max_concurrency=self.limits.parts or 1)
            crc = await whole
            return await self._compose(name, key, part_keys, crc, size, replace=replace)
        finally:
            whole.cancel()
            await asyncio.shield(self._delete_parts(name, part_keys))

    async def _compose(
        self, name: str, key: str, sources: builtins.list[str], crc: str, size: int, *, replace: bool
    ) -> bool:
        """``compose`` ``sources`` into ``key`` and check the result's CRC32C (a damaged result is deleted)."""
        params = {} if replace else {"ifGenerationMatch": "0"}
        body = {"sourceObjects": [{"name": source} for source in sources], "destination": {"contentType": OCTETS}}
        attempts = 0

        async def once() -> dict[str, Any]:
            nonlocal attempts
            attempts += 1
            response = await self._request(
                "POST", f"{self._media_url(key)}/compose", params=dict(params), json_body=body
            )
            async with response:
                stored: dict[str, Any] = await response.json(content_type=None)
            return stored

        try:
            stored = await self._call(name, once)
        except BackendError as exc:
            if replace or not is_precondition_failure(exc):
                raise
            # after a retry the object there may be our own first compose, whose reply was lost
            return attempts > 1 and await self._is_ours(name, key, crc, size)
        try:
            check_stored(name, "compose", crc, stored.get("crc32c"))
        except IntegrityError:
            await asyncio.shield(self._drop_damaged(name, key, str(stored.get("generation", ""))))
            raise
        return True

    async def _delete_parts(self, name: str, keys: builtins.list[str]) -> None:
        """Delete the part objects of a composite upload (those never uploaded are 404s), swallowing errors."""

        async def delete(key: str) -> None:
            try:
                await self._delete_key(key, name)
            except ObjectNotFound:
                pass
            except StoreError as exc:
                logger.warning("gs %s: a part object of a composite upload was left behind: %s", name, exc)

        await run_bounded(keys, delete, max_concurrency=self.limits.parts or 1)

    async def _store_chunks(self, name: str, chunks: AsyncIterable[bytes], size: int | None, *, replace: bool) -> None:
        """One upload if the stream ends within ``resumable_threshold``, else a resumable upload whose chunks
        go as they fill; a stream that fails, ends early or runs long cancels it (nothing is stored)."""
        key = self.layout.key(name)
        buffer = bytearray()
        stream = aiter(chunks)
        async for chunk in stream:
            buffer += chunk
            if size is not None and len(buffer) > size:
                raise ValueError(f"{name}: the stream gave more than the expected {size} bytes")
            if len(buffer) > self.resumable_threshold:
                break
        else:
            if size is not None and len(buffer) != size:
                raise ValueError(f"{name}: expected {size} bytes, the stream gave {len(buffer)}")
            if not await self._upload(name, key, bytes(buffer), replace=replace):
                self._refuse_replace(name)
            return
        step = self.capabilities.part_size

        async def pieces() -> AsyncIterator[bytes | memoryview]:
            nonlocal buffer
            total = len(buffer)
            async for chunk in stream:
                buffer += chunk
                total += len(chunk)
                if size is not None and total > size:
                    raise ValueError(f"{name}: the stream gave more than the expected {size} bytes")
                while len(buffer) > step:  # keep the last piece back: it may be the final one
                    piece = bytes(buffer[:step])
                    del buffer[:step]
                    yield piece
            if size is not None and total != size:
                raise ValueError(f"{name}: expected {size} bytes, the stream gave {total}")
            while buffer:
                piece = bytes(buffer[:step])
                del buffer[:step]
                yield piece

        if not await self._resumable(name, key, pieces(), size, replace=replace):
            self._refuse_replace(name)

    async def _resumable(
        self, name: str, key: str, pieces: AsyncIterator[bytes | memoryview], size: int | None, *, replace: bool
    ) -> bool:
        """A resumable upload of ``pieces`` (each a multiple of 256 KiB but the last), one chunk at a time
        (the JSON API has no parallel chunks); the last carries the CRC32C of the whole value for the
        service to check. A chunk that fails on the way is sent again whole (see ``_send_chunk``). Any
        failure cancels the upload. False: ``replace=False`` found an object there."""
        if not replace and await self._metadata(name, key) is not None:
            return False  # as the precondition would say (which fake-gcs-server ignores on resumable uploads)
        params = {"uploadType": "resumable", **({} if replace else {"ifGenerationMatch": "0"})}
        headers = {"X-Upload-Content-Type": "application/octet-stream"}
        if size is not None:
            headers["X-Upload-Content-Length"] = str(size)

        async def start() -> str:
            response = await self._request(
                "POST", f"{self._upload_api}/o", params=params, headers=headers, json_body={"name": key}
            )
            response.release()
            location = urlsplit(response.headers["Location"])
            if self.endpoint is None:
                return location.geturl()
            # an emulator names itself by its own address: reach the session through the endpoint given
            origin = urlsplit(self.endpoint)
            return location._replace(scheme=origin.scheme, netloc=origin.netloc).geturl()

        try:
            session = await self._call(name, start)
        except BackendError as exc:
            if not replace and is_precondition_failure(exc):
                return False
            raise
        crc = Crc32c()
        try:
            offset = 0
            pending: bytes | memoryview | None = None
            async for piece in pieces:
                if pending is not None:
                    await self._send_chunk(name, session, pending, offset, None, None)
                    offset += len(pending)
                pending = piece
                await self._offloader.run(crc.update, piece)
            last = pending if pending is not None else b""
            stored = await self._send_chunk(name, session, last, offset, offset + len(last), crc.b64())
        except BaseException as exc:
            await asyncio.shield(self._cancel_upload(session))
            if isinstance(exc, BackendError) and not replace and is_precondition_failure(exc):
                return False
            raise
        try:
            check_stored(name, "resumable upload", crc.b64(), stored.get("crc32c"))
        except IntegrityError:
            await asyncio.shield(self._drop_damaged(name, key, str(stored.get("generation", ""))))
            raise
        return True

    async def _send_chunk(
        self, name: str, session: str, chunk: bytes | memoryview, offset: int, total: int | None, crc: str | None
    ) -> dict[str, Any]:
        """PUT one chunk at ``offset`` (the last one when ``total`` is given); after a failure the chunk is
        sent again whole (no status query: fake-gcs-server takes one for the end of the upload and stores
        what it holds). The final reply's object metadata is returned."""

        async def once() -> dict[str, Any]:
            sent_from = offset
            piece = memoryview(chunk)
            end = f"{total}" if total is not None else "*"
            span = f"bytes {sent_from}-{sent_from + len(piece) - 1}/{end}" if len(piece) else f"bytes */{end}"
            headers = {"Content-Range": span}
            if crc is not None:
                headers["X-Goog-Hash"] = f"crc32c={crc}"
            headers["Content-Length"] = str(len(piece))
            try:
                async with asyncio.timeout(None) as deadline:
                    response = await self._request("PUT", session, headers=headers, data=self._watched(piece, deadline))
            except TimeoutError as exc:
                raise ConnectionLost(f"{name}: the upload stalled (nothing sent for {self.timeouts.read} s)") from exc
            async with response:
                if response.status == 308:
                    return {}
                stored: dict[str, Any] = await response.json(content_type=None)
                return stored

        return await self._call(name, once)

    async def _watched(self, piece: memoryview, deadline: asyncio.Timeout) -> AsyncIterator[bytes]:
        """The chunk in 1 MiB slices, each of which must leave within the read timeout of the one before:
        aiohttp's timeouts cover the reply, and a server that stops taking the body would hold the request
        on a full send buffer for ever."""
        loop = asyncio.get_running_loop()
        for start in range(0, len(piece), MiB):
            deadline.reschedule(loop.time() + (self.timeouts.read or 60.0))
            yield bytes(piece[start : start + MiB])
        deadline.reschedule(None)

    async def _cancel_upload(self, session: str) -> None:
        """Drop an unfinished resumable upload (GCS answers 499), swallowing errors."""
        assert self._http is not None
        try:
            async with self._http.delete(session, timeout=self._timeout):
                pass
        except (TimeoutError, aiohttp.ClientError):
            pass

    async def _delete(self, name: str) -> None:
        """DELETE the object (a missing one is a 404: ``ObjectNotFound``)."""
        await self._delete_key(self.layout.key(name), name)

    async def _move(self, src: str, dst: str, *, replace: bool) -> None:
        """Rewrite inside the service (``ifGenerationMatch=0`` for ``replace=False``, the source's generation
        pinned), then delete the source at that generation."""
        src_key, dst_key = self.layout.key(src), self.layout.key(dst)
        if not replace and await self._metadata(dst, dst_key) is not None:
            self._refuse_replace(dst)  # also on an emulator that ignores the precondition
        metadata = await self._metadata(src, src_key)
        if metadata is None:
            raise ObjectNotFound(src)
        if src_key == dst_key:
            return
        generation = str(metadata.get("generation", ""))
        params = {"ifSourceGenerationMatch": generation} if generation else {}
        if not replace:
            params["ifGenerationMatch"] = "0"
        try:
            await self._call(
                src,
                lambda: self._client().copy(
                    self.bucket,
                    src_key,
                    self.bucket,
                    new_name=dst_key,
                    params=dict(params),
                    timeout=self._timeout,  # type: ignore[arg-type]
                ),
            )
        except BackendError as exc:
            if not replace and is_precondition_failure(exc) and await self._metadata(dst, dst_key) is not None:
                self._refuse_replace(dst)
            raise
        delete_params = {"ifGenerationMatch": generation} if generation else {}
        await self._call(
            src,
            lambda: self._client().delete(self.bucket, src_key, params=dict(delete_params), timeout=self._timeout),  # type: ignore[arg-type]
        )

    # presigned URLs --------------------------------------------------------------------------------------

    async def _url_for(self, name: str, *, expires: float, method: str) -> str:
        """A V4 signed URL (at most 7 days), signed here with the service account's key."""
        seconds = math.ceil(expires)
        if seconds > MAX_SECONDS:
            raise ValueError(f"gs signed URLs last at most {MAX_SECONDS} s (7 days), not {expires}")
        service, source = self._service, self._source
        if not service.get("private_key"):
            if self.credentials is None and not os.environ.get("GOOGLE_APPLICATION_CREDENTIALS"):
                raise NotSupported(
                    "gs url_for needs a service account key to sign with: give ?credentials=KEY.json or set "
                    "GOOGLE_APPLICATION_CREDENTIALS"
                )
            service, source = await self._offloader.run(_read_credentials, self.credentials)
        signer = Signer.from_service_account(service, self.endpoint, source=source)
        public = urlsplit(signer.endpoint)
        if public.scheme not in ("http", "https"):
            raise NotSupported(f"gs url_for: cannot sign for the endpoint {signer.endpoint!r}")
        return signer.sign(method, self.bucket, self.layout.key(name), seconds)
