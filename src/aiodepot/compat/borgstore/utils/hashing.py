"""borgstore's hashing helpers: every `hashlib` algorithm plus ``"blake3"``, with borgstore's error wording."""

from __future__ import annotations

from typing import Any, BinaryIO

from .... import hashing as _hashing

__all__ = ["BLAKE3", "blake3", "file_digest", "new"]

BLAKE3 = _hashing.BLAKE3

blake3: Any
try:
    from blake3 import blake3
except ImportError:  # pragma: no cover - blake3 is a dependency of aiodepot
    blake3 = None


def new(algorithm: str, data: bytes = b"") -> Any:
    """Like `hashlib.new`, plus ``"blake3"``; an unknown algorithm raises ``ValueError``."""
    try:
        if not isinstance(algorithm, str):
            raise TypeError(algorithm)
        return _hashing.new(algorithm, data)
    except (ValueError, TypeError):
        raise ValueError(f"Unsupported hash algorithm: {algorithm}") from None


def file_digest(fileobj: BinaryIO, algorithm: str) -> Any:
    """Like `hashlib.file_digest`, plus ``"blake3"``: returns the hash object for the rest of ``fileobj``."""
    hasher = new(algorithm)
    while chunk := fileobj.read(1024 * 1024):
        hasher.update(chunk)
    return hasher
