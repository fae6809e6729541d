"""What the object-store backends (S3 now; Azure Blob and GCS next) share, so that each is translation only.

- [`ErrorTable`][aiodepot.backends._objectstore.ErrorTable] — one table per backend from native errors
  (exception type, error code, HTTP status) to aiodepot errors, applied at the backend's boundary;
- [`KeyLayout`][aiodepot.backends._objectstore.KeyLayout] — borgstore's layout of items as keys below a
  prefix, directories as ``name/`` marker objects and delimiter listings;
- [`ListingPage`][aiodepot.backends._objectstore.ListingPage] and
  [`merge_listing`][aiodepot.backends._objectstore.merge_listing] — paged delimiter listings merged into the
  sorted, non-recursive entries of the backend contract;
- [`range_header`][aiodepot.backends._objectstore.range_header] and
  [`get_with_retry`][aiodepot.backends._objectstore.get_with_retry] — ranged GETs, fetched again when the body
  breaks off;
- [`PartRules`][aiodepot.backends._objectstore.PartRules],
  [`MultipartUpload`][aiodepot.backends._objectstore.MultipartUpload] and
  [`send_stream`][aiodepot.backends._objectstore.send_stream] — uploads in parts (S3 multipart, Azure blocks,
  GCS XML multipart): parts in parallel with a bound, aborted on any failure.
"""

from __future__ import annotations

import abc
import asyncio
import builtins
import contextlib
import dataclasses
import heapq
import itertools
import logging
import math
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Protocol, TypeVar

from ..errors import ConnectionLost, IntegrityError, ObjectNotFound, StoreError
from ..items import ItemInfo
from ..names import validate_backend_name
from ..transfer import run_bounded
from .options import RetryPolicy

__all__ = [
    "DELIMITER",
    "ErrorRule",
    "ErrorTable",
    "KeyLayout",
    "ListingPage",
    "MultipartUpload",
    "Native",
    "PartRules",
    "Span",
    "content_range_total",
    "get_with_retry",
    "is_ours",
    "merge_listing",
    "name_bound",
    "range_header",
    "send_stream",
]

KiB = 1024
MiB = 1024 * KiB
DELIMITER = "/"
"""What separates the levels of a key, for delimiter listings."""
SUFFIX_SLACK = 64 * KiB
"""A tail range wastes at most this much before a HEAD for the exact range pays."""

Span = tuple[int, int]
"""``(start, length)`` of one part."""


# errors ------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Native:
    """What a backend reads from a native error: the service's code, the HTTP status, its message."""

    code: str = ""
    status: int | None = None
    message: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class ErrorRule:
    """One row of an [`ErrorTable`][aiodepot.backends._objectstore.ErrorTable].

    The row matches an error of one of ``types``, or with a code in ``codes``, or (unless its code is in
    ``unless_codes``) with a status in ``statuses``. The message is ``message`` formatted with ``where``
    (the name, or "the store"), ``name``, ``code``, ``status``, ``code_or_status``, ``text`` (the
    service's message, or the code), ``exc`` and ``exc_type``.
    """

    error: type[StoreError]
    message: str
    types: tuple[type[BaseException], ...] = ()
    codes: frozenset[str] = frozenset()
    statuses: frozenset[int] = frozenset()
    unless_codes: frozenset[str] = frozenset()

    def matches(self, exc: BaseException, native: Native) -> bool:
        """Whether this row is the one for ``exc``."""
        if isinstance(exc, self.types) or (native.code and native.code in self.codes):
            return True
        return native.status in self.statuses and native.code not in self.unless_codes


