"""borgstore's ``Rclone`` backend on aiodepot's [`aiodepot.backends.rclone`][aiodepot.backends.rclone]."""

from __future__ import annotations

import logging
import os
import shutil

from .._portal import construct
from ._base import AiodepotBackend, BackendBase, ItemInfo, validate_name, validate_value
from ._lazy import backend_class
from ._utils import ignore_sigint, make_range_header
from .errors import (
    BackendAlreadyExists,
    BackendDoesNotExist,
    BackendError,
    BackendMustBeOpen,
    BackendMustNotBeOpen,
    ObjectNotFound,
)

__all__ = [
    "RCLONE",
    "RCLONE_DEBUG",
    "BackendAlreadyExists",
    "BackendBase",
    "BackendError",
    "BackendMustBeOpen",
    "BackendMustNotBeOpen",
    "ItemInfo",
    "ObjectNotFound",
    "Rclone",
    "get_rclone_backend",
    "ignore_sigint",
    "make_range_header",
    "validate_name",
    "validate_value",
]

RCLONE = os.environ.get("RCLONE_BINARY", "rclone")
"""The rclone program."""

RCLONE_DEBUG = os.environ.get("BORGSTORE_RCLONE_DEBUG", "0")
"""``$BORGSTORE_RCLONE_DEBUG``: when true (1, yes, on…), the rclone backend and its HTTP client log at DEBUG."""
if RCLONE_DEBUG.strip().lower() in ("1", "true", "yes", "y", "on"):
    logging.basicConfig()
    for _logger in ("aiodepot.backends.rclone", "aiohttp.client"):
        logging.getLogger(_logger).setLevel(logging.DEBUG)


def get_rclone_backend(url: str) -> Rclone | None:
    """``rclone:remote:path`` (passed to rclone as it is) → an Rclone; other URLs → None."""
    if not url.startswith("rclone:"):
        return None
    if shutil.which(RCLONE) is None:
        raise BackendDoesNotExist("rclone binary not found on the path or not working properly")
    return Rclone(url[len("rclone:") :])


class Rclone(AiodepotBackend):
    """Items on any rclone remote, through a private ``rclone rcd``.

    Args:
        path: the rclone remote and path (``remote:path`` or a local path).
        do_fsync: accepted for compatibility; rclone decides about syncing.
    """

    precreate_dirs: bool = False

    def __init__(self, path: str, *, do_fsync: bool = False) -> None:
        self.fs = path if path.endswith((":", "/")) else path + "/"
        self.do_fsync = do_fsync
        backend_type = backend_class("rclone", "RcloneBackend", "rclone")
        super().__init__(construct(backend_type, path, rclone=RCLONE))
