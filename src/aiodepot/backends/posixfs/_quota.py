"""The store's quota: usage accounting persisted in ``quota.hid``, and the per-path commit locks that make
"what is there now?" and the commit one step for every writer in the process."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import threading
import time
from collections.abc import Iterator

from ...errors import QuotaExceeded
from ...names import HID_SUFFIX, is_internal
from ._fileio import write_all
from ._tempfiles import temp_path

__all__ = ["COMMIT_LOCKS", "QUOTA_FILE", "PathLocks", "Quota", "QuotaState"]

QUOTA_FILE = "quota" + HID_SUFFIX
QUOTA_PERSIST_DELTA = 10 * 1000 * 1000  # persist the usage once it moved by 10 MB ...
QUOTA_PERSIST_INTERVAL = 300.0  # ... or every 5 minutes


@dataclasses.dataclass(frozen=True, slots=True)
class QuotaState:
    """A posixfs store's quota accounting at one moment (see
    [`PosixFSBackend.quota_state`][aiodepot.backends.posixfs.PosixFSBackend.quota_state])."""

    limit: int
    """The byte limit for the whole store."""
    usage: int
    """The bytes in use as this session tracks them (other sessions' changes merge in when it persists)."""
    persisted: int
    """The usage this session last wrote to ``quota.hid``."""
    persisted_at: float
    """When it last wrote it, a `time.monotonic()` value (0.0: not yet)."""


class PathLocks:
    """A thread lock per path being committed: writers of one path in this process run their "what is
    there now?" check (permissions, quota) and their commit one after the other."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[str, tuple[threading.Lock, int]] = {}

    @contextlib.contextmanager
    def hold(self, *paths: str) -> Iterator[None]:
        """Hold the locks of ``paths`` (sorted, so two holders never wait for each other)."""
        with contextlib.ExitStack() as stack:
            for path in sorted(set(paths)):
                stack.enter_context(self._one(path))
            yield

    @contextlib.contextmanager
    def _one(self, path: str) -> Iterator[None]:
        with self._lock:
            lock, users = self._held.get(path) or (threading.Lock(), 0)
            self._held[path] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._lock:
                lock, users = self._held[path]
                if users == 1:
                    del self._held[path]
                else:
                    self._held[path] = (lock, users - 1)


COMMIT_LOCKS = PathLocks()
"""Shared by every backend in the process: two backends on one directory lock the same paths."""


class Quota:
    """Usage accounting against a byte limit, persisted in ``quota.hid`` and merged across sessions."""

    def __init__(self, base: str, limit: int) -> None:
        self.path = os.path.join(base, QUOTA_FILE)
        self.base = base
        self.limit = limit
        self.usage = 0
        self._persisted = 0
        self._persisted_at = 0.0
        self._lock = threading.Lock()

    def state(self) -> QuotaState:
        """The accounting as it is now (without the lock, which a persist holds through its file I/O: the
        event loop may ask)."""
        return QuotaState(self.limit, self.usage, self._persisted, self._persisted_at)

    def set_persisted_at(self, when: float) -> None:
        """Count the persist interval from ``when`` (a `time.monotonic()` value) instead."""
        self._persisted_at = when

    def reserve(self, delta: int) -> None:
        """Account ``delta`` bytes; raise [`QuotaExceeded`][aiodepot.errors.QuotaExceeded] past the limit."""
        with self._lock:
            if delta > 0 and self.usage + delta > self.limit:
                raise QuotaExceeded(f"quota exceeded: {self.usage + delta} > {self.limit} bytes")
            self.usage += delta

    def release(self, delta: int) -> None:
        """Undo a reservation of an operation that failed."""
        with self._lock:
            self.usage -= delta

    def flush(self, *, force: bool = False) -> None:
        """Persist the usage if it moved enough, enough time passed, or ``force``."""
        with self._lock:
            pending = self.usage - self._persisted
            due = time.monotonic() - self._persisted_at >= QUOTA_PERSIST_INTERVAL
            if force or due or abs(pending) >= QUOTA_PERSIST_DELTA:
                self._merge(pending)

    def _scan(self, path: str) -> int:
        total = 0
        with os.scandir(path) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    total += self._scan(entry.path)
                elif entry.is_file(follow_symlinks=False) and entry.path != self.path:
                    if path == self.base and is_internal(entry.name):
                        continue  # the store's own layout.hid, no more usage than quota.hid
                    total += entry.stat(follow_symlinks=False).st_size
        return total

    def _merge(self, delta: int) -> None:
        # The quota file is its own lock file. A session that locked a file another session has just
        # replaced holds a lock on a dead inode: it notices (samestat) and tries again.
        while True:
            fd = os.open(self.path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    if not os.path.samestat(os.fstat(fd), os.stat(self.path)):
                        continue
                except FileNotFoundError:
                    continue
                try:
                    on_disk = int(os.read(fd, 100))
                except ValueError:  # new or damaged file: count what is really there
                    on_disk, delta = self._scan(self.base), 0
                value = max(on_disk + delta, 0)
                tmp = temp_path(self.path)
                tmp_fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
                try:
                    write_all(tmp_fd, str(value).encode())
                    os.fsync(tmp_fd)
                finally:
                    os.close(tmp_fd)
                try:
                    os.replace(tmp, self.path)
                except OSError:
                    os.unlink(tmp)
                    raise
                self.usage = self._persisted = value
                self._persisted_at = time.monotonic()
                return
            finally:
                try:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                finally:
                    os.close(fd)
