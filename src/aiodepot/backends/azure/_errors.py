"""Azure's error table: azure-core and aiohttp errors → aiodepot errors, applied at the client boundary."""

from __future__ import annotations

import asyncio

import aiohttp
from azure.core import exceptions as azure_errors

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

__all__ = ["CONNECTION_ERRORS", "ERRORS", "READ_MISMATCH", "is_conflict", "native", "status_of"]

CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    azure_errors.ServiceRequestError,  # before the request went out (refused, reset, timed out)
    azure_errors.ServiceResponseError,  # while waiting for the reply
    azure_errors.IncompleteReadError,  # the body broke off
    aiohttp.ClientError,
    asyncio.TimeoutError,
    ConnectionError,
)
"""What a lost or broken connection raises."""

READ_MISMATCH = "ContentMismatch"
"""The code given to the SDK's own check of a downloaded body against the service's MD5 (no service code)."""


def _one_line(text: object) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else ""


def native(exc: BaseException) -> Native:
    """Code, HTTP status and one-line message of an azure-core error (just the message of anything else)."""
    if isinstance(exc, azure_errors.HttpResponseError) and exc.status_code is not None:
        code = str(getattr((found := getattr(exc, "error_code", None)), "value", found) or "")
        message = _one_line(exc.reason if exc.reason and exc.reason != "None" else exc.message)
        if exc.status_code == 400 and "md5" in message.lower() and "match" in message.lower():
            code = "Md5Mismatch"  # Azurite says InvalidOperation where the service says Md5Mismatch
        return Native(code=code, status=exc.status_code, message=message)
    message = _one_line(exc)
    if isinstance(exc, azure_errors.AzureError) and "mismatch" in message.lower():
        return Native(code=READ_MISMATCH, message=message)
    return Native(message=message)


def status_of(error: BaseException | None) -> int | None:
    """The HTTP status behind a translated error (its cause; None for none)."""
    cause = error.__cause__ if error is not None else None
    return native(cause).status if cause is not None else None


ERRORS = ErrorTable(
    rules=(
        ErrorRule(StoreNotFound, "{where}: the container does not exist", codes=frozenset({"ContainerNotFound"})),
        ErrorRule(
            ObjectNotFound,
            "{name}",
            types=(azure_errors.ResourceNotFoundError,),
            codes=frozenset({"BlobNotFound"}),
            statuses=frozenset({404}),
        ),
        ErrorRule(
            PermissionDenied,
            "{where}: {code_or_status}: {text}",
            codes=frozenset(
                {
                    "AuthenticationFailed",
                    "AuthorizationFailure",
                    "AuthorizationPermissionMismatch",
                    "AuthorizationResourceTypeMismatch",
                    "InsufficientAccountPermissions",
                    "AccountIsDisabled",
                }
            ),
            statuses=frozenset({401, 403}),
        ),
        ErrorRule(
            IntegrityError,
            "{where}: the service rejected the data's checksum ({code}: {text})",
            codes=frozenset({"Md5Mismatch", "Crc64Mismatch", "InvalidMd5"}),
        ),
        ErrorRule(
            IntegrityError,
            "{where}: the data does not match the service's checksum ({text})",
            codes=frozenset({READ_MISMATCH}),
        ),
        ErrorRule(QuotaExceeded, "{where}: {code}: {text}", codes=frozenset({"AccountLimitExceeded"})),
        ErrorRule(ConnectionLost, "{where}: {exc_type}: {text}", types=CONNECTION_ERRORS),
        ErrorRule(BackendError, "{where}: {code_or_status}: {text}", types=(azure_errors.HttpResponseError,)),
        ErrorRule(PermissionDenied, "{where}: {text}", types=(azure_errors.ClientAuthenticationError,)),
        ErrorRule(BackendError, "{where}: {exc_type}: {text}", types=(azure_errors.AzureError,)),
    ),
    native=native,
)
"""The one table: the first row that matches a native error makes its aiodepot error (the native as cause)."""


def is_conflict(error: BaseException) -> bool:
    """Whether a translated error says a condition failed (``If-None-Match: *`` found a blob: 409 or 412)."""
    return status_of(error) in (409, 412)
