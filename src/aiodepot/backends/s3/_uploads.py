"""Uploads to S3: one checksummed PUT, or a multipart upload from memory, a local file, a stream or a copy."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterable, Awaitable, Callable, Mapping
from typing import Any, Protocol

from ..._threads import Offloader
from ...errors import BackendError, IntegrityError
from ...transfer import run_bounded
from .._objectstore import Span, send_stream
from ..base import Capabilities
from ._checksums import (
    OFFLOAD_AT,
    Checksum,
    checksum_args,
    md5_hex,
    prepare,
    read_part,
    sent_md5_hex,
    stored_other_bytes,
)
from ._errors import is_precondition_failure
from ._multipart import MAX_PARTS, PARTS, Call, S3Multipart

__all__ = ["UploadSettings", "Uploads"]

logger = logging.getLogger("aiodepot.backends.s3")


class UploadSettings(Protocol):
    """What uploads read from the backend each time (so a changed setting counts at once)."""

    @property
    def bucket(self) -> str:
        """The bucket."""
        ...

    @property
    def checksum(self) -> Checksum:
        """The checksum every PUT and part carries."""
        ...

    @property
    def verify_etag(self) -> bool | None:
        """Whether the ETag of each PUT and part is compared with the MD5 of the bytes sent (None: where the
        upload carries that MD5 as ``Content-MD5`` already)."""
        ...

    @property
    def capabilities(self) -> Capabilities:
        """Its ``part_size`` is the preferred part size."""
        ...

    @property
    def multipart_threshold(self) -> int:
        """Bigger values go up in parts."""
        ...

    @property
    def multipart_concurrency(self) -> int:
        """Parts of one upload in flight."""
        ...

    @property
    def max_concurrency(self) -> int:
        """Part copies of one move in flight."""
        ...


class Uploads:
    """The uploads of one S3 backend, every request through its error boundary ``call``.

    Args:
        settings: the backend (read on each upload).
        call: one request to the bucket, errors translated.
        offloader: the threads for hashing and reading files.
    """

    def __init__(self, settings: UploadSettings, call: Call, offloader: Offloader) -> None:
        self.settings = settings
        self.call = call
        self.offloader = offloader

    def part_size_for(self, size: int) -> int:
        """The part size for a ``size``-byte upload: the configured one, grown to need at most 10,000 parts."""
        return PARTS.part_size(size, self.settings.capabilities.part_size)

    async def begin(self, key: str, name: str) -> S3Multipart:
        """Start a multipart upload of ``key``."""
        return await S3Multipart.begin(self.call, self.verified, key, name, sha256=self.settings.checksum == "sha256")

    async def put(self, name: str, key: str, data: bytes | memoryview, *, if_none_match: bool = False) -> bool:
        """Store ``data`` as ``key``: one PUT, or parts in parallel above ``multipart_threshold``.

        Returns False (storing nothing) if ``if_none_match`` found an object there already.
        """
        checksum = self.settings.checksum
        if len(data) > self.settings.multipart_threshold:
            view = memoryview(data)
            part_size = self.part_size_for(len(data))

            async def read(start: int, length: int) -> tuple[bytes | memoryview, dict[str, str]]:
                return await self.offloader.run(prepare, view[start : start + length], checksum)

            async def send_all(upload: S3Multipart) -> None:
                spans = PARTS.spans(len(data), part_size)
                await upload.send_spans(spans, part_size, read, max_concurrency=self.settings.multipart_concurrency)

            upload = await self.begin(key, name)
            return await upload.run(send_all, if_none_match=if_none_match)
        if len(data) < OFFLOAD_AT:
            body, checksum_args_ = prepare(data, checksum)
        else:
            body, checksum_args_ = await self.offloader.run(prepare, data, checksum)
        return await self.put_object(name, key, body, checksum_args_, if_none_match=if_none_match)

    async def put_object(
        self, name: str, key: str, body: bytes | memoryview, checksum: dict[str, str], *, if_none_match: bool = False
    ) -> bool:
        """One PUT of ``body`` with its checksum parameters (False: ``if_none_match`` found an object)."""
        extra = {"IfNoneMatch": "*"} if if_none_match else {}

        def put() -> Awaitable[Any]:
            return self.call("put_object", name, Key=key, Body=body, **checksum, **extra)

        try:
            await self.verified(name, "PUT", body, checksum, put)
        except BackendError as exc:
            if if_none_match and is_precondition_failure(exc):
                return False
            raise
        return True

    async def verified(
        self,
        name: str,
        what: str,
        body: bytes | memoryview,
        checksum: Mapping[str, str],
        send: Callable[[], Awaitable[Any]],
    ) -> Any:
        """``send()`` a PUT or part of ``body`` with its ``checksum`` parameters; with ``verify_etag``, check
        that the service stored those bytes (its ETag), and send them once more if it did not. Returns the
        service's response.

        ``verify_etag=None`` checks where the upload carries the MD5 already (``Content-MD5``): the check
        costs no hashing there. With a SHA-256 checksum, which the service verifies, it would cost an MD5
        of every byte; ``verify_etag=True`` pays it, for a service that does not verify checksums."""
        sent = sent_md5_hex(checksum)
        check = self.settings.verify_etag
        if not (check or (check is None and sent is not None)):
            return await send()
        # the MD5 sent, else: a small body is hashed at once (a task costs more than its MD5), a big one
        # while the bytes travel
        known = sent if sent is not None else md5_hex(body) if len(body) < OFFLOAD_AT else None
        md5 = asyncio.ensure_future(self._md5(body)) if known is None else None
        try:
            for attempt in (1, 2):
                response = await send()
                expected = await md5 if md5 is not None else known or ""
                if not stored_other_bytes(response, expected):
                    return response
                if attempt == 1:
                    logger.warning("s3 %s %s: the service stored other bytes than were sent; sending again", name, what)
            raise IntegrityError(
                f"{name}: {what}: the service stored other bytes than were sent, twice (ETag {response.get('ETag')} "
                f"is not the MD5 {expected} of the data; verify_etag=False if this service's ETags are not MD5s)"
            )
        finally:
            if md5 is not None:
                md5.cancel()

    async def _md5(self, body: bytes | memoryview) -> str:
        return md5_hex(body) if len(body) < OFFLOAD_AT else await self.offloader.run(md5_hex, body)

    async def copy_in_parts(self, name: str, src_key: str, dst_key: str, size: int) -> None:
        """Copy the object ``src_key`` to ``dst_key`` part by part, inside the service."""
        part_size = self.part_size_for(size)
        bucket = self.settings.bucket

        async def copy_all(upload: S3Multipart) -> None:
            async def copy(span: Span) -> None:
                start, length = span
                await upload.copy(start // part_size + 1, bucket, src_key, start, length)

            spans = PARTS.spans(size, part_size)
            await run_bounded(spans, copy, max_concurrency=self.settings.max_concurrency)

        upload = await self.begin(dst_key, name)
        await upload.run(copy_all)

    async def file(self, name: str, key: str, path: str, size: int, *, if_none_match: bool = False) -> bool:
        """Upload a local file: one PUT, or a multipart upload whose parts are read and sent in parallel.

        Returns False (storing nothing) if ``if_none_match`` found an object there already."""
        checksum = self.settings.checksum
        fd = await self.offloader.run(os.open, path, os.O_RDONLY | os.O_CLOEXEC)

        async def read(start: int, length: int) -> tuple[bytes, dict[str, str]]:
            return await self.offloader.run(read_part, fd, start, length, checksum)

        async def check_end() -> None:
            if await self.offloader.run(os.pread, fd, 1, size):
                raise ValueError(f"{path} is longer than the {size} bytes expected")

        try:
            if size <= self.settings.multipart_threshold:
                body, checksum_args_ = await read(0, size)
                await check_end()
                return await self.put_object(name, key, body, checksum_args_, if_none_match=if_none_match)
            part_size = self.part_size_for(size)

            async def send_all(upload: S3Multipart) -> None:
                spans = PARTS.spans(size, part_size)
                await upload.send_spans(spans, part_size, read, max_concurrency=self.settings.multipart_concurrency)
                await check_end()

            upload = await self.begin(key, name)
            return await upload.run(send_all, if_none_match=if_none_match)
        finally:
            await self.offloader.run(os.close, fd)

    async def stream(
        self, name: str, key: str, chunks: AsyncIterable[bytes], size: int | None, *, if_none_match: bool = False
    ) -> bool:
        """Upload a stream: one PUT if it ends within ``multipart_threshold``, else parts sent as they fill.

        Returns False (storing nothing) if ``if_none_match`` found an object there already."""
        part_size = self.part_size_for(size) if size is not None else self.part_size_for(0)
        buffer = bytearray()
        stream = aiter(chunks)
        async for chunk in stream:  # fill the buffer until the value is too big for one PUT
            buffer += chunk
            if size is not None and len(buffer) > size:
                raise ValueError(f"{name}: the stream gave more than the expected {size} bytes")
            if len(buffer) > self.settings.multipart_threshold:
                break
        else:
            if size is not None and len(buffer) != size:
                raise ValueError(f"{name}: expected {size} bytes, the stream gave {len(buffer)}")
            return await self.put(name, key, bytes(buffer), if_none_match=if_none_match)
        checksum = self.settings.checksum

        async def part_checksum(part: bytes) -> dict[str, str]:
            return await self.offloader.run(checksum_args, part, checksum)

        async def send_all(upload: S3Multipart) -> None:
            await send_stream(
                upload,
                buffer,
                stream,
                name=name,
                size=size,
                part_size=part_size,
                max_parts=MAX_PARTS,
                max_concurrency=self.settings.multipart_concurrency,
                checksum=part_checksum,
            )

        upload = await self.begin(key, name)
        return await upload.run(send_all, if_none_match=if_none_match)
