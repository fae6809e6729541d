"""borgstore's ``Rclone`` backend on aiodepot's [`aiodepot.backends.rclone`][aiodepot.backends.rclone]."""

from __future__ import annotations

import os
import shutil

from .._portal import construct
from ._base import AiodepotBackend
from ._lazy import backend_class
from .errors import BackendDoesNotExist

__all__ = ["RCLONE", "Rclone", "get_rclone_backend"]

RCLONE = os.environ.get("RCLONE_BINARY", "rclone")
"""The rclone program."""


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
