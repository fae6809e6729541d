"""The backend contract: what every storage backend implements.

A backend stores what it is told under the name it is told, atomically, and knows nothing of nesting,
soft deletion, caching or statistics: that policy lives in [`aiodepot.Store`][aiodepot.Store]. Names a backend sees
are already nested (``data/01/23/0123…``) and may carry the ``.del`` suffix.

The public methods of [`Backend`][aiodepot.backends.base.Backend] are template methods: they check the open
state, validate names and enforce the permission map, then call one protected hook (``_load``, ``_store``, …)
that a subclass implements. A backend file holds the translation to its service and nothing else. The
hooks for the batch, streaming, hash, gather and defrag operations have defaults built on the basic hooks,
which a backend overrides for speed.
"""

from __future__ import annotations

import abc
import asyncio
import builtins
import contextlib
import dataclasses
import datetime
import os
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, NoReturn, Self, TypeVar

import aiofiles

from .. import hashing
from ..errors import (
    NotSupported,
    ObjectExists,
    ObjectNotFound,
    PermissionDenied,
    ReadRangeError,
    StoreAlreadyOpen,
    StoreError,
    StoreNotOpen,
)
from ..items import ItemInfo, Source, StoreValue, validate_sources, validate_value
from ..names import DEL_SUFFIX, is_internal, nest, validate_backend_name
from ..permissions import Permissions

__all__ = ["Backend", "Capabilities", "FirstRange"]

MiB = 1024 * 1024
T = TypeVar("T")

NOT_OPEN_MESSAGE = "the store is not open: call open() or use 'async with store'"
"""The message of [`StoreNotOpen`][aiodepot.errors.StoreNotOpen]: it speaks of the store the user opened,
never of the layer or backend class below it that noticed."""
ALREADY_OPEN_MESSAGE = "the store is open: this operation needs a closed store"
"""The message of [`StoreAlreadyOpen`][aiodepot.errors.StoreAlreadyOpen], in the same terms."""


def pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    """Write all of ``data`` to ``fd`` at ``offset`` (``os.pwrite`` may write less than asked)."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


async def _outcome(call: Awaitable[T]) -> T | Exception:
    """Await ``call``; a [`StoreError`][aiodepot.errors.StoreError] becomes the result instead of propagating."""
    try:
        return await call
    except StoreError as exc:
        return exc


@dataclasses.dataclass(frozen=True, slots=True)
class Capabilities:
    """What a backend can do, so the Store and the transfer engine can choose the fastest way."""

    ranged_reads: bool = True
    """Partial loads read only the asked range (not the whole value)."""
    server_side_hash: bool = False
    """``hash`` runs where the data is, without moving it."""
    server_side_copy: bool = False
    """``move`` (and copies) run where the data is."""
    server_side_gather: bool = False
    """``gather`` fetches many ranges in one round trip."""
    multipart: bool = False
    """Big values are uploaded in parallel parts."""
    atomic_store: bool = True
    """A reader never sees a half-written value."""
    atomic_create: bool = False
    """``_store``/``_store_chunks`` with ``replace=False`` refuse an existing item atomically, so
    ``store(name, value, if_absent=True)`` is offered (else it raises
    [`NotSupported`][aiodepot.errors.NotSupported]): of writers racing on one new name exactly one wins."""
    batch_ops: bool = False
    """The ``*_batch`` methods do many items in one round trip or thread job (faster than one by one)."""
    batch_size: int = 64
    """Items per batch call in bulk operations."""
    parallel_ranges: bool = False
    """A big ``load`` is faster as parallel range requests (true of network backends, not of local files)."""
    preferred_concurrency: int = 16
    """How many operations to keep in flight by default."""
    part_size: int = 8 * MiB
    """Range size for parallel loads and multipart stores of big values."""

    def replace(self, **changes: Any) -> Capabilities:
        """Return a copy with some fields changed."""
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True, slots=True)
class FirstRange:
    """The first range of a value loaded in ranges (`Backend.load_first`), and what the other ranges need.

    ``size`` is the whole value's size and ``mtime`` its modification time (None where the backend did not
    read it). ``version`` is the backend's tag of this content (an S3 ETag) where it can make the later
    ranges conditional on it (``load_into(..., version=version)`` raises
    [`ValueChanged`][aiodepot.errors.ValueChanged] for another content); None where it cannot, and the
    caller checks ``size`` and ``mtime`` again after the last range.
    """

    data: bytes
    size: int
    mtime: float | None = None
    version: str | None = None


async def _aclose(iterator: AsyncIterator[Any]) -> None:
    """Close an async generator now (not when the garbage collector finds it): its ``finally`` runs."""
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()


@contextlib.contextmanager
def _denied_if_exists(name: str) -> Iterator[None]:
    """Turn the [`ObjectExists`][aiodepot.errors.ObjectExists] of a ``replace=False`` hook into the
    [`PermissionDenied`][aiodepot.errors.PermissionDenied] of the permission map that asked for it."""
    try:
        yield
    except ObjectExists as exc:
        raise PermissionDenied(f"one of the permissions 'W' is required for {name!r}") from exc


def _as_denied(result: T, name: str) -> T | PermissionDenied:
    """A batch result: an [`ObjectExists`][aiodepot.errors.ObjectExists] becomes ``PermissionDenied``
    (see `_denied_if_exists`)."""
    if isinstance(result, ObjectExists):
        denied = PermissionDenied(f"one of the permissions 'W' is required for {name!r}")
        denied.__cause__ = result
        return denied
    return result


def _merge(refused: Sequence[Exception | None], done: Sequence[T]) -> builtins.list[T | Exception]:
    """Put the results of the accepted items back between the refused ones, in the order of the call."""
    results = iter(done)
    return [next(results) if error is None else error for error in refused]


class Backend(abc.ABC):
    """An async storage backend. Subclass it and register the URL scheme (see `aiodepot.backends`).

    The public methods are the contract; they check the open state, the names and the permissions
    (`permissions`), then call the protected hook of the same name. A subclass implements the abstract
    hooks and may override the others:

    - ``_create``, ``_destroy``, ``_open``, ``_close``: the lifecycle; ``opened`` is set by the base.
    - ``_mkdir``, ``_rmdir``, ``_info``, ``_load``, ``_delete``, ``_list``: get valid, permitted names.
    - ``_store(name, value, replace=…)`` and ``_move(src, dst, replace=…)`` (and ``_store_chunks``,
      ``_store_file``): with ``replace=False`` the hook refuses an existing ``name`` (``dst``) by calling
      [`_refuse_replace`][aiodepot.backends.base.Backend._refuse_replace], which raises
      [`ObjectExists`][aiodepot.errors.ObjectExists], ideally inside its own atomic operation.
      ``replace=False`` comes from two callers: ``store(…, if_absent=True)``, where the ``ObjectExists``
      reaches the caller, and a permission map that allows creating an item but not replacing it, where
      the public method turns it into [`PermissionDenied`][aiodepot.errors.PermissionDenied]. A backend
      whose ``replace=False`` check is atomic (writers racing on one new name: exactly one wins) sets
      ``capabilities.atomic_create``; only then is ``if_absent`` offered. ``replace=True`` is the common
      case: nothing needs to be known about what was there.
    - ``_url_for(name, expires=…, method=…)``: a presigned URL; the default raises
      [`NotSupported`][aiodepot.errors.NotSupported].
    - ``_load_batch``, ``_store_batch``, ``_delete_batch``, ``_info_batch``, ``_count``, ``_hash``, ``_gather``,
      ``_defrag``, ``_read_chunks``, ``_read_into``, ``_store_chunks``, ``_store_file``, ``_quota_usage``: work
      everywhere through the hooks above; override for speed.

    ``capabilities`` is per instance: the class attribute of the same name is the default ``__init__``
    copies.
    """

    capabilities: Capabilities = Capabilities()
    """What this backend can do (the class attribute is the default for new instances)."""

    blocking_operations: frozenset[str] = frozenset()
    """The operations with a blocking twin (see `has_blocking`); their ``_<op>_blocking`` hooks are implemented.
    A subclass that overrides ``<op>`` or ``_<op>`` but not ``_<op>_blocking`` loses the twin (its async code
    would be bypassed)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "blocking_operations" not in vars(cls):
            own = vars(cls)
            cls.blocking_operations = frozenset(
                op for op in cls.blocking_operations if f"_{op}_blocking" in own or not (op in own or f"_{op}" in own)
            )

    def __init__(self, *, permissions: str | Mapping[str, str] | None = None) -> None:
        self.opened = False
        """Whether the backend is open (set by ``open``/``close``)."""
        self.permissions = Permissions(permissions)
        """The permission map this backend enforces (empty: everything allowed)."""
        self.capabilities = type(self).capabilities

    @classmethod
    @abc.abstractmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Create a backend for ``url``; ``options`` are backend-specific keyword arguments."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {'open' if self.opened else 'closed'}>"

    opened_from: str | None = None
    """The store URL this backend was made from by [`backend_from_url`][aiodepot.backends.backend_from_url],
    secrets hidden; None for a backend constructed directly."""

    @property
    def location(self) -> str:
        """Where the data is, in the terms the user knows: the store URL without secrets (``zip:///tmp/x.zip``,
        ``sftp://user@host/path``), for messages. A layer names the location it wraps."""
        return self.opened_from or self._describe_location()

    def _describe_location(self) -> str:
        """The location of a backend constructed directly (not from a URL): a backend builds its URL from its
        settings; this default names the class, all that is known here."""
        return f"a {type(self).__name__} store"

    # state and checks --------------------------------------------------------------------------------

    def _require_open(self) -> None:
        if not self.opened:
            # the user sees the store, not the layer or backend class that checked (Meter, PosixFSBackend, …)
            raise StoreNotOpen(NOT_OPEN_MESSAGE)

    def _require_closed(self) -> None:
        if self.opened:
            raise StoreAlreadyOpen(ALREADY_OPEN_MESSAGE)

    def _may_replace(self, name: str) -> bool:
        """Check that ``name`` may be written; True if an existing item may be replaced, False if the
        permission map allows only creating it (the hook then refuses an existing one)."""
        permissions = self.permissions
        if not permissions.restricted or permissions.allows(name, "W"):
            return True
        permissions.check(name, "wW")
        return False

    @staticmethod
    def _refuse_replace(name: str) -> NoReturn:
        """Raise [`ObjectExists`][aiodepot.errors.ObjectExists]: ``name`` exists and a ``replace=False`` hook
        may only create it (the public method turns it into ``PermissionDenied`` where the permission map,
        not ``if_absent``, asked for that)."""
        raise ObjectExists(f"item {name!r} exists")

    def _not_supported(self, operation: str, reason: str = "") -> NotSupported:
        """The [`NotSupported`][aiodepot.errors.NotSupported] error for ``operation`` here: it names the
        `location` the user opened (not the class that refuses) and ``reason``, where there is one."""
        return NotSupported(f"{self.location} does not support {operation}" + (f": {reason}" if reason else ""))

    def _check_create(self, name: str) -> None:
        """Check that ``if_absent`` may be used for ``name``: the backend creates atomically, and the
        permission map allows creating it (``w`` or ``W``)."""
        if not self.capabilities.atomic_create:
            raise self._not_supported("store(..., if_absent=True)", "it cannot create an item atomically")
        if self.permissions.restricted:
            self.permissions.check(name, "wW")

    def _refused_in_batch(
        self, names: Iterable[str], letters: str, *, allow_root: bool = False
    ) -> builtins.list[Exception | None] | None:
        """Validate and permission-check many names for a batch call: None if all pass (the common case),
        else each name's [`StoreError`][aiodepot.errors.StoreError] or None."""
        refused: builtins.list[Exception | None] = []
        any_refused = False
        check = self.permissions.check
        for name in names:
            try:
                validate_backend_name(name, allow_root=allow_root)
                check(name, letters)
            except StoreError as exc:
                refused.append(exc)
                any_refused = True
            else:
                refused.append(None)
        return refused if any_refused else None

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # the contract: lifecycle -------------------------------------------------------------------------

    async def create(self) -> None:
        """Initialize empty storage; an existing non-empty one raises ``StoreExists``."""
        self._require_closed()
        self.permissions.check("", "wW")
        await self._create()

    async def destroy(self) -> None:
        """Remove the storage and everything in it; a missing one raises ``StoreNotFound``."""
        self._require_closed()
        self.permissions.check("", "D")
        await self._destroy()

    async def open(self) -> None:
        """Start using the storage; a missing one raises ``StoreNotFound``."""
        self._require_closed()
        await self._open()
        self.opened = True

    async def close(self) -> None:
        """Stop using the storage and release its resources (it counts as closed even if that fails).

        Closing a closed backend (twice, or one never opened) does nothing, as for files.
        """
        if not self.opened:
            return
        self.opened = False
        await self._close()

    @abc.abstractmethod
    async def _create(self) -> None:
        """Initialize empty storage (the backend is closed; ``""`` may be written)."""

    @abc.abstractmethod
    async def _destroy(self) -> None:
        """Remove the storage (the backend is closed; ``""`` may be deleted)."""

    @abc.abstractmethod
    async def _open(self) -> None:
        """Connect; a missing storage raises ``StoreNotFound``. ``opened`` is set after it returns."""

    @abc.abstractmethod
    async def _close(self) -> None:
        """Release the resources (``opened`` is already False)."""

    # the contract: items -----------------------------------------------------------------------------

    async def mkdir(self, name: str) -> None:
        """Create directory ``name`` and its parents (no error if it exists)."""
        if not self.opened:
            self._require_open()
        validate_backend_name(name)
        self.permissions.check(name, "w")
        await self._mkdir(name)

    async def rmdir(self, name: str) -> None:
        """Remove the empty directory ``name``."""
        if not self.opened:
            self._require_open()
        validate_backend_name(name)
        self.permissions.check(name, "wD")
        await self._rmdir(name)

    def _check(self, name: str, letters: str, *, allow_root: bool = False) -> None:
        """The checks before an item operation: open, a valid name, and one of ``letters`` permitted."""
        if not self.opened:
            self._require_open()
        validate_backend_name(name, allow_root=allow_root)
        self.permissions.check(name, letters)

    def _check_load(self, name: str, size: int | None) -> None:
        self._check(name, "r")
        if size is not None and size < 0:
            raise ValueError(f"size must be >= 0 or None, got {size}")

    def _check_store(self, name: str, value: StoreValue) -> tuple[bytes | memoryview, bool]:
        """The checks before a store; returns the value as bytes or a memoryview, and whether it may replace."""
        if not self.opened:
            self._require_open()
        data = validate_value(value)
        validate_backend_name(name)
        return data, not self.permissions.restricted or self._may_replace(name)

    async def info(self, name: str) -> ItemInfo:
        """Describe ``name`` (``exists=False`` if it is missing); ``info.name`` is the last element."""
        self._check(name, "lr", allow_root=True)
        return await self._info(name)

    async def load(self, name: str, *, offset: int = 0, size: int | None = None) -> bytes:
        """Read ``size`` bytes (all if None) from ``offset`` (negative: from the end); short at the end."""
        self._check_load(name, size)
        return await self._load(name, offset, size)

    async def load_first(self, name: str, offset: int, size: int) -> FirstRange:
        """The first ``size`` bytes of ``name`` from ``offset`` (``>= 0``) for a load in ranges, with the
        value's size and what identifies its content (see [`FirstRange`][aiodepot.backends.base.FirstRange]).

        A value that ends within the range is all there is: ``size`` then comes from the range, and no
        other request is made. Otherwise the value's ``info`` follows, unless the backend's ``_load_first``
        learns the size and version from the range's own reply (one request instead of two).
        """
        if offset < 0:
            raise ValueError(f"offset must be >= 0 for load_first, got {offset}")
        self._check_load(name, size)
        return await self._load_first(name, offset, size)

    async def _load_first(self, name: str, offset: int, size: int) -> FirstRange:
        """`load_first`'s work: the range, then (if the value goes on) ``info`` for its size and mtime; a
        backend whose range reply carries the size and a version overrides this."""
        data = await self._load(name, offset, size)
        if len(data) < size:
            return FirstRange(data, offset + len(data))
        info = await self._info(name)
        return FirstRange(data, info.size, info.mtime)

    async def load_into(
        self, name: str, offset: int, buffer: bytearray | memoryview, *, version: str | None = None
    ) -> int:
        """Read up to ``len(buffer)`` bytes of ``name`` from ``offset`` (``>= 0``) into ``buffer``; return how
        many were read (fewer at the end of the value).

        What a ranged load of a big value uses to put each range in its place in one buffer. A backend
        that can receive straight into the buffer implements ``_load_into``; elsewhere this is `load` of
        the range and a copy. ``version`` (from `load_first`, which gives one only where the backend can
        keep to it) reads the range only from that content, else raises
        [`ValueChanged`][aiodepot.errors.ValueChanged].
        """
        if offset < 0:
            raise ValueError(f"offset must be >= 0 for load_into, got {offset}")
        view = memoryview(buffer).cast("B")
        if version is not None:
            self._check_load(name, len(view))
            return await self._load_into_if(name, offset, view, version)
        if type(self)._load_into is Backend._load_into:
            data = await self.load(name, offset=offset, size=len(view))
            view[: len(data)] = data
            return len(data)
        self._check_load(name, len(view))
        return await self._load_into(name, offset, view)

    async def _load_into(self, name: str, offset: int, buffer: memoryview) -> int:
        """Fill ``buffer`` from ``offset``; implemented by backends that receive into a buffer (see
        `load_into`)."""
        raise NotImplementedError

    async def _load_into_if(self, name: str, offset: int, buffer: memoryview, version: str) -> int:
        """Fill ``buffer`` from ``offset`` of content ``version`` (else raise ``ValueChanged``); implemented
        by backends whose ``_load_first`` gives versions."""
        raise NotSupported(f"{type(self).__name__} gives no versions: load_into(..., version=...) is not offered")

    async def store(self, name: str, value: StoreValue, *, if_absent: bool = False) -> None:
        """Write ``value`` under ``name`` atomically; keep no reference to ``value`` after returning.

        With ``if_absent`` an existing ``name`` raises [`ObjectExists`][aiodepot.errors.ObjectExists] and is
        left alone, decided atomically; a backend without ``capabilities.atomic_create`` raises
        [`NotSupported`][aiodepot.errors.NotSupported].
        """
        data, replace = self._check_store(name, value)
        if if_absent:
            self._check_create(name)
            await self._store(name, data, replace=False)
        elif replace:
            await self._store(name, data, replace=True)
        else:
            with _denied_if_exists(name):
                await self._store(name, data, replace=False)

    async def delete(self, name: str) -> None:
        """Remove ``name``; a missing one raises ``ObjectNotFound``."""
        self._check(name, "D")
        await self._delete(name)

    # the contract: blocking twins in the caller's thread ---------------------------------------------

    def has_blocking(self, operation: str) -> bool:
        """True if ``<operation>_blocking`` works here (``"info"``, ``"load"``, ``"store"``, ``"delete"``).

        A local backend whose operation needs no event loop runs it in the caller's thread this way, with
        the same checks as the async method; the sync facade uses it to skip two thread hand-offs per call.
        Safe from any thread while the backend is open. A backend lists its operations in
        ``blocking_operations``; a layer offers none unless it says so.
        """
        return operation in self.blocking_operations

    def info_blocking(self, name: str) -> ItemInfo:
        """The blocking twin of `info` (only where ``has_blocking("info")``)."""
        self._check(name, "lr", allow_root=True)
        return self._info_blocking(name)

    def load_blocking(self, name: str, *, offset: int = 0, size: int | None = None) -> bytes:
        """The blocking twin of `load` (only where ``has_blocking("load")``)."""
        self._check_load(name, size)
        return self._load_blocking(name, offset, size)

    def store_blocking(self, name: str, value: StoreValue) -> None:
        """The blocking twin of `store` (only where ``has_blocking("store")``)."""
        data, replace = self._check_store(name, value)
        if replace:
            self._store_blocking(name, data, replace=True)
        else:
            with _denied_if_exists(name):
                self._store_blocking(name, data, replace=False)

    def delete_blocking(self, name: str) -> None:
        """The blocking twin of `delete` (only where ``has_blocking("delete")``)."""
        self._check(name, "D")
        self._delete_blocking(name)

    def _info_blocking(self, name: str) -> ItemInfo:
        """``_info`` in the caller's thread (for backends that list ``"info"`` in ``blocking_operations``)."""
        raise NotImplementedError(f"{type(self).__name__} has no blocking info")

    def _load_blocking(self, name: str, offset: int, size: int | None) -> bytes:
        """``_load`` in the caller's thread."""
        raise NotImplementedError(f"{type(self).__name__} has no blocking load")

    def _store_blocking(self, name: str, value: bytes | memoryview, *, replace: bool) -> None:
        """``_store`` in the caller's thread."""
        raise NotImplementedError(f"{type(self).__name__} has no blocking store")

    def _delete_blocking(self, name: str) -> None:
        """``_delete`` in the caller's thread."""
        raise NotImplementedError(f"{type(self).__name__} has no blocking delete")

    async def move(self, src: str, dst: str) -> None:
        """Rename ``src`` to ``dst``, replacing ``dst``; a missing ``src`` raises ``ObjectNotFound``."""
        if not self.opened:
            self._require_open()
        validate_backend_name(src)
        validate_backend_name(dst)
        self.permissions.check(src, "D")
        if self._may_replace(dst):
            await self._move(src, dst, replace=True)
        else:
            with _denied_if_exists(dst):
                await self._move(src, dst, replace=False)

    async def list(self, name: str) -> AsyncIterator[ItemInfo]:
        """Yield the entries of directory ``name`` (not recursive), sorted by name, never ``.tmp`` ones."""
        if not self.opened:
            self._require_open()
        validate_backend_name(name, allow_root=True)
        self.permissions.check(name, "l")
        entries = self._list(name)
        try:
            async for entry in entries:
                if name or not is_internal(entry.name):  # the store's own file at the top is no item
                    yield entry
        finally:
            await _aclose(entries)

    async def list_range(
        self, name: str, *, prefix: str = "", start_after: str | None = None
    ) -> AsyncIterator[ItemInfo]:
        """`list` for a caller that wants only the entries whose names start with ``prefix`` and sort after
        ``start_after``: the backend may leave the others out, and need not (the caller filters).

        Object stores pass both to the service, so a listing that resumes deep in a large directory, or
        wants a few names in it, does not page through the rest. The default is `list`.
        """
        if not self.opened:
            self._require_open()
        validate_backend_name(name, allow_root=True)
        self.permissions.check(name, "l")
        entries = self._list_range(name, prefix, start_after)
        try:
            async for entry in entries:
                if name or not is_internal(entry.name):
                    yield entry
        finally:
            await _aclose(entries)

    def _list_range(self, name: str, prefix: str, start_after: str | None) -> AsyncIterator[ItemInfo]:
        """The entries of ``name`` that `list_range` asks for, and any others (default: ``_list``)."""
        return self._list(name)

    async def count(self, name: str, *, deleted: bool = False) -> int:
        """The number of items below directory ``name`` (recursively; ``""``: the whole storage), without
        reading values: the items whose names end in ``.del`` if ``deleted``, else the others (as ``list``
        shows them: never ``.tmp`` or internal files). A missing directory raises ``ObjectNotFound``."""
        if not self.opened:
            self._require_open()
        validate_backend_name(name, allow_root=True)
        self.permissions.check(name, "l")
        return await self._count(name, deleted)

    async def _count(self, name: str, deleted: bool) -> int:
        """Count the items below a valid, permitted directory (default: walk it with ``_list``)."""
        total = 0
        subdirs: builtins.list[str] = []
        entries = self._list(name)
        try:
            async for entry in entries:
                if entry.directory:
                    subdirs.append(f"{name}/{entry.name}" if name else entry.name)
                elif entry.name.endswith(DEL_SUFFIX) == deleted and (name or not is_internal(entry.name)):
                    total += 1
        finally:
            await _aclose(entries)
        for subdir in subdirs:
            try:
                total += await self._count(subdir, deleted)
            except ObjectNotFound:
                continue  # removed while we were counting
        return total

    @abc.abstractmethod
    async def _mkdir(self, name: str) -> None:
        """Create directory ``name`` and its parents."""

    @abc.abstractmethod
    async def _rmdir(self, name: str) -> None:
        """Remove the empty directory ``name`` (missing: ``ObjectNotFound``)."""

    @abc.abstractmethod
    async def _info(self, name: str) -> ItemInfo:
        """Describe ``name`` (``""``: the root); a missing one is ``ItemInfo.missing(leaf)``."""

    @abc.abstractmethod
    async def _load(self, name: str, offset: int, size: int | None) -> bytes:
        """Read ``size`` bytes (None: to the end, never negative) from ``offset`` (negative: from the end)."""

    @abc.abstractmethod
    async def _store(self, name: str, value: bytes | memoryview, *, replace: bool) -> None:
        """Write ``value`` atomically (``replace=False``: refuse an existing item, see the class docs)."""

    @abc.abstractmethod
    async def _delete(self, name: str) -> None:
        """Remove the item ``name`` (missing: ``ObjectNotFound``)."""

    @abc.abstractmethod
    async def _move(self, src: str, dst: str, *, replace: bool) -> None:
        """Rename ``src`` to ``dst`` (``replace=False``: refuse an existing ``dst``, see the class docs)."""

    @abc.abstractmethod
    def _list(self, name: str) -> AsyncIterator[ItemInfo]:
        """Yield the entries of directory ``name`` sorted by name (missing: ``ObjectNotFound``)."""

    # the contract: batches ---------------------------------------------------------------------------

    async def load_batch(self, names: Sequence[str]) -> builtins.list[bytes | Exception]:
        """Load many whole values; each result is the value or the item's [`StoreError`][aiodepot.errors.StoreError]."""
        if not self.opened:
            self._require_open()
        refused = self._refused_in_batch(names, "r")
        if refused is None:
            return await self._load_batch(names)
        return _merge(refused, await self._load_batch([n for n, e in zip(names, refused, strict=True) if e is None]))

    async def store_batch(self, items: Sequence[tuple[str, StoreValue]]) -> builtins.list[Exception | None]:
        """Store many values, each atomically.

        Each result is None or the item's [`StoreError`][aiodepot.errors.StoreError].
        """
        if not self.opened:
            self._require_open()
        refused: builtins.list[Exception | None] = []
        accepted: builtins.list[tuple[str, bytes | memoryview, bool]] = []
        for name, value in items:
            data = validate_value(value)
            try:
                validate_backend_name(name)
                accepted.append((name, data, self._may_replace(name)))
            except StoreError as exc:
                refused.append(exc)
            else:
                refused.append(None)
        done = await self._store_batch(accepted) if accepted else []
        done = [
            result if replace else _as_denied(result, name)
            for result, (name, _, replace) in zip(done, accepted, strict=True)
        ]
        if len(accepted) == len(refused):
            return done
        results = iter(done)
        return [next(results) if error is None else error for error in refused]

    async def delete_batch(self, names: Sequence[str]) -> builtins.list[Exception | None]:
        """Delete many items; each result is None or the item's [`StoreError`][aiodepot.errors.StoreError]."""
        if not self.opened:
            self._require_open()
        refused = self._refused_in_batch(names, "D")
        if refused is None:
            return await self._delete_batch(names)
        return _merge(refused, await self._delete_batch([n for n, e in zip(names, refused, strict=True) if e is None]))

    async def info_batch(self, names: Sequence[str]) -> builtins.list[ItemInfo | Exception]:
        """Describe many items; each result is the info or the item's [`StoreError`][aiodepot.errors.StoreError]."""
        if not self.opened:
            self._require_open()
        refused = self._refused_in_batch(names, "lr", allow_root=True)
        if refused is None:
            return await self._info_batch(names)
        return _merge(refused, await self._info_batch([n for n, e in zip(names, refused, strict=True) if e is None]))

    async def _load_batch(self, names: Sequence[str]) -> builtins.list[bytes | Exception]:
        """Load many valid, permitted names (default: one by one)."""
        return [await _outcome(self._load(name, 0, None)) for name in names]

    async def _store_batch(
        self, items: Sequence[tuple[str, bytes | memoryview, bool]]
    ) -> builtins.list[Exception | None]:
        """Store many ``(name, value, replace)`` items (default: one by one)."""
        return [await _outcome(self._store(name, value, replace=replace)) for name, value, replace in items]

    async def _delete_batch(self, names: Sequence[str]) -> builtins.list[Exception | None]:
        """Delete many valid, permitted names (default: one by one)."""
        return [await _outcome(self._delete(name)) for name in names]

    async def _info_batch(self, names: Sequence[str]) -> builtins.list[ItemInfo | Exception]:
        """Describe many valid, permitted names (default: one by one)."""
        return [await _outcome(self._info(name)) for name in names]

    # the contract: whole-value helpers ---------------------------------------------------------------

    async def quota(self) -> dict[str, int]:
        """Return ``{"limit": bytes, "usage": bytes}``; -1 means not set or not tracked."""
        return await self._quota_usage()

    async def _quota_usage(self) -> dict[str, int]:
        """The quota figures (default: not tracked)."""
        return {"limit": -1, "usage": -1}

    async def hash(self, name: str, algorithm: str = "sha256") -> str:
        """Return the hex digest of the value of ``name`` (any hashlib algorithm, or ``"blake3"``)."""
        if not self.opened:
            self._require_open()
        validate_backend_name(name)
        self.permissions.check(name, "r")
        return await self._hash(name, algorithm)

    async def _hash(self, name: str, algorithm: str) -> str:
        """Hash the value (default: stream it through ``_read_chunks``)."""
        hasher = hashing.new(algorithm)
        chunks = self._read_chunks(name, 0, None, 1 * MiB)
        try:
            async for chunk in chunks:
                hasher.update(chunk)
        finally:
            await _aclose(chunks)
        return hasher.hexdigest()

    async def gather(self, sources: Iterable[Source]) -> bytes:
        """Read several exact ranges and return them concatenated in the order given.

        A range that comes back short raises [`ReadRangeError`][aiodepot.errors.ReadRangeError].
        """
        if not self.opened:
            self._require_open()
        checked = validate_sources(sources)
        for name in {name for name, _, _ in checked}:
            validate_backend_name(name)
            self.permissions.check(name, "r")
        return await self._gather(checked)

    async def _gather(self, sources: builtins.list[Source]) -> bytes:
        """Read checked ranges of valid, permitted names (default: concurrent ``_load`` calls)."""
        limit = asyncio.Semaphore(self.capabilities.preferred_concurrency)

        async def read(name: str, offset: int, size: int) -> bytes:
            if size == 0:
                return b""
            async with limit:
                data = await self._load(name, offset, size)
            if len(data) != size:
                raise ReadRangeError(f"{name}: wanted {size} bytes at offset {offset}, got {len(data)}")
            return data

        parts = await asyncio.gather(*(read(*source) for source in sources))
        return b"".join(parts)

    async def defrag(
        self,
        sources: Iterable[Source],
        *,
        target: str | None = None,
        algorithm: str | None = None,
        namespace: str | None = None,
        levels: int = 0,
    ) -> str:
        """Write the concatenated ``sources`` ranges as a new item and return its (nested) name.

        Without ``target`` the name is the ``algorithm`` hex digest of the content, placed in
        ``namespace`` and nested ``levels`` deep.
        """
        if target is None and algorithm is None:
            raise ValueError("defrag needs a target name or a hash algorithm")
        if algorithm is not None:
            hashing.check_algorithm(algorithm)
        self._require_open()
        prefix = namespace.rstrip("/") + "/" if namespace else ""
        self.permissions.check(target or prefix + "00000000", "W")  # before anything is read
        return await self._defrag(sources, target=target, algorithm=algorithm, namespace=namespace, levels=levels)

    async def _defrag(
        self,
        sources: Iterable[Source],
        *,
        target: str | None,
        algorithm: str | None,
        namespace: str | None,
        levels: int,
    ) -> str:
        """Gather the ranges and store them (default: through the public ``gather`` and ``store``)."""
        data = await self.gather(sources)
        if target is None:
            assert algorithm is not None
            target = hashing.new(algorithm, data).hexdigest()
            if namespace:
                target = namespace.rstrip("/") + "/" + target
            target = nest(target, levels)
        await self.store(target, data)
        return target

    # the contract: streaming and files ---------------------------------------------------------------

    async def read_chunks(
        self, name: str, *, offset: int = 0, size: int | None = None, chunk_size: int = 1 * MiB
    ) -> AsyncIterator[bytes]:
        """Yield the value of ``name`` (or a range of it) in pieces of at most ``chunk_size`` bytes."""
        if not self.opened:
            self._require_open()
        validate_backend_name(name)
        self.permissions.check(name, "r")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        chunks = self._read_chunks(name, offset, size, chunk_size)
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            await _aclose(chunks)

    async def _read_chunks(self, name: str, offset: int, size: int | None, chunk_size: int) -> AsyncIterator[bytes]:
        """Yield the value in pieces (default: one ``_load`` per piece)."""
        if offset < 0:
            total = (await self._info(name)).size
            offset = max(total + offset, 0)
        remaining = size
        while remaining is None or remaining > 0:
            want = chunk_size if remaining is None else min(chunk_size, remaining)
            chunk = await self._load(name, offset, want)
            if chunk:
                yield chunk
            if len(chunk) < want:
                return
            offset += len(chunk)
            if remaining is not None:
                remaining -= len(chunk)

    async def read_into(self, name: str, fd: int, *, offset: int, size: int) -> None:
        """Copy ``size`` bytes at ``offset`` of the value into the open file ``fd`` at the same offset.

        A value that ends before ``offset + size`` raises [`ReadRangeError`][aiodepot.errors.ReadRangeError].
        """
        if not self.opened:
            self._require_open()
        validate_backend_name(name)
        self.permissions.check(name, "r")
        await self._read_into(name, fd, offset, size)

    async def _read_into(self, name: str, fd: int, offset: int, size: int) -> None:
        """Copy a range into ``fd`` (default: ``_load`` it, then ``pwrite`` on a thread)."""
        data = await self._load(name, offset, size)
        if len(data) != size:
            raise ReadRangeError(f"{name}: wanted {size} bytes at offset {offset}, got {len(data)}")
        await asyncio.to_thread(pwrite_all, fd, data, offset)

    async def store_file(self, name: str, path: str, *, size: int) -> None:
        """Store the content of the local file ``path`` (``size`` bytes) under ``name``, atomically.

        The default streams the file in ``part_size`` pieces into ``_store_chunks``.
        """
        if not self.opened:
            self._require_open()
        validate_backend_name(name)
        if self._may_replace(name):
            await self._store_file(name, path, size, replace=True)
        else:
            with _denied_if_exists(name):
                await self._store_file(name, path, size, replace=False)

    async def _store_file(self, name: str, path: str, size: int, *, replace: bool) -> None:
        """Store a local file (default: stream it in ``part_size`` pieces into ``_store_chunks``)."""
        part_size = self.capabilities.part_size

        async def chunks() -> AsyncIterator[bytes]:
            async with aiofiles.open(path, "rb") as f:
                while chunk := await f.read(part_size):
                    yield chunk

        await self._store_chunks(name, chunks(), size, replace=replace)

    async def store_chunks(
        self, name: str, chunks: AsyncIterable[bytes], *, size: int | None = None, if_absent: bool = False
    ) -> None:
        """Store the concatenation of ``chunks`` under ``name`` atomically.

        ``size``, when given, is checked: a stream that ends early or runs long stores nothing.
        ``if_absent`` as for [`store`][aiodepot.backends.base.Backend.store].
        """
        if not self.opened:
            self._require_open()
        validate_backend_name(name)
        if if_absent:
            self._check_create(name)
            await self._store_chunks(name, chunks, size, replace=False)
        elif self._may_replace(name):
            await self._store_chunks(name, chunks, size, replace=True)
        else:
            with _denied_if_exists(name):
                await self._store_chunks(name, chunks, size, replace=False)

    async def _store_chunks(self, name: str, chunks: AsyncIterable[bytes], size: int | None, *, replace: bool) -> None:
        """Store a stream (default: collect it, then one ``_store``)."""
        parts = [bytes(chunk) async for chunk in chunks]
        data = b"".join(parts)
        if size is not None and len(data) != size:
            raise ValueError(f"{name}: expected {size} bytes, the stream gave {len(data)}")
        await self._store(name, data, replace=replace)

    # the contract: presigned URLs --------------------------------------------------------------------

    async def url_for(self, name: str, *, expires: float | datetime.timedelta, method: str = "GET") -> str:
        """A URL through which anyone holding it may ``GET`` (read) or ``PUT`` (write) the value of ``name``
        without credentials, until ``expires`` (seconds from now, or a ``timedelta``) has passed.

        A backend that cannot sign URLs raises [`NotSupported`][aiodepot.errors.NotSupported]. The
        permission map must allow reading (``GET``) or writing (``PUT``) ``name``.
        """
        if not self.opened:
            self._require_open()
        validate_backend_name(name)
        seconds = expires.total_seconds() if isinstance(expires, datetime.timedelta) else expires
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
            raise ValueError(f"expires must be a number of seconds > 0 or a timedelta, got {expires!r}")
        verb = method.upper() if isinstance(method, str) else method
        if verb == "GET":
            self.permissions.check(name, "r")
        elif verb == "PUT":
            self.permissions.check(name, "W")  # the URL may replace an existing value
        else:
            raise ValueError(f"method must be 'GET' or 'PUT', got {method!r}")
        return await self._url_for(name, expires=float(seconds), method=verb)

    async def _url_for(self, name: str, *, expires: float, method: str) -> str:
        """Sign a URL for a valid, permitted name (``expires`` seconds > 0, ``method`` ``GET`` or ``PUT``);
        the default raises [`NotSupported`][aiodepot.errors.NotSupported]."""
        raise self._not_supported("url_for", "presigned URLs need an s3, azure or gs store")