@dataclasses.dataclass(frozen=True, slots=True)
class ErrorTable:
    """A backend's native errors → aiodepot errors: the first matching row wins; no row, not ours.

    Args:
        rules: the rows, most specific first.
        native: reads code, status and message from a native error (``Native()`` when it has none).
    """

    rules: tuple[ErrorRule, ...]
    native: Callable[[BaseException], Native]

    def translate(self, exc: BaseException, name: str) -> StoreError | None:
        """The aiodepot error for ``exc`` (None: no row matches it)."""
        native = self.native(exc)
        for rule in self.rules:
            if rule.matches(exc, native):
                return rule.error(
                    rule.message.format(
                        where=name or "the store",
                        name=name,
                        code=native.code,
                        status=native.status,
                        code_or_status=native.code or native.status,
                        text=native.message or native.code,
                        exc=exc,
                        exc_type=type(exc).__name__,
                    )
                )
        return None

    @contextlib.contextmanager
    def boundary(self, name: str) -> Iterator[None]:
        """``with table.boundary(name):`` — native errors leave as aiodepot errors, the original as cause."""
        try:
            yield
        except StoreError:
            raise
        except Exception as exc:
            translated = self.translate(exc, name)
            if translated is None:
                raise
            raise translated from exc

    def code_of(self, error: BaseException | None) -> str:
        """The service's code of the native error behind ``error`` (its cause; "" for none)."""
        cause = error.__cause__ if isinstance(error, StoreError) else error
        return self.native(cause).code if cause is not None else ""


# keys and listings ----------------------------------------------------------------------------------------


def is_ours(leaf: str) -> bool:
    """True for a listed name that could be an item or directory of ours (not ``.tmp``, ``.hid``, foreign)."""
    try:
        validate_backend_name(leaf)
    except StoreError:
        return False
    return DELIMITER not in leaf


def name_bound(relative_key: str) -> str:
    """The smallest entry name a delimiter listing can still yield after the key ``relative_key``.

    Listings come in key order, but a directory is listed by its key ``name/``: after ``a.del`` may come
    the directory ``a`` (key ``a/``), which sorts before ``a.del`` by name, because ``.`` < ``/``. So an
    entry can only be yielded once the listing has moved past the keys of every directory that would come
    before it by name.
    """
    for i, char in enumerate(relative_key):
        if char < DELIMITER:
            return relative_key[:i]
    return relative_key


@dataclasses.dataclass(frozen=True, slots=True)
class KeyLayout:
    """borgstore's layout: item ``name`` is the key ``base + name``; a directory is its keys below
    ``base + name + "/"`` and, once made, the empty marker object of that key; the store is the marker
    ``base`` itself.

    Args:
        base: the key prefix of the store, ending in ``/``.
    """

    base: str

    def key(self, name: str) -> str:
        """The key of item ``name``."""
        return self.base + name

    def dir_prefix(self, name: str) -> str:
        """The prefix of the keys in directory ``name`` (also its marker's key); the store's for ""."""
        return self.base + name + DELIMITER if name else self.base


@dataclasses.dataclass(slots=True)
class ListingPage:
    """One page of a delimiter listing, keys relative to the listed prefix.

    Args:
        files: ``(relative key, size, mtime)`` of each object.
        directories: each common prefix (ending in ``/``).
    """

    files: builtins.list[tuple[str, int, float]] = dataclasses.field(default_factory=builtins.list)
    directories: builtins.list[str] = dataclasses.field(default_factory=builtins.list)


async def merge_listing(
    name: str, pages: AsyncIterable[ListingPage], *, missing_if_empty: bool = True
) -> AsyncIterator[ItemInfo]:
    """The entries of directory ``name`` sorted by name, from ``pages`` in key order, fetched as they go.

    Foreign keys, ``.tmp``/``.hid`` names and the directory's own marker are left out; a listing whose
    first page is empty raises ``ObjectNotFound(name)`` unless ``missing_if_empty`` is False (a listing
    narrowed by a prefix or a start key may be empty in a directory that exists).
    """
    pending: builtins.list[tuple[str, int, ItemInfo]] = []  # a heap by name: see name_bound
    tiebreak = itertools.count()
    first_page = True
    async for page in pages:
        if first_page and not page.files and not page.directories and missing_if_empty:
            raise ObjectNotFound(name)
        first_page = False
        entries: builtins.list[tuple[str, ItemInfo | None]] = []
        for relative, size, mtime in page.files:
            info = ItemInfo.for_file(relative, size, mtime=mtime)
            entries.append((relative, info if relative and is_ours(relative) else None))
        for relative in page.directories:
            leaf = relative.rstrip(DELIMITER)
            entries.append((relative, ItemInfo.for_directory(leaf) if is_ours(leaf) else None))
        entries.sort(key=lambda entry: entry[0])
        for relative, listed in entries:
            if listed is not None:
                heapq.heappush(pending, (listed.name, next(tiebreak), listed))
            bound = name_bound(relative)
            while pending and pending[0][0] < bound:
                yield heapq.heappop(pending)[2]
    if first_page and missing_if_empty:
        raise ObjectNotFound(name)
    while pending:
        yield heapq.heappop(pending)[2]


