"""Temp files that name their writer, session registrations, and the cleanup after a crashed writer.

A temp file's name says who writes it (``<item>.w<host>-<pid>-<start>-<n>.tmp``: a key for this machine's
boot and PID namespace, the writer's process id and start time), and each open backend registers its
session in an empty ``session.w<host>-<pid>-<start>-<n>.hid`` file at the top, removed by ``close``. A
session whose registration outlives it crashed: ``remove_left_behind`` then removes the temp files of
processes on this machine that no longer run, and any other temp file untouched for `STALE_TEMP_AGE`
seconds.

A backend dropped without ``close`` ends its session when it is garbage collected, or at the latest when
the interpreter exits normally (a ``weakref.finalize``): a program that leaves stores unclosed leaves no
registrations behind, and the next ``open`` need not walk the store. A forked child does not end its
parent's session; it registers its own on its first write.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import re
import stat
import time
import weakref
from collections.abc import Callable

from ...errors import BackendError, ObjectExists, PermissionDenied
from ...names import HID_SUFFIX, TMP_SUFFIX
from ._fileio import fsync_dir, link_new, rename_new
from ._safe_open import ConfinedPaths

__all__ = ["MACHINE", "STALE_TEMP_AGE", "TempFiles", "dead_sessions", "remove_left_behind", "start_time", "temp_path"]

STALE_TEMP_AGE = 3600.0
"""Seconds after its last write a temp file whose writer cannot be checked counts as left behind."""


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def start_time(pid: int) -> int | None:
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


MACHINE = _machine_key()
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
        _writer = (pid, f"w{MACHINE}-{pid}-{start_time(pid) or 0}")
    return f"{_writer[1]}-{next(_counter):x}"


def temp_path(path: str) -> str:
    """A fresh temp file name beside ``path`` that names its writer (see the module docs)."""
    return f"{path}.{_writer_name()}{TMP_SUFFIX}"


def _gone(match: re.Match[str] | None, mtime: float, now: float) -> bool:
    """Whether the writer a name matched (None: a name that names none) runs no more; one that cannot be
    checked (another machine's, another program's) counts as gone once untouched for `STALE_TEMP_AGE`."""
    if match is not None and match[1] == MACHINE:
        pid, started = int(match[2]), int(match[3])
        running = start_time(pid)
        return running is None or (started != 0 and running != started)
    return now - mtime > STALE_TEMP_AGE


def _left_behind(name: str, mtime: float, now: float) -> bool:
    """Whether the temp file ``name`` (last written at ``mtime``) belongs to no writer any more."""
    return _gone(_TEMP_PATTERN.search(name), mtime, now)


def dead_sessions(base: str) -> list[str]:
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


def remove_left_behind(base: str) -> int:
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


def _end_session(path: str, pid: int) -> None:
    """Remove the registration ``path`` of a session of process ``pid``, if this is that process."""
    if os.getpid() == pid:
        with contextlib.suppress(OSError):
            os.unlink(path)


class TempFiles(ConfinedPaths):
    """Writing through temp files renamed into place, and this session's registration (mixed into
    [`PosixFSBackend`][aiodepot.backends.posixfs.PosixFSBackend])."""

    _session: str | None
    _session_touched: float
    _session_pid: int
    _session_end: weakref.finalize[[str, int], TempFiles] | None

    def _write_temp(self, path: str, fill: Callable[[int], object]) -> str:
        """Create a temp file beside ``path`` (and missing directories), let ``fill(fd)`` write it; return
        the temp file's path. With ``fsync`` the data is on disk before this returns."""
        self._touch_session()
        tmp = temp_path(path)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        try:
            self._check_dir(os.path.dirname(path))
        except FileNotFoundError:
            self._make_parents(path)
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

    def _commit(self, tmp: str, path: str, *, replace: bool = True) -> None:
        """Rename a finished temp file into place (and make that durable with ``fsync``). Without
        ``replace`` the commit fails if ``path`` exists, atomically: ``renameat2`` with ``RENAME_NOREPLACE``
        (or, where a file system lacks it, a hard link) cannot replace an entry."""
        try:
            # A new name (Borg's chunks, mostly) is one renameat2 that cannot replace: nothing was there, so
            # no symbolic link either. Only where something is does the lstat run (and refuse a link).
            try:
                done = rename_new(tmp, path)
            except FileExistsError:
                if not replace:
                    raise
                done = False
            if not done:
                if not replace:
                    link_new(tmp, path)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        if stat.S_ISLNK(os.lstat(path).st_mode):  # a symbolic link in the item's place: refused
                            raise PermissionDenied(f"{os.path.relpath(path, self.base)}: is a symbolic link")
                    os.replace(tmp, path)
        except FileExistsError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise ObjectExists(f"item {os.path.relpath(path, self.base)!r} exists") from exc
        except FileNotFoundError as exc:
            if os.path.lexists(tmp):
                raise
            raise BackendError(f"{path}: the temp file vanished before it was renamed into place") from exc
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        if self.fsync:
            fsync_dir(os.path.dirname(path))

    def _register(self) -> None:
        """Create this session's registration (a store we cannot write to gets none: it gets no temp
        files either)."""
        path = os.path.join(self.base, f"{_SESSION_PREFIX}{_writer_name()}{HID_SUFFIX}")
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o666))
        except OSError:
            return
        pid = os.getpid()
        self._session = path
        self._session_pid = pid
        self._session_touched = time.monotonic()
        # holds no reference to self: ends the session of a backend collected, or alive at exit, unclosed
        self._session_end = weakref.finalize(self, _end_session, path, pid)

    def _unregister(self) -> str | None:
        """Forget the session and return its registration's path for ``close`` to remove (None: no
        session, or in a forked child the parent's, which the child leaves alone)."""
        session, self._session = self._session, None
        end, self._session_end = self._session_end, None
        if end is not None:
            end.detach()
        return session if self._session_pid == os.getpid() else None

    def _touch_session(self) -> None:
        """Keep the registration fresh for other machines (they judge it by its age), and bring it back
        if another machine took this session for a crashed one. A forked child registers its own."""
        if self._session_pid != os.getpid() and self._session is not None:
            if self._session_end is not None:
                self._session_end.detach()  # the parent's: the child leaves it alone
            self._register()
            return
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
