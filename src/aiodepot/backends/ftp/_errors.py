"""Error translation for the ftp backend: FTP replies and network errors to aiodepot's errors, applied at the
boundary by ``FtpBackend._run`` with [`translate`][aiodepot.backends.ftp._errors.translate], keeping the native
error as ``__cause__``."""

from __future__ import annotations

import errno
import socket
import ssl as ssl_module

import aioftp

from ...errors import (
    BackendError,
    ConnectionLost,
    NotSupported,
    ObjectNotFound,
    PermissionDenied,
    QuotaExceeded,
    StoreError,
)

__all__ = ["is_lost", "is_missing", "reply", "translate"]

_NETWORK_ERRNOS = frozenset(
    getattr(errno, name)
    for name in ("ENETDOWN", "ENETUNREACH", "ENETRESET", "EHOSTDOWN", "EHOSTUNREACH", "ETIMEDOUT", "EPIPE")
    if hasattr(errno, name)
)
_LOST_REPLIES = frozenset({"421", "425", "426"})
"""Replies that mean the connection (or its data connection) broke: a new try may succeed."""
_DENIED_WORDS = ("permission", "privilege", "denied", "not allowed", "forbidden")
_REQUIRED_FEATURES = {"MLST": "MLST/MLSD (RFC 3659)", "REST STREAM": "REST STREAM (RFC 3659)"}


def reply(exc: aioftp.StatusCodeError) -> tuple[str, str]:
    """The reply code and its text, on one line."""
    code = str(exc.received_codes[-1]) if exc.received_codes else "???"
    lines = exc.info if isinstance(exc.info, list) else [str(exc.info)]
    return code, " ".join(line.strip().lstrip("-").strip() for line in lines if line.strip())


def is_lost(exc: BaseException) -> bool:
    """True if ``exc`` means the connection is gone or hangs: a new connection may succeed."""
    if isinstance(exc, aioftp.StatusCodeError):
        return reply(exc)[0] in _LOST_REPLIES
    if isinstance(exc, ssl_module.SSLError):
        return False  # a certificate or protocol problem: another try gives the same answer
    return isinstance(exc, ConnectionError | TimeoutError | EOFError | socket.gaierror) or (
        isinstance(exc, OSError) and exc.errno in _NETWORK_ERRNOS
    )


def is_missing(exc: BaseException) -> bool:
    """True if ``exc`` is a 550 reply that does not say permission was refused."""
    if not isinstance(exc, aioftp.StatusCodeError):
        return False
    code, text = reply(exc)
    return code == "550" and not any(word in text.lower() for word in _DENIED_WORDS)


def translate(exc: BaseException, where: str) -> StoreError:
    """The [`StoreError`][aiodepot.errors.StoreError] for an FTP reply or a network error, with a one-line
    message that starts with ``where`` (the server and the item); the caller raises it ``from exc``."""
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, aioftp.StatusCodeError):
        code, text = reply(exc)
        message = f"{where}: {code} {text}"
        lowered = text.lower()
        if code in ("530", "532"):
            return PermissionDenied(f"{where}: login refused: {code} {text}")
        if code in ("550", "553", "450") and any(word in lowered for word in _DENIED_WORDS):
            return PermissionDenied(message)
        if code == "550" and "not empty" in lowered:
            return BackendError(message)
        if code == "550":
            return ObjectNotFound(message)
        if code in ("452", "552"):
            return QuotaExceeded(message)
        if code in ("500", "501", "502", "504"):
            return NotSupported(message)
        if code in _LOST_REPLIES:
            return ConnectionLost(message)
        return BackendError(message)
    if isinstance(exc, ssl_module.SSLError):
        return BackendError(f"{where}: TLS failed: {getattr(exc, 'verify_message', None) or exc.reason or exc}")
    if is_lost(exc):
        return ConnectionLost(f"{where}: connection lost: {exc!r}")
    return BackendError(f"{where}: {exc!r}")
