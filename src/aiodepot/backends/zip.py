"""``zip:///path.zip`` — a whole store in one zip archive, for export and import.

Every item is one member of the archive, under its (nested) name; ``mkdir`` adds a directory member
(``name/``). The archive is **write-once**: a store appends a member, and a member, once written, is never
changed. Overwriting, deleting, moving (and so soft-deleting) an item and removing a directory raise
[`BackendError`][aiodepot.errors.BackendError] saying so; the capability flags of the class say it too.

Members are stored uncompressed by default, so a ranged load is one ``pread`` at the member's offset in
the file; a whole load checks the member's CRC-32. ``zipfile`` is blocking: every operation is one job on
the backend's threads, writes one at a time. The central directory (the archive's table of contents) is
written by ``close()``: until then other programs cannot read the new members.
"""

from __future__ import annotations

import builtins
import os
import shutil
import stat
import struct
import threading
import time
import zipfile
import zlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Self, TypeVar
from urllib.parse import unquote

from .._threads import Offloader
from ..errors import (
    BackendError,
    BackendURLInvalid,
    IntegrityError,
    ObjectNotFound,
    PermissionDenied,
    StoreCorrupt,
    StoreError,
    StoreExists,
    StoreNotFound,
)
from ..items import ItemInfo
from ..names import validate_backend_name
from .base import Backend, Capabilities
from .options import Limits, RetryPolicy, Timeouts, legacy_options

__all__ = ["ZipBackend"]

T = TypeVar("T")
MiB = 1024 * 1024
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, (version … sizes), name length, extra length
_LOCAL_SIGNATURE = b"PK\x03\x04"
_COMPRESSION = {"stored": zipfile.ZIP_STORED, "deflated": zipfile.ZIP_DEFLATED}


class WriteOnce(BackendError):
    """The archive is write-once: a member cannot be overwritten, deleted or renamed."""


def _write_once(location: str, what: str, name: str) -> WriteOnce:
    return WriteOnce(
        f"{location} does not support {what} of {name!r}: a zip store is write-once (members are only ever added)"
    )


def _mtime(info: zipfile.ZipInfo) -> float:
    return time.mktime((*info.date_time, 0, 0, -1))


class _Index:
    """The archive's tree: directory name -> {child name: its ZipInfo, or None for a sub-directory}."""

    def __init__(self) -> None:
        self.dirs: dict[str, dict[str, zipfile.ZipInfo | None]] = {"": {}}
        self.files: dict[str, zipfile.ZipInfo] = {}
        self.dir_times: dict[str, float] = {}
        self.data_offsets: dict[str, int] = {}

    def add_dir(self, name: str, mtime: float) -> None:
        parent, _, leaf = name.rpartition("/")
        if name in self.dirs:
            return
        if parent not in self.dirs:
            self.add_dir(parent, mtime)
        self.dirs[name] = {}
        self.dirs[parent][leaf] = None
        self.dir_times.setdefault(name, mtime)

    def add_file(self, info: zipfile.ZipInfo) -> None:
        parent, _, leaf = info.filename.rpartition("/")
        if parent not in self.dirs:
            self.add_dir(parent, _mtime(info))
        self.dirs[parent][leaf] = info
        self.files[info.filename] = info

    def check_free(self, name: str, location: str) -> None:
        """Raise unless ``name`` can become a new member: not there yet, and no parent is an item."""
        if name in self.files:
            raise _write_once(location, "overwrite", name)
        if name in self.dirs:
            raise BackendError(f"{name!r} is a directory")
        parts = name.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in self.files:
                raise BackendError(f"a parent of {name!r} is an item, not a directory")


