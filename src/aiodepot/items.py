"""Small immutable value types shared by the Store and the backends."""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable
from typing import NamedTuple, Protocol, TypeAlias, runtime_checkable

__all__ = [
    "BinaryReader",
    "ItemInfo",
    "Source",
    "StoreInput",
    "StoreValue",
    "validate_sources",
    "validate_value",
]

StoreValue: TypeAlias = bytes | bytearray | memoryview
"""What ``store`` accepts: bytes, or any C-contiguous buffer (not kept after the call returns)."""


@runtime_checkable
class BinaryReader(Protocol):
    """A binary file object opened for reading (anything with ``read(size) -> bytes``)."""

    def read(self, size: int = -1, /) -> bytes:
        """Read at most ``size`` bytes; ``b""`` at the end."""
        ...


StoreInput: TypeAlias = StoreValue | AsyncIterable[bytes] | BinaryReader
"""What ``store`` accepts: a value, an async iterable of byte chunks, or a binary file object (streamed)."""

Source: TypeAlias = tuple[str, int, int]
"""A byte range of an item for ``gather``/``defrag``: ``(name, offset, size)``."""


class ItemInfo(NamedTuple):
    """What is known about one item (or directory) of a store.

    ``atime``/``mtime`` are UNIX timestamps stamped by the storage side, or 0 where unknown.
    """

    name: str
    exists: bool
    size: int
    directory: bool
    atime: float = 0.0
    mtime: float = 0.0

    @classmethod
    def for_file(cls, name: str, size: int, *, atime: float = 0.0, mtime: float = 0.0) -> ItemInfo:
        """An existing item of ``size`` bytes."""
        return cls(name, True, size, False, atime, mtime)

    @classmethod
    def for_directory(cls, name: str, *, atime: float = 0.0, mtime: float = 0.0) -> ItemInfo:
        """An existing directory (its size is 0)."""
        return cls(name, True, 0, True, atime, mtime)

    @classmethod
    def missing(cls, name: str) -> ItemInfo:
        """Nothing is stored under ``name``."""
        return cls(name, False, 0, False)

    def with_name(self, name: str) -> ItemInfo:
        """Return a copy under another name."""
        return self._replace(name=name)


def validate_value(value: object) -> bytes | memoryview:
    """Normalize a value given to ``store`` so that ``len()`` counts bytes.

    bytes stay as they are; other buffers become a 1-D byte ``memoryview`` (no copy). A buffer that is
    not C-contiguous raises ``ValueError``; anything that is not a buffer raises ``TypeError``.
    """
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        raise TypeError("value must be bytes-like, not str (encode it first)")
    try:
        view = memoryview(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"value must be bytes or a buffer, not {type(value).__name__}") from None
    if not view.c_contiguous:
        raise ValueError("value must be a C-contiguous buffer")
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


def validate_sources(sources: Iterable[object]) -> list[Source]:
    """Check ``(name, offset, size)`` triples for ``gather``/``defrag`` and return them as a list.

    ``offset`` may be negative (counted from the end of the item); ``size`` is the exact number of
    bytes wanted. Lists (as they come from JSON) are accepted as well as tuples.
    """
    result: list[Source] = []
    for source in sources:
        name: object
        offset: object
        size: object
        try:
            name, offset, size = source  # type: ignore[misc]
        except (TypeError, ValueError):
            raise ValueError(f"a source must be a (name, offset, size) triple, got {source!r}") from None
        if not isinstance(name, str):
            raise ValueError(f"source name must be a str, got {name!r}")
        if not isinstance(offset, int) or isinstance(offset, bool):
            raise ValueError(f"source offset must be an int, got {offset!r}")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError(f"source size must be an int >= 0, got {size!r}")
        result.append((name, offset, size))
    return result
