"""The checksums every upload carries (SHA-256, or Content-MD5 on B2), and the ETag check of what was stored.

Each upload is hashed once: the SHA-256 sent as ``x-amz-checksum-sha256`` is also the payload hash that
SigV4 signs (see ``_direct``), and the MD5 sent as ``Content-MD5`` is also what the ETag is compared with.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Mapping
from typing import Any, Literal

__all__ = [
    "OFFLOAD_AT",
    "Checksum",
    "checksum_args",
    "md5_hex",
    "prepare",
    "read_part",
    "sent_md5_hex",
    "stored_other_bytes",
]

OFFLOAD_AT = 1024 * 1024
"""Hash and copy smaller values on the event loop: a thread hop costs more."""

Checksum = Literal["sha256", "md5"]
"""The upload checksum: ``x-amz-checksum-sha256`` or ``Content-MD5``."""


def checksum_args(data: bytes | memoryview, checksum: Checksum) -> dict[str, str]:
    """The request parameters that make the service check ``data`` (for PutObject and UploadPart)."""
    if checksum == "md5":
        return {"ContentMD5": base64.b64encode(hashlib.md5(data).digest()).decode()}
    return {"ChecksumAlgorithm": "SHA256", "ChecksumSHA256": base64.b64encode(hashlib.sha256(data).digest()).decode()}


def prepare(data: bytes | memoryview, checksum: Checksum) -> tuple[bytes | memoryview, dict[str, str]]:
    """A request body and its checksum parameters. The body is ``data`` itself, not a copy: the direct
    requests send any buffer, and the backend copies a memoryview to bytes only for botocore's pipeline."""
    return data, checksum_args(data, checksum)


def md5_hex(data: bytes | memoryview) -> str:
    """The MD5 of ``data`` in hex, as an ETag has it."""
    return hashlib.md5(data).hexdigest()


def sent_md5_hex(checksum: Mapping[str, str]) -> str | None:
    """The MD5 (hex) of a body whose checksum parameters carry its ``Content-MD5``, else None."""
    md5 = checksum.get("ContentMD5")
    return None if md5 is None else base64.b64decode(md5).hex()


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
