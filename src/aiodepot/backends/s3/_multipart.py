"""S3's uploads in parts (CreateMultipartUpload, UploadPart[Copy], Complete/AbortMultipartUpload)."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from ...errors import BackendError, StoreError
from .._objectstore import MultipartUpload, PartRules
from ._errors import is_precondition_failure

__all__ = [
    "MAX_OBJECT_SIZE",
    "MAX_PARTS",
    "MAX_PART_SIZE",
    "MIN_PART_SIZE",
    "PARTS",
    "Call",
    "MiB",
    "S3Multipart",
    "Verified",
]

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
PARTS = PartRules(MIN_PART_SIZE, MAX_PART_SIZE, MAX_PARTS, MAX_OBJECT_SIZE, too_big="S3 objects are at most 5 TiB")
"""S3's limits on multipart uploads."""


class Call(Protocol):
    """One request to the bucket through the backend's error boundary: ``await call(operation, name, **params)``."""

    def __call__(self, operation: str, name: str, /, **params: Any) -> Awaitable[Any]: ...


Verified = Callable[[str, str, bytes | memoryview, Mapping[str, str], Callable[[], Awaitable[Any]]], Awaitable[Any]]
"""``verified(name, what, body, checksum, send)``: send a body and check the ETag of what the service stored."""


class S3Multipart(MultipartUpload):
    """One multipart upload (or multipart copy) of ``key``: parts are sent in any order, then completed."""

    def __init__(self, call: Call, verified: Verified, key: str, name: str, upload_id: str) -> None:
        self.call = call
        self.verified = verified
        self.key = key
        self.name = name
        self.upload_id = upload_id
        self.parts: dict[int, dict[str, str]] = {}

    @classmethod
    async def begin(cls, call: Call, verified: Verified, key: str, name: str, *, sha256: bool) -> S3Multipart:
        """Start an upload of ``key`` (its parts with SHA-256 checksums if ``sha256``)."""
        extra = {"ChecksumAlgorithm": "SHA256"} if sha256 else {}
        response = await call("create_multipart_upload", name, Key=key, **extra)
        return cls(call, verified, key, name, response["UploadId"])

    async def send(self, number: int, body: bytes | memoryview, checksum: Mapping[str, str]) -> None:
        """Upload part ``number`` (1-based); the service checks it against ``checksum``."""

        def upload_part() -> Awaitable[Any]:
            return self.call(
                "upload_part",
                self.name,
                Key=self.key,
                UploadId=self.upload_id,
                PartNumber=number,
                Body=body,
                **checksum,
            )

        response = await self.verified(self.name, f"part {number}", body, checksum, upload_part)
        part = {"PartNumber": number, "ETag": response["ETag"]}
        if "ChecksumSHA256" in checksum:
            part["ChecksumSHA256"] = checksum["ChecksumSHA256"]
        self.parts[number] = part

    async def copy(self, number: int, bucket: str, source: str, start: int, size: int) -> None:
        """Make part ``number`` from a range of the object ``source``, inside the service."""
        response = await self.call(
            "upload_part_copy",
            self.name,
            Key=self.key,
            UploadId=self.upload_id,
            PartNumber=number,
            CopySource={"Bucket": bucket, "Key": source},
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
            await self.call(
                "complete_multipart_upload",
                self.name,
                Key=self.key,
                UploadId=self.upload_id,
                MultipartUpload={"Parts": parts},
                **extra,
            )
        except BackendError as exc:
            if if_none_match and is_precondition_failure(exc):
                return False
            raise
        return True

    async def abort(self) -> None:
        """Drop the upload and its parts (errors are swallowed: there is an error on its way already)."""
        with contextlib.suppress(StoreError):
            await self.call("abort_multipart_upload", self.name, Key=self.key, UploadId=self.upload_id)