# ranged GETs ------------------------------------------------------------------------------------------------


def content_range_total(content_range: str | None) -> int | None:
    """The whole object's size from a ``Content-Range: bytes a-b/total`` header; None where it is missing
    or the total is ``*``."""
    if not content_range:
        return None
    total = content_range.rpartition("/")[2].strip()
    return int(total) if total.isdigit() else None


async def range_header(
    offset: int, size: int | None, object_size: Callable[[], Awaitable[int]], *, slack: int = SUFFIX_SLACK
) -> str | None:
    """The HTTP Range header for ``size`` bytes at ``offset`` (negative: from the end); None for all.

    A tail range is asked for as a suffix (``bytes=-n``) when it wastes at most ``slack`` bytes; else
    ``object_size()`` (a HEAD) gives the exact start.
    """
    if offset >= 0:
        if size is None:
            return f"bytes={offset}-" if offset else None
        return f"bytes={offset}-{offset + size - 1}"
    if size is None or -offset - size <= slack:
        return f"bytes={offset}"  # the last -offset bytes (all of them if the object is shorter)
    start = max(await object_size() + offset, 0)
    return f"bytes={start}-{start + size - 1}"


_T = TypeVar("_T")


class Began(Protocol):
    """Called by one GET attempt once the reply has begun (from then on, a failure is the body's)."""

    def __call__(self) -> None: ...


async def get_with_retry(
    retry: RetryPolicy, get_once: Callable[[Began], Awaitable[_T]], *, logger: logging.Logger, what: str
) -> _T:
    """``await get_once(began)``, again while its body breaks off or fails its checksum.

    The client library retries a request until its reply begins; a connection lost (``ConnectionLost``)
    or damaged data (``IntegrityError``) after ``began()`` is fetched again here with ``retry``.
    """
    began = False

    def mark() -> None:
        nonlocal began
        began = True

    async def attempt() -> _T:
        nonlocal began
        began = False
        return await get_once(mark)

    def retryable(exc: BaseException) -> bool:  # before the body, the client has retried
        return began and isinstance(exc, ConnectionLost | IntegrityError)

    def on_retry(exc: BaseException, number: int, wait: float) -> None:
        logger.warning("%s: %s; attempt %d of %d", what, exc, number, retry.attempts)

    return await retry.run(attempt, retryable=retryable, on_retry=on_retry)


# uploads in parts --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class PartRules:
    """A service's limits on uploads in parts.

    Args:
        min_part: the smallest part (all but the last).
        max_part: the biggest part.
        max_parts: the most parts of one upload.
        max_object: the biggest object.
        round_to: part sizes are rounded up to a multiple of this.
        too_big: what a ``ValueError`` says of an object bigger than ``max_object``.
    """

    min_part: int
    max_part: int
    max_parts: int
    max_object: int
    round_to: int = MiB
    too_big: str = "objects are at most {max_object} bytes"

    def part_size(self, size: int, preferred: int) -> int:
        """The part size for a ``size``-byte upload: ``preferred``, grown to need at most ``max_parts``."""
        if size > self.max_object:
            too_big = self.too_big.format(max_object=self.max_object)
            raise ValueError(f"{too_big}, this one would be {size} bytes")
        part = max(preferred, self.min_part, math.ceil(size / self.max_parts))
        return min(math.ceil(part / self.round_to) * self.round_to, self.max_part)

    @staticmethod
    def spans(size: int, part_size: int) -> builtins.list[Span]:
        """``(start, length)`` of each part of a ``size``-byte value."""
        return [(start, min(part_size, size - start)) for start in range(0, size, part_size)]


