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
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import hashlib
import itertools
import os
import platform
import re
import shutil
import stat
import sys
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Sequence
from typing import Any, NoReturn, Self, TypeVar
from urllib.parse import unquote

import aiofiles

from .._threads import Offloader
from ..errors import (
    BackendError,
    BackendURLInvalid,
    InvalidName,
    ObjectNotFound,
    PermissionDenied,
    QuotaExceeded,
    ReadRangeError,
    StoreCorrupt,
    StoreError,
    StoreExists,
    StoreNotFound,
)
from ..hashing import check_algorithm, file_digest
from ..items import ItemInfo, Source, StoreValue, validate_sources, validate_value
from ..names import HID_SUFFIX, TMP_SUFFIX, validate_backend_name
from .base import Backend, Capabilities, pwrite_all
from .options import Limits, RetryPolicy, Timeouts, legacy_options

__all__ = ["STALE_TEMP_AGE", "PosixFSBackend"]

T = TypeVar("T")

MiB = 1024 * 1024
QUOTA_FILE = "quota" + HID_SUFFIX
QUOTA_PERSIST_DELTA = 10 * 1000 * 1000  # persist the usage once it moved by 10 MB ...
QUOTA_PERSIST_INTERVAL = 300.0  # ... or every 5 minutes
_NOT_FOUND = (FileNotFoundError, NotADirectoryError, IsADirectoryError)
STALE_TEMP_AGE = 3600.0
"""Seconds after its last write a temp file whose writer cannot be checked counts as left behind."""


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _start_time(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks after boot, from ``/proc``); None if it does not run
    (a zombie runs no more either)."""
    stat_line = _read_text(f"/proc/{pid}/stat")
    fields = stat_line.rpartition(")")[2].split()  # the command name in (...) may hold anything
    if len(fields) < 20 or fields[0] in ("Z", "X", "x"):
        return None
    try:
        return int(fields[19])  # field 22 of the line; the pid and the name came before
    except ValueError:
        return None


def _machine_key() -> str:
    """8 hex digits naming this boot of this machine and this PID namespace: within one key, a process id
    and start time name one process, so a writer's liveness can be checked."""
    try:
        namespace = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        namespace = ""
    boot = _read_text("/proc/sys/kernel/random/boot_id").strip()
    if not boot:  # no /proc: fall back to the machine and its boot time as far as Python sees them
        boot = f"{os.uname().nodename}-{time.time() - time.monotonic():.0f}"
    return hashlib.sha256(f"{os.uname().nodename}|{boot}|{namespace}".encode()).hexdigest()[:8]


_MACHINE = _machine_key()
_WRITER = r"w([0-9a-f]{8})-(\d+)-(\d+)-[0-9a-f]+"
_TEMP_PATTERN = re.compile(r"\." + _WRITER + re.escape(TMP_SUFFIX) + r"\Z")
_SESSION_PREFIX = "session."
_SESSION_PATTERN = re.compile(re.escape(_SESSION_PREFIX) + _WRITER + re.escape(HID_SUFFIX))
_writer: tuple[int, str] = (0, "")
_counter = itertools.count()


def _writer_name() -> str:
    """``w<machine>-<pid>-<start>-<n>``: this process, and a number no other name of it had."""
    global _writer
    pid = os.getpid()
    if _writer[0] != pid:  # first use, or a forked child
        _writer = (pid, f"w{_MACHINE}-{pid}-{_start_time(pid) or 0}")
    return f"{_writer[1]}-{next(_counter):x}"


def _temp_path(path: str) -> str:
    """A fresh temp file name beside ``path`` that names its writer (see the module docs)."""
    return f"{path}.{_writer_name()}{TMP_SUFFIX}"


def _gone(match: re.Match[str] | None, mtime: float, now: float) -> bool:
    """Whether the writer a name matched (None: a name that names none) runs no more; one that cannot be
    checked (another machine's, another program's) counts as gone once untouched for `STALE_TEMP_AGE`."""
    if match is not None and match[1] == _MACHINE:
        pid, started = int(match[2]), int(match[3])
        running = _start_time(pid)
        return running is None or (started != 0 and running != started)
    return now - mtime > STALE_TEMP_AGE


def _left_behind(name: str, mtime: float, now: float) -> bool:
    """Whether the temp file ``name`` (last written at ``mtime``) belongs to no writer any more."""
    return _gone(_TEMP_PATTERN.search(name), mtime, now)


