"""``sftp://[user@]host[:port]/path`` — items as files on an SFTP server, over asyncssh.

The layout is borgstore's, as on ``file://``: one file per item at its nested path below the
base directory, ``.del`` for soft-deleted items, and ``….tmp`` files that are renamed into place, so a
reader never sees a half-written value. borgstore's sftp backend and this one open each other's stores.

Speed comes from keeping requests in flight: SFTP lets a client send many requests on one channel
without waiting, so concurrent operations share a connection (optionally a small pool of them), and the
requests of one operation that do not depend on each other go out together (the reads of a value, the
writes and the close of a store, the directories and the open of a store into a new directory). Big
values move in ``part_size`` ranges, each a burst of maximum-size SFTP reads or writes.

Connection loss is expected, not exceptional: keepalives notice a dead peer, every round of requests has
a timeout, and an operation that lost its connection reconnects and runs again (a bounded number of
times, with backoff). A retried delete or move that finds its item already gone counts as done.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import posixpath
import re
import shlex
import socket
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, ClassVar, NoReturn, Self, TypeVar, cast
from urllib.parse import unquote

import aiofiles
import asyncssh

from .. import hashing
from ..errors import (
    BackendError,
    BackendURLInvalid,
    ConnectionLost,
    ObjectNotFound,
    PermissionDenied,
    QuotaExceeded,
    StoreError,
    StoreExists,
    StoreNotFound,
    StoreNotOpen,
)
from ..items import ItemInfo, StoreValue, validate_value
from ..names import temp_name, validate_backend_name
from .base import Backend, Capabilities
from .options import Limits, Rename, RetryPolicy, Timeouts, legacy_options, never_reached

__all__ = ["SftpBackend"]

log = logging.getLogger(__name__)

T = TypeVar("T")
MiB = 1024 * 1024

SFTP_VERSION = 6
"""The highest SFTP protocol version asked for (OpenSSH speaks 3; newer versions give finer error codes)."""
DEFAULT_WINDOW = 8 * MiB
"""SSH channel window: how much data the server may send ahead; bounds throughput to window / round trip."""
ENCRYPTION_ALGS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-ctr",
)
"""asyncssh's ciphers, AES-GCM first: it costs asyncssh far less CPU per packet than ChaCha20-Poly1305."""
MAX_PACKET = 256 * 1024
"""Largest SSH channel packet we accept: one maximum-size SFTP read reply fits in one packet."""
FALLBACK_BLOCK = 16 * 1024
"""SFTP read/write size when the server does not state its limits (every server takes 16 KiB)."""
REMOTE_HASH_MIN_SIZE = 1 * MiB
"""Below this, streaming a value to hash it is cheaper than starting a hash command on the server."""
REMOTE_HASH_SLOTS = 4
"""Hash commands in flight at once (each takes one of the server's ``MaxSessions`` channels)."""
BURST = 64
"""Read or write requests sent at once by one operation (64 x 255 KiB on OpenSSH)."""
RENAME_FALLBACK_TRIES = 8
"""Attempts of remove-then-rename where the server cannot rename over an existing file."""

# hashlib name -> command that prints the same hex digest (GNU coreutils, b3sum)
_HASH_COMMANDS = {
    "md5": "md5sum",
    "sha1": "sha1sum",
    "sha224": "sha224sum",
    "sha256": "sha256sum",
    "sha384": "sha384sum",
    "sha512": "sha512sum",
    "blake2b": "b2sum",
    "blake3": "b3sum",
}

_NOT_FOUND_CODES = frozenset(
    {asyncssh.FX_NO_SUCH_FILE, asyncssh.FX_NO_SUCH_PATH, asyncssh.FX_NOT_A_DIRECTORY, asyncssh.FX_INVALID_FILENAME}
)
_DENIED_CODES = frozenset({asyncssh.FX_PERMISSION_DENIED, asyncssh.FX_WRITE_PROTECT, asyncssh.FX_CANNOT_DELETE})
_FULL_CODES = frozenset({asyncssh.FX_NO_SPACE_ON_FILESYSTEM, asyncssh.FX_QUOTA_EXCEEDED})
_LOST_CODES = frozenset({asyncssh.FX_CONNECTION_LOST, asyncssh.FX_NO_CONNECTION})
# disconnects that a new connection may well not repeat (the others: authentication, host key, protocol)
_TRANSIENT_DISCONNECTS = frozenset(
    {
        asyncssh.DISC_CONNECTION_LOST,
        asyncssh.DISC_BY_APPLICATION,
        asyncssh.DISC_TOO_MANY_CONNECTIONS,
        asyncssh.DISC_PROTOCOL_ERROR,
        asyncssh.DISC_MAC_ERROR,
    }
)

_NETWORK_ERRNOS = frozenset(
    getattr(errno, name)
    for name in ("ENETDOWN", "ENETUNREACH", "ENETRESET", "EHOSTDOWN", "EHOSTUNREACH", "ETIMEDOUT", "EPIPE")
    if hasattr(errno, name)
)

_URL = re.compile(
    r"""sftp://
    (?:(?P<user>[^@/]+)@)?
    (?P<host>\[[^\]/]+\]|[^:/\[\]@]+)
    (?::(?P<port>\d+))?
    /(?P<path>.+)   # the slash after the host separates; the path may start with another (absolute)
    """,
    re.VERBOSE | re.DOTALL,
)

