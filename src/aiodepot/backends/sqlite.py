"""``sqlite:///path.db`` — items as blobs in one SQLite database file.

Each item is one row of the ``items`` table: its name, its parent directory, the value as a blob and the
time it was stored. Directories are rows of the ``dirs`` table, made by ``mkdir`` and for the parents of
every stored item, so listing a "directory" returns its immediate children (items and sub-directories),
sorted, from an index. The database runs in WAL mode: readers never wait for the writer.

Connections:

- **one writer**, a plain `sqlite3` connection behind a thread lock. Every mutation is one
  ``BEGIN IMMEDIATE … COMMIT`` on it, run as one job on the writer's thread (awaited calls) or in the
  caller's own thread (the blocking twins `SyncStore` uses), so a store costs one thread hand-off, or none.
  A reader sees a value whole or not at all; triggers keep the byte count for the quota and refuse an item
  where a directory is (and the other way round).
- **a small pool of readers**, plain `sqlite3` connections on the backend's own threads. A ranged load opens
  the blob (SQLite's incremental blob API) and reads only the asked range, never the whole value, inside one
  read transaction.

After ``os.fork()`` the child opens its own connections on first use (SQLite connections must not cross a
fork); the parent's stay untouched in the child, never used nor closed there.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import queue
import sqlite3
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, NoReturn, Self, TypeVar
from urllib.parse import quote, unquote

from .._threads import Offloader
from ..errors import (
    BackendError,
    BackendURLInvalid,
    ObjectNotFound,
    PermissionDenied,
    QuotaExceeded,
    StoreCorrupt,
    StoreError,
    StoreExists,
    StoreNotFound,
)
from ..hashing import check_algorithm
from ..hashing import new as new_hasher
from ..items import ItemInfo
from ..names import is_internal
from .base import Backend, Capabilities
from .options import Limits, RetryPolicy, Timeouts, legacy_options

__all__ = ["SQLiteBackend"]

T = TypeVar("T")
MiB = 1024 * 1024
FORMAT_VERSION = 1
_HASH_CHUNK = 1 * MiB
_IN_CHUNK = 500  # names per "IN (...)" query, well below SQLite's variable limit

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS aiodepot_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO aiodepot_meta (key, value) VALUES ('format', {FORMAT_VERSION}), ('usage', 0);
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    parent TEXT NOT NULL,
    value BLOB NOT NULL,
    mtime REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS items_by_parent ON items (parent, name);
CREATE TABLE IF NOT EXISTS dirs (
    name TEXT PRIMARY KEY,
    parent TEXT NOT NULL,
    mtime REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dirs_by_parent ON dirs (parent, name);
CREATE TRIGGER IF NOT EXISTS items_not_on_dir_insert BEFORE INSERT ON items
    WHEN EXISTS (SELECT 1 FROM dirs WHERE name = NEW.name)
    BEGIN SELECT RAISE(ABORT, 'aiodepot: is a directory'); END;
CREATE TRIGGER IF NOT EXISTS items_not_on_dir_rename BEFORE UPDATE OF name ON items
    WHEN EXISTS (SELECT 1 FROM dirs WHERE name = NEW.name)
    BEGIN SELECT RAISE(ABORT, 'aiodepot: is a directory'); END;
CREATE TRIGGER IF NOT EXISTS dirs_not_on_item BEFORE INSERT ON dirs
    WHEN EXISTS (SELECT 1 FROM items WHERE name = NEW.name)
    BEGIN SELECT RAISE(ABORT, 'aiodepot: not a directory'); END;
CREATE TRIGGER IF NOT EXISTS usage_insert AFTER INSERT ON items
    BEGIN UPDATE aiodepot_meta SET value = value + length(NEW.value) WHERE key = 'usage'; END;
CREATE TRIGGER IF NOT EXISTS usage_update AFTER UPDATE OF value ON items
    BEGIN UPDATE aiodepot_meta SET value = value + length(NEW.value) - length(OLD.value) WHERE key = 'usage'; END;
CREATE TRIGGER IF NOT EXISTS usage_delete AFTER DELETE ON items
    BEGIN UPDATE aiodepot_meta SET value = value - length(OLD.value) WHERE key = 'usage'; END;
"""