class MultipartUpload(abc.ABC):
    """One upload in parts: parts go in any order and in parallel, then the upload completes, or is aborted.

    A backend implements ``send``, ``complete`` and ``abort``; ``run`` and ``send_spans`` are the driver.
    """

    @abc.abstractmethod
    async def send(self, number: int, body: bytes | memoryview, checksum: Any) -> None:
        """Upload part ``number`` (1-based), which the service checks against ``checksum``."""

    @abc.abstractmethod
    async def complete(self, *, if_none_match: bool = False) -> bool:
        """Make the object from the parts; False if ``if_none_match`` found an object there already."""

    @abc.abstractmethod
    async def abort(self) -> None:
        """Drop the upload and its parts, swallowing errors (there is an error on its way already)."""

    async def run(self, work: Callable[[Any], Awaitable[None]], *, if_none_match: bool = False) -> bool:
        """Send the parts with ``await work(self)``, then complete; abort on any failure or cancellation."""
        try:
            await work(self)
            done = await self.complete(if_none_match=if_none_match)
        except BaseException:
            await asyncio.shield(self.abort())  # a cancelled upload is aborted too
            raise
        if not done:
            await asyncio.shield(self.abort())
        return done

    async def send_spans(
        self,
        spans: builtins.list[Span],
        part_size: int,
        read: Callable[[int, int], Awaitable[tuple[bytes | memoryview, Any]]],
        *,
        max_concurrency: int,
    ) -> None:
        """Send each span as a part, ``read(start, length)`` giving its body and checksum, a bounded few at once."""

        async def send(span: Span) -> None:
            start, length = span
            body, checksum = await read(start, length)
            await self.send(start // part_size + 1, body, checksum)

        await run_bounded(spans, send, max_concurrency=max_concurrency)


async def send_stream(
    upload: MultipartUpload,
    head: bytearray,
    stream: AsyncIterator[bytes],
    *,
    name: str,
    size: int | None,
    part_size: int,
    max_parts: int,
    max_concurrency: int,
    checksum: Callable[[bytes], Awaitable[Any]],
) -> None:
    """Send ``head`` and the rest of ``stream`` as parts of ``part_size`` while they fill.

    At most ``max_concurrency`` parts are held in memory; a stream that runs longer or shorter than
    ``size`` raises ``ValueError`` (and the caller's upload aborts).
    """
    buffer = head
    total = len(head)
    slots = asyncio.Semaphore(max_concurrency)
    number = 0

    async def send(number: int, part: bytes) -> None:
        try:
            await upload.send(number, part, await checksum(part))
        finally:
            slots.release()

    async def take_parts(group: asyncio.TaskGroup, final: bool) -> None:
        nonlocal number
        while len(buffer) >= part_size or (final and buffer):
            await slots.acquire()
            number += 1
            if number > max_parts:
                raise ValueError(f"{name}: more than {max_parts} parts: give the size to store_chunks")
            with memoryview(buffer) as view:
                part = bytes(view[:part_size])
            del buffer[:part_size]
            group.create_task(send(number, part))

    try:
        async with asyncio.TaskGroup() as group:
            await take_parts(group, False)
            async for chunk in stream:
                buffer += chunk
                total += len(chunk)
                if size is not None and total > size:
                    raise ValueError(f"{name}: the stream gave more than the expected {size} bytes")
                await take_parts(group, False)
            if size is not None and total != size:
                raise ValueError(f"{name}: expected {size} bytes, the stream gave {total}")
            await take_parts(group, True)
    except BaseExceptionGroup as failures:
        raise failures.exceptions[0] from None