def _dead_sessions(base: str) -> list[str]:
    """The session registrations at the top of ``base`` whose sessions ended without ``close``."""
    now = time.time()
    dead = []
    with os.scandir(base) as entries:
        for entry in entries:
            match = _SESSION_PATTERN.fullmatch(entry.name)
            if match is None:
                continue
            try:
                mtime = entry.stat(follow_symlinks=False).st_mtime
            except FileNotFoundError:
                continue
            if _gone(match, mtime, now):
                dead.append(entry.path)
    return dead


def _remove_left_behind(base: str) -> int:
    """Remove the temp files below ``base`` that crashed writers left; return how many."""
    removed = 0
    now = time.time()
    pending = [base]
    while pending:
        directory = pending.pop()
        try:
            entries = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError):
            continue  # removed meanwhile
        for entry in entries:
            if entry.name.endswith(TMP_SUFFIX):
                try:
                    st = entry.stat(follow_symlinks=False)
                    if stat.S_ISREG(st.st_mode) and _left_behind(entry.name, st.st_mtime, now):
                        os.unlink(entry.path)
                        removed += 1
                except FileNotFoundError:
                    pass  # renamed into place or removed meanwhile
            elif entry.is_dir(follow_symlinks=False):
                pending.append(entry.path)
    return removed


def _raise_translated(exc: OSError, name: str) -> NoReturn:
    """Re-raise an OS error as the matching [`StoreError`][aiodepot.errors.StoreError], keeping it as the cause."""
    if isinstance(exc, StoreError):  # PermissionDenied is a PermissionError too: already translated
        raise exc
    if isinstance(exc, _NOT_FOUND):
        raise ObjectNotFound(name) from exc
    if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a symbolic link
        raise PermissionDenied(f"{name}: is a symbolic link, which the store does not follow") from exc
    if isinstance(exc, FileExistsError):
        raise InvalidName(f"{name}: another kind of entry is in the way") from exc
    where = name or "the store directory"
    if isinstance(exc, PermissionError):
        raise PermissionDenied(f"{where}: {exc.strerror}") from exc
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        raise QuotaExceeded(f"{where}: {exc.strerror}") from exc
    raise BackendError(f"{where}: {exc.strerror or exc}") from exc


