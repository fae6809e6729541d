"""``SftpBackend``: the backend's hooks, its connections' lifecycle and the reconnect-and-retry loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import posixpath
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, ClassVar, Self, TypeVar, cast

import aiofiles
import asyncssh

from ... import hashing
from ...errors import (
    BackendURLInvalid,
    ConnectionLost,
    ObjectNotFound,
    QuotaExceeded,
    StoreError,
    StoreExists,
    StoreNotFound,
    StoreNotOpen,
    ValueChanged,
)
from ...items import ItemInfo
from ...names import temp_name, validate_backend_name
from ..base import Backend, Capabilities, FirstRange
from ..options import Limits, Rename, RetryPolicy, Timeouts, legacy_options, never_reached
from ._config import parse_url, paths, read_known_hosts
from ._connection import DEFAULT_WINDOW, ENCRYPTION_ALGS, MAX_PACKET, SFTP_VERSION, HostKeyClient, Link, Pool
from ._errors import is_lost, is_not_found, raise_translated
from ._files import RemoteFiles, close_quietly, item_info
from ._hashing import RemoteHasher

__all__ = ["REMOTE_HASH_MIN_SIZE", "SftpBackend"]

log = logging.getLogger("aiodepot.backends.sftp")

T = TypeVar("T")
MiB = 1024 * 1024

REMOTE_HASH_MIN_SIZE = 1 * MiB
"""Below this, streaming a value to hash it is cheaper than starting a hash command on the server."""
_RENAMED: dict[str, Rename] = {
    "connections": ("limits", "connections", None),
    "timeout": ("timeouts", "read", None),
    "connect_timeout": ("timeouts", "connect", None),
    "retries": ("retry", "attempts", lambda retries: retries + 1),
    "retry_wait": ("retry", "backoff", None),
}
"""The keywords before ``retry=``/``limits=``/``timeouts=`` (deprecated)."""


def _version(attrs: asyncssh.SFTPAttrs) -> str:
    """What tells one content of a file from another in its SFTP attributes: size and mtime (whole seconds
    from a version 3 server such as OpenSSH's, nanoseconds where the server gives them)."""
    return f"{attrs.size}:{attrs.mtime}.{attrs.mtime_ns or 0:09d}"


class SftpBackend(Backend):
    """Items as files below ``path`` on an SFTP server, in borgstore's layout.

    Host, port, user and keys follow OpenSSH: ``~/.ssh/config`` (``Host``, ``HostName``, ``Port``,
    ``User``, ``IdentityFile``, ...), the ssh-agent, the default keys, and ``~/.ssh/known_hosts``,
    which must know the server's host key unless ``accept_unknown_host`` is set.

    Args:
        host: the server (a name from ``~/.ssh/config`` works).
        path: the store's base directory; relative paths start in the login directory.
        port: the SSH port (default: from ``~/.ssh/config``, else 22).
        username: the login (default: from ``~/.ssh/config``, else the local user).
        known_hosts: known_hosts file(s) to check the host key against (default: OpenSSH's).
        accept_unknown_host: accept a host that known_hosts does not list (a listed host must still
            match); its key is remembered for the reconnects of this backend.
        client_keys: private key file(s) to log in with (default: ``IdentityFile``, agent, ``~/.ssh/id_*``).
        retry: how an operation that lost its connection is run again on a new one (default
            ``default_retry``: 4 attempts, waits from 1 s doubling up to 30 s).
        limits: ``connections``: SSH connections in the pool (default 1); each carries many requests at once.
        timeouts: ``connect``: seconds to connect and log in (default 30); ``read``: seconds a round of
            requests may take before the connection counts as dead (default 120).
        keepalive_interval: seconds between keepalives on a quiet connection (0: none).
        keepalive_count_max: unanswered keepalives after which the connection counts as dead.
        remote_hash_min_size: values at least this big are hashed on the server by running
            ``sha256sum`` & co. over SSH, where the server allows it; None: always stream the value.
        ssh_options: further keyword arguments for [`asyncssh.connect`](https://asyncssh.readthedocs.io/en/latest/api.html#asyncssh.connect).
        permissions: a permission map, shortcut name or JSON (see [`aiodepot.permissions`][aiodepot.permissions]).
    """

    default_retry: ClassVar[RetryPolicy] = RetryPolicy(attempts=4, backoff=1.0, multiplier=2.0, cap=30.0, jitter=0.5)
    """The retry policy without ``retry=``."""
    default_limits: ClassVar[Limits] = Limits(connections=1)
    """The limits that ``limits=`` leaves ``None``."""
    default_timeouts: ClassVar[Timeouts] = Timeouts(connect=30.0, read=120.0)
    """The timeouts that ``timeouts=`` leaves ``None``."""

    capabilities = Capabilities(
        server_side_copy=True,  # move is a rename on the server
        atomic_create=True,  # the plain SFTP rename refuses an existing target (OpenSSH: with link())
        parallel_ranges=True,
        preferred_concurrency=64,  # requests in flight: enough to hide a round trip of tens of ms
        part_size=4 * MiB,  # 16 maximum-size OpenSSH reads (255 KiB) in flight per range
    )

    def __init__(
        self,
        host: str,
        path: str,
        *,
        port: int | None = None,
        username: str | None = None,
        known_hosts: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
        accept_unknown_host: bool = False,
        client_keys: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
        retry: RetryPolicy | None = None,
        limits: Limits | None = None,
        timeouts: Timeouts | None = None,
        keepalive_interval: float = 15.0,
        keepalive_count_max: int = 3,
        remote_hash_min_size: int | None = REMOTE_HASH_MIN_SIZE,
        ssh_options: Mapping[str, Any] | None = None,
        permissions: str | Mapping[str, str] | None = None,
        **deprecated: Any,
    ) -> None:
        super().__init__(permissions=permissions)
        if not host:
            raise BackendURLInvalid("the sftp backend needs a host")
        if not path:
            raise BackendURLInvalid("the sftp backend needs a path")
        defaults = self._defaults(retry, limits, timeouts)
        self.retry, self.limits, self.timeouts = legacy_options("SftpBackend", deprecated, _RENAMED, **defaults)
        self.host = host
        self.path = path if path == "/" else path.rstrip("/")
        self.port = port
        self.username = username
        self.known_hosts = None if known_hosts is None else paths(known_hosts)
        self.accept_unknown_host = accept_unknown_host
        self.client_keys = None if client_keys is None else paths(client_keys)
        assert self.timeouts.read is not None  # the default fills it
        self.timeout: float = self.timeouts.read
        """Seconds a round of requests may take (``timeouts.read``)."""
        self.keepalive_interval = keepalive_interval
        self.keepalive_count_max = keepalive_count_max
        self.remote_hash_min_size = remote_hash_min_size
        self.ssh_options = dict(ssh_options or {})
        self._pool = Pool(self._connect, self.limits.connections or 1)
        self._known_db: asyncssh.SSHKnownHosts | None = None
        self._pinned_keys: dict[tuple[str, int], asyncssh.SSHKey] = {}
        self._files = RemoteFiles(host, self.path, self.timeout)
        self._hasher = RemoteHasher(self._files)
        self._pid = os.getpid()

    def _after_fork(self) -> None:
        """A forked child makes its own connections (the pool sees to that), semaphore and tasks."""
        if self._pid != os.getpid():
            self._hasher.after_fork()
            self._files.after_fork()
            self._pid = os.getpid()

    def _defaults(self, retry: RetryPolicy | None, limits: Limits | None, timeouts: Timeouts | None) -> dict[str, Any]:
        """``legacy_options``'s keywords: the values given over the class's defaults."""
        return {
            "retry": retry or self.default_retry,
            "limits": (limits or Limits()).or_defaults(self.default_limits),
            "timeouts": (timeouts or Timeouts()).or_defaults(self.default_timeouts),
        }

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """``sftp://[user@]host[:port]/relative/path`` or ``sftp://[user@]host[:port]//absolute/path``.

        The user and the path may be percent-encoded; an IPv6 address goes in brackets.
        """
        parts = parse_url(url)
        return cls(parts.host, parts.path, port=parts.port, username=parts.username, **options)

    def __repr__(self) -> str:
        user = f"{self.username}@" if self.username else ""
        port = f":{self.port}" if self.port else ""
        return f"<SftpBackend {user}{self.host}{port} {self.path!r} {'open' if self.opened else 'closed'}>"

    def _describe_location(self) -> str:
        user = f"{self.username}@" if self.username else ""
        port = f":{self.port}" if self.port else ""
        return f"sftp://{user}{self.host}{port}{self.path}"

    # connections -----------------------------------------------------------------------------------------

    async def _connect(self) -> Link:
        options: dict[str, Any] = {
            "connect_timeout": self.timeouts.connect,
            "login_timeout": self.timeouts.connect,
            "keepalive_interval": self.keepalive_interval,
            "keepalive_count_max": self.keepalive_count_max,
            "window": DEFAULT_WINDOW,
            "max_pktsize": MAX_PACKET,
            "encryption_algs": ENCRYPTION_ALGS,
        }
        if self.port is not None:
            options["port"] = self.port
        if self.username is not None:
            options["username"] = self.username
        if self.client_keys is not None:
            options["client_keys"] = self.client_keys
        if self.accept_unknown_host:
            if self._known_db is None:
                files = self.known_hosts or ["~/.ssh/known_hosts"]
                self._known_db = await asyncio.to_thread(read_known_hosts, files)
            options["known_hosts"] = self._known_db  # the same entries decide what counts as unknown
            options["client_factory"] = lambda: HostKeyClient(self._accept_host_key)
        elif self.known_hosts is not None:
            options["known_hosts"] = self.known_hosts
        options.update(self.ssh_options)
        conn = await asyncssh.connect(self.host, **options)
        try:
            async with asyncio.timeout(self.timeout):
                sftp = await conn.start_sftp_client(sftp_version=SFTP_VERSION)
        except BaseException:
            conn.abort()
            raise
        return Link(conn, sftp)

    def _accept_host_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        """With ``accept_unknown_host``: trust a host that known_hosts does not list, pinning its key."""
        assert self._known_db is not None
        trusted, trusted_cas, *_ = self._known_db.match(host, addr, port)
        if trusted or trusted_cas:
            return False  # known_hosts lists other keys for this host: a changed key is never accepted
        pinned = self._pinned_keys.setdefault((host, port), key)
        if pinned is key:
            log.warning("sftp: accepting the unknown host key %s of %s:%d", key.get_fingerprint(), host, port)
        return pinned == key

    async def _run_gone_is_done(self, name: str, op: Callable[[Link], Awaitable[None]]) -> None:
        """``_run`` for an operation that removes its source (delete, rmdir, move): a retry that finds the
        source gone means the try before it did the work and the connection broke before the answer."""
        tries = 0

        async def attempt(link: Link) -> None:
            nonlocal tries
            tries += 1
            try:
                await op(link)
            except asyncssh.SFTPError as exc:
                if not (tries > 1 and is_not_found(exc)):
                    raise

        await self._run(name, attempt)

    async def _run(
        self, name: str, op: Callable[[Link], Awaitable[T]], *, may_retry: Callable[[], bool] | None = None
    ) -> T:
        """Run ``op`` on a pooled connection; after a connection loss, reconnect and run it again.

        Native errors become [`StoreError`][aiodepot.errors.StoreError]s; a connection that stays lost
        raises [`ConnectionLost`][aiodepot.errors.ConnectionLost] after ``retries`` more tries.
        """
        self._after_fork()
        was_open = self.opened
        lost: list[BaseException] = []

        async def attempt() -> T:
            if lost and was_open and not self.opened:
                raise StoreNotOpen("the sftp backend was closed while an operation waited to retry") from lost[0]
            link = await self._pool.acquire()
            try:
                return await op(link)
            except Exception as exc:
                if is_lost(exc) and not isinstance(exc, StoreError):
                    self._pool.discard(link)
                raise
            finally:
                self._pool.release(link)

        def retryable(exc: BaseException) -> bool:
            if not was_open and never_reached(exc):  # opening: a wrong address fails at once
                return False
            return is_lost(exc) and not isinstance(exc, StoreError) and (may_retry is None or may_retry())

        def on_retry(exc: BaseException, number: int, wait: float) -> None:
            lost[:] = [exc]
            log.info(
                "sftp %s: %s: connection lost (%r); retry %d of %d in %.2f s",
                self.host,
                name or "/",
                exc,
                number - 1,
                self.retry.retries,
                wait,
            )

        try:
            return await self.retry.run(attempt, retryable=retryable, on_retry=on_retry)
        except StoreError:
            raise
        except Exception as exc:
            if is_lost(exc):
                raise ConnectionLost(f"sftp {self.host}: {name or '/'}: connection lost: {exc!r}") from exc
            raise_translated(exc, name)

    def _round(self) -> asyncio.Timeout:
        """The deadline for one round of requests: past it, the connection counts as dead."""
        return self._files.round()

    # paths -----------------------------------------------------------------------------------------------

    def _path(self, name: str) -> str:
        return self._files.prefix + name

    def _temp_path(self, path: str) -> str:
        return temp_name(path)

    # lifecycle -------------------------------------------------------------------------------------------

    async def _create(self) -> None:
        """Create the base directory (and parents); an existing empty directory is accepted."""

        async def op(link: Link) -> None:
            async with self._round():
                await self._files.makedirs(link.sftp, self.path)
                entries = await link.sftp.listdir(self.path)
            if any(entry not in (".", "..") for entry in entries):
                raise StoreExists(f"sftp store directory is not empty: {self.path}")

        try:
            await self._run("", op)
        finally:
            await self._pool.close()

    async def _destroy(self) -> None:
        """Remove everything below the base directory, and the directory itself where allowed."""

        async def op(link: Link) -> None:
            if not await self._files.is_dir(link.sftp, self.path):
                raise StoreNotFound(f"sftp store directory does not exist: {self.path}")
            await self._files.remove_tree(
                link.sftp, self.path, asyncio.Semaphore(self.capabilities.preferred_concurrency)
            )

        try:
            await self._run("", op)
        finally:
            await self._pool.close()

    async def _open(self) -> None:
        """Connect (all the pool's connections) and check that the base directory exists."""

        async def op(link: Link) -> None:
            async with self._round():
                if not await self._files.is_dir(link.sftp, self.path):
                    raise StoreNotFound(f"sftp store directory does not exist: {self.path}")

        try:
            await self._run("", op)
            await self._pool.fill()
        except BaseException:
            await self._pool.close()
            raise

    async def _close(self) -> None:
        """Close all connections (after the files still being closed)."""
        self._after_fork()
        if self._files.closing:
            await asyncio.wait(self._files.closing, timeout=self.timeout)
        await self._pool.close()

    # directories -----------------------------------------------------------------------------------------

    async def _mkdir(self, name: str) -> None:
        path = self._path(name)

        async def op(link: Link) -> None:
            async with self._round():
                await self._files.makedirs(link.sftp, path)

        await self._run(name, op)

    async def _rmdir(self, name: str) -> None:
        path = self._path(name)

        async def op(link: Link) -> None:
            async with self._round():
                await link.sftp.rmdir(path)

        await self._run_gone_is_done(name, op)

    # items -----------------------------------------------------------------------------------------------

    async def _info(self, name: str) -> ItemInfo:
        """Describe an item or directory (one stat request)."""
        path = self._path(name)
        leaf = name.rpartition("/")[2]

        async def op(link: Link) -> ItemInfo:
            attrs = await self._files.stat(link, path)
            return ItemInfo.missing(leaf) if attrs is None else item_info(leaf, attrs)

        return await self._run(name, op)

    async def _load(self, name: str, offset: int, size: int | None) -> bytes:
        """Read a value or a range of it: open, then the reads with the close right behind them."""
        path = self._path(name)

        async def op(link: Link) -> bytes:
            return await self._files.read_value(link, path, offset, size, self.capabilities.part_size)

        return await self._run(name, op)

    async def _load_into(self, name: str, offset: int, buffer: memoryview) -> int:
        """Read a range into ``buffer``: each answer is copied to its place as it comes (a retry starts the
        range again)."""
        path = self._path(name)

        async def op(link: Link) -> int:
            return await self._files.read_range_into(link, path, offset, buffer)

        return await self._run(name, op)

    async def _load_first(self, name: str, offset: int, size: int) -> FirstRange:
        """The first range of a ranged load with the open file's attributes, asked with the reads (one
        round trip where a stat before and after the ranges made two more); the other ranges check the
        attributes of the file they read from against them (see `_load_into_if`)."""
        path = self._path(name)

        async def op(link: Link) -> tuple[bytes | int, asyncssh.SFTPAttrs]:
            return await self._files.read_with_attrs(link, path, offset, size)

        data, attrs = await self._run(name, op)
        assert isinstance(data, bytes)
        info = item_info(name.rpartition("/")[2], attrs)
        return FirstRange(data, info.size, info.mtime, _version(attrs))

    async def _load_into_if(self, name: str, offset: int, buffer: memoryview, version: str) -> int:
        """`_load_into` with the open file's attributes asked in the same round trip: another size or mtime
        than ``version``'s raises ``ValueChanged``."""
        path = self._path(name)

        async def op(link: Link) -> tuple[bytes | int, asyncssh.SFTPAttrs]:
            return await self._files.read_with_attrs(link, path, offset, len(buffer), buffer)

        count, attrs = await self._run(name, op)
        if _version(attrs) != version:
            raise ValueChanged(f"{name} was replaced: it is no longer the file of size and mtime {version}")
        assert isinstance(count, int)
        return count

    async def _store(self, name: str, value: bytes | memoryview, *, replace: bool) -> None:
        """Write a temp file beside the item (writes and close in one round trip), then rename it over."""
        path = self._path(name)
        await self._check_replace(name, path, replace)

        async def chunks() -> AsyncIterator[bytes | memoryview]:
            yield value

        await self._run(name, self._uploader(name, path, chunks, len(value), replace=replace))

    async def _check_replace(self, name: str, path: str, replace: bool) -> None:
        """With ``replace=False`` (the permissions allow only new items), refuse an existing item."""
        if replace:
            return

        async def op(link: Link) -> asyncssh.SFTPAttrs | None:
            return await self._files.stat(link, path)

        if await self._run(name, op) is not None:
            self._refuse_replace(name)

    def _uploader(
        self,
        name: str,
        path: str,
        chunks: Callable[[], AsyncIterator[bytes | memoryview]],
        size: int | None,
        *,
        replace: bool = True,
    ) -> Callable[[Link], Awaitable[None]]:
        """An op that writes ``chunks()`` to a new temp file beside ``path`` and renames it into place
        (``replace=False``: with the plain rename, which refuses an existing item atomically).

        Each try starts the stream anew and first removes the temp file of the try before it.
        """
        stale: list[str] = []

        async def op(link: Link) -> None:
            sftp = link.sftp
            while stale:
                with contextlib.suppress(asyncssh.SFTPError):
                    async with self._round():
                        await sftp.remove(stale.pop())
            tmp = self._temp_path(path)
            stale.append(tmp)
            try:
                await self._files.write_temp(link, tmp, path, chunks(), size)
                async with self._round():
                    if replace:
                        await self._files.rename_over(sftp, tmp, path)
                    elif not await self._files.rename_new(sftp, tmp, path):
                        self._refuse_replace(name)  # the except below removes the temp file
                stale.remove(tmp)
            except Exception as exc:
                if not is_lost(exc):  # the connection works: clean up now
                    with contextlib.suppress(Exception):
                        async with self._round():
                            await sftp.remove(tmp)
                    stale.remove(tmp)
                    if isinstance(exc, asyncssh.SFTPFailure) and await self._files.out_of_space(link, size):
                        raise QuotaExceeded(f"{name}: no space left on the server ({exc.reason})") from exc
                raise

        return op

    async def _delete(self, name: str) -> None:
        path = self._path(name)

        async def op(link: Link) -> None:
            async with self._round():
                await link.sftp.remove(path)

        await self._run_gone_is_done(name, op)

    async def _move(self, src: str, dst: str, *, replace: bool) -> None:
        """Rename an item on the server (replacing the destination), creating directories as needed."""
        src_path, dst_path = self._path(src), self._path(dst)
        await self._check_replace(dst, dst_path, replace)

        async def op(link: Link) -> None:
            sftp = link.sftp
            async with self._round():
                try:
                    await self._files.rename_over(sftp, src_path, dst_path)
                except asyncssh.SFTPError as exc:
                    if not is_not_found(exc) or await self._files.stat(link, src_path) is None:
                        raise
                    await self._files.makedirs(sftp, posixpath.dirname(dst_path))  # the target directory is missing
                    await self._files.rename_over(sftp, src_path, dst_path)

        await self._run_gone_is_done(src, op)

    async def _list(self, name: str) -> AsyncIterator[ItemInfo]:
        """Yield a directory's entries sorted by name; temp and foreign files are skipped."""
        path = self._path(name) if name else self.path

        async def op(link: Link) -> Sequence[asyncssh.SFTPName]:
            async with self._round():
                return await link.sftp.readdir(path)

        infos = []
        for entry in await self._run(name, op):
            filename = cast(str, entry.filename)
            try:
                validate_backend_name(filename)
            except StoreError:
                continue  # ".", "..", not ours, or still being written
            infos.append(item_info(filename, entry.attrs))
        infos.sort(key=lambda info: info.name)
        for info in infos:
            yield info

    # store-wide ------------------------------------------------------------------------------------------

    async def _quota_usage(self) -> dict[str, int]:
        """The space of the server's filesystem (statvfs@openssh.com): usage, and usage plus what is free.

        ``-1`` where the server does not report it.
        """
        self._require_open()

        async def op(link: Link) -> dict[str, int]:
            try:
                async with self._round():
                    vfs = await link.sftp.statvfs(self.path)
            except asyncssh.SFTPOpUnsupported:
                return {"limit": -1, "usage": -1}
            used = (vfs.blocks - vfs.bfree) * vfs.frsize
            return {"limit": used + vfs.bavail * vfs.frsize, "usage": used}

        return await self._run("", op)

    # hashing ---------------------------------------------------------------------------------------------

    async def _hash(self, name: str, algorithm: str) -> str:
        """Hash on the server (``sha256sum`` & co. over SSH) where it can, else stream the value."""
        path = self._path(name)
        hashing.check_algorithm(algorithm)

        async def op(link: Link) -> str:
            threshold = self.remote_hash_min_size
            if threshold is not None and self._hasher.can_run(algorithm):
                attrs = await self._files.stat(link, path)
                if attrs is None:
                    raise ObjectNotFound(name)
                if (attrs.size or 0) >= threshold:
                    digest = await self._hasher.run(link, path, algorithm, attrs.size or 0)
                    if digest is not None:
                        return digest
            return await self._hasher.stream(link, path, algorithm, self.capabilities.part_size)

        return await self._run(name, op)

    @property
    def _no_remote_hash(self) -> set[str]:
        """The algorithms the server cannot hash (``"*"``: none)."""
        return self._hasher.unsupported

    # streaming and files ---------------------------------------------------------------------------------

    async def _read_chunks(self, name: str, offset: int, size: int | None, chunk_size: int) -> AsyncIterator[bytes]:
        """Stream a value through one open file; after a reconnect, go on only if it has not changed."""
        path = self._path(name)
        position = offset
        remaining = size
        opened: tuple[asyncssh.SFTPClientFile, asyncssh.SFTPAttrs] | None = None
        first: asyncssh.SFTPAttrs | None = None
        reading_on: Link | None = None
        losses = 0

        async def reopen(link: Link) -> tuple[asyncssh.SFTPClientFile, asyncssh.SFTPAttrs]:
            nonlocal reading_on
            reading_on = link
            f = await self._files.open_file(link, path, asyncssh.FXF_READ)
            try:
                async with self._round():
                    attrs = await f.stat()
            except BaseException:
                await close_quietly(f)
                raise
            if first is not None and (attrs.size, attrs.mtime) != (first.size, first.mtime):
                await close_quietly(f)
                raise ConnectionLost(f"{name}: the connection was lost and the value changed meanwhile")
            return f, attrs

        try:
            while remaining is None or remaining > 0:
                if opened is None:
                    opened = await self._run(name, reopen)
                    if first is None:
                        first = opened[1]
                        if position < 0:
                            position = max((first.size or 0) + position, 0)
                f = opened[0]
                want = chunk_size if remaining is None else min(chunk_size, remaining)
                try:
                    assert reading_on is not None
                    chunk = await self._files.read(reading_on, f, position, want)
                except Exception as exc:
                    if not is_lost(exc):
                        raise_translated(exc, name)
                    losses += 1
                    if losses > self.retry.retries:
                        raise ConnectionLost(f"{name}: connection lost while streaming: {exc!r}") from exc
                    log.warning("sftp %s: %s: connection lost while streaming (%r)", self.host, name, exc)
                    if reading_on is not None:
                        self._pool.discard(reading_on)
                    opened = None
                    continue
                if chunk:
                    yield chunk
                if len(chunk) < want:
                    return
                position += len(chunk)
                if remaining is not None:
                    remaining -= len(chunk)
        finally:
            if opened is not None:
                self._files.close_later(opened[0])

    async def _store_chunks(self, name: str, chunks: AsyncIterable[bytes], size: int | None, *, replace: bool) -> None:
        """Stream into a temp file (one chunk on the wire while the next is produced), then rename it over.

        A stream cannot be replayed: once it has started, a lost connection raises
        [`ConnectionLost`][aiodepot.errors.ConnectionLost].
        """
        path = self._path(name)
        await self._check_replace(name, path, replace)
        started = False

        async def once() -> AsyncIterator[bytes | memoryview]:
            nonlocal started
            started = True
            async for chunk in chunks:
                yield chunk if isinstance(chunk, bytes) else bytes(chunk)  # the producer may reuse its buffer

        await self._run(name, self._uploader(name, path, once, size, replace=replace), may_retry=lambda: not started)

    async def _store_file(self, name: str, path: str, size: int, *, replace: bool) -> None:
        """Stream a local file into a temp file and rename it over; after a lost connection, start again."""
        remote = self._path(name)
        await self._check_replace(name, remote, replace)
        part = self.capabilities.part_size

        async def chunks() -> AsyncIterator[bytes]:
            async with aiofiles.open(path, "rb") as f:
                while chunk := await f.read(part):
                    yield chunk

        await self._run(name, self._uploader(name, remote, chunks, size, replace=replace))