_RENAMED: dict[str, Rename] = {
    "connections": ("limits", "connections", None),
    "timeout": ("timeouts", "read", None),
    "connect_timeout": ("timeouts", "connect", None),
    "retries": ("retry", "attempts", lambda retries: retries + 1),
    "retry_wait": ("retry", "backoff", None),
}
"""The keywords before ``retry=``/``limits=``/``timeouts=`` (deprecated)."""

# errors ----------------------------------------------------------------------------------------------------


def _is_lost(exc: BaseException) -> bool:
    """True if ``exc`` means the connection is gone or hangs: a new connection may succeed."""
    if isinstance(exc, asyncssh.SFTPError):
        return exc.code in _LOST_CODES
    if isinstance(exc, asyncssh.DisconnectError):
        return exc.code in _TRANSIENT_DISCONNECTS
    return isinstance(exc, ConnectionError | TimeoutError | EOFError | socket.gaierror) or (
        isinstance(exc, OSError) and exc.errno in _NETWORK_ERRNOS
    )


def _is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, asyncssh.SFTPError) and exc.code in _NOT_FOUND_CODES


def _translate(exc: BaseException, name: str) -> StoreError:
    """The [`StoreError`][aiodepot.errors.StoreError] for a native error (the caller raises it ``from exc``)."""
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, asyncssh.SFTPError):
        if exc.code in _NOT_FOUND_CODES:
            return ObjectNotFound(name)
        if exc.code in _DENIED_CODES:
            return PermissionDenied(f"{name}: {exc.reason}")
        if exc.code in _FULL_CODES:
            return QuotaExceeded(f"{name}: {exc.reason}")
        if exc.code in _LOST_CODES:
            return ConnectionLost(f"{name}: {exc.reason}")
        return BackendError(f"{name}: {exc.reason or 'SFTP error ' + str(exc.code)}")
    if isinstance(exc, asyncssh.PermissionDenied):
        return PermissionDenied(f"SSH authentication failed: {exc.reason}")
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return BackendError(
            f"the SSH host key was not verified ({exc.reason}): add the host to known_hosts "
            "(e.g. connect once with ssh), or pass accept_unknown_host=True"
        )
    if _is_lost(exc):
        return ConnectionLost(f"{name}: {exc!r}")
    return BackendError(f"{name}: {exc!r}")


def _raise_translated(exc: BaseException, name: str) -> NoReturn:
    """Raise the translation of an asyncssh or network error; anything else (a stream's own error, a
    ``ValueError`` of a size check, a local file's ``OSError``) goes on as it is."""
    if isinstance(exc, asyncssh.Error) or _is_lost(exc):
        raise _translate(exc, name) from exc
    raise exc


async def _all(calls: Sequence[Awaitable[Any]]) -> list[Any]:
    """Await requests sent together; raise the first failure once all have answered."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


async def _close_quietly(f: asyncssh.SFTPClientFile) -> None:
    with contextlib.suppress(Exception):
        await f.close()


def _info(name: str, attrs: asyncssh.SFTPAttrs) -> ItemInfo:
    def seconds(whole: int | None, nanos: int | None) -> float:
        return float(whole or 0) + (nanos or 0) / 1e9

    return ItemInfo(
        name=name,
        exists=True,
        size=attrs.size or 0,
        directory=attrs.type == asyncssh.FILEXFER_TYPE_DIRECTORY,
        atime=seconds(attrs.atime, attrs.atime_ns),
        mtime=seconds(attrs.mtime, attrs.mtime_ns),
    )


# connections -----------------------------------------------------------------------------------------------


class _Link:
    """One SSH connection with its SFTP session."""

    __slots__ = ("busy", "conn", "read_len", "sftp", "write_len")

    def __init__(self, conn: asyncssh.SSHClientConnection, sftp: asyncssh.SFTPClient) -> None:
        self.conn = conn
        self.sftp = sftp
        self.busy = 0
        self.read_len = sftp.limits.max_read_len or FALLBACK_BLOCK
        self.write_len = sftp.limits.max_write_len or FALLBACK_BLOCK


class _HostKeyClient(asyncssh.SSHClient):
    """Asks the backend about host keys that known_hosts does not vouch for."""

    def __init__(self, verify: Callable[[str, str, int, asyncssh.SSHKey], bool]) -> None:
        self._verify = verify

    def validate_host_public_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        return self._verify(host, addr, port, key)


class _Pool:
    """Up to ``size`` connections, opened on demand; each call takes the least busy one."""

    def __init__(self, connect: Callable[[], Awaitable[_Link]], size: int) -> None:
        self._connect = connect
        self.size = size
        self.links: list[_Link] = []
        self._connecting: asyncio.Task[_Link] | None = None
        self._pid = os.getpid()

    def _forget_after_fork(self) -> None:
        """In a forked child, leave the parent's connections to the parent (never close them here)."""
        if self._pid != os.getpid():
            self.links, self._connecting, self._pid = [], None, os.getpid()

    async def acquire(self) -> _Link:
        """A connection to send requests on (call ``release`` when done)."""
        self._forget_after_fork()
        while True:
            for closed in [link for link in self.links if link.conn.is_closed()]:
                self.discard(closed)  # closed while idle (by the server, or a keepalive timeout)
            if len(self.links) >= self.size or (self.links and self._connecting is not None):
                link = min(self.links, key=lambda candidate: candidate.busy)
                link.busy += 1
                return link
            if self._connecting is None:
                self._connecting = asyncio.ensure_future(self._connect())
                self._connecting.add_done_callback(self._connected)
            if self.links:
                continue  # use what is there while the next connection is being made
            # every caller waiting for this connection shares its outcome: one failure, one error each
            await asyncio.shield(self._connecting)

    async def fill(self) -> None:
        """Make the missing connections, all at once; those that fail are tried again when needed."""
        missing = self.size - len(self.links) - (self._connecting is not None)
        results = await asyncio.gather(*(self._connect() for _ in range(missing)), return_exceptions=True)
        for result in results:
            if isinstance(result, _Link):
                self.links.append(result)
            else:
                log.info("sftp: an extra connection failed (%r); trying again when needed", result)

    def _connected(self, task: asyncio.Task[_Link]) -> None:
        if self._connecting is task:
            self._connecting = None
        if not task.cancelled() and task.exception() is None:
            self.links.append(task.result())

    def release(self, link: _Link) -> None:
        """Give back a connection taken with ``acquire``."""
        link.busy -= 1

    def discard(self, link: _Link) -> None:
        """Drop a connection that failed; requests still waiting on it fail at once."""
        if link in self.links:
            self.links.remove(link)
            link.conn.abort()
            log.warning("sftp: dropped a lost connection to %s", link.conn.get_extra_info("peername"))

    async def close(self) -> None:
        """Close every connection (and stop one being made)."""
        self._forget_after_fork()
        connecting, self._connecting = self._connecting, None
        if connecting is not None:
            connecting.cancel()
            with contextlib.suppress(BaseException):
                link = await connecting
                link.conn.abort()
        links, self.links = self.links, []
        for link in links:
            link.conn.close()
        for link in links:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await link.conn.wait_closed()