_UPSERT = (
    "INSERT INTO items (name, parent, value, mtime) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (name) DO UPDATE SET value = excluded.value, mtime = excluded.mtime"
)
_ADD_DIR = "INSERT OR IGNORE INTO dirs (name, parent, mtime) VALUES (?, ?, ?)"
_LIST = (
    "SELECT name, 1, 0, mtime FROM dirs WHERE parent = ? "
    "UNION ALL SELECT name, 0, length(value), mtime FROM items WHERE parent = ? ORDER BY 1"
)


def _load_internal(conn: sqlite3.Connection, name: str) -> bytes:
    """The value of the store's own file ``name`` (kept in ``aiodepot_meta``, not among the items)."""
    row = conn.execute("SELECT value FROM aiodepot_meta WHERE key = ?", (name,)).fetchone()
    if row is None or not isinstance(row[0], bytes):
        raise ObjectNotFound(name)
    return row[0]


def _parent(name: str) -> str:
    return name.rpartition("/")[0]


def _ancestors(name: str) -> list[str]:
    """The directories above ``name``, outermost first: ``a/b/c`` -> ``["a", "a/b"]``."""
    parts = name.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _dir_rows(names: Sequence[str], mtime: float, *, include_self: bool = False) -> list[tuple[str, str, float]]:
    """``dirs`` rows for the parents of ``names`` (each once, parents before children), and for ``names``
    themselves with ``include_self``."""
    seen: dict[str, None] = {}
    for name in names:
        for directory in _ancestors(name):
            seen.setdefault(directory)
        if include_self:
            seen.setdefault(name)
    return [(directory, _parent(directory), mtime) for directory in seen]


def _translate(exc: sqlite3.Error, name: str) -> NoReturn:
    """Re-raise a SQLite error as the matching [`StoreError`][aiodepot.errors.StoreError]."""
    message = str(exc)
    if "aiodepot: is a directory" in message:
        raise BackendError(f"{name!r} is a directory") from exc
    if "aiodepot: not a directory" in message:
        raise BackendError(f"a parent of {name!r} is an item, not a directory") from exc
    code = getattr(exc, "sqlite_errorcode", None)
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        raise StoreCorrupt(f"{name}: the database is damaged or not a SQLite database ({message})") from exc
    if code == sqlite3.SQLITE_FULL:
        raise QuotaExceeded(f"{name}: {message}") from exc
    if code in (sqlite3.SQLITE_PERM, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_AUTH):
        raise PermissionDenied(f"{name}: {message}") from exc
    raise BackendError(f"{name}: {message}") from exc


_inherited: list[sqlite3.Connection] = []
"""In a forked child: the parent's connections, kept referenced so that they are never closed (nor used) here."""

_forkable: weakref.WeakSet[_ReaderPool | _Writer] = weakref.WeakSet()


def _connect(uri: str, timeout: float) -> sqlite3.Connection:
    return sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None, check_same_thread=False)


