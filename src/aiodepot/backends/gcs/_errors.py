"""GCS's error table: HTTP replies and aiohttp errors → aiodepot errors, applied at the client boundary.

gcloud-aio-storage raises ``aiohttp.ClientResponseError`` for a reply of 400 or more, its message the
reason and the service's JSON body (``Not Found: {"error": {"code": 404, "message": …}}``); the requests
this backend sends itself raise the same (see `raise_for_status`), so one table reads both.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp

from ...errors import (
    BackendError,
    ConnectionLost,
    IntegrityError,
    ObjectNotFound,
    PermissionDenied,
    QuotaExceeded,
    StoreError,
)
from .._objectstore import ErrorRule, ErrorTable, Native

__all__ = ["ERRORS", "is_precondition_failure", "is_transient", "native", "raise_for_status"]

CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    aiohttp.ClientConnectionError,
    aiohttp.ClientPayloadError,
    asyncio.TimeoutError,
    ConnectionError,
)
"""What a lost or broken connection raises."""

TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
"""Replies that GCS documents as worth another try."""
CHECKSUM_MISMATCH = "checksumMismatch"
"""The code this table gives a 400 that says the data does not match the CRC32C or MD5 sent with it."""


def _one_line(text: str) -> str:
    return " ".join(text.split())


def native(exc: BaseException) -> Native:
    """Reason, HTTP status and message of a ``ClientResponseError`` (just the message of anything else)."""
    if not isinstance(exc, aiohttp.ClientResponseError):
        return Native(message=_one_line(str(exc)))
    reason, _, body = exc.message.partition(": ")
    try:
        error = json.loads(body)["error"]
        if isinstance(error, str):  # OAuth's form: {"error": "invalid_grant", "error_description": "…"}
            description = json.loads(body).get("error_description") or error
            return Native(code=error, status=exc.status, message=_one_line(str(description)))
        details = (error.get("errors") or [{}])[0]
        message = str(error.get("message") or reason)
        code = str(details.get("reason") or reason)
        if exc.status == 400 and ("crc32c" in message.lower() or "md5" in message.lower()):
            code = CHECKSUM_MISMATCH
        return Native(
            code=code,
            status=exc.status,
            message=_one_line(message),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return Native(code=reason, status=exc.status, message=_one_line(body or reason))


ERRORS = ErrorTable(
    rules=(
        ErrorRule(ObjectNotFound, "{name}", statuses=frozenset({404})),
        ErrorRule(PermissionDenied, "{where}: {status}: {text}", statuses=frozenset({401, 403})),
        ErrorRule(QuotaExceeded, "{where}: {code}: {text}", codes=frozenset({"quotaExceeded", "storageQuotaExceeded"})),
        ErrorRule(
            IntegrityError,
            "{where}: the service rejected the data's checksum ({text})",
            codes=frozenset({CHECKSUM_MISMATCH}),
        ),
        ErrorRule(BackendError, "{where}: {status} {code}: {text}", types=(aiohttp.ClientResponseError,)),
        ErrorRule(ConnectionLost, "{where}: {exc_type}: {text}", types=CONNECTION_ERRORS),
    ),
    native=native,
)
"""The one table: the first row that matches a native error makes its aiodepot error (the native as cause)."""


async def raise_for_status(response: aiohttp.ClientResponse) -> None:
    """Raise the ``ClientResponseError`` gcloud-aio raises for a reply of 400 or more (with the body)."""
    if response.status < 400:
        return
    body = await response.text(errors="replace")
    response.release()
    raise aiohttp.ClientResponseError(
        response.request_info,
        response.history,
        status=response.status,
        message=f"{response.reason}: {body}",
        headers=response.headers,
    )


def _status(error: BaseException) -> int | None:
    cause = error.__cause__ if isinstance(error, StoreError) else error
    return cause.status if isinstance(cause, aiohttp.ClientResponseError) else None


def is_precondition_failure(error: BaseException) -> bool:
    """Whether a translated error stands for a failed precondition (``ifGenerationMatch``: 412)."""
    return _status(error) == 412


def is_transient(error: BaseException) -> bool:
    """Whether a translated error is worth another try: a lost connection, a 408/429/5xx reply."""
    return isinstance(error, ConnectionLost) or _status(error) in TRANSIENT_STATUSES
