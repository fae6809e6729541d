"""borgstore's ``PosixFS`` backend on [`aiodepot.backends.posixfs`][aiodepot.backends.posixfs] (same on-disk layout)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from ....backends.posixfs import PosixFSBackend
from ....permissions import Permissions
from .._portal import construct
from ..constants import QUOTA_PERSIST_DELTA, QUOTA_PERSIST_INTERVAL, QUOTA_STORE_NAME, TMP_SUFFIX
from ..utils import hashing
from ._base import AiodepotBackend, BackendBase, ItemInfo, validate_name, validate_sources, validate_value
from ._utils import is_win32
from .errors import (
    BackendAlreadyExists,
    BackendDoesNotExist,
    BackendError,
    BackendMustBeOpen,
    BackendMustNotBeOpen,
    ObjectNotFound,
    PermissionDenied,
    QuotaExceeded,
)

__all__ = [
    "QUOTA_PERSIST_DELTA",
    "QUOTA_PERSIST_INTERVAL",
    "TMP_SUFFIX",
    "BackendAlreadyExists",
    "BackendBase",
    "BackendDoesNotExist",
    "BackendError",
    "BackendMustBeOpen",
    "BackendMustNotBeOpen",
    "ItemInfo",
    "ObjectNotFound",
    "PermissionDenied",
    "PosixFS",
    "QuotaExceeded",
    "get_file_backend",
    "hashing",
    "is_win32",
    "validate_name",
    "validate_sources",
    "validate_value",
]

_FILE_URL = re.compile(r"file://(?P<path>/.*)")


def get_file_backend(url: str, permissions: Any = None, quota: int | None = None) -> PosixFS | None:
    """``file:///absolute/path`` → a PosixFS; other URLs (also ``file://host/…``) → None."""
    match = _FILE_URL.match(url)
    if match is None:
        return None
    return PosixFS(unquote(match["path"]), permissions=permissions, quota=quota)


class PosixFS(AiodepotBackend):
    """Items as files below the absolute directory ``path``.

    Args:
        path: the base directory (created with its parents by ``create()``).
        do_fsync: fsync files and directories (slow, survives power loss).
        permissions: a permission map ``{"prefix": "lrwWD"}`` (None: everything allowed).
        quota: a byte limit for the store (None: unlimited).
    """

    precreate_dirs: bool = False
    async_backend: PosixFSBackend

    def __init__(
        self, path: Any, *, do_fsync: bool = False, permissions: dict[str, str] | None = None, quota: int | None = None
    ) -> None:
        self.base_path = Path(path)
        self.do_fsync = do_fsync
        self.quota_limit = quota
        super().__init__(
            construct(PosixFSBackend, str(path), fsync=do_fsync, permissions=permissions or None, quota=quota)
        )

    @property
    def permissions(self) -> dict[str, str]:
        """The permission map in force (empty: everything allowed); assigning a new map takes effect at once."""
        return self.async_backend.permissions.mapping or {}

    @permissions.setter
    def permissions(self, value: dict[str, str] | None) -> None:
        self.async_backend.permissions = construct(Permissions, value or None)

    # borgstore's quota state, as its users (and its tests) read it: backed by aiodepot's accounting ----------

    @property
    def _quota_use(self) -> int:
        """The tracked usage in bytes (0 while closed or without a quota)."""
        state = self.async_backend.quota_state
        return 0 if state is None else state.usage

    @property
    def _quota_use_persisted(self) -> int:
        """The usage last written to the quota file."""
        state = self.async_backend.quota_state
        return 0 if state is None else state.persisted

    @property
    def _quota_last_persist_time(self) -> float:
        """When the usage was last written (``time.monotonic()``)."""
        state = self.async_backend.quota_state
        return 0.0 if state is None else state.persisted_at

    @_quota_last_persist_time.setter
    def _quota_last_persist_time(self, value: float) -> None:
        self.async_backend.set_quota_persisted_at(value)

    def _quota_path(self) -> Path:
        """The quota file."""
        return self.base_path / QUOTA_STORE_NAME

    def _quota_update(self, delta: int, force: bool = False) -> None:
        """Account ``delta`` bytes (unchecked) and persist the usage if due (or ``force``)."""
        self.async_backend.update_quota(delta, force=force)