# the backend -----------------------------------------------------------------------------------------------


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
        self.retry, limits, timeouts = legacy_options(
            "SftpBackend",
            deprecated,
            _RENAMED,
            retry=retry or self.default_retry,
            limits=(limits or Limits()).or_defaults(self.default_limits),
            timeouts=(timeouts or Timeouts()).or_defaults(self.default_timeouts),
        )
        self.limits, self.timeouts = limits, timeouts
        self.host = host
        self.path = path if path == "/" else path.rstrip("/")
        self._prefix = "/" if self.path == "/" else self.path + "/"
        self.port = port
        self.username = username
        self.known_hosts = None if known_hosts is None else _paths(known_hosts)
        self.accept_unknown_host = accept_unknown_host
        self.client_keys = None if client_keys is None else _paths(client_keys)
        assert timeouts.read is not None  # the default fills it
        self.timeout: float = timeouts.read
        """Seconds a round of requests may take (``timeouts.read``)."""
        self.keepalive_interval = keepalive_interval
        self.keepalive_count_max = keepalive_count_max
        self.remote_hash_min_size = remote_hash_min_size
        self.ssh_options = dict(ssh_options or {})
        self._pool = _Pool(self._connect, limits.connections or 1)
        self._known_db: asyncssh.SSHKnownHosts | None = None
        self._pinned_keys: dict[tuple[str, int], asyncssh.SSHKey] = {}
        self._posix_rename = True  # until the server says otherwise
        self._no_remote_hash: set[str] = set()  # algorithms the server cannot hash ("*": none)
        self._hash_slots = asyncio.Semaphore(REMOTE_HASH_SLOTS)
        self._closing: set[asyncio.Future[None]] = set()
        self._pid = os.getpid()

    def _after_fork(self) -> None:
        """A forked child makes its own connections (the pool sees to that), semaphore and tasks."""
        if self._pid != os.getpid():
            self._hash_slots = asyncio.Semaphore(REMOTE_HASH_SLOTS)
            self._closing = set()
            self._pid = os.getpid()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """``sftp://[user@]host[:port]/relative/path`` or ``sftp://[user@]host[:port]//absolute/path``.

        The user and the path may be percent-encoded; an IPv6 address goes in brackets.
        """
        match = _URL.fullmatch(url)
        if match is None:
            raise BackendURLInvalid(
                f"not an sftp URL (sftp://[user@]host[:port]/relative/path or sftp://host//absolute/path): {url!r}"
            )
        host = match["host"].removeprefix("[").removesuffix("]")
        port = int(match["port"]) if match["port"] else None
        if port is not None and not 0 < port < 65536:
            raise BackendURLInvalid(f"invalid port in {url!r}")
        user = unquote(match["user"]) if match["user"] else None
        return cls(host, unquote(match["path"]), port=port, username=user, **options)

    def __repr__(self) -> str:
        user = f"{self.username}@" if self.username else ""
        port = f":{self.port}" if self.port else ""
        return f"<SftpBackend {user}{self.host}{port} {self.path!r} {'open' if self.opened else 'closed'}>"

    # connections -----------------------------------------------------------------------------------------

    async def _connect(self) -> _Link:
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
                self._known_db = await asyncio.to_thread(_read_known_hosts, files)
            options["known_hosts"] = self._known_db  # the same entries decide what counts as unknown
            options["client_factory"] = lambda: _HostKeyClient(self._accept_host_key)
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
        return _Link(conn, sftp)

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

    async def _run_gone_is_done(self, name: str, op: Callable[[_Link], Awaitable[None]]) -> None:
        """``_run`` for an operation that removes its source (delete, rmdir, move): a retry that finds the
        source gone means the try before it did the work and the connection broke before the answer."""
        tries = 0

        async def attempt(link: _Link) -> None:
            nonlocal tries
            tries += 1
            try:
                await op(link)
            except asyncssh.SFTPError as exc:
                if not (tries > 1 and _is_not_found(exc)):
                    raise

        await self._run(name, attempt)

    async def _run(
        self, name: str, op: Callable[[_Link], Awaitable[T]], *, may_retry: Callable[[], bool] | None = None
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
                if _is_lost(exc) and not isinstance(exc, StoreError):
                    self._pool.discard(link)
                raise
            finally:
                self._pool.release(link)

        def retryable(exc: BaseException) -> bool:
            if not was_open and never_reached(exc):  # opening: a wrong address fails at once
                return False
            return _is_lost(exc) and not isinstance(exc, StoreError) and (may_retry is None or may_retry())

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
            if _is_lost(exc):
                raise ConnectionLost(f"sftp {self.host}: {name or '/'}: connection lost: {exc!r}") from exc
            _raise_translated(exc, name)

    def _round(self) -> asyncio.Timeout:
        """The deadline for one round of requests: past it, the connection counts as dead."""
        return asyncio.timeout(self.timeout)

    # paths -----------------------------------------------------------------------------------------------

    def _path(self, name: str) -> str:
        validate_backend_name(name)
        return self._prefix + name

    def _temp_path(self, path: str) -> str:
        return temp_name(path)

    async def _is_dir(self, sftp: asyncssh.SFTPClient, path: str) -> bool:
        try:
            attrs = await sftp.stat(path)
        except asyncssh.SFTPError as exc:
            if _is_not_found(exc):
                return False
            raise
        return attrs.type == asyncssh.FILEXFER_TYPE_DIRECTORY

    async def _makedirs(self, sftp: asyncssh.SFTPClient, path: str) -> None:
        """Create directory ``path`` and missing parents; one that exists (or appears meanwhile) is fine."""
        try:
            await sftp.mkdir(path)
            return
        except asyncssh.SFTPError as exc:
            if _is_not_found(exc):
                parent = posixpath.dirname(path)
                if parent in ("", "/", path):
                    raise
                await self._makedirs(sftp, parent)
                try:
                    await sftp.mkdir(path)
                    return
                except asyncssh.SFTPError:
                    if await self._is_dir(sftp, path):
                        return
                    raise
            if await self._is_dir(sftp, path):
                return
            raise

    async def _rename_over(self, sftp: asyncssh.SFTPClient, src: str, dst: str) -> None:
        """Rename ``src`` to ``dst``, replacing ``dst`` atomically (posix-rename@openssh.com).

        A server without that extension gets remove-then-rename: readers may miss ``dst`` for a moment,
        but never see a partial value.
        """
        if self._posix_rename:
            try:
                await sftp.posix_rename(src, dst)
                return
            except asyncssh.SFTPOpUnsupported:
                log.info("sftp %s: no posix-rename@openssh.com: replacing items by remove and rename", self.host)
                self._posix_rename = False
        for _ in range(RENAME_FALLBACK_TRIES):
            try:
                await sftp.rename(src, dst)
                return
            except asyncssh.SFTPError as exc:
                if exc.code not in (asyncssh.FX_FAILURE, asyncssh.FX_FILE_ALREADY_EXISTS):
                    raise
            try:
                await sftp.remove(dst)
            except asyncssh.SFTPError as exc:
                if not _is_not_found(exc):
                    raise
        await sftp.rename(src, dst)  # a last try that raises what stops it

    # lifecycle -------------------------------------------------------------------------------------------

    async def create(self) -> None:
        """Create the base directory (and parents); an existing empty directory is accepted."""
        self._require_closed()
        self.permissions.check("", "wW")

        async def op(link: _Link) -> None:
            async with self._round():
                await self._makedirs(link.sftp, self.path)
                entries = await link.sftp.listdir(self.path)
            if any(entry not in (".", "..") for entry in entries):
                raise StoreExists(f"sftp store directory is not empty: {self.path}")

        try:
            await self._run("", op)
        finally:
            await self._pool.close()

    async def destroy(self) -> None:
        """Remove everything below the base directory, and the directory itself where allowed."""
        self._require_closed()
        self.permissions.check("", "D")

        async def op(link: _Link) -> None:
            if not await self._is_dir(link.sftp, self.path):
                raise StoreNotFound(f"sftp store directory does not exist: {self.path}")
            await self._remove_tree(link.sftp, self.path, asyncio.Semaphore(self.capabilities.preferred_concurrency))

        try:
            await self._run("", op)
        finally:
            await self._pool.close()

    async def _remove_tree(self, sftp: asyncssh.SFTPClient, path: str, limit: asyncio.Semaphore) -> None:
        """Remove the directory ``path`` and everything in it, many requests at a time."""

        async def bounded(call: Awaitable[None]) -> None:
            async with limit:
                try:
                    async with self._round():
                        await call
                except asyncssh.SFTPError as exc:
                    if not _is_not_found(exc):  # gone already: a retry, or someone else cleaning up
                        raise

        try:
            async with self._round():
                entries = await sftp.readdir(path)
        except asyncssh.SFTPError as exc:
            if _is_not_found(exc):
                return
            raise
        calls: list[Awaitable[None]] = []
        for entry in entries:
            filename = cast(str, entry.filename)
            if filename in (".", ".."):
                continue
            child = f"{path}/{filename}"
            if entry.attrs.type == asyncssh.FILEXFER_TYPE_DIRECTORY:
                calls.append(self._remove_tree(sftp, child, limit))
            else:
                calls.append(bounded(sftp.remove(child)))
        await _all(calls)
        try:
            await bounded(sftp.rmdir(path))
        except asyncssh.SFTPError:
            if path != self.path:  # the base itself may belong to someone else: leave it
                raise

    async def open(self) -> None:
        """Connect (all the pool's connections) and check that the base directory exists."""
        self._require_closed()

        async def op(link: _Link) -> None:
            async with self._round():
                if not await self._is_dir(link.sftp, self.path):
                    raise StoreNotFound(f"sftp store directory does not exist: {self.path}")

        try:
            await self._run("", op)
            await self._pool.fill()
        except BaseException:
            await self._pool.close()
            raise
        self.opened = True

    async def close(self) -> None:
        """Close all connections (after the files still being closed)."""
        self._require_open()
        self.opened = False
        self._after_fork()
        if self._closing:
            await asyncio.wait(self._closing, timeout=self.timeout)
        await self._pool.close()

    # directories -----------------------------------------------------------------------------------------

    async def mkdir(self, name: str) -> None:
        """Create a directory and its parents."""
        self._require_open()
        path = self._path(name)
        self.permissions.check(name, "w")

        async def op(link: _Link) -> None:
            async with self._round():
                await self._makedirs(link.sftp, path)

        await self._run(name, op)

    async def rmdir(self, name: str) -> None:
        """Remove an empty directory."""
        self._require_open()
        path = self._path(name)
        self.permissions.check(name, "wD")

        async def op(link: _Link) -> None:
            async with self._round():
                await link.sftp.rmdir(path)

        await self._run_gone_is_done(name, op)

    # items -----------------------------------------------------------------------------------------------

    async def _stat(self, link: _Link, path: str) -> asyncssh.SFTPAttrs | None:
        try:
            async with self._round():
                return await link.sftp.stat(path)
        except asyncssh.SFTPError as exc:
            if _is_not_found(exc):
                return None
            raise

    async def info(self, name: str) -> ItemInfo:
        """Describe an item or directory (one stat request)."""
        self._require_open()
        path = self._path(name)
        self.permissions.check(name, "lr")
        leaf = name.rpartition("/")[2]

        async def op(link: _Link) -> ItemInfo:
            attrs = await self._stat(link, path)
            return ItemInfo(leaf, False, 0, False) if attrs is None else _info(leaf, attrs)

        return await self._run(name, op)

    async def load(self, name: str, *, offset: int = 0, size: int | None = None) -> bytes:
        """Read a value or a range of it: open, then the reads with the close right behind them."""
        self._require_open()
        if size is not None and size < 0:
            raise ValueError(f"size must be >= 0 or None, got {size}")
        path = self._path(name)
        self.permissions.check(name, "r")

        async def op(link: _Link) -> bytes:
            return await self._load(link, path, offset, size)

        return await self._run(name, op)

    async def _open(self, link: _Link, path: str, flags: int) -> asyncssh.SFTPClientFile:
        async with self._round():
            # block_size=0: each read() and write() is exactly one request, sent as soon as it starts
            return await link.sftp.open(path, flags, encoding=None, block_size=0)

    def _close_later(self, f: asyncssh.SFTPClientFile) -> None:
        """Close a file that was only read from without waiting for the answer (nobody needs it)."""
        task = asyncio.ensure_future(_close_quietly(f))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _load(self, link: _Link, path: str, offset: int, size: int | None) -> bytes:
        f = await self._open(link, path, asyncssh.FXF_READ)
        try:
            if size == 0:
                return b""
            if offset < 0:
                async with self._round():
                    total = (await f.stat()).size or 0
                offset = max(total + offset, 0)
                size = total - offset if size is None else min(size, total - offset)
            block = link.read_len
            if size is not None and (size <= block or offset > 0):
                return await self._read(link, f, offset, size)
            # the start of a value of unknown length: most values are small, so one block first
            first = await self._read(link, f, offset, block)
            if len(first) < block:
                return first
            if size is None:
                return first + await self._read_to_end(link, f, offset + block)
            return first + await self._read(link, f, offset + block, size - block)
        finally:
            self._close_later(f)

    async def _read(self, link: _Link, f: asyncssh.SFTPClientFile, offset: int, size: int) -> bytes:
        """Read ``size`` bytes at ``offset`` (fewer at the end of the file) in bursts of requests.

        Each burst is up to ``BURST`` requests of the server's maximum read size, all sent at once. For
        a regular file a short answer means the end of the file; a server that answers short before it
        gets a slower, careful read.
        """
        block = link.read_len
        spans = [(start, min(block, offset + size - start)) for start in range(offset, offset + size, block)]
        parts: list[bytes] = []
        for first in range(0, len(spans), BURST):
            burst = spans[first : first + BURST]
            async with self._round():
                answers = await _all([f.read(length, start) for start, length in burst])
            for index, ((_, length), data) in enumerate(zip(burst, answers, strict=True)):
                parts.append(data)
                if len(data) < length:
                    if any(answers[index + 1 :]):  # data after a short answer: that was not the end
                        return await self._read_carefully(f, offset, size)
                    return b"".join(parts)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def _read_to_end(self, link: _Link, f: asyncssh.SFTPClientFile, offset: int) -> bytes:
        """Read from ``offset`` to the end of the file, a ``part_size`` at a time."""
        part = self.capabilities.part_size
        chunks = []
        while True:
            chunk = await self._read(link, f, offset, part)
            chunks.append(chunk)
            if len(chunk) < part:
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)
            offset += part

    async def _read_carefully(self, f: asyncssh.SFTPClientFile, offset: int, size: int | None) -> bytes:
        """One request at a time, each from where the last answer ended, until an empty answer."""
        log.info("sftp %s: the server answers reads short: reading one request at a time", self.host)
        chunks = []
        while size is None or size > 0:
            want = FALLBACK_BLOCK if size is None else min(FALLBACK_BLOCK, size)
            async with self._round():
                chunk = cast(bytes, await f.read(want, offset))
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
            if size is not None:
                size -= len(chunk)
        return b"".join(chunks)

    async def _create(self, link: _Link, tmp: str, directory: str) -> asyncssh.SFTPClientFile:
        """Create the new file ``tmp`` in ``directory``, making the directory and its parents if needed."""
        flags = asyncssh.FXF_WRITE | asyncssh.FXF_CREAT | asyncssh.FXF_EXCL
        try:
            return await self._open(link, tmp, flags)
        except asyncssh.SFTPError as exc:
            if not _is_not_found(exc) or not directory.startswith(self._prefix):
                raise
        # One round trip: a mkdir for each level below the base (those that exist fail, which is fine),
        # then the open. Servers answer in order; one that does not gets a step-by-step second try.
        parts = directory[len(self._prefix) :].split("/")
        levels = [self._prefix + "/".join(parts[: depth + 1]) for depth in range(len(parts))]
        calls: list[Awaitable[Any]] = [link.sftp.mkdir(level) for level in levels]
        calls.append(link.sftp.open(tmp, flags, encoding=None, block_size=0))
        async with self._round():
            *_, opened = await asyncio.gather(*calls, return_exceptions=True)
        if isinstance(opened, asyncssh.SFTPClientFile):
            return opened
        if not _is_not_found(opened):
            raise opened
        async with self._round():
            await self._makedirs(link.sftp, directory)
        return await self._open(link, tmp, flags)

    async def _write(
        self, link: _Link, f: asyncssh.SFTPClientFile, data: bytes | memoryview, offset: int, *, close: bool = False
    ) -> None:
        """Write ``data`` at ``offset`` in bursts of maximum-size requests (the close behind the last)."""
        view = memoryview(data)
        block = link.write_len
        starts = range(0, len(view), block)
        for first in range(0, max(len(starts), 1), BURST):
            calls: list[Awaitable[Any]] = [
                f.write(cast(bytes, view[start : start + block]), offset + start)
                for start in starts[first : first + BURST]
            ]
            if close and first + BURST >= len(starts):
                calls.append(f.close())
            async with self._round():
                await _all(calls)

    async def store(self, name: str, value: StoreValue) -> None:
        """Write a temp file beside the item (writes and close in one round trip), then rename it over."""
        self._require_open()
        path = self._path(name)
        data = validate_value(value)
        await self._check_write(name, path)

        async def chunks() -> AsyncIterator[bytes | memoryview]:
            yield data

        await self._run(name, self._uploader(name, path, chunks, len(data)))

    async def _check_write(self, name: str, path: str) -> None:
        """The permission check of a write: ``W`` to replace an item, ``w`` or ``W`` for a new one."""
        if not self.permissions:
            return

        async def op(link: _Link) -> asyncssh.SFTPAttrs | None:
            return await self._stat(link, path)

        exists = await self._run(name, op) is not None
        self.permissions.check(name, "W" if exists else "wW")

    async def _out_of_space(self, link: _Link, size: int | None) -> bool:
        """After a write failed for no stated reason (SFTP v3 has no code for a full disk): is the disk full?"""
        try:
            async with self._round():
                vfs = await link.sftp.statvfs(self.path)
        except asyncssh.SFTPError:
            return False
        return vfs.favail == 0 or vfs.bavail * vfs.frsize < max(size or 0, 1)

    def _uploader(
        self, name: str, path: str, chunks: Callable[[], AsyncIterator[bytes | memoryview]], size: int | None
    ) -> Callable[[_Link], Awaitable[None]]:
        """An op that writes ``chunks()`` to a new temp file beside ``path`` and renames it into place.

        Each try starts the stream anew and first removes the temp file of the try before it.
        """
        stale: list[str] = []

        async def op(link: _Link) -> None:
            sftp = link.sftp
            while stale:
                with contextlib.suppress(asyncssh.SFTPError):
                    async with self._round():
                        await sftp.remove(stale.pop())
            tmp = self._temp_path(path)
            stale.append(tmp)
            try:
                await self._write_temp(link, tmp, path, chunks(), size)
                async with self._round():
                    await self._rename_over(sftp, tmp, path)
                stale.remove(tmp)
            except Exception as exc:
                if not _is_lost(exc):  # the connection works: clean up now
                    with contextlib.suppress(Exception):
                        async with self._round():
                            await sftp.remove(tmp)
                    stale.remove(tmp)
                    if isinstance(exc, asyncssh.SFTPFailure) and await self._out_of_space(link, size):
                        raise QuotaExceeded(f"{name}: no space left on the server ({exc.reason})") from exc
                raise

        return op

    async def _write_temp(
        self, link: _Link, tmp: str, path: str, chunks: AsyncIterator[bytes | memoryview], size: int | None
    ) -> None:
        """Create ``tmp`` (and missing directories) and write the stream into it."""
        f = await self._create(link, tmp, posixpath.dirname(path))
        try:
            written = 0
            pending: asyncio.Future[None] | None = None
            try:
                async for chunk in chunks:
                    if size is not None and written + len(chunk) > size:
                        raise ValueError(f"{path}: the stream gave more than the expected {size} bytes")
                    if written == 0 and size == len(chunk):
                        # the whole value in one piece: the writes, then the close right behind them
                        await self._write(link, f, chunk, 0, close=True)
                        written = len(chunk)
                        continue
                    if pending is not None:
                        await pending  # one chunk on the wire while the next one is produced
                    pending = asyncio.ensure_future(self._write(link, f, chunk, written))
                    written += len(chunk)
                if pending is not None:
                    await pending
                    pending = None
            finally:
                if pending is not None and not pending.done():
                    pending.cancel()
                    with contextlib.suppress(BaseException):
                        await pending
            if size is not None and written != size:
                raise ValueError(f"{path}: expected {size} bytes, the stream gave {written}")
            async with self._round():
                await f.close()
        finally:
            await _close_quietly(f)

    async def delete(self, name: str) -> None:
        """Remove an item."""
        self._require_open()
        path = self._path(name)
        self.permissions.check(name, "D")

        async def op(link: _Link) -> None:
            async with self._round():
                await link.sftp.remove(path)

        await self._run_gone_is_done(name, op)

    async def move(self, src: str, dst: str) -> None:
        """Rename an item on the server (replacing the destination), creating directories as needed."""
        self._require_open()
        src_path, dst_path = self._path(src), self._path(dst)
        self.permissions.check(src, "D")
        await self._check_write(dst, dst_path)

        async def op(link: _Link) -> None:
            sftp = link.sftp
            async with self._round():
                try:
                    await self._rename_over(sftp, src_path, dst_path)
                except asyncssh.SFTPError as exc:
                    if not _is_not_found(exc) or await self._stat(link, src_path) is None:
                        raise
                    await self._makedirs(sftp, posixpath.dirname(dst_path))  # the target directory is missing
                    await self._rename_over(sftp, src_path, dst_path)

        await self._run_gone_is_done(src, op)

    async def list(self, name: str) -> AsyncIterator[ItemInfo]:
        """Yield a directory's entries sorted by name; temp and foreign files are skipped."""
        self._require_open()
        path = self._path(name) if name else self.path
        self.permissions.check(name, "l")

        async def op(link: _Link) -> Sequence[asyncssh.SFTPName]:
            async with self._round():
                return await link.sftp.readdir(path)

        infos = []
        for entry in await self._run(name, op):
            filename = cast(str, entry.filename)
            try:
                validate_backend_name(filename)
            except StoreError:
                continue  # ".", "..", not ours, or still being written
            infos.append(_info(filename, entry.attrs))
        infos.sort(key=lambda info: info.name)
        for info in infos:
            yield info

    # store-wide ------------------------------------------------------------------------------------------

    async def quota(self) -> dict[str, int]:
        """The space of the server's filesystem (statvfs@openssh.com): usage, and usage plus what is free.

        ``-1`` where the server does not report it.
        """
        self._require_open()

        async def op(link: _Link) -> dict[str, int]:
            try:
                async with self._round():
                    vfs = await link.sftp.statvfs(self.path)
            except asyncssh.SFTPOpUnsupported:
                return {"limit": -1, "usage": -1}
            used = (vfs.blocks - vfs.bfree) * vfs.frsize
            return {"limit": used + vfs.bavail * vfs.frsize, "usage": used}

        return await self._run("", op)

    # hashing ---------------------------------------------------------------------------------------------

    async def hash(self, name: str, algorithm: str = "sha256") -> str:
        """Hash on the server (``sha256sum`` & co. over SSH) where it can, else stream the value."""
        self._require_open()
        path = self._path(name)
        self.permissions.check(name, "r")
        hashing.check_algorithm(algorithm)

        async def op(link: _Link) -> str:
            threshold = self.remote_hash_min_size
            if threshold is not None and not {"*", algorithm} & self._no_remote_hash and algorithm in _HASH_COMMANDS:
                attrs = await self._stat(link, path)
                if attrs is None:
                    raise ObjectNotFound(name)
                if (attrs.size or 0) >= threshold:
                    digest = await self._remote_hash(link, path, algorithm, attrs.size or 0)
                    if digest is not None:
                        return digest
            return await self._stream_hash(link, path, algorithm)

        return await self._run(name, op)

    async def _remote_hash(self, link: _Link, path: str, algorithm: str, size: int) -> str | None:
        """Run the hash command on the server; None (and don't ask again) where that does not work."""
        digits = len(hashing.new(algorithm).hexdigest())
        # stdin redirection: any path, no option parsing; wc -c confirms the shell saw the same file as SFTP
        quoted = shlex.quote(path)
        command = f"{_HASH_COMMANDS[algorithm]} < {quoted} && wc -c < {quoted}"
        try:
            await self._hash_slots.acquire()  # waiting for a slot is no part of the round's deadline
            try:
                async with self._round():
                    result = await link.conn.run(command, check=False, stdin=asyncssh.DEVNULL)
            finally:
                self._hash_slots.release()
        except (asyncssh.ChannelOpenError, asyncssh.ProcessError) as exc:
            log.info("sftp %s: no hash commands on the server (%r): hashing by reading", self.host, exc)
            self._no_remote_hash.add("*")
            return None
        output = result.stdout if isinstance(result.stdout, str) else ""
        words = output.split()
        if result.exit_status == 0 and len(words) == 3 and words[1] == "-" and words[2] == str(size):
            digest = words[0].lower()
            if len(digest) == digits and all(c in "0123456789abcdef" for c in digest):
                return digest
        if result.exit_status == 127:  # that command is missing; others may be there
            self._no_remote_hash.add(algorithm)
        elif not (result.exit_status == 0 and len(words) == 3 and words[2].isdigit()):
            log.info("sftp %s: hash command failed (%r): hashing by reading", self.host, result.stderr)
            self._no_remote_hash.add("*")
        return None  # the value changed between the stat and the command: read it

    async def _stream_hash(self, link: _Link, path: str, algorithm: str) -> str:
        """Read the value a part at a time (the next one in flight while this one is hashed)."""
        hasher = hashing.new(algorithm)
        part = self.capabilities.part_size
        f = await self._open(link, path, asyncssh.FXF_READ)
        pending: asyncio.Future[bytes] | None = None

        async def read(offset: int) -> bytes:
            return await self._read(link, f, offset, part)

        try:
            offset = 0
            pending = asyncio.ensure_future(read(offset))
            while pending is not None:
                chunk = await pending
                offset += len(chunk)
                pending = asyncio.ensure_future(read(offset)) if len(chunk) == part else None
                if len(chunk) >= 256 * 1024:
                    await asyncio.to_thread(hasher.update, chunk)
                else:
                    hasher.update(chunk)
        finally:
            if pending is not None:
                pending.cancel()
                with contextlib.suppress(BaseException):
                    await pending
            self._close_later(f)
        return hasher.hexdigest()

    # streaming and files ---------------------------------------------------------------------------------

    async def read_chunks(
        self, name: str, *, offset: int = 0, size: int | None = None, chunk_size: int = 1 * MiB
    ) -> AsyncIterator[bytes]:
        """Stream a value through one open file; after a reconnect, go on only if it has not changed."""
        self._require_open()
        path = self._path(name)
        self.permissions.check(name, "r")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        position = offset
        remaining = size
        opened: tuple[asyncssh.SFTPClientFile, asyncssh.SFTPAttrs] | None = None
        first: asyncssh.SFTPAttrs | None = None
        reading_on: _Link | None = None
        losses = 0

        async def reopen(link: _Link) -> tuple[asyncssh.SFTPClientFile, asyncssh.SFTPAttrs]:
            nonlocal reading_on
            reading_on = link
            f = await self._open(link, path, asyncssh.FXF_READ)
            try:
                async with self._round():
                    attrs = await f.stat()
            except BaseException:
                await _close_quietly(f)
                raise
            if first is not None and (attrs.size, attrs.mtime) != (first.size, first.mtime):
                await _close_quietly(f)
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
                    chunk = await self._read(reading_on, f, position, want)
                except Exception as exc:
                    if not _is_lost(exc):
                        _raise_translated(exc, name)
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
                self._close_later(opened[0])

    async def store_chunks(self, name: str, chunks: AsyncIterable[bytes], *, size: int | None = None) -> None:
        """Stream into a temp file (one chunk on the wire while the next is produced), then rename it over.

        A stream cannot be replayed: once it has started, a lost connection raises
        [`ConnectionLost`][aiodepot.errors.ConnectionLost].
        """
        self._require_open()
        path = self._path(name)
        await self._check_write(name, path)
        started = False

        async def once() -> AsyncIterator[bytes | memoryview]:
            nonlocal started
            started = True
            async for chunk in chunks:
                yield chunk if isinstance(chunk, bytes) else bytes(chunk)  # the producer may reuse its buffer

        await self._run(name, self._uploader(name, path, once, size), may_retry=lambda: not started)

    async def store_file(self, name: str, path: str, *, size: int) -> None:
        """Stream a local file into a temp file and rename it over; after a lost connection, start again."""
        self._require_open()
        remote = self._path(name)
        await self._check_write(name, remote)
        part = self.capabilities.part_size

        async def chunks() -> AsyncIterator[bytes]:
            async with aiofiles.open(path, "rb") as f:
                while chunk := await f.read(part):
                    yield chunk

        await self._run(name, self._uploader(name, remote, chunks, size))


def _paths(value: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[str]:
    if isinstance(value, str | os.PathLike):
        return [os.fspath(value)]
    return [os.fspath(item) for item in value]


def _read_known_hosts(files: Sequence[str]) -> asyncssh.SSHKnownHosts:
    """All entries of the known_hosts files that exist (blocking: run it in a thread)."""
    text = []
    for file in files:
        with contextlib.suppress(FileNotFoundError), open(os.path.expanduser(file), encoding="utf-8") as f:
            text.append(f.read())
    return asyncssh.import_known_hosts("\n".join(text))
