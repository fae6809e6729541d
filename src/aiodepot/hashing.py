"""Hash algorithms by name: everything `hashlib` offers, plus ``"blake3"``."""

from __future__ import annotations

import hashlib
from typing import Any, BinaryIO, Protocol

__all__ = ["BLAKE3", "Hasher", "check_algorithm", "file_digest", "new"]

BLAKE3 = "blake3"


class Hasher(Protocol):
    """The part of a hash object aiodepot uses."""

    def update(self, data: Any, /) -> object:
        """Feed more data."""

    def hexdigest(self) -> str:
        """Return the digest as lowercase hex."""


def _factory(algorithm: str) -> Any:
    if algorithm.startswith("shake_"):
        raise ValueError(f"variable-length hash {algorithm!r} is not supported")
    if algorithm == BLAKE3:
        try:
            from blake3 import blake3
        except ImportError:  # pragma: no cover - blake3 is a dependency
            raise ValueError("hash algorithm 'blake3' needs the blake3 package") from None
        return blake3
    if algorithm not in hashlib.algorithms_available:
        raise ValueError(f"unsupported hash algorithm: {algorithm!r}")
    return lambda data=b"": hashlib.new(algorithm, data)


def new(algorithm: str, data: bytes | memoryview = b"") -> Hasher:
    """Like `hashlib.new`, plus ``"blake3"``; an unknown name raises ``ValueError``."""
    hasher: Hasher = _factory(algorithm)(data)
    return hasher


def check_algorithm(algorithm: str) -> None:
    """Raise ``ValueError`` if ``algorithm`` is not supported, before any data is read."""
    new(algorithm)


def file_digest(fileobj: BinaryIO, algorithm: str) -> str:
    """Hash an open binary file from its current position to the end; return the hex digest."""
    check_algorithm(algorithm)
    digest: Hasher = hashlib.file_digest(fileobj, lambda: _factory(algorithm)())  # type: ignore[arg-type]
    return digest.hexdigest()
