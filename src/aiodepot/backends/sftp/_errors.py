"""Error translation for the sftp backend: one table from asyncssh's errors to aiodepot's.

[`ERRORS`][aiodepot.backends.sftp._errors.ERRORS] maps an SFTP status code, or an asyncssh exception
type, to the aiodepot error class and its message. ``SftpBackend._run`` (and the streaming read, which
runs outside it) apply it at the boundary with [`raise_translated`][aiodepot.backends.sftp._errors.raise_translated],
keeping the native error as ``__cause__``.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Mapping
from typing import NoReturn

import asyncssh

from ...errors import BackendError, ConnectionLost, ObjectNotFound, PermissionDenied, QuotaExceeded, StoreError

__all__ = ["ERRORS", "is_lost", "is_not_found", "raise_translated", "translate"]

ERRORS: Mapping[int | type[asyncssh.Error], tuple[type[StoreError], str]] = {
    # SFTP status codes ({reason}: the server's message)
    asyncssh.FX_NO_SUCH_FILE: (ObjectNotFound, "{name}"),
    asyncssh.FX_NO_SUCH_PATH: (ObjectNotFound, "{name}"),
    asyncssh.FX_NOT_A_DIRECTORY: (ObjectNotFound, "{name}"),
    asyncssh.FX_INVALID_FILENAME: (ObjectNotFound, "{name}"),
    asyncssh.FX_PERMISSION_DENIED: (PermissionDenied, "{name}: {reason}"),
    asyncssh.FX_WRITE_PROTECT: (PermissionDenied, "{name}: {reason}"),
    asyncssh.FX_CANNOT_DELETE: (PermissionDenied, "{name}: {reason}"),
    asyncssh.FX_NO_SPACE_ON_FILESYSTEM: (QuotaExceeded, "{name}: {reason}"),
    asyncssh.FX_QUOTA_EXCEEDED: (QuotaExceeded, "{name}: {reason}"),
    asyncssh.FX_CONNECTION_LOST: (ConnectionLost, "{name}: {reason}"),
    asyncssh.FX_NO_CONNECTION: (ConnectionLost, "{name}: {reason}"),
    # SSH errors
    asyncssh.PermissionDenied: (PermissionDenied, "SSH authentication failed: {reason}"),
    asyncssh.HostKeyNotVerifiable: (
        BackendError,
        "the SSH host key was not verified ({reason}): add the host to known_hosts "
        "(e.g. connect once with ssh), or pass accept_unknown_host=True",
    ),
}
"""SFTP status code or asyncssh error type → (aiodepot error class, message template).

The template's ``{name}`` is the item, ``{reason}`` the native error's reason. An SFTP status code not
listed becomes a [`BackendError`][aiodepot.errors.BackendError]; a lost connection (see ``is_lost``)
a [`ConnectionLost`][aiodepot.errors.ConnectionLost].
"""

_NOT_FOUND_CODES = frozenset(
    code for code, (kind, _) in ERRORS.items() if isinstance(code, int) and kind is ObjectNotFound
)
_LOST_CODES = frozenset(code for code, (kind, _) in ERRORS.items() if isinstance(code, int) and kind is ConnectionLost)
# disconnects that a new connection may well not repeat (the others: authentication, host key, protocol)
_TRANSIENT_DISCONNECTS = frozenset(
    {
        asyncssh.DISC_CONNECTION_LOST,
        asyncssh.DISC_BY_APPLICATION,
        asyncssh.DISC_TOO_MANY_CONNECTIONS,
        asyncssh.DISC_PROTOCOL_ERROR,
        asyncssh.DISC_MAC_ERROR,
    }
)
_NETWORK_ERRNOS = frozenset(
    getattr(errno, name)
    for name in ("ENETDOWN", "ENETUNREACH", "ENETRESET", "EHOSTDOWN", "EHOSTUNREACH", "ETIMEDOUT", "EPIPE")
    if hasattr(errno, name)
)


def is_lost(exc: BaseException) -> bool:
    """True if ``exc`` means the connection is gone or hangs: a new connection may succeed."""
    if isinstance(exc, asyncssh.SFTPError):
        return exc.code in _LOST_CODES
    if isinstance(exc, asyncssh.DisconnectError):
        return exc.code in _TRANSIENT_DISCONNECTS
    return isinstance(exc, ConnectionError | TimeoutError | EOFError | socket.gaierror) or (
        isinstance(exc, OSError) and exc.errno in _NETWORK_ERRNOS
    )


def is_not_found(exc: BaseException) -> bool:
    """True if ``exc`` is an SFTP status that means the file (or a directory on its path) is missing."""
    return isinstance(exc, asyncssh.SFTPError) and exc.code in _NOT_FOUND_CODES


def _entry(exc: BaseException) -> tuple[type[StoreError], str] | None:
    if isinstance(exc, asyncssh.SFTPError):
        return ERRORS.get(exc.code)
    for kind in type(exc).__mro__:
        if kind in ERRORS:
            return ERRORS[kind]
    return None


def translate(exc: BaseException, name: str) -> StoreError:
    """The [`StoreError`][aiodepot.errors.StoreError] for a native error (the caller raises it ``from exc``)."""
    if isinstance(exc, StoreError):
        return exc
    entry = _entry(exc)
    if entry is not None:
        kind, message = entry
        return kind(message.format(name=name, reason=getattr(exc, "reason", "")))
    if isinstance(exc, asyncssh.SFTPError):
        return BackendError(f"{name}: {exc.reason or 'SFTP error ' + str(exc.code)}")
    if is_lost(exc):
        return ConnectionLost(f"{name}: {exc!r}")
    return BackendError(f"{name}: {exc!r}")


def raise_translated(exc: BaseException, name: str) -> NoReturn:
    """Raise the translation of an asyncssh or network error; anything else (a stream's own error, a
    ``ValueError`` of a size check, a local file's ``OSError``) goes on as it is."""
    if isinstance(exc, asyncssh.Error) or is_lost(exc):
        raise translate(exc, name) from exc
    raise exc