# The store never follows a symbolic link (borgstore's layout has none; one planted inside the store could
# lead a read or write out of it). On Linux 5.6+ every item and directory is opened with openat2(2) below
# the base directory and RESOLVE_NO_SYMLINKS: the kernel refuses a link anywhere on the way, in the same
# system call. Elsewhere items are opened with O_NOFOLLOW (a link as the last element is refused for free)
# and the kernel says where an opened file really is (a readlink of /proc/self/fd/N): anywhere but its own
# path below the base means a link on the way. Writes, removals and renames check their directory so
# before they touch it.
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_PATH = getattr(os, "O_PATH", os.O_RDONLY | os.O_NONBLOCK)  # O_PATH: no access check, no FIFO open
_SYS_OPENAT2 = 437  # the same number on every architecture that got the unified numbers (all but these:)
_OPENAT2_MACHINES = frozenset({"x86_64", "aarch64", "arm64", "i686", "i386", "armv7l", "riscv64", "ppc64le", "s390x"})
_RESOLVE_NO_SYMLINKS_BENEATH = 0x04 | 0x08


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def _find_openat2() -> Callable[[int, str, int], int] | None:
    """``openat2(dirfd, path, flags)`` that refuses symbolic links and escapes from ``dirfd``, or None where
    the kernel (or a seccomp filter) does not have it."""
    if sys.platform != "linux" or platform.machine() not in _OPENAT2_MACHINES:
        return None
    try:
        syscall = ctypes.CDLL(None, use_errno=True).syscall
    except (OSError, AttributeError):
        return None
    syscall.restype = ctypes.c_long
    syscall.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
    # per flags: the open_how structure (kept alive here) and its address; an int converts fastest
    hows: dict[int, tuple[_OpenHow, int]] = {}
    how_size = ctypes.sizeof(_OpenHow)

    def openat2(dirfd: int, path: str, flags: int) -> int:
        entry = hows.get(flags)
        if entry is None:
            how = _OpenHow(flags, 0, _RESOLVE_NO_SYMLINKS_BENEATH)
            entry = hows[flags] = (how, ctypes.addressof(how))
        fd: int = syscall(_SYS_OPENAT2, dirfd, os.fsencode(path), entry[1], how_size)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), path)
        return fd

    try:
        root = os.open("/", _O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.close(openat2(root, ".", _O_PATH | os.O_DIRECTORY | os.O_CLOEXEC))
        finally:
            os.close(root)
    except OSError:  # ENOSYS (before 5.6) or EPERM (a seccomp filter that does not know it)
        return None
    return openat2


_openat2 = _find_openat2()


class _BaseDir:
    """An open handle on the base directory for openat2; closed when the last user lets go of it (a job
    still running after ``close()`` keeps it, so its number is never reused under it)."""

    __slots__ = ("fd",)

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, _O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)

    def __del__(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


def _real_path(fd: int, path: str) -> str:
    """Where the open file ``fd`` (opened as ``path``) really is, all symbolic links resolved."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:  # no /proc: ask the file system, which is slower and can race
        return os.path.realpath(path)


_MAX_POSITION = 2**63 - 1
_LARGE_READ = 64 * MiB


def _pread_exact(fd: int, size: int, offset: int) -> bytes:
    """Read ``size`` bytes at ``offset`` (fewer only at the end of the file)."""
    if size > _LARGE_READ:  # pread allocates what it is asked for: never more than the file can give
        size = max(min(size, os.fstat(fd).st_size - offset), 0)
    if offset >= _MAX_POSITION or not size:
        return b""
    size = min(size, _MAX_POSITION - offset)  # offset + size past off_t is EINVAL
    data = os.pread(fd, size, offset)
    if len(data) == size or not data:
        return data
    parts = [data]
    done = len(data)
    while done < size:
        chunk = os.pread(fd, size - done, offset + done)
        if not chunk:
            break
        parts.append(chunk)
        done += len(chunk)
    return b"".join(parts)


def _copy_range(src: int, dst: int, offset: int, size: int) -> None:
    """Copy ``size`` bytes at ``offset`` from ``src`` to ``dst`` (same offset), in the kernel where possible."""
    done = 0
    while done < size:
        try:
            copied = os.copy_file_range(src, dst, size - done, offset + done, offset + done)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
            copied = -1
        if copied == -1:  # no kernel copy between these files: go through a buffer
            chunk = os.pread(src, min(size - done, 8 * MiB), offset + done)
            if chunk:
                pwrite_all(dst, chunk, offset + done)
            copied = len(chunk)
        if copied == 0:
            raise ReadRangeError(f"the value ended {size - done} bytes before offset {offset + size}")
        done += copied


def _write_all(fd: int, value: bytes | memoryview) -> None:
    view = memoryview(value)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _item_info(name: str, st: os.stat_result) -> ItemInfo:
    return ItemInfo(
        name=name,
        exists=True,
        size=st.st_size,
        directory=stat.S_ISDIR(st.st_mode),
        atime=st.st_atime,
        mtime=st.st_mtime,
    )


class _Quota:
    """Usage accounting against a byte limit, persisted in ``quota.hid`` and merged across sessions."""

    def __init__(self, base: str, limit: int) -> None:
        self.path = os.path.join(base, QUOTA_FILE)
        self.base = base
        self.limit = limit
        self.usage = 0
        self._persisted = 0
        self._persisted_at = 0.0
        self._lock = threading.Lock()

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
                tmp = _temp_path(self.path)
                tmp_fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
                try:
                    _write_all(tmp_fd, str(value).encode())
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


class PosixFSBackend(Backend):
    """Items as files below ``path`` (an absolute path), in borgstore's on-disk layout.

    Args:
        path: the store's base directory (created by ``create()``, with missing parents).
        fsync: fsync each file before it is renamed into place and its directory after, so an
            acknowledged store survives a power loss (much slower).
        permissions: a permission map, shortcut name or JSON (see [`aiodepot.permissions`][aiodepot.permissions]).
        quota: a byte limit for the whole store, tracked in ``quota.hid``.
        limits: ``threads``: threads for blocking file operations (default 32).
        cleanup: on ``open``, if a session crashed, remove the temp files of writers that crashed (see the
            module docs); the number removed is then in ``temp_files_removed``.
    """

    capabilities = Capabilities(
        batch_ops=True,
        server_side_hash=True,
        server_side_copy=True,
        server_side_gather=True,
        preferred_concurrency=512,  # bulk calls: two batch jobs of 256 items in flight
        batch_size=256,  # fewer, bigger thread jobs: each hand-off costs more than a cached small read
        part_size=16 * MiB,
    )

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fsync: bool = False,
        permissions: str | dict[str, str] | None = None,
        quota: int | None = None,
        limits: Limits | None = None,
        cleanup: bool = True,
        **deprecated: Any,
    ) -> None:
        super().__init__(permissions=permissions)
        _, self.limits, _ = legacy_options(
            "PosixFSBackend",
            deprecated,
            {"workers": ("limits", "threads", None)},
            retry=RetryPolicy(attempts=1),
            limits=(limits or Limits()).or_defaults(Limits(threads=32)),
            timeouts=Timeouts(),
        )
        base = os.fspath(path)
        if not os.path.isabs(base):
            raise BackendURLInvalid(f"the posixfs path must be absolute: {base!r}")
        if quota is not None and (not isinstance(quota, int) or quota < 0):
            raise ValueError(f"quota must be a byte count >= 0, got {quota!r}")
        self.base = os.path.normpath(base)
        self._real_base = os.path.realpath(self.base)
        self._base_dir: _BaseDir | None = None
        self.fsync = fsync
        self.quota_limit = quota
        self.cleanup = cleanup
        self.temp_files_removed = 0
        self._session: str | None = None
        self._session_touched = 0.0
        self._quota: _Quota | None = None
        self._offloader = Offloader(f"aiodepot-posixfs-{os.path.basename(self.base)}", self.limits.threads or 32)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """``file:///absolute/path`` (percent-encoding allowed); the host part must be empty."""
        if not url.startswith("file://"):
            raise BackendURLInvalid(f"not a file: URL: {url!r}")
        rest = url[len("file://") :]
        if not rest.startswith("/"):
            raise BackendURLInvalid(f"file: URLs need an empty host and an absolute path (file:///path): {url!r}")
        return cls(unquote(rest), **options)

    def __repr__(self) -> str:
        return f"<PosixFSBackend {self.base!r} {'open' if self.opened else 'closed'}>"

    # helpers ---------------------------------------------------------------------------------------------

    def _path(self, name: str) -> str:
        validate_backend_name(name)
        return os.path.join(self.base, name)

    def _confine(self, fd: int, path: str) -> None:
        """Refuse an open file or directory that is not where its path says (reached through a symbolic link)."""
        real = _real_path(fd, path).removesuffix(" (deleted)")  # replaced meanwhile: still the same place
        relative = path[len(self.base) :].lstrip("/")
        if real != (os.path.join(self._real_base, relative) if relative else self._real_base):
            name = os.path.relpath(path, self.base)
            raise PermissionDenied(f"{name}: reached through a symbolic link, which the store does not follow")

    def _open_below(self, path: str, flags: int) -> int:
        """Open ``path`` (the base or below it) with ``flags``, refusing a symbolic link on the way."""
        base = self._base_dir  # held for the call: close() may drop it meanwhile
        if base is not None:
            assert _openat2 is not None
            return _openat2(base.fd, path[len(self.base) :].lstrip("/") or ".", flags)
        fd = os.open(path, flags)
        try:
            self._confine(fd, path)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _open_item(self, path: str) -> int:
        """Open an item for reading: never through a symbolic link, never outside the base."""
        return self._open_below(path, os.O_RDONLY | os.O_CLOEXEC | _O_NOFOLLOW)

    def _lstat(self, path: str) -> os.stat_result:
        """Stat an entry without following a symbolic link, refusing one that leads out of the store."""
        fd = self._open_below(path, _O_PATH | os.O_CLOEXEC | _O_NOFOLLOW)
        try:
            st = os.fstat(fd)
        finally:
            os.close(fd)
        if stat.S_ISLNK(st.st_mode):
            raise PermissionDenied(
                f"{os.path.relpath(path, self.base)}: is a symbolic link, which the store does not follow"
            )
        return st

    def _check_dir(self, directory: str) -> None:
        """Refuse to work in ``directory`` if it is not below the base (FileNotFoundError if it is missing)."""
        if directory == self.base:
            return
        os.close(self._open_below(directory, _O_PATH | os.O_DIRECTORY | os.O_CLOEXEC))

    async def _run(self, name: str, job: Any, *args: Any) -> Any:
        try:
            return await self._offloader.run(job, *args)
        except StoreError:
            raise
        except OSError as exc:
            _raise_translated(exc, name)

    def _write_temp(self, path: str, fill: Callable[[int], object]) -> str:
        """Create a temp file beside ``path`` (and missing directories), let ``fill(fd)`` write it; return
        the temp file's path. With ``fsync`` the data is on disk before this returns."""
        self._touch_session()
        tmp = _temp_path(path)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        try:
            self._check_dir(os.path.dirname(path))
        except FileNotFoundError:
            self._make_parents(path)
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISLNK(os.lstat(path).st_mode):  # a symbolic link in the item's place: refused, not replaced
                raise PermissionDenied(f"{os.path.relpath(path, self.base)}: is a symbolic link")
        fd = os.open(tmp, flags, 0o666)
        try:
            try:
                fill(fd)
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return tmp

    def _make_parents(self, path: str) -> None:
        """Create the missing directories above ``path``; with ``fsync`` make each new directory entry
        durable too (an item renamed into a directory that a power loss forgets is lost with it)."""
        directory = os.path.dirname(path)
        missing = []
        while directory != self.base and not os.path.isdir(directory):
            missing.append(directory)
            directory = os.path.dirname(directory)
        self._check_dir(directory)  # the directories are made below one that is inside the store
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if self.fsync:
            for created in missing:
                _fsync_dir(os.path.dirname(created))

    def _replace_item(self, name: str, size: int, fill: Callable[[int], object]) -> None:
        """Put a new ``size``-byte value under ``name``: a temp file written by ``fill(fd)``, renamed into
        place, with the permission and quota checks first."""
        path = self._path(name)
        quota = self._quota
        if quota is None and not self.permissions:
            self._commit(self._write_temp(path, fill), path)  # nothing depends on what was there before
            return
        old_size = self._existing_size(path)
        self.permissions.check(name, "wW" if old_size is None else "W")
        delta = size - (old_size or 0)
        if quota is not None:
            quota.reserve(delta)
        try:
            self._commit(self._write_temp(path, fill), path)
        except BaseException:
            if quota is not None:
                quota.release(delta)
            raise
        if quota is not None:
            quota.flush()

    def _commit(self, tmp: str, path: str) -> None:
        """Rename a finished temp file into place (and make that durable with ``fsync``)."""
        try:
            os.replace(tmp, path)
        except FileNotFoundError as exc:
            if os.path.lexists(tmp):
                raise
            raise BackendError(f"{path}: the temp file vanished before it was renamed into place") from exc
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        if self.fsync:
            _fsync_dir(os.path.dirname(path))

    def _existing_size(self, path: str) -> int | None:
        try:
            st = self._lstat(path)
        except _NOT_FOUND:
            return None
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory", path)
        return st.st_size

    # lifecycle -----------------------------------------------------------------------------------------

    async def create(self) -> None:
        """Create the base directory (and parents); an existing empty directory is accepted."""
        self._require_closed()
        self.permissions.check("", "wW")

        def job() -> None:
            if os.path.lexists(self.base) and not os.path.isdir(self.base):
                raise StoreExists(f"{self.base} is a file, not a directory: it cannot hold a store")
            os.makedirs(self.base, exist_ok=True)
            if os.listdir(self.base):
                raise StoreExists(f"posixfs store directory is not empty: {self.base}")

        await self._run("", job)

    async def destroy(self) -> None:
        """Remove everything below the base directory, and the directory itself where allowed."""
        self._require_closed()
        self.permissions.check("", "D")

        def job() -> None:
            if not os.path.isdir(self.base):
                raise StoreNotFound(f"posixfs store directory does not exist: {self.base}")

            def on_error(func: Any, path: str, exc_info: Any) -> None:
                if path != self.base:  # the base itself may belong to someone else: leave it
                    raise exc_info[1]

            shutil.rmtree(self.base, onerror=on_error)

        await self._run("", job)
        self._offloader.shutdown()

    async def open(self) -> None:
        """Start using the store: register the session; if an earlier one crashed (and ``cleanup``), walk
        the store and remove the temp files crashed writers left; set up (or drop) quota tracking."""
        self._require_closed()

        def job() -> None:
            if not os.path.isdir(self.base):
                if os.path.lexists(self.base):
                    raise StoreCorrupt(f"{self.base} is not a directory, so not a posixfs store")
                raise StoreNotFound(f"posixfs store directory does not exist: {self.base}")
            self._real_base = os.path.realpath(self.base)
            self._base_dir = _BaseDir(self.base) if _openat2 is not None else None
            if self.cleanup:
                dead = _dead_sessions(self.base)
                self.temp_files_removed = _remove_left_behind(self.base) if dead else 0
                for path in dead:  # only now: a crash during the walk leaves them for the next open
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
            self._register()
            if self.quota_limit is None:
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self.base, QUOTA_FILE))
            else:
                self._quota = _Quota(self.base, self.quota_limit)
                self._quota.flush(force=True)

        await self._run("", job)
        self.opened = True

    async def close(self) -> None:
        """Persist the quota usage and release the thread pool."""
        self._require_open()
        quota, self._quota = self._quota, None
        session, self._session = self._session, None
        self.opened = False
        self._base_dir = None

        def job() -> None:
            try:
                if quota is not None:
                    quota.flush(force=True)
            finally:
                if session is not None:
                    with contextlib.suppress(OSError):
                        os.unlink(session)

        try:
            await self._run("", job)
        finally:
            self._offloader.shutdown()

    async def remove_temp_files(self) -> int:
        """Walk the whole store now and remove the temp files that no live writer owns (the rules ``open``
        applies after a crash, see the module docs); return how many. For stores that borgstore or another
        program wrote to: their crashes leave no session registration behind."""
        self._require_open()
        removed: int = await self._run("", _remove_left_behind, self.base)
        return removed

    def _register(self) -> None:
        """Create this session's registration (a store we cannot write to gets none: it gets no temp
        files either)."""
        path = os.path.join(self.base, f"{_SESSION_PREFIX}{_writer_name()}{HID_SUFFIX}")
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o666))
        except OSError:
            return
        self._session = path
        self._session_touched = time.monotonic()

    def _touch_session(self) -> None:
        """Keep the registration fresh for other machines (they judge it by its age), and bring it back
        if another machine took this session for a crashed one."""
        if self._session is None or time.monotonic() - self._session_touched < STALE_TEMP_AGE / 4:
            return
        self._session_touched = time.monotonic()
        try:
            os.utime(self._session)
        except FileNotFoundError:
            with contextlib.suppress(OSError):
                os.close(os.open(self._session, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o666))
        except OSError:
            pass

    # items ---------------------------------------------------------------------------------------------

    async def mkdir(self, name: str) -> None:
        """Create a directory and its parents."""
        self._require_open()
        path = self._path(name)
        self.permissions.check(name, "w")

        def job() -> None:
            if not os.path.isdir(path):
                self._make_parents(os.path.join(path, "entry"))
            self._check_dir(path)

        await self._run(name, job)

    async def rmdir(self, name: str) -> None:
        """Remove an empty directory."""
        self._require_open()
        path = self._path(name)
        self.permissions.check(name, "wD")

        def job() -> None:
            self._check_dir(os.path.dirname(path))
            os.rmdir(path)

        await self._run(name, job)

    # Each item operation is one sync function (validation, permission check and I/O in one thread hop);
    # the async methods run one of them, the batch methods run many in one job.

    def _info_sync(self, name: str) -> ItemInfo:
        path = os.path.join(self.base, validate_backend_name(name, allow_root=True))
        self.permissions.check(name, "lr")
        basename = name.rpartition("/")[2]
        try:
            return _item_info(basename, self._lstat(path) if name else os.stat(path))
        except (FileNotFoundError, NotADirectoryError):
            return ItemInfo(name=basename, exists=False, size=0, directory=False)

    def _load_sync(self, name: str, offset: int = 0, size: int | None = None) -> bytes:
        path = self._path(name)
        self.permissions.check(name, "r")
        fd = self._open_item(path)
        try:
            if offset < 0 or size is None:
                total = os.fstat(fd).st_size
                if offset < 0:
                    offset = max(total + offset, 0)
                if size is None:
                    size = max(total - offset, 0)
            return _pread_exact(fd, size, offset)
        finally:
            os.close(fd)

    def _store_sync(self, name: str, data: bytes | memoryview) -> None:
        self._replace_item(name, len(data), lambda fd: _write_all(fd, data))

    def _delete_sync(self, name: str) -> None:
        path = self._path(name)
        self.permissions.check(name, "D")
        quota = self._quota
        size = self._existing_size(path)
        if size is None:
            raise FileNotFoundError(errno.ENOENT, "no such item", path)
        os.unlink(path)
        if quota is not None:
            quota.reserve(-size)
            quota.flush()

    def _batch_sync(self, operation: Callable[..., T], calls: Sequence[tuple[Any, ...]]) -> list[T | Exception]:
        results: list[T | Exception] = []
        for args in calls:
            try:
                results.append(operation(*args))
            except StoreError as exc:
                results.append(exc)
            except OSError as exc:
                try:
                    _raise_translated(exc, args[0])
                except StoreError as translated:
                    results.append(translated)
        return results

    async def info(self, name: str) -> ItemInfo:
        """Describe an item or directory."""
        self._require_open()
        result: ItemInfo = await self._run(name, self._info_sync, name)
        return result

    async def load(self, name: str, *, offset: int = 0, size: int | None = None) -> bytes:
        """Read a whole value or a range of it (one ``pread``)."""
        self._require_open()
        if size is not None and size < 0:
            raise ValueError(f"size must be >= 0 or None, got {size}")
        data: bytes = await self._run(name, self._load_sync, name, offset, size)
        return data

    async def store(self, name: str, value: StoreValue) -> None:
        """Write a temp file beside the item, then rename it into place."""
        self._require_open()
        await self._run(name, self._store_sync, name, validate_value(value))

    async def delete(self, name: str) -> None:
        """Remove an item."""
        self._require_open()
        await self._run(name, self._delete_sync, name)

    async def load_batch(self, names: Sequence[str]) -> list[bytes | Exception]:
        """Load many whole values in one thread job."""
        self._require_open()
        return await self._offloader.run(self._batch_sync, self._load_sync, [(name,) for name in names])

    async def store_batch(self, items: Sequence[tuple[str, StoreValue]]) -> list[Exception | None]:
        """Store many values in one thread job, each atomically."""
        self._require_open()
        calls = [(name, validate_value(value)) for name, value in items]
        return await self._offloader.run(self._batch_sync, self._store_sync, calls)

    async def delete_batch(self, names: Sequence[str]) -> list[Exception | None]:
        """Delete many items in one thread job."""
        self._require_open()
        return await self._offloader.run(self._batch_sync, self._delete_sync, [(name,) for name in names])

    async def info_batch(self, names: Sequence[str]) -> list[ItemInfo | Exception]:
        """Describe many items in one thread job."""
        self._require_open()
        return await self._offloader.run(self._batch_sync, self._info_sync, [(name,) for name in names])

    async def move(self, src: str, dst: str) -> None:
        """Rename an item (replacing the destination), creating directories as needed."""
        self._require_open()
        src_path, dst_path = self._path(src), self._path(dst)
        self.permissions.check(src, "D")
        quota = self._quota

        def job() -> None:
            replaced = self._existing_size(dst_path)
            self.permissions.check(dst, "wW" if replaced is None else "W")
            self._lstat(src_path)  # missing: ObjectNotFound; a symbolic link or outside the store: refused
            with contextlib.suppress(FileNotFoundError):
                self._check_dir(os.path.dirname(dst_path))  # a missing one is made by _make_parents, checked
            try:
                os.replace(src_path, dst_path)
            except FileNotFoundError:
                self._make_parents(dst_path)
                try:
                    os.replace(src_path, dst_path)
                except FileNotFoundError:
                    raise ObjectNotFound(src) from None
            if self.fsync:
                _fsync_dir(os.path.dirname(dst_path))
            if quota is not None and replaced:
                quota.reserve(-replaced)
                quota.flush()

        await self._run(src, job)

    async def list(self, name: str) -> AsyncIterator[ItemInfo]:
        """Yield a directory's entries sorted by name; temp and internal files are skipped."""
        self._require_open()
        path = os.path.join(self.base, validate_backend_name(name, allow_root=True))
        self.permissions.check(name, "l")

        def job() -> list[ItemInfo]:
            infos = []
            fd = self._open_below(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                with os.scandir(fd) as entries:
                    for entry in entries:
                        try:
                            validate_backend_name(entry.name)
                            if entry.is_symlink():
                                continue  # not ours: the store never makes links, and never follows them
                            infos.append(_item_info(entry.name, entry.stat(follow_symlinks=False)))
                        except (StoreError, FileNotFoundError):
                            continue  # not ours, still being written, or gone meanwhile
            finally:
                os.close(fd)
            infos.sort(key=lambda info: info.name)
            return infos

        infos: list[ItemInfo] = await self._run(name, job)
        for info in infos:
            yield info

    async def hash(self, name: str, algorithm: str = "sha256") -> str:
        """Hash the file where it is (one job, no data through the event loop)."""
        self._require_open()
        path = self._path(name)
        self.permissions.check(name, "r")
        check_algorithm(algorithm)

        def job() -> str:
            with open(self._open_item(path), "rb") as f:
                return file_digest(f, algorithm)

        digest: str = await self._run(name, job)
        return digest

    async def gather(self, sources: Iterable[Source]) -> bytes:
        """Read all ranges in one job, one ``pread`` each."""
        self._require_open()
        checked = validate_sources(sources)
        paths = {name: self._path(name) for name, _, _ in checked}
        for name in paths:
            self.permissions.check(name, "r")

        def job() -> bytes:
            fds: dict[str, int] = {}
            parts = []
            current = ""
            try:
                for name, offset, size in checked:
                    current = name
                    if size == 0:
                        continue
                    fd = fds.get(name)
                    if fd is None:
                        fd = fds[name] = self._open_item(paths[name])
                    start = offset if offset >= 0 else max(os.fstat(fd).st_size + offset, 0)
                    data = _pread_exact(fd, size, start)
                    if len(data) != size:
                        raise ReadRangeError(f"{name}: wanted {size} bytes at offset {offset}, got {len(data)}")
                    parts.append(data)
            except OSError as exc:
                _raise_translated(exc, current)
            finally:
                for fd in fds.values():
                    os.close(fd)
            return b"".join(parts)

        data: bytes = await self._run("", job)
        return data

    async def quota(self) -> dict[str, int]:
        """The limit and the tracked usage (-1 when no quota is set)."""
        if self._quota is None:
            return {"limit": -1, "usage": -1}
        return {"limit": self._quota.limit, "usage": self._quota.usage}

    # files -----------------------------------------------------------------------------------------------

    async def read_into(self, name: str, fd: int, *, offset: int, size: int) -> None:
        """Copy a range into ``fd`` inside the kernel (``copy_file_range``), in one thread job."""
        self._require_open()

        def job() -> None:
            path = self._path(name)
            self.permissions.check(name, "r")
            src = self._open_item(path)
            try:
                _copy_range(src, fd, offset, size)
            finally:
                os.close(src)

        await self._run(name, job)

    async def store_file(self, name: str, path: str, *, size: int) -> None:
        """Copy a local file into a temp file beside the item inside the kernel, then rename it into place."""
        self._require_open()

        def job() -> None:
            src = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:

                def copy(fd: int) -> None:
                    _copy_range(src, fd, 0, size)
                    if os.fstat(src).st_size != size:
                        raise ValueError(f"{path} changed size while it was stored")

                self._replace_item(name, size, copy)
            finally:
                os.close(src)

        await self._run(name, job)

    # streaming -----------------------------------------------------------------------------------------

    async def read_chunks(
        self, name: str, *, offset: int = 0, size: int | None = None, chunk_size: int = 1 * MiB
    ) -> AsyncIterator[bytes]:
        """Stream a value from the file with aiofiles."""
        self._require_open()
        path = self._path(name)
        self.permissions.check(name, "r")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        fd = await self._run(name, self._open_item, path)
        try:
            f = await aiofiles.open(fd, "rb", buffering=0, executor=self._offloader.executor)
        except BaseException as exc:
            os.close(fd)
            if isinstance(exc, OSError):
                _raise_translated(exc, name)
            raise
        try:
            try:
                if offset:
                    await f.seek(offset, os.SEEK_SET if offset >= 0 else os.SEEK_END)
            except OSError as exc:
                _raise_translated(exc, name)
            remaining = size
            while remaining is None or remaining > 0:
                try:
                    chunk = await f.read(chunk_size if remaining is None else min(chunk_size, remaining))
                except OSError as exc:
                    _raise_translated(exc, name)
                if not chunk:
                    return
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
        finally:
            await f.close()

    async def store_chunks(self, name: str, chunks: AsyncIterable[bytes], *, size: int | None = None) -> None:
        """Stream into a temp file with aiofiles, then rename it into place."""
        self._require_open()
        path = self._path(name)
        quota = self._quota
        old_size = await self._run(name, self._existing_size, path)
        self.permissions.check(name, "wW" if old_size is None else "W")
        tmp = await self._run(name, self._write_temp, path, lambda fd: None)
        try:
            written = 0
            async with aiofiles.open(tmp, "wb", buffering=0, executor=self._offloader.executor) as f:
                async for chunk in chunks:
                    view = memoryview(chunk)
                    while view:
                        n = await f.write(view)
                        view = view[n:]
                    written += len(chunk)
                    if size is not None and written > size:
                        raise ValueError(f"{name}: the stream gave more than the expected {size} bytes")
                if self.fsync:
                    await f.flush()
                    await self._run(name, os.fsync, f.fileno())
            if size is not None and written != size:
                raise ValueError(f"{name}: expected {size} bytes, the stream gave {written}")
            delta = written - (old_size or 0)
            if quota is not None:
                quota.reserve(delta)
            try:
                await self._run(name, self._commit, tmp, path)
            except BaseException:
                if quota is not None:
                    quota.release(delta)
                raise
        except BaseException as exc:
            with contextlib.suppress(OSError):
                await self._offloader.run(os.unlink, tmp)
            if isinstance(exc, OSError) and not isinstance(exc, StoreError):
                _raise_translated(exc, name)  # e.g. ENOSPC or EIO from a write: a StoreError like the rest
            raise
