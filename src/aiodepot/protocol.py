"""The borgstore REST protocol, v1: what client and server share.

One table maps errors to HTTP statuses (the server reads it one way, the client the other), and one pair
of functions writes and parses ``Range`` headers, so the two sides cannot drift apart.
"""

from __future__ import annotations

import re
from http import HTTPStatus

from .errors import (
    BackendError,
    IntegrityError,
    InvalidName,
    NotSupported,
    ObjectExists,
    ObjectNotFound,
    PermissionDenied,
    QuotaExceeded,
    ReadRangeError,
    StoreAlreadyOpen,
    StoreError,
    StoreExists,
    StoreNotFound,
    StoreNotOpen,
)

__all__ = [
    "ACCEPT",
    "HASH_ALGORITHM",
    "HASH_HEADER",
    "BadRequest",
    "BodyTimeout",
    "PayloadTooLarge",
    "error_for_status",
    "make_range_header",
    "parse_range_header",
    "status_for_error",
]

ACCEPT = "application/vnd.x.borgstore.rest.v1"
"""Every request carries exactly this ``Accept`` header."""
HASH_ALGORITHM = "sha256"
HASH_HEADER = "X-Content-hash-sha256"
"""The hex digest of a stored body; a body that does not match is rejected with 422."""
IS_DIRECTORY_HEADER = "X-BorgStore-Is-Directory"
ATIME_HEADER = "X-BorgStore-Atime"
MTIME_HEADER = "X-BorgStore-Mtime"
EXTENSIONS_HEADER = "X-Aiodepot-Extensions"
"""The response header by which an aiodepot server names its protocol extensions (borgstore clients ignore it)."""
EXTENSIONS = "if-absent, versioned-ranges"
"""The extensions this server offers: ``if-absent`` is the query parameter ``IF_ABSENT`` of a store;
``versioned-ranges``: a ranged GET answers with ``Content-Range`` (the value's size) and, where the backend
has versions, an ``ETag``, and a GET with ``If-Match`` is answered only for that version (else 412)."""
IF_ABSENT = "if_absent"
"""``POST /<name>?if_absent=1`` stores only if ``name`` is new, atomically; else 412 ``item '<name>' exists``
(a backend that cannot decide atomically: 501). A server without the extension would ignore the parameter
and overwrite, so a client sends it only to a server that names ``if-absent`` in ``EXTENSIONS_HEADER``."""
MUST_BE_OPEN = "Backend must be open"
MUST_NOT_BE_OPEN = "Backend must not be open"
HASH_MISMATCH = "Content hash verification failed, please retry"


class BadRequest(BackendError, ValueError):
    """The server rejected the request as malformed (HTTP 400)."""


class PayloadTooLarge(BackendError):
    """The body is larger than the server accepts (HTTP 413)."""


class BodyTimeout(BadRequest):
    """The request body stalled longer than the server waits (HTTP 408)."""


_STATUS_OF: tuple[tuple[type[BaseException], HTTPStatus], ...] = (
    (ObjectNotFound, HTTPStatus.NOT_FOUND),
    (StoreNotFound, HTTPStatus.GONE),
    (StoreExists, HTTPStatus.CONFLICT),
    (ObjectExists, HTTPStatus.PRECONDITION_FAILED),  # the ?if_absent=1 condition (as If-None-Match: *)
    (NotSupported, HTTPStatus.NOT_IMPLEMENTED),
    (StoreNotOpen, HTTPStatus.PRECONDITION_FAILED),
    (StoreAlreadyOpen, HTTPStatus.PRECONDITION_FAILED),
    (PermissionDenied, HTTPStatus.FORBIDDEN),
    (QuotaExceeded, HTTPStatus.INSUFFICIENT_STORAGE),
    (ReadRangeError, HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE),
    (IntegrityError, HTTPStatus.UNPROCESSABLE_ENTITY),
    (PayloadTooLarge, HTTPStatus.REQUEST_ENTITY_TOO_LARGE),
    (BodyTimeout, HTTPStatus.REQUEST_TIMEOUT),
    (InvalidName, HTTPStatus.BAD_REQUEST),
    (ValueError, HTTPStatus.BAD_REQUEST),
    (TypeError, HTTPStatus.BAD_REQUEST),
    (StoreError, HTTPStatus.INTERNAL_SERVER_ERROR),
)


