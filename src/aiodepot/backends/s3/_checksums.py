"""The checksums every upload carries (SHA-256, or Content-MD5 on B2), and the ETag check of what was stored."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Mapping
from typing import Any, Literal

__all__ = ["OFFLOAD_AT", "Checksum", "checksum_args", "md5_hex", "prepare", "read_part", "stored_other_bytes"]

OFFLOAD_AT = 1024 * 1024
"""Hash and copy smaller values on the event loop: a thread hop costs more."""

Checksum = Literal["sha256", "md5"]
"""The upload checksum: ``x-amz-checksum-sha256`` or ``Content-MD5``."""


def checksum_args(data: bytes | memoryview, checksum: Checksum) -> dict[str, str]:
    """The request parameters that make the service check ``data`` (for PutObject and UploadPart)."""
    if checksum == "md5":
        return {"ContentMD5": base64.b64encode(hashlib.md5(data).digest()).decode()}
    return {"ChecksumAlgorithm": "SHA256", "ChecksumSHA256": base64.b64encode(hashlib.sha256(data).digest()).decode()}


def prepare(data: bytes | memoryview, checksum: Checksum) -> tuple[bytes, dict[str, str]]:
    """A request body (botocore takes no memoryview) and its checksum parameters."""
    return bytes(data), checksum_args(data, checksum)


def md5_hex(data: bytes) -> str:
    """The MD5 of ``data`` in hex, as an ETag has it."""
    return hashlib.md5(data).hexdigest()


def stored_other_bytes(response: Mapping[str, Any], md5_hex: str) -> bool:
    """True when the ETag of a PUT or part says the service stored other bytes than those sent.

    The ETag is the MD5 of the stored bytes unless the object is encrypted with SSE-KMS or SSE-C; then (and
    for anything that does not look like an MD5) it says nothing.
    """
    if response.get("SSECustomerAlgorithm") or response.get("ServerSideEncryption", "AES256") != "AES256":
        return False
    etag = str(response.get("ETag", "")).strip('"').lower()
    return len(etag) == 32 and all(c in "0123456789abcdef" for c in etag) and etag != md5_hex


def read_part(fd: int, offset: int, size: int, checksum: Checksum) -> tuple[bytes, dict[str, str]]:
    """Read ``size`` bytes at ``offset`` of a local file and checksum them (one thread job)."""
    data = os.pread(fd, size, offset)
    while len(data) < size:
        more = os.pread(fd, size - len(data), offset + len(data))
        if not more:
            raise ValueError(f"the file ended at {offset + len(data)} bytes, before the {offset + size} expected")
        data += more
    return data, checksum_args(data, checksum)
