"""CRC32C, the checksum GCS stores with every object and checks on upload when it is sent."""

from __future__ import annotations

import base64

import google_crc32c

from ...errors import IntegrityError

__all__ = ["OFFLOAD_AT", "Crc32c", "crc32c_b64", "stored_crc32c"]

OFFLOAD_AT = 1024 * 1024
"""Values at least this big are checksummed on a thread (below, inline costs less than the hop)."""


def crc32c_b64(data: bytes | memoryview) -> str:
    """The base64 of the big-endian CRC32C of ``data`` (GCS's form, as in ``x-goog-hash: crc32c=…``)."""
    crc = int(google_crc32c.value(bytes(data) if isinstance(data, memoryview) else data))
    return base64.b64encode(crc.to_bytes(4, "big")).decode()


class Crc32c:
    """A running CRC32C over the pieces of a value, for uploads in chunks."""

    def __init__(self) -> None:
        self._crc = 0

    def update(self, data: bytes | memoryview) -> None:
        """Add ``data``."""
        self._crc = int(google_crc32c.extend(self._crc, bytes(data) if isinstance(data, memoryview) else data))

    def b64(self) -> str:
        """The checksum so far, base64 of its big-endian bytes."""
        return base64.b64encode(self._crc.to_bytes(4, "big")).decode()


def stored_crc32c(x_goog_hash: str | None) -> str | None:
    """The ``crc32c=`` value of an ``x-goog-hash`` header (None if there is none)."""
    for part in (x_goog_hash or "").split(","):
        algorithm, _, value = part.strip().partition("=")
        if algorithm == "crc32c":
            return value
    return None


def check_stored(name: str, what: str, sent: str, stored: str | None) -> None:
    """Raise ``IntegrityError`` if the service reports another CRC32C than the one of the bytes sent."""
    if stored is not None and stored != sent:
        raise IntegrityError(
            f"{name}: {what}: the service stored other bytes than were sent (CRC32C {stored}, sent {sent})"
        )
