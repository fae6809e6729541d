"""The file I/O steps posixfs builds on: exact reads, kernel copies, full writes, no-replace links, fsync."""

from __future__ import annotations

import ctypes
import errno
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from ...errors import ReadRangeError
from ..base import pwrite_all

__all__ = [
    "MiB",
    "copy_range",
    "fsync_dir",
    "libc_function",
    "link_new",
    "memory_file_system",
    "pread_exact",
    "rename_new",
    "swap_in_use",
    "write_all",
]

MiB = 1024 * 1024
_MAX_POSITION = 2**63 - 1
_LARGE_READ = 64 * MiB


_MEMORY_FS_MAGIC = {0x01021994: "tmpfs", 0x858458F6: "ramfs"}  # statfs f_type (linux/magic.h)
_SWAPS = "/proc/swaps"
_SWAP_RECHECK = 1.0  # seconds
_swap_seen: tuple[float, bool] = (-_SWAP_RECHECK, True)


def memory_file_system(fd: int) -> str | None:
    """``"tmpfs"`` or ``"ramfs"`` if the file ``fd`` lives in memory (Linux ``fstatfs``), else None."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        buffer = ctypes.create_string_buffer(256)  # struct statfs is 120 bytes on 64-bit Linux; f_type first
        if libc.fstatfs(fd, buffer) != 0:
            return None
    except (OSError, AttributeError):  # no libc with fstatfs: not Linux
        return None
    return _MEMORY_FS_MAGIC.get(ctypes.c_long.from_buffer(buffer).value & 0xFFFFFFFF)


def swap_in_use() -> bool:
    """Whether the machine has swap space on (so tmpfs pages can leave memory); read again each second.

    Without swap, a tmpfs file's pages cannot be written out, so reading it is a copy from memory.
    Unknown (no ``/proc/swaps``) counts as on.
    """
    global _swap_seen
    now = time.monotonic()
    checked, answer = _swap_seen
    if now - checked < _SWAP_RECHECK:
        return answer
    try:
        with open(_SWAPS, "rb") as f:
            answer = len(f.read().splitlines()) > 1  # a header line, then one line per swap area
    except OSError:
        answer = True
    _swap_seen = (now, answer)
    return answer


def pread_exact(fd: int, size: int, offset: int) -> bytes:
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


def copy_range(src: int, dst: int, offset: int, size: int) -> None:
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


def write_all(fd: int, value: bytes | memoryview) -> None:
    """Write all of ``value`` at the file position of ``fd``."""
    view = memoryview(value)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def link_new(tmp: str, path: str) -> None:
    """Put the file ``tmp`` at ``path`` unless something is there (FileExistsError), then drop ``tmp``."""
    try:
        os.link(tmp, path, follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
            raise
        # no hard links here: the caller's path lock still makes the check and the rename one step
        if os.path.lexists(path):
            raise FileExistsError(errno.EEXIST, "exists", path) from exc
        os.rename(tmp, path)
        return
    os.unlink(tmp)


_AT_FDCWD = -100
_RENAME_NOREPLACE = 1


def libc_function(name: str, restype: type[ctypes._SimpleCData[Any]], argtypes: list[Any]) -> Any | None:
    """The C library's function ``name`` with its result and argument types set (errno kept for
    ``ctypes.get_errno``), or None where this is not Linux or the C library has no such function."""
    if sys.platform != "linux":
        return None
    try:
        function = getattr(ctypes.CDLL(None, use_errno=True), name)
    except (OSError, AttributeError):
        return None
    function.restype = restype
    function.argtypes = argtypes
    return function


def _find_renameat2() -> Callable[[bytes, bytes], int] | None:
    """libc's ``renameat2(AT_FDCWD, src, AT_FDCWD, dst, RENAME_NOREPLACE)`` (0, or -1 with errno set), or
    None where libc has no ``renameat2`` (not Linux, glibc before 2.28, musl before 1.2.2)."""
    function = libc_function(
        "renameat2", ctypes.c_int, [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    )
    if function is None:
        return None

    def rename_noreplace(src: bytes, dst: bytes) -> int:
        result: int = function(_AT_FDCWD, src, _AT_FDCWD, dst, _RENAME_NOREPLACE)
        return result

    return rename_noreplace


_renameat2 = _find_renameat2()


def rename_new(tmp: str, path: str) -> bool:
    """Rename ``tmp`` to ``path`` in one step unless something is at ``path`` (FileExistsError). Returns
    False, having done nothing, where that step does not exist: no ``renameat2`` in libc or the kernel
    (ENOSYS), or a file system without ``RENAME_NOREPLACE`` (EINVAL); the caller then checks and renames
    under its own lock."""
    if _renameat2 is None:
        return False
    if _renameat2(os.fsencode(tmp), os.fsencode(path)) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EPERM):  # EPERM: a seccomp filter that refuses it
        return False
    raise OSError(code, os.strerror(code), tmp, None, path)


def fsync_dir(path: str) -> None:
    """Make the entries of the directory ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
