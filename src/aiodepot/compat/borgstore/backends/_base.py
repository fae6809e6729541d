"""borgstore's backend base: ``ItemInfo``, value and name validation, the ``BackendBase`` ABC, and
[`AiodepotBackend`][aiodepot.compat.borgstore.backends._base.AiodepotBackend], the sync wrapper that every
compat backend is: each method is one call of the wrapped async aiodepot backend through the Portal.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import namedtuple
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any, Literal

from ....backends.base import Backend
from ....items import validate_sources as _validate_sources
from .._portal import iterate, run
from ..constants import HID_SUFFIX, MAX_NAME_LENGTH, TMP_SUFFIX
from ..utils import hashing
from ..utils.nesting import nest
from .errors import BackendMustBeOpen, ReadRangeError

__all__ = [
    "AiodepotBackend",
    "BackendBase",
    "ItemInfo",
    "StoreValue",
    "to_bytes",
    "validate_name",
    "validate_sources",
    "validate_value",
]

ItemInfo = namedtuple("ItemInfo", "name exists size directory atime mtime", defaults=(0, 0))
"""What borgstore reports about an item: ``name exists size directory atime mtime``."""

StoreValue = bytes | memoryview
"""What ``store`` accepts: bytes or a (C-contiguous) memoryview."""


def validate_value(value: Any) -> Any:
    """Return ``value`` with a memoryview cast to bytes, so ``len()`` counts bytes; refuse non-contiguous views."""
    if isinstance(value, memoryview):
        if not value.c_contiguous:
            raise ValueError("value must be a C-contiguous memoryview")
        return value.cast("B") if value.format != "B" or value.ndim != 1 else value
    return value


def to_bytes(value: Any) -> bytes:
    """``value`` as bytes (copies unless it already is bytes)."""
    return value if isinstance(value, bytes) else bytes(value)


def validate_sources(sources: Iterable[Any]) -> list[tuple[str, int, int]]:
    """Check ``(name, offset, size)`` triples for ``gather``/``defrag``; return them as a new list."""
    return _validate_sources(sources)


def validate_name(name: Any) -> None:
    """Check a backend name as borgstore does (``TypeError``/``ValueError`` naming the problem)."""
    if not isinstance(name, str):
        raise TypeError(f"name must be str, but got: {type(name)}")
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"name is too long (max: {MAX_NAME_LENGTH}): {name}")
    if not name.isascii():
        raise ValueError(f"name must encode to plain ascii, but failed with: {name}")
    if name.startswith("/") or name.endswith("/") or ".." in name:
        raise ValueError(f"name must be relative and not contain '..': {name}")
    if "\\" in name or " " in name:
        raise ValueError(f"name must not contain backslashes or blanks: {name}")
    if name != name.lower():
        raise ValueError(f"name must be lowercase, but got: {name}")
    for suffix in (TMP_SUFFIX, HID_SUFFIX):
        if name.endswith(suffix):
            raise ValueError(f"name must not end with {suffix}, but got: {name}")


def to_item_info(info: Any) -> Any:
    """Any ItemInfo-shaped tuple (aiodepot's, borgstore's) as the borgstore ``ItemInfo`` namedtuple."""
    return info if type(info) is ItemInfo else ItemInfo(*info)


class BackendBase(ABC):
    """borgstore's backend interface: synchronous, names already nested by the Store.

    ``gather``, ``defrag``, ``hash`` and ``quota`` have defaults built on ``load``/``store``.
    """

    precreate_dirs: bool = False
    """Ask the Store to create all nesting directories at ``create()`` time."""

    @abstractmethod
    def create(self) -> None:
        """Initialize the storage."""

    @abstractmethod
    def destroy(self) -> None:
        """Remove the storage and everything in it."""

    def __enter__(self) -> Any:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Literal[False]:
        self.close()
        return False

    @abstractmethod
    def open(self) -> None:
        """Start using the storage."""

    @abstractmethod
    def close(self) -> None:
        """Stop using the storage."""

    @abstractmethod
    def mkdir(self, name: str) -> None:
        """Create directory ``name``."""

    @abstractmethod
    def rmdir(self, name: str) -> None:
        """Remove the empty directory ``name``."""

    @abstractmethod
    def info(self, name: str) -> Any:
        """Return the ``ItemInfo`` of ``name``."""

    @abstractmethod
    def load(self, name: str, *, size: int | None = None, offset: int = 0) -> bytes:
        """Return ``size`` bytes (all if None) from ``offset`` (negative: from the end)."""

    @abstractmethod
    def store(self, name: str, value: Any) -> None:
        """Store ``value`` under ``name``."""

    @abstractmethod
    def delete(self, name: str) -> None:
        """Delete ``name``."""

    @abstractmethod
    def move(self, curr_name: str, new_name: str) -> None:
        """Rename ``curr_name`` to ``new_name``, replacing it."""

    @abstractmethod
    def list(self, name: str) -> Iterator[Any]:
        """Yield the ``ItemInfo`` of each entry of directory ``name``, sorted, without ``.tmp`` ones."""

    def gather(self, sources: Iterable[Any]) -> bytes:
        """Return the ``(name, offset, size)`` ranges concatenated; a short range raises ``ReadRangeError``."""
        parts = []
        for name, offset, size in validate_sources(sources):
            if size == 0:
                continue
            data = self.load(name, offset=offset, size=size)
            if len(data) != size:
                raise ReadRangeError(
                    f"Read range error from {name} (requested {size} bytes at offset {offset}, got {len(data)})"
                )
            parts.append(data)
        return b"".join(parts)

    def defrag(
        self,
        sources: Iterable[Any],
        *,
        target: str | None = None,
        algorithm: str | None = None,
        namespace: str | None = None,
        levels: int = 0,
    ) -> str:
        """Store the gathered ranges as a new item (named ``target`` or by content hash); return its name."""
        data = self.gather(sources)
        if target is None:
            if algorithm is None:
                raise ValueError("Missing target or algorithm: either target or algorithm must be given for defrag")
            target = hashing.new(algorithm, data).hexdigest()
            if namespace:
                target = namespace.rstrip("/") + "/" + target
            target = nest(target, levels)
        self.store(target, data)
        return target

    def hash(self, name: str, algorithm: str = "sha256") -> str:
        """Return the hex digest of the value of ``name``."""
        hasher = hashing.new(algorithm)
        hasher.update(self.load(name))
        digest: str = hasher.hexdigest()
        return digest

    def quota(self) -> dict[str, int]:
        """Return ``{"limit": bytes, "usage": bytes}`` (-1: not tracked)."""
        return {"limit": -1, "usage": -1}


class AiodepotBackend(BackendBase):
    """A borgstore backend that runs an aiodepot async backend: each method is one Portal call.

    A compat [`Store`][aiodepot.compat.borgstore.store.Store] given such a backend talks to
    ``async_backend`` directly (no thread hop), unless a method was replaced on the instance or in a subclass.

    Args:
        async_backend: the aiodepot backend to run.
    """

    def __init__(self, async_backend: Backend) -> None:
        self.async_backend = async_backend

    def __repr__(self) -> str:
        return f"<{type(self).__name__} on {self.async_backend!r}>"

    @property
    def opened(self) -> bool:
        """True between ``open()`` and ``close()``."""
        return self.async_backend.opened

    def create(self) -> None:
        """Initialize the storage (an existing non-empty one raises ``BackendAlreadyExists``)."""
        run(self.async_backend.create)

    def destroy(self) -> None:
        """Remove the storage (a missing one raises ``BackendDoesNotExist``)."""
        run(self.async_backend.destroy)

    def open(self) -> None:
        """Start using the storage."""
        run(self.async_backend.open)

    def close(self) -> None:
        """Stop using the storage; as in borgstore, closing a closed backend raises ``BackendMustBeOpen``
        (aiodepot's own backends make it a no-op)."""
        if not self.async_backend.opened:
            raise BackendMustBeOpen("Backend must be open")
        run(self.async_backend.close)

    def mkdir(self, name: str) -> None:
        """Create directory ``name`` (and its parents)."""
        validate_name(name)
        run(self.async_backend.mkdir, name)

    def rmdir(self, name: str) -> None:
        """Remove the empty directory ``name``."""
        validate_name(name)
        run(self.async_backend.rmdir, name)

    def info(self, name: str) -> Any:
        """Return the ``ItemInfo`` of ``name`` (``exists=False`` if missing)."""
        validate_name(name)
        return to_item_info(run(self.async_backend.info, name))

    def load(self, name: str, *, size: int | None = None, offset: int = 0) -> bytes:
        """Return ``size`` bytes (all if None) from ``offset`` (negative: from the end)."""
        validate_name(name)
        return run(self.async_backend.load, name, offset=offset, size=size)

    def store(self, name: str, value: Any) -> None:
        """Store ``value`` under ``name``, atomically."""
        validate_name(name)
        run(self.async_backend.store, name, validate_value(value))

    def delete(self, name: str) -> None:
        """Delete ``name``."""
        validate_name(name)
        run(self.async_backend.delete, name)

    def move(self, curr_name: str, new_name: str) -> None:
        """Rename ``curr_name`` to ``new_name``, replacing it."""
        validate_name(curr_name)
        validate_name(new_name)
        run(self.async_backend.move, curr_name, new_name)

    def list(self, name: str) -> Iterator[Any]:
        """Yield the entries of directory ``name`` as ``ItemInfo``, sorted (a generator)."""
        for info in iterate(lambda: self.async_backend.list(name)):
            yield to_item_info(info)

    def gather(self, sources: Iterable[Any]) -> bytes:
        """Return the ranges concatenated (one backend call; a short range raises ``ReadRangeError``)."""
        return run(self.async_backend.gather, validate_sources(sources))

    def defrag(
        self,
        sources: Iterable[Any],
        *,
        target: str | None = None,
        algorithm: str | None = None,
        namespace: str | None = None,
        levels: int = 0,
    ) -> str:
        """See [`BackendBase.defrag`][aiodepot.compat.borgstore.backends._base.BackendBase.defrag]."""
        if algorithm is not None:
            hashing.new(algorithm)  # borgstore's error for an unknown algorithm, before anything is read
        elif target is None:  # the wording of borgstore's local backends and of its REST server
            raise ValueError("Missing target or algorithm: either target or algorithm must be given for defrag")
        return run(
            self.async_backend.defrag,
            validate_sources(sources),
            target=target,
            algorithm=algorithm,
            namespace=namespace,
            levels=levels,
        )

    def hash(self, name: str, algorithm: str = "sha256") -> str:
        """Return the hex digest of the value of ``name`` (computed where the backend can)."""
        hashing.new(algorithm)
        return run(self.async_backend.hash, name, algorithm)

    def quota(self) -> dict[str, int]:
        """Return ``{"limit": bytes, "usage": bytes}`` (-1: not tracked)."""
        return run(self.async_backend.quota)