class ZipBackend(Backend):
    """A store in one zip archive: members are added, never changed (see the module docs).

    Args:
        path: the archive file, absolute (created empty by ``create()``, with missing parent directories).
        permissions: a permission map, shortcut name or JSON (see [`aiodepot.permissions`][aiodepot.permissions]).
        compression: ``"stored"`` (default: ranged loads read only the range) or ``"deflated"`` (smaller;
            a ranged load decompresses the member from its start).
        limits: ``threads``: threads for reads (writes go one at a time; default 4).
    """

    capabilities = Capabilities(
        batch_ops=True,
        batch_size=256,
        server_side_hash=False,
        server_side_copy=False,
        atomic_create=True,  # the name check and the append share the archive's lock (one writer process)
        preferred_concurrency=16,
        part_size=16 * MiB,
    )
    write_once = True
    """Members are only ever added: overwrite, delete, move and rmdir raise ``BackendError``."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        permissions: str | dict[str, str] | None = None,
        compression: str = "stored",
        limits: Limits | None = None,
        **deprecated: Any,
    ) -> None:
        super().__init__(permissions=permissions)
        _, self.limits, _ = legacy_options(
            "ZipBackend",
            deprecated,
            {"workers": ("limits", "threads", None)},
            retry=RetryPolicy(attempts=1),
            limits=(limits or Limits()).or_defaults(Limits(threads=4)),
            timeouts=Timeouts(),
        )
        path = os.fspath(path)
        if not os.path.isabs(path):
            raise BackendURLInvalid(f"the zip archive path must be absolute: {path!r}")
        if compression not in _COMPRESSION:
            raise ValueError(f"compression must be one of {sorted(_COMPRESSION)}, got {compression!r}")
        self.path = os.path.normpath(path)
        self.compression = compression
        self._zip: zipfile.ZipFile | None = None
        self._fd = -1
        self._readonly = False
        self._index = _Index()
        self._lock = threading.Lock()
        self._offloader = Offloader(f"aiodepot-zip-{os.path.basename(self.path)}", self.limits.threads or 4)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """``zip:///absolute/path.zip`` (percent-encoding allowed); the host part must be empty."""
        if not url.startswith("zip://"):
            raise BackendURLInvalid(f"not a zip: URL: {url!r}")
        rest = url[len("zip://") :]
        if not rest.startswith("/") or rest == "/":
            raise BackendURLInvalid(f"zip: URLs need an empty host and an absolute path (zip:///x.zip): {url!r}")
        return cls(unquote(rest), **options)

    def __repr__(self) -> str:
        return f"<ZipBackend {self.path!r} {'open' if self.opened else 'closed'}>"

    def _describe_location(self) -> str:
        return f"zip://{self.path}"

    # helpers ---------------------------------------------------------------------------------------------

    async def _run(self, name: str, job: Callable[..., T], *args: Any) -> T:
        try:
            return await self._offloader.run(job, *args)
        except StoreError:
            raise
        except FileNotFoundError as exc:
            raise ObjectNotFound(name) from exc
        except PermissionError as exc:
            raise PermissionDenied(f"{name}: {exc.strerror}") from exc
        except (OSError, zipfile.BadZipFile, zlib.error, RuntimeError, ValueError) as exc:
            raise BackendError(f"{self.path}: {name}: {exc}") from exc

    def _writable(self) -> zipfile.ZipFile:
        self._require_open()
        assert self._zip is not None
        if self._readonly:
            raise PermissionDenied(f"the zip archive is read-only (no write access to {self.path})")
        return self._zip

    def _data_offset(self, info: zipfile.ZipInfo) -> int:
        """Where the data of a member starts in the file (after its local header)."""
        offset = self._index.data_offsets.get(info.filename)
        if offset is None:
            header = os.pread(self._fd, _LOCAL_HEADER.size, info.header_offset)
            signature, name_length, extra_length = _LOCAL_HEADER.unpack(header)
            if signature != _LOCAL_SIGNATURE:
                raise BackendError(f"{self.path}: bad local header of member {info.filename!r}")
            offset = info.header_offset + _LOCAL_HEADER.size + name_length + extra_length
            self._index.data_offsets[info.filename] = offset
        return offset

    def _info_sync(self, name: str) -> ItemInfo:
        leaf = name.rpartition("/")[2]
        with self._lock:
            info = self._index.files.get(name)
            if info is not None:
                return ItemInfo.for_file(leaf, info.file_size, mtime=_mtime(info))
            if name in self._index.dirs:
                return ItemInfo.for_directory(leaf, mtime=self._index.dir_times.get(name, 0.0))
        return ItemInfo.missing(leaf)

    def _load_sync(self, name: str, offset: int = 0, size: int | None = None) -> bytes:
        info = self._index.files.get(name)
        if info is None:
            raise ObjectNotFound(name)
        total = info.file_size
        start = max(total + offset, 0) if offset < 0 else min(offset, total)
        length = total - start if size is None else min(size, total - start)
        if length <= 0:
            return b""
        if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:  # compressed or encrypted
            assert self._zip is not None
            with self._lock, self._zip.open(info) as member:
                if start == 0 and length == total:
                    return member.read()  # zipfile checks the CRC
                member.seek(start)
                return member.read(length)
        data = _pread_exact(self._fd, length, self._data_offset(info) + start)
        if len(data) != length:
            raise BackendError(f"{self.path}: member {name!r} is truncated")
        if length == total and zlib.crc32(data) != info.CRC:
            raise IntegrityError(f"{self.path}: member {name!r} fails its CRC-32 check")
        return data

    def _new_member(self, name: str) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(name, time.localtime(time.time())[:6])
        info.compress_type = _COMPRESSION[self.compression]
        info.external_attr = (stat.S_IFREG | 0o644) << 16
        return info

    def _store_sync(self, name: str, data: bytes | memoryview, replace: bool) -> None:
        archive = self._writable()
        with self._lock:
            if name in self._index.files and not replace:
                self._refuse_replace(name)
            self._index.check_free(name, self.location)
            info = self._new_member(name)
            archive.writestr(info, data)
            assert archive.fp is not None
            archive.fp.flush()  # readers pread the file beside zipfile's buffer
            self._index.add_file(archive.getinfo(name))

    def _batch_sync(self, operation: Callable[..., T], calls: Sequence[tuple[Any, ...]]) -> list[T | Exception]:
        results: list[T | Exception] = []
        for args in calls:
            try:
                results.append(operation(*args))
            except StoreError as exc:
                results.append(exc)
            except (OSError, zipfile.BadZipFile, zlib.error) as exc:
                error = BackendError(f"{self.path}: {args[0]}: {exc}")
                error.__cause__ = exc
                results.append(error)
        return results

    # lifecycle -------------------------------------------------------------------------------------------

    async def _create(self) -> None:
        """Write an empty archive; an existing archive with members (or another file) raises ``StoreExists``."""

        def job() -> None:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            try:
                with zipfile.ZipFile(self.path, "x"):
                    pass  # closing writes the end record: a valid empty archive
            except FileExistsError:
                if not zipfile.is_zipfile(self.path):
                    raise StoreExists(f"{self.path} exists and is not a zip archive") from None
                with zipfile.ZipFile(self.path) as archive:
                    if archive.infolist():
                        raise StoreExists(f"zip archive is not empty: {self.path}") from None

        try:
            await self._run("", job)
        finally:
            self._offloader.shutdown()  # a closed store keeps no thread

    async def _destroy(self) -> None:
        """Delete the archive file."""

        def job() -> None:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                raise StoreNotFound(f"zip archive does not exist: {self.path}") from None

        try:
            await self._run("", job)
        finally:
            self._offloader.shutdown()

    async def _open(self) -> None:
        """Read the archive's table of contents; append to it where the file is writable."""

        def job() -> None:
            if not os.path.isfile(self.path):
                raise StoreNotFound(f"zip archive does not exist: {self.path} (call create())")
            if not zipfile.is_zipfile(self.path):
                raise StoreCorrupt(f"{self.path} is not a zip archive (or a damaged one)")
            try:
                try:
                    archive = zipfile.ZipFile(self.path, "a")
                    readonly = False
                except PermissionError:
                    archive, readonly = zipfile.ZipFile(self.path, "r"), True
            except (zipfile.BadZipFile, zlib.error, ValueError, EOFError) as exc:
                raise StoreCorrupt(f"{self.path}: the zip archive is damaged ({exc})") from exc
            try:
                fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            except BaseException:
                archive.close()
                raise
            index = _Index()
            for info in archive.infolist():
                name = info.filename.rstrip("/")
                try:
                    validate_backend_name(name)
                except StoreError:
                    continue  # not ours (written by another program): not an item
                if info.is_dir():
                    index.add_dir(name, _mtime(info))
                elif name not in index.dirs:
                    index.add_file(archive.getinfo(info.filename))  # the last member of a name wins
            self._zip, self._fd, self._readonly, self._index = archive, fd, readonly, index

        await self._run("", job)

    async def _close(self) -> None:
        """Write the central directory and close the archive."""
        archive, fd = self._zip, self._fd
        self._zip, self._fd = None, -1

        def job() -> None:
            try:
                if archive is not None:
                    with self._lock:
                        archive.close()
            finally:
                os.close(fd)

        try:
            await self._run("", job)
        finally:
            self._offloader.shutdown()

    # directories -----------------------------------------------------------------------------------------

    async def _mkdir(self, name: str) -> None:
        """Add a directory member (and nothing if the directory exists)."""

        def job() -> None:
            with self._lock:
                if name in self._index.dirs:
                    return
                self._index.check_free(name, self.location)
                archive = self._writable()
                archive.mkdir(name)
                self._index.add_dir(name, time.time())

        await self._run(name, job)

    async def _rmdir(self, name: str) -> None:
        """Not possible in a write-once archive (a missing directory raises ``ObjectNotFound``)."""
        if name not in self._index.dirs:
            raise ObjectNotFound(name)
        raise _write_once(self.location, "rmdir", name)

    # items -----------------------------------------------------------------------------------------------

    async def _info(self, name: str) -> ItemInfo:
        return await self._run(name, self._info_sync, name)

    async def _load(self, name: str, offset: int, size: int | None) -> bytes:
        """Read a member, or a range of it (one ``pread`` for stored members)."""
        return await self._run(name, self._load_sync, name, offset, size)

    async def _store(self, name: str, value: bytes | memoryview, *, replace: bool) -> None:
        """Append a member; an existing name raises ``BackendError`` (write-once)."""
        await self._run(name, self._store_sync, name, value, replace)

    async def _delete(self, name: str) -> None:
        """Not possible in a write-once archive (a missing item raises ``ObjectNotFound``)."""
        if name not in self._index.files:
            raise ObjectNotFound(name)
        raise _write_once(self.location, "delete", name)

    async def _move(self, src: str, dst: str, *, replace: bool) -> None:
        """Not possible in a write-once archive (a missing source raises ``ObjectNotFound``)."""
        if src not in self._index.files:
            raise ObjectNotFound(src)
        raise _write_once(self.location, "move", src)

    async def _list(self, name: str) -> AsyncIterator[ItemInfo]:

        def job() -> builtins.list[ItemInfo]:
            with self._lock:
                children = self._index.dirs.get(name)
                if children is None:
                    raise ObjectNotFound(name)
                infos = []
                for leaf, info in sorted(children.items()):
                    if info is None:
                        path = f"{name}/{leaf}" if name else leaf
                        infos.append(ItemInfo.for_directory(leaf, mtime=self._index.dir_times.get(path, 0.0)))
                    else:
                        infos.append(ItemInfo.for_file(leaf, info.file_size, mtime=_mtime(info)))
                return infos

        for info in await self._run(name, job):
            yield info

    async def _load_batch(self, names: Sequence[str]) -> builtins.list[bytes | Exception]:
        """Load many members in one thread job."""
        return await self._offloader.run(self._batch_sync, self._load_sync, [(name,) for name in names])

    async def _store_batch(
        self, items: Sequence[tuple[str, bytes | memoryview, bool]]
    ) -> builtins.list[Exception | None]:
        """Append many members in one thread job."""
        return await self._offloader.run(self._batch_sync, self._store_sync, items)

    async def _info_batch(self, names: Sequence[str]) -> builtins.list[ItemInfo | Exception]:
        """Describe many members in one thread job."""
        return await self._offloader.run(self._batch_sync, self._info_sync, [(name,) for name in names])

    async def _store_file(self, name: str, path: str, size: int, *, replace: bool) -> None:
        """Copy a local file into a new member in one thread job, without reading it into memory whole."""

        def job() -> None:
            archive = self._writable()
            with open(path, "rb") as source, self._lock:
                if name in self._index.files and not replace:
                    self._refuse_replace(name)
                self._index.check_free(name, self.location)
                info = self._new_member(name)
                info.file_size = size
                with archive.open(info, "w", force_zip64=size > zipfile.ZIP64_LIMIT) as member:
                    shutil.copyfileobj(source, member, 1 * MiB)
                    written = source.tell()
                assert archive.fp is not None
                archive.fp.flush()
                self._index.add_file(archive.getinfo(name))
            if written != size:  # the member is in the archive now, and it cannot be taken out again
                raise BackendError(f"{path} changed size while it was stored ({size} -> {written} bytes)")

        await self._run(name, job)


def _pread_exact(fd: int, size: int, offset: int) -> bytes:
    parts = []
    done = 0
    while done < size:
        chunk = os.pread(fd, size - done, offset + done)
        if not chunk:
            break
        parts.append(chunk)
        done += len(chunk)
    return b"".join(parts)
