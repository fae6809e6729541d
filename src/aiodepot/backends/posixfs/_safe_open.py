"""Paths below the base directory, opened without ever following a symbolic link.

The store never follows a symbolic link (borgstore's layout has none; one planted inside the store could
lead a read or write out of it). On Linux 5.6+ every item and directory is opened with openat2(2) below
the base directory and RESOLVE_NO_SYMLINKS: the kernel refuses a link anywhere on the way, in the same
system call. Elsewhere items are opened with O_NOFOLLOW (a link as the last element is refused for free)
and the kernel says where an opened file really is (a readlink of /proc/self/fd/N): anywhere but its own
path below the base means a link on the way. Writes, removals and renames check their directory so
before they touch it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import stat
from collections.abc import Callable

from ...errors import PermissionDenied
from ._fileio import fsync_dir, libc_function

__all__ = ["ConfinedPaths"]

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_PATH = getattr(os, "O_PATH", os.O_RDONLY | os.O_NONBLOCK)  # O_PATH: no access check, no FIFO open
_SYS_OPENAT2 = 437  # the same number on every architecture that got the unified numbers (all but these:)
_OPENAT2_MACHINES = frozenset({"x86_64", "aarch64", "arm64", "i686", "i386", "armv7l", "riscv64", "ppc64le", "s390x"})
_RESOLVE_NO_SYMLINKS_BENEATH = 0x04 | 0x08
_RESOLVE_CACHED = 0x20  # Linux 5.12+: fail with EAGAIN instead of doing I/O to resolve the path


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def _find_openat2() -> Callable[[int, str, int, int], int] | None:
    """``openat2(dirfd, path, flags, resolve)`` with the ``RESOLVE_*`` bits ``resolve`` (to refuse symbolic
    links and escapes from ``dirfd``), or None where the kernel (or a seccomp filter) does not have it."""
    if platform.machine() not in _OPENAT2_MACHINES:
        return None
    syscall = libc_function(
        "syscall", ctypes.c_long, [ctypes.c_long, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
    )
    if syscall is None:
        return None
    # per flags: the open_how structure (kept alive here) and its address; an int converts fastest
    hows: dict[tuple[int, int], tuple[_OpenHow, int]] = {}
    how_size = ctypes.sizeof(_OpenHow)

    def openat2(dirfd: int, path: str, flags: int, resolve: int) -> int:
        entry = hows.get((flags, resolve))
        if entry is None:
            how = _OpenHow(flags, 0, resolve)
            entry = hows[flags, resolve] = (how, ctypes.addressof(how))
        fd: int = syscall(_SYS_OPENAT2, dirfd, os.fsencode(path), entry[1], how_size)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), path)
        return fd

    try:
        root = os.open("/", _O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.close(openat2(root, ".", _O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, _RESOLVE_NO_SYMLINKS_BENEATH))
        finally:
            os.close(root)
    except OSError:  # ENOSYS (before 5.6) or EPERM (a seccomp filter that does not know it)
        return None
    return openat2


_openat2 = _find_openat2()


def _has_cached_lookups() -> bool:
    """Whether openat2 takes RESOLVE_CACHED here (older kernels answer EINVAL)."""
    if _openat2 is None:
        return False
    try:
        root = os.open("/", _O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.close(_openat2(root, ".", _O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, _RESOLVE_CACHED))
        finally:
            os.close(root)
    except BlockingIOError:
        return True  # supported, only not cached
    except OSError:
        return False
    return True


CACHED_LOOKUPS = _has_cached_lookups()
"""True where an item can be opened without any I/O for the path walk (openat2 with RESOLVE_CACHED)."""


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


class ConfinedPaths:
    """The backend's file access below its base directory, refusing symbolic links (mixed into
    [`PosixFSBackend`][aiodepot.backends.posixfs.PosixFSBackend])."""

    base: str
    fsync: bool
    _real_base: str
    _base_dir: _BaseDir | None

    def _open_base(self) -> None:
        """Take the base directory as it is now, and a handle on it where openat2 is used."""
        self._real_base = os.path.realpath(self.base)
        self._base_dir = _BaseDir(self.base) if _openat2 is not None else None

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
            return _openat2(base.fd, path[len(self.base) :].lstrip("/") or ".", flags, _RESOLVE_NO_SYMLINKS_BENEATH)
        fd = os.open(path, flags)
        try:
            self._confine(fd, path)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _open_item_cached(self, path: str) -> int | None:
        """Open an item for reading as `_open_item` does, but only if it takes no I/O: the path walk from
        the dentry cache (RESOLVE_CACHED) and no wait on a FIFO (O_NONBLOCK). None where that cannot be
        known (no openat2 with RESOLVE_CACHED, or the store is closing) or the walk would need I/O."""
        base = self._base_dir
        if base is None or not CACHED_LOOKUPS:
            return None
        assert _openat2 is not None
        relative = path[len(self.base) :].lstrip("/") or "."
        flags = os.O_RDONLY | os.O_CLOEXEC | _O_NOFOLLOW | os.O_NONBLOCK
        try:
            return _openat2(base.fd, relative, flags, _RESOLVE_NO_SYMLINKS_BENEATH | _RESOLVE_CACHED)
        except BlockingIOError:
            return None

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
                fsync_dir(os.path.dirname(created))
