"""posixfs's one error table: OS errors of file operations as [`StoreError`][aiodepot.errors.StoreError]s."""

from __future__ import annotations

import errno
from typing import NoReturn

from ...errors import BackendError, InvalidName, ObjectNotFound, PermissionDenied, QuotaExceeded, StoreError

__all__ = ["NOT_FOUND", "raise_translated"]

NOT_FOUND = (FileNotFoundError, NotADirectoryError, IsADirectoryError)
"""What a missing item (or a missing directory on its way) raises."""


def raise_translated(exc: OSError, name: str) -> NoReturn:
    """Re-raise an OS error as the matching [`StoreError`][aiodepot.errors.StoreError], keeping it as the cause."""
    if isinstance(exc, StoreError):  # PermissionDenied is a PermissionError too: already translated
        raise exc
    if isinstance(exc, NOT_FOUND):
        raise ObjectNotFound(name) from exc
    if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a symbolic link
        raise PermissionDenied(f"{name}: is a symbolic link, which the store does not follow") from exc
    if isinstance(exc, FileExistsError):
        raise InvalidName(f"{name}: another kind of entry is in the way") from exc
    if exc.errno == errno.ENOTEMPTY:
        raise InvalidName(f"{name}: the directory is not empty") from exc
    if exc.errno == errno.EINVAL:  # e.g. a directory moved into itself
        raise InvalidName(f"{name}: {exc.strerror}") from exc
    where = name or "the store directory"
    if isinstance(exc, PermissionError):
        raise PermissionDenied(f"{where}: {exc.strerror}") from exc
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        raise QuotaExceeded(f"{where}: {exc.strerror}") from exc
    raise BackendError(f"{where}: {exc.strerror or exc}") from exc
