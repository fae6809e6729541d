"""S3's error table: botocore and aiohttp errors → aiodepot errors, applied at the client boundary."""

from __future__ import annotations

import asyncio

import aiohttp
from botocore import exceptions as boto_errors  # type: ignore[import-untyped]

from ...errors import (
    BackendError,
    ConnectionLost,
    IntegrityError,
    ObjectNotFound,
    PermissionDenied,
    QuotaExceeded,
    StoreNotFound,
)
from .._objectstore import ErrorRule, ErrorTable, Native

__all__ = ["CONNECTION_ERRORS", "ERRORS", "is_precondition_failure", "native"]

CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    boto_errors.ConnectionError,
    boto_errors.HTTPClientError,
    boto_errors.IncompleteReadError,
    aiohttp.ClientError,
    asyncio.TimeoutError,
    ConnectionError,
)
"""What a lost or broken connection raises."""


def native(exc: BaseException) -> Native:
    """Code, HTTP status and message of a botocore ``ClientError`` (just the message of anything else)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return Native(message=str(exc))
    error = response.get("Error", {})
    return Native(
        code=str(error.get("Code", "")),
        status=response.get("ResponseMetadata", {}).get("HTTPStatusCode"),
        message=error.get("Message") or "",
    )


ERRORS = ErrorTable(
    rules=(
        ErrorRule(StoreNotFound, "{where}: the bucket does not exist", codes=frozenset({"NoSuchBucket"})),
        ErrorRule(
            ObjectNotFound,
            "{name}",
            codes=frozenset({"NoSuchKey", "404", "NotFound"}),
            statuses=frozenset({404}),
            unless_codes=frozenset({"NoSuchUpload"}),
        ),
        ErrorRule(
            PermissionDenied,
            "{where}: {code}: {text}",
            codes=frozenset(
                {"AccessDenied", "403", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled"}
            ),
            statuses=frozenset({403}),
        ),
        ErrorRule(
            IntegrityError,
            "{where}: the service rejected the data's checksum ({code}: {text})",
            codes=frozenset({"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch", "InvalidChecksum"}),
        ),
        ErrorRule(
            QuotaExceeded,
            "{where}: {code}: {text}",
            codes=frozenset({"QuotaExceeded", "StorageQuotaExceeded", "ServiceQuotaExceeded"}),
        ),
        ErrorRule(BackendError, "{where}: {code_or_status}: {text}", types=(boto_errors.ClientError,)),
        ErrorRule(
            IntegrityError,
            "{where}: the data does not match its stored checksum ({exc})",
            types=(boto_errors.FlexibleChecksumError, boto_errors.ChecksumError),
        ),
        ErrorRule(
            PermissionDenied,
            "{where}: {exc}",
            types=(boto_errors.NoCredentialsError, boto_errors.PartialCredentialsError),
        ),
        ErrorRule(ConnectionLost, "{where}: {exc_type}: {exc}", types=CONNECTION_ERRORS),
        ErrorRule(BackendError, "{where}: {exc}", types=(boto_errors.BotoCoreError,)),
    ),
    native=native,
)
"""The one table: the first row that matches a native error makes its aiodepot error (the native as cause)."""


def is_precondition_failure(error: BaseException) -> bool:
    """Whether a translated error stands for a failed condition (``If-None-Match: *`` found an object)."""
    cause = error.__cause__
    if not isinstance(cause, boto_errors.ClientError):
        return False
    found = native(cause)
    return found.code == "PreconditionFailed" or found.status == 412