class _ReaderPool:
    """Read-only ``sqlite3`` connections, each used by one thread job at a time."""

    def __init__(self, path: str, size: int, timeout: float) -> None:
        self._uri = f"file:{quote(path)}?mode=ro"
        self._timeout = timeout
        self._idle: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self.offloader = Offloader(f"aiodepot-sqlite-{os.path.basename(path)}", size)
        _forkable.add(self)

    def _after_fork(self) -> None:
        _inherited.extend(self._all)
        self._idle = queue.SimpleQueue()
        self._all = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """Borrow a connection (made on first need) inside an open read transaction."""
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            conn = _connect(self._uri, self._timeout)
            with self._lock:
                self._all.append(conn)
        try:
            conn.execute("BEGIN")  # one snapshot for every statement of this job
            try:
                yield conn
            finally:
                conn.execute("COMMIT")
        finally:
            self._idle.put(conn)

    def call(self, name: str, job: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``job(conn)`` in this thread with a borrowed connection (SQLite errors translated)."""
        try:
            with self.connection() as conn:
                return job(conn)
        except sqlite3.Error as exc:
            _translate(exc, name)

    async def run(self, name: str, job: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``job(conn)`` on a pool thread with a borrowed connection."""
        return await self.offloader.run(self.call, name, job)

    def close_all(self) -> None:
        """Close every connection (no job may be running)."""
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()


class _Writer:
    """The one write connection, behind a thread lock: each mutation is one ``BEGIN IMMEDIATE … COMMIT``
    in whichever thread calls (the writer's own thread for awaited calls, or a blocking caller's)."""

    def __init__(self, path: str, timeout: float, synchronous: str) -> None:
        self.path = path
        self._uri = f"file:{quote(path)}?mode=rw"
        self._timeout = timeout
        self._synchronous = synchronous
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self.offloader = Offloader(f"aiodepot-sqlite-{os.path.basename(path)}-writer", 1)
        _forkable.add(self)

    def _after_fork(self) -> None:
        if self._conn is not None:
            _inherited.append(self._conn)
            self._conn = None
        self._lock = threading.Lock()

    def connect(self) -> None:
        """Connect (in this thread) and check that the file is a store of this format."""
        try:
            conn = _connect(self._uri, self._timeout)
        except sqlite3.Error as exc:
            _translate(exc, self.path)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            versions = [row[0] for row in conn.execute("SELECT value FROM aiodepot_meta WHERE key = 'format'")]
            if versions != [FORMAT_VERSION]:
                raise BackendError(f"{self.path}: unknown store format {versions or 'none'}")
        except sqlite3.OperationalError as exc:
            conn.close()
            raise StoreCorrupt(f"{self.path} is a SQLite database of something else, not an aiodepot store") from exc
        except sqlite3.Error as exc:
            conn.close()
            _translate(exc, self.path)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def call(self, name: str, job: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``job(conn)`` in one write transaction in this thread, rolled back on any error (SQLite's
        errors translated into the store's)."""
        with self._lock:
            if self._conn is None:  # first write in a forked child
                self.connect()
            conn = self._conn
            assert conn is not None
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = job(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                _translate(exc, name)
        return result

    async def run(self, name: str, job: Callable[[sqlite3.Connection], T]) -> T:
        """`call` on the writer's thread."""
        return await self.offloader.run(self.call, name, job)

    def close(self) -> None:
        """Close the connection (in this thread; it may checkpoint the WAL)."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def _renew_after_fork() -> None:
    for owner in list(_forkable):
        owner._after_fork()


os.register_at_fork(after_in_child=_renew_after_fork)


class SQLiteBackend(Backend):
    """Items as blobs in one SQLite database file (WAL mode), directories emulated by a table.

    Args:
        path: the database file, absolute (created by ``create()``, with missing parent directories).
        permissions: a permission map, shortcut name or JSON (see [`aiodepot.permissions`][aiodepot.permissions]).
        quota: a byte limit for the sum of all values; the usage is kept in the database by triggers.
        limits: ``threads``: read connections (each with its thread) for concurrent loads, infos and
            listings (default 4).
        timeout: seconds to wait for a lock held by another process before failing.
        synchronous: SQLite's ``synchronous`` setting for the writer: ``"NORMAL"`` (WAL's usual choice: a
            commit survives a crash of the process, maybe not a power loss) or ``"FULL"`` (also a power loss).
    """

    capabilities = Capabilities(
        batch_ops=True,
        batch_size=256,
        server_side_hash=True,
        server_side_copy=True,
        atomic_create=True,  # the check and the insert share one BEGIN IMMEDIATE transaction
        preferred_concurrency=64,
        part_size=8 * MiB,
    )
    blocking_operations = frozenset({"info", "load", "store", "delete"})

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        permissions: str | dict[str, str] | None = None,
        quota: int | None = None,
        limits: Limits | None = None,
        timeout: float = 30.0,
        synchronous: str = "NORMAL",
        **deprecated: Any,
    ) -> None:
        super().__init__(permissions=permissions)
        path = os.fspath(path)
        if not os.path.isabs(path):
            raise BackendURLInvalid(f"the sqlite database path must be absolute: {path!r}")
        if quota is not None and (not isinstance(quota, int) or quota < 0):
            raise ValueError(f"quota must be a byte count >= 0, got {quota!r}")
        _, self.limits, _ = legacy_options(
            "SQLiteBackend",
            deprecated,
            {"readers": ("limits", "threads", None)},
            retry=RetryPolicy(attempts=1),
            limits=(limits or Limits()).or_defaults(Limits(threads=4)),
            timeouts=Timeouts(),
        )
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, got {synchronous!r}")
        self.path = os.path.normpath(path)
        self.quota_limit = quota
        self.readers: int = self.limits.threads or 4
        self.timeout = timeout
        self.synchronous = synchronous.upper()
        self._writer = _Writer(self.path, timeout, self.synchronous)
        self._pool: _ReaderPool | None = None

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """``sqlite:///absolute/path.db`` (percent-encoding allowed); the host part must be empty."""
        if not url.startswith("sqlite://"):
            raise BackendURLInvalid(f"not a sqlite: URL: {url!r}")
        rest = url[len("sqlite://") :]
        if not rest.startswith("/") or rest == "/":
            raise BackendURLInvalid(
                f"sqlite: URLs need an empty host and an absolute path (sqlite:///path.db): {url!r}"
            )
        return cls(unquote(rest), **options)

    def __repr__(self) -> str:
        return f"<SQLiteBackend {self.path!r} {'open' if self.opened else 'closed'}>"

    def _describe_location(self) -> str:
        return f"sqlite://{self.path}"

    # connections ---------------------------------------------------------------------------------------

    def _readers(self) -> _ReaderPool:
        pool = self._pool
        if pool is None:
            self._require_open()
            raise AssertionError("an open sqlite backend has its readers")
        return pool

    def _write(self, name: str, job: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``job(conn)`` in one write transaction in the caller's thread."""
        self._require_open()
        return self._writer.call(name, job)

    async def _write_async(self, name: str, job: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``job(conn)`` in one write transaction on the writer's thread."""
        self._require_open()
        return await self._writer.run(name, job)

    # lifecycle -----------------------------------------------------------------------------------------

    async def _create(self) -> None:
        """Create the database file with its tables; an existing file that holds items raises ``StoreExists``."""
        try:
            await self._writer.offloader.run(self._create_sync)
        finally:
            self._writer.offloader.shutdown()  # a closed store keeps no thread

    def _create_sync(self) -> None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        if os.path.isdir(self.path):
            raise StoreExists(f"{self.path} is a directory, but a sqlite store is a file")
        try:
            with contextlib.closing(_connect(f"file:{quote(self.path)}?mode=rwc", self.timeout)) as db:
                tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
                if tables and "items" not in tables:
                    raise StoreExists(f"{self.path} is a SQLite database of something else, not an aiodepot store")
                if "items" in tables:
                    rows = db.execute("SELECT 1 FROM items UNION ALL SELECT 1 FROM dirs LIMIT 1").fetchall()
                    if rows:
                        raise StoreExists(f"sqlite store is not empty: {self.path}")
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            _translate(exc, self.path)

    async def _destroy(self) -> None:
        """Delete the database file and its WAL files."""

        def job() -> None:
            if not os.path.isfile(self.path):
                raise StoreNotFound(f"sqlite store does not exist: {self.path}")
            for suffix in ("", "-wal", "-shm", "-journal"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path + suffix)

        try:
            await self._writer.offloader.run(job)
        finally:
            self._writer.offloader.shutdown()

    async def _open(self) -> None:
        """Connect the writer and check the schema; a missing database raises ``StoreNotFound``."""

        def job() -> None:
            if not os.path.isfile(self.path):
                if os.path.lexists(self.path):
                    raise StoreCorrupt(f"{self.path} is not a file, so not a sqlite store")
                raise StoreNotFound(f"sqlite store does not exist: {self.path} (call create())")
            self._writer.connect()

        try:
            await self._writer.offloader.run(job)
        except BaseException:
            self._writer.offloader.shutdown()
            raise
        self._pool = _ReaderPool(self.path, self.readers, self.timeout)

    async def _close(self) -> None:
        """Close the writer and the read connections."""
        pool, self._pool = self._pool, None
        try:
            await self._writer.offloader.run(self._writer.close)
        finally:
            self._writer.offloader.shutdown()
            if pool is not None:
                await pool.offloader.run(pool.close_all)
                pool.offloader.shutdown()

    # directories ---------------------------------------------------------------------------------------

    async def _mkdir(self, name: str) -> None:
        def job(db: sqlite3.Connection) -> None:
            db.executemany(_ADD_DIR, _dir_rows([name], time.time(), include_self=True))

        await self._write_async(name, job)

    async def _rmdir(self, name: str) -> None:
        def job(db: sqlite3.Connection) -> None:
            if db.execute("SELECT 1 FROM dirs WHERE name = ?", (name,)).fetchone() is None:
                raise ObjectNotFound(name)
            children = db.execute(
                "SELECT 1 FROM dirs WHERE parent = ? UNION ALL SELECT 1 FROM items WHERE parent = ? LIMIT 1",
                (name, name),
            ).fetchone()
            if children is not None:
                raise BackendError(f"directory {name!r} is not empty")
            db.execute("DELETE FROM dirs WHERE name = ?", (name,))

        await self._write_async(name, job)

    # reading -------------------------------------------------------------------------------------------

    @staticmethod
    def _info_sync(conn: sqlite3.Connection, name: str) -> ItemInfo:
        leaf = name.rpartition("/")[2]
        if not name:
            return ItemInfo.for_directory(leaf)
        row = conn.execute("SELECT length(value), mtime FROM items WHERE name = ?", (name,)).fetchone()
        if row is not None:
            return ItemInfo.for_file(leaf, row[0], mtime=row[1])
        row = conn.execute("SELECT mtime FROM dirs WHERE name = ?", (name,)).fetchone()
        if row is not None:
            return ItemInfo.for_directory(leaf, mtime=row[0])
        return ItemInfo.missing(leaf)

    @staticmethod
    def _load_sync(conn: sqlite3.Connection, name: str, offset: int, size: int | None) -> bytes:
        if offset == 0 and size is None:
            row = conn.execute("SELECT value FROM items WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise ObjectNotFound(name)
            return bytes(row[0])
        row = conn.execute("SELECT id, length(value) FROM items WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise ObjectNotFound(name)
        rowid, total = row
        start = max(total + offset, 0) if offset < 0 else min(offset, total)
        length = total - start if size is None else min(size, total - start)
        if length <= 0:
            return b""
        with conn.blobopen("items", "value", rowid, readonly=True) as blob:
            blob.seek(start)
            return blob.read(length)

    async def _info(self, name: str) -> ItemInfo:
        return await self._readers().run(name, lambda conn: self._info_sync(conn, name))

    async def _load(self, name: str, offset: int, size: int | None) -> bytes:
        """Read a whole value, or a range of it through the incremental blob API."""
        if is_internal(name):
            return await self._readers().run(name, lambda conn: _load_internal(conn, name))
        return await self._readers().run(name, lambda conn: self._load_sync(conn, name, offset, size))

    # the readers are plain sqlite3 connections: a blocking caller reads with one in its own thread (and
    # writes with the writer, see _store_blocking)

    def _info_blocking(self, name: str) -> ItemInfo:
        return self._readers().call(name, lambda conn: self._info_sync(conn, name))

    def _load_blocking(self, name: str, offset: int, size: int | None) -> bytes:
        return self._readers().call(name, lambda conn: self._load_sync(conn, name, offset, size))

    async def _list(self, name: str) -> AsyncIterator[ItemInfo]:
        pool = self._readers()

        def job(conn: sqlite3.Connection) -> builtins.list[ItemInfo]:
            if name and conn.execute("SELECT 1 FROM dirs WHERE name = ?", (name,)).fetchone() is None:
                raise ObjectNotFound(name)
            cut = len(name) + 1 if name else 0
            return [
                ItemInfo(name=path[cut:], exists=True, size=size, directory=bool(is_dir), mtime=mtime)
                for path, is_dir, size, mtime in conn.execute(_LIST, (name, name))
            ]

        for info in await pool.run(name, job):
            yield info

    async def _count(self, name: str, deleted: bool) -> int:
        """One ``SELECT count(*)`` over the name range below the directory (the name index, no values)."""
        pool = self._readers()

        def job(conn: sqlite3.Connection) -> int:
            if name and conn.execute("SELECT 1 FROM dirs WHERE name = ?", (name,)).fetchone() is None:
                raise ObjectNotFound(name)
            tail = "AND (substr(name, -4) = '.del') = ?"
            if not name:
                row = conn.execute(f"SELECT count(*) FROM items WHERE 1 {tail}", (deleted,)).fetchone()
            else:  # every name below "a/b" sorts in ["a/b/", "a/b0"): "0" follows "/"
                row = conn.execute(
                    f"SELECT count(*) FROM items WHERE name >= ? AND name < ? {tail}", (name + "/", name + "0", deleted)
                ).fetchone()
            return int(row[0])

        total: int = await pool.run(name, job)
        return total

    async def _hash(self, name: str, algorithm: str) -> str:
        """Hash the blob on a reader thread, reading it piecewise (no data through the event loop)."""
        pool = self._readers()
        check_algorithm(algorithm)

        def job(conn: sqlite3.Connection) -> str:
            row = conn.execute("SELECT id, length(value) FROM items WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise ObjectNotFound(name)
            hasher = new_hasher(algorithm)
            if row[1]:
                with conn.blobopen("items", "value", row[0], readonly=True) as blob:
                    while chunk := blob.read(_HASH_CHUNK):
                        hasher.update(chunk)
            return hasher.hexdigest()

        return await pool.run(name, job)

    async def _load_batch(self, names: Sequence[str]) -> builtins.list[bytes | Exception]:
        """Load many whole values in one reader job."""
        pool = self._readers()
        wanted = list(names)

        def job(conn: sqlite3.Connection) -> dict[str, bytes]:
            found: dict[str, bytes] = {}
            for i in range(0, len(wanted), _IN_CHUNK):
                chunk = wanted[i : i + _IN_CHUNK]
                marks = ",".join("?" * len(chunk))
                for row_name, value in conn.execute(f"SELECT name, value FROM items WHERE name IN ({marks})", chunk):
                    found[row_name] = bytes(value)
            return found

        found = await pool.run("", job) if wanted else {}
        return [found[name] if name in found else ObjectNotFound(name) for name in names]

    async def _info_batch(self, names: Sequence[str]) -> builtins.list[ItemInfo | Exception]:
        """Describe many items in one reader job."""
        pool = self._readers()

        def job(conn: sqlite3.Connection) -> builtins.list[ItemInfo | Exception]:
            results: builtins.list[ItemInfo | Exception] = []
            for name in names:
                try:
                    results.append(self._info_sync(conn, name))
                except StoreError as exc:
                    results.append(exc)
            return results

        return await pool.run("", job)

    # writing -------------------------------------------------------------------------------------------

    @staticmethod
    def _existing_sizes(db: sqlite3.Connection, names: Sequence[str]) -> dict[str, int]:
        sizes: dict[str, int] = {}
        for i in range(0, len(names), _IN_CHUNK):
            chunk = list(names[i : i + _IN_CHUNK])
            marks = ",".join("?" * len(chunk))
            rows = db.execute(f"SELECT name, length(value) FROM items WHERE name IN ({marks})", chunk)
            sizes.update((row[0], row[1]) for row in rows)
        return sizes

    @staticmethod
    def _usage(db: sqlite3.Connection) -> int:
        row = db.execute("SELECT value FROM aiodepot_meta WHERE key = 'usage'").fetchone()
        return int(row[0]) if row else 0

    def _store_job(self, name: str, data: bytes | memoryview, replace: bool) -> Callable[[sqlite3.Connection], None]:
        """The transaction that inserts or replaces the row of ``name`` (and its parent directories)."""
        now = time.time()
        if is_internal(name):  # the store's own file: beside the items, out of listings, counts and usage

            def internal(db: sqlite3.Connection) -> None:
                db.execute("INSERT OR REPLACE INTO aiodepot_meta (key, value) VALUES (?, ?)", (name, bytes(data)))

            return internal

        def job(db: sqlite3.Connection) -> None:
            if not replace or self.quota_limit is not None:
                old = self._existing_sizes(db, [name]).get(name)
                if old is not None and not replace:
                    self._refuse_replace(name)
                if self.quota_limit is not None:
                    self._check_quota(self._usage(db), len(data) - (old or 0))
            db.executemany(_ADD_DIR, _dir_rows([name], now))
            db.execute(_UPSERT, (name, _parent(name), data, now))

        return job

    async def _store(self, name: str, value: bytes | memoryview, *, replace: bool) -> None:
        """Insert or replace the row of ``name`` (and its parent directories) in one transaction."""
        await self._write_async(name, self._store_job(name, value, replace))

    def _store_blocking(self, name: str, value: bytes | memoryview, *, replace: bool) -> None:
        self._write(name, self._store_job(name, value, replace))

    def _check_quota(self, usage: int, delta: int) -> None:
        if self.quota_limit is not None and delta > 0 and usage + delta > self.quota_limit:
            raise QuotaExceeded(f"quota exceeded: {usage + delta} > {self.quota_limit} bytes")

    async def _store_batch(
        self, items: Sequence[tuple[str, bytes | memoryview, bool]]
    ) -> builtins.list[Exception | None]:
        """Store many values in one transaction (each item whole or not at all)."""
        self._require_open()
        return await self._writer.offloader.run(self._store_batch_sync, items)

    def _store_batch_sync(
        self, items: Sequence[tuple[str, bytes | memoryview, bool]]
    ) -> builtins.list[Exception | None]:
        results: builtins.list[Exception | None] = [None] * len(items)
        checked = [(index, name, data) for index, (name, data, _) in enumerate(items)]
        restricted = not all(replace for _, _, replace in items)
        now = time.time()

        def job(db: sqlite3.Connection) -> None:
            accepted = checked
            if restricted or self.quota_limit is not None:
                old = self._existing_sizes(db, [name for _, name, _ in checked])
                usage = self._usage(db) if self.quota_limit is not None else 0
                accepted = []
                for index, name, data in checked:
                    try:
                        if name in old and not items[index][2]:
                            self._refuse_replace(name)
                        delta = len(data) - old.get(name, 0)
                        self._check_quota(usage, delta)
                    except StoreError as exc:
                        results[index] = exc
                        continue
                    usage += delta
                    old[name] = len(data)
                    accepted.append((index, name, data))
            db.executemany(_ADD_DIR, _dir_rows([name for _, name, _ in accepted], now))
            db.executemany(_UPSERT, [(name, _parent(name), data, now) for _, name, data in accepted])

        try:
            self._writer.call(checked[0][1], job)
        except BackendError:
            # one item could not go in (e.g. a directory of that name): find it, storing one by one
            for index, (name, data, replace) in enumerate(items):
                results[index] = _outcome(self._writer.call, name, self._store_job(name, data, replace))
        return results

    @staticmethod
    def _delete_job(name: str) -> Callable[[sqlite3.Connection], None]:
        def job(db: sqlite3.Connection) -> None:
            if db.execute("DELETE FROM items WHERE name = ?", (name,)).rowcount != 1:
                raise ObjectNotFound(name)

        return job

    async def _delete(self, name: str) -> None:
        await self._write_async(name, self._delete_job(name))

    def _delete_blocking(self, name: str) -> None:
        self._write(name, self._delete_job(name))

    async def _delete_batch(self, names: Sequence[str]) -> builtins.list[Exception | None]:
        """Delete many items in one transaction."""
        results: builtins.list[Exception | None] = [None] * len(names)

        def job(db: sqlite3.Connection) -> None:
            for index, name in enumerate(names):
                if db.execute("DELETE FROM items WHERE name = ?", (name,)).rowcount != 1:
                    results[index] = ObjectNotFound(name)

        await self._write_async("", job)
        return results

    async def _move(self, src: str, dst: str, *, replace: bool) -> None:
        """Rename a row (replacing ``dst``) in one transaction; the value is not copied."""

        def job(db: sqlite3.Connection) -> None:
            sizes = self._existing_sizes(db, [src, dst])
            if src not in sizes:
                raise ObjectNotFound(src)
            if dst in sizes and not replace:
                self._refuse_replace(dst)
            if src == dst:
                return
            db.executemany(_ADD_DIR, _dir_rows([dst], time.time()))
            db.execute("DELETE FROM items WHERE name = ?", (dst,))
            db.execute("UPDATE items SET name = ?, parent = ? WHERE name = ?", (dst, _parent(dst), src))

        await self._write_async(src, job)

    async def _quota_usage(self) -> dict[str, int]:
        """The limit and the usage (-1 when no quota is set); the usage is the sum of all value sizes."""
        pool = self._readers()
        if self.quota_limit is None:
            return {"limit": -1, "usage": -1}

        def job(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT value FROM aiodepot_meta WHERE key = 'usage'").fetchone()
            return int(row[0]) if row else 0

        return {"limit": self.quota_limit, "usage": await pool.run("", job)}


def _outcome(call: Callable[..., Any], *args: Any) -> Exception | None:
    try:
        call(*args)
    except StoreError as exc:
        return exc
    return None