def status_for_error(exc: BaseException) -> HTTPStatus:
    """The status a server answers for ``exc`` (500 for anything unexpected)."""
    for error_class, status in _STATUS_OF:
        if isinstance(exc, error_class):
            return status
    return HTTPStatus.INTERNAL_SERVER_ERROR


def error_for_status(status: int, message: str, *, name: str = "") -> StoreError:
    """The exception a client raises for an error status and the server's message."""
    match status:
        case HTTPStatus.NOT_FOUND:
            return ObjectNotFound(name or message)
        case HTTPStatus.GONE:
            return StoreNotFound(message or "the store does not exist")
        case HTTPStatus.CONFLICT:
            return StoreExists(message or "the store exists already")
        case HTTPStatus.PRECONDITION_FAILED:
            if "must not be open" in message:
                return StoreAlreadyOpen(message)
            if "must be open" not in message and "exists" in message:
                return ObjectExists(message)
            return StoreNotOpen(message)
        case HTTPStatus.FORBIDDEN:
            return PermissionDenied(message or name)
        case HTTPStatus.UNAUTHORIZED:
            return PermissionDenied("the server refused the credentials (HTTP 401)")
        case HTTPStatus.INSUFFICIENT_STORAGE:
            return QuotaExceeded(message)
        case HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE:
            return ReadRangeError(message)
        case HTTPStatus.UNPROCESSABLE_ENTITY:
            return IntegrityError(message or HASH_MISMATCH)
        case HTTPStatus.REQUEST_ENTITY_TOO_LARGE:
            return PayloadTooLarge(message or "the body is too large for the server")
        case HTTPStatus.BAD_REQUEST:
            return BadRequest(message)
        case HTTPStatus.NOT_IMPLEMENTED if message:
            return NotSupported(message)
    return BackendError(f"HTTP {status}: {message}" if message else f"HTTP {status}")


def make_range_header(offset: int, size: int | None) -> str | None:
    """The ``Range`` header for ``size`` bytes from ``offset`` (negative: from the end); None for all."""
    if offset < 0:
        return f"bytes={offset}"  # the last -offset bytes; a size is applied by the caller
    if size is None:
        return f"bytes={offset}-" if offset else None
    if size == 0:
        raise ValueError("an empty range has no Range header")
    return f"bytes={offset}-{offset + size - 1}"


# ASCII digits only ([0-9], not \d, which also matches other scripts' digits that int() would accept);
# at most 19 of them, so no number is longer than the largest file offset could be.
_RANGE = re.compile(r"bytes=(?:([0-9]{1,19})-([0-9]{0,19})|-([0-9]{1,19}))")
MAX_RANGE_POSITION = 2**63 - 1
"""The largest byte position a ``Range`` header may name (the largest file offset, ``off_t``)."""


def parse_range_header(value: str) -> tuple[int, int | None]:
    """Parse ``bytes=a-b``, ``bytes=a-`` or ``bytes=-n`` into ``(offset, size)``; offset < 0 counts from the end.

    Raises ``ValueError`` for anything else (several ranges, other units, b < a, positions past 2**63 - 1).
    """
    match = _RANGE.fullmatch(value.strip(" \t"))
    if match is None:
        raise ValueError(f"unsupported Range header: {value!r}")
    first, last, suffix = match.groups()
    if max(int(number) for number in (first, last, suffix) if number) > MAX_RANGE_POSITION:
        raise ValueError(f"invalid Range header (position past {MAX_RANGE_POSITION}): {value!r}")
    if suffix is not None:
        count = int(suffix)
        return (-count, None) if count else (0, 0)
    start = int(first)
    if not last:
        return start, None
    end = int(last)
    if end < start:
        raise ValueError(f"invalid Range header (end before start): {value!r}")
    return start, end - start + 1
