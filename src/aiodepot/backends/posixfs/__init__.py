"""``file:///abs/path`` — items as files in directories below a base path.

The layout is borgstore's, so either library opens the other's stores: one file per item at its nested
path, ``.del`` appended for soft-deleted items, ``quota.hid`` for the persisted quota usage, and temporary
``….tmp`` files that are renamed into place, so a reader never sees a half-written value.

A temp file's name says who writes it (``<item>.w<host>-<pid>-<start>-<n>.tmp``: a key for this machine's
boot and PID namespace, the writer's process id and start time), and each open backend registers its
session in an empty ``session.w<host>-<pid>-<start>-<n>.hid`` file at the top, removed by ``close``. A
session whose registration outlives it crashed: the next ``open`` finds that registration (one directory
read), then walks the store and removes the temp files crashed writers left behind: those of processes on
this machine that no longer run, and any other temp file (another machine's, borgstore's) untouched for
`STALE_TEMP_AGE` seconds. A live writer's temp file is kept. Without a crashed session ``open`` walks nothing.

Every operation is one job on the backend's thread pool (open, read and close in one hop); big values
stream through `aiofiles`.

The package, by concern: ``backend`` (the Backend hooks), ``_safe_open`` (opening paths below the base
without following a symbolic link), ``_tempfiles`` (temp files, session registrations, crash cleanup),
``_quota`` (the quota accounting and the per-path commit locks), ``_fileio`` (exact reads, kernel copies,
fsync) and ``_errors`` (OS errors as store errors).
"""

from __future__ import annotations

from ._quota import QuotaState
from ._tempfiles import MACHINE as _MACHINE  # noqa: F401
from ._tempfiles import STALE_TEMP_AGE
from ._tempfiles import start_time as _start_time  # noqa: F401
from ._tempfiles import temp_path as _temp_path  # noqa: F401
from .backend import PosixFSBackend

__all__ = ["STALE_TEMP_AGE", "PosixFSBackend", "QuotaState"]
# _MACHINE, _start_time and _temp_path: the writer naming under the single module's names, for tests that
# make temp files as other writers would.
