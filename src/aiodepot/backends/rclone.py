"""``rclone:remote:path`` — any rclone remote, through rclone's remote-control API.

``open()`` starts ``rclone rcd`` on a free loopback port, with a random user and password and no web GUI,
and ``close()`` stops it. Everything in between is HTTP to that process over one `aiohttp`
session: ``operations/list``, ``stat``, ``uploadfile``, ``movefile``, ``deletefile``, ``mkdir``, ``rmdir``,
``purge``, and ranged ``GET``s of ``[remote:path]/name`` (the ``--rc-serve`` file server) for loads.

Everything after ``rclone:`` is handed to rclone as it is: a configured remote (``rclone:s3remote:bucket/
depot``), an on-the-fly remote (``rclone::local:/srv/depot``, ``rclone::sftp,host=example.org:depot``) or a
local path (``rclone:/srv/depot``). rclone's own configuration (``rclone config``, ``RCLONE_*`` variables)
applies.

A store uploads to a temporary ``….tmp`` name beside the item and then moves it into place, so a reader
never sees a part of a value; ``.tmp`` names are never listed. rclone (up to at least 1.60) replaces an
existing item by deleting it and then moving the new one in: for the moment between, the item is missing,
so a load that finds nothing looks again a few times within 50 ms before it raises ``ObjectNotFound`` (and
once more after the move, if a store of this process is moving a value into place under that name). On
bucket-based remotes (S3, B2, GCS, Azure …), where a move is a copy and an upload is atomic by itself, a
store uploads to the item's name directly.
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import contextlib
import os
import secrets
import socket
import weakref
from collections.abc import AsyncIterable, AsyncIterator, Iterator, Mapping
from datetime import datetime
from typing import Any, ClassVar, NoReturn, Self
from urllib.parse import quote

import aiohttp
from yarl import URL

from ..errors import (
    BackendError,
    BackendURLInvalid,
    ConnectionLost,
    ObjectNotFound,
    StoreError,
    StoreExists,
    StoreNotFound,
)
from ..hashing import check_algorithm
from ..items import ItemInfo
from ..names import TMP_SUFFIX, validate_backend_name
from .base import Backend, Capabilities
from .options import Limits, Rename, RetryPolicy, Timeouts, legacy_options

__all__ = ["RcloneBackend"]

MiB = 1024 * 1024
HOST = "127.0.0.1"
_START_TRIES = 3
_RCLONE_HASHES = {"md5": "md5", "sha1": "sha1", "sha256": "sha256", "blake3": "blake3", "crc32": "crc32"}
_LIST_OPTIONS = {"recurse": False, "noModTime": True, "noMimeType": True}
_REPLACE_GAP = RetryPolicy(attempts=4, backoff=0.005, multiplier=3.0, cap=0.03, jitter=0.0)
"""Looks again for an item caught in the gap of rclone's delete-then-move replace (after 5, 15, 30 ms)."""
_RENAMED: dict[str, Rename] = {
    "connections": ("limits", "connections", None),
    "timeout": ("timeouts", "connect", None),
}
"""The keywords before ``limits=``/``timeouts=`` (deprecated)."""


_ERRORS: Mapping[int | type[BaseException], type[StoreError]] = {
    404: ObjectNotFound,  # an HTTP status of rclone's answer
    aiohttp.ClientConnectionError: ConnectionLost,  # rclone went away (also ServerDisconnectedError)
    aiohttp.ClientError: BackendError,
    TimeoutError: BackendError,
}
"""HTTP status of rclone's answer, or aiohttp's exception type → aiodepot error class (an exception's
closest listed class wins). Any other status is a [`BackendError`][aiodepot.errors.BackendError]."""
_NATIVE_ERRORS = tuple(kind for kind in _ERRORS if isinstance(kind, type))


def _raise_rc_error(status: int, body: Any, what: str) -> NoReturn:
    """Raise the error for rclone's answer ``status`` (``body``: its JSON or text, None: not read)."""
    message = body.get("error", body) if isinstance(body, dict) else body
    kind = _ERRORS.get(status, BackendError)
    if kind is BackendError:
        raise BackendError(f"rclone: {what}: error {status}: {message}")
    raise kind(what if message is None else f"{what}: {message}")


def _translate(exc: BaseException, what: str) -> StoreError:
    """The [`StoreError`][aiodepot.errors.StoreError] for one of aiohttp's errors (raised ``from exc``)."""
    kind = next((_ERRORS[base] for base in type(exc).__mro__ if base in _ERRORS), BackendError)
    return kind(f"rclone: {what}: {exc}")


class _CutShort(BackendError):
    """rclone announced a value and then sent less (the item was replaced meanwhile)."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


class _Rcd:
    """One ``rclone rcd`` process and the HTTP session that talks to it."""

    def __init__(self, process: asyncio.subprocess.Process, url: str, session: aiohttp.ClientSession) -> None:
        self.process = process
        self.url = url
        self.session = session

    @classmethod
    async def start(cls, binary: str, connections: int, startup_timeout: float) -> _Rcd:
        user, password = secrets.token_urlsafe(16), secrets.token_urlsafe(32)
        env = dict(os.environ, RCLONE_RC_PASS=password)  # the same as --rc-pass, but not visible in ps
        for _ in range(_START_TRIES):
            port = _free_port()
            args = ["rcd", "--rc-addr", f"{HOST}:{port}", "--rc-user", user, "--rc-serve", "--use-server-modtime"]
            try:
                process = await asyncio.create_subprocess_exec(
                    binary,
                    *args,
                    env=env,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                    start_new_session=True,  # a Ctrl-C for the application is not one for rclone
                )
            except FileNotFoundError as exc:
                raise BackendError(f"rclone is not installed (no {binary!r} on the PATH)") from exc
            if await cls._wait_for_port(process, port, startup_timeout):
                break
            await cls._stop_process(process)  # probably lost the port to someone else: try another
        else:
            raise BackendError(f"rclone rcd did not start (exit code {process.returncode})")
        session = aiohttp.ClientSession(
            headers={"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()},
            connector=aiohttp.TCPConnector(limit=connections),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=startup_timeout),
        )
        return cls(process, f"http://{HOST}:{port}/", session)

    @staticmethod
    async def _wait_for_port(process: asyncio.subprocess.Process, port: int, startup_timeout: float) -> bool:
        deadline = asyncio.get_running_loop().time() + startup_timeout
        while process.returncode is None and asyncio.get_running_loop().time() < deadline:
            try:
                _, writer = await asyncio.open_connection(HOST, port)
            except OSError:
                await asyncio.sleep(0.01)
                continue
            writer.close()
            await writer.wait_closed()
            return True
        return False

    @staticmethod
    async def _stop_process(process: asyncio.subprocess.Process) -> None:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()

    async def stop(self) -> None:
        """Close the session and stop rclone with SIGTERM (it runs its exit handlers; ``core/quit`` would
        wait 1.5 s before exiting)."""
        try:
            await self.session.close()
        finally:
            await self._stop_process(self.process)


class RcloneBackend(Backend):
    """Items on any rclone remote, through a private ``rclone rcd`` (see the module docs).

    Args:
        remote: what rclone calls the remote and path: ``remote:path``, ``:backend,option=x:path`` or
            ``/local/path``.
        permissions: a permission map, shortcut name or JSON (see [`aiodepot.permissions`][aiodepot.permissions]).
        rclone: the rclone program (default: ``$RCLONE_BINARY`` or ``rclone`` on the PATH).
        limits: ``connections``: HTTP connections to rclone, the operations in flight at once (default 32).
        timeouts: ``connect``: seconds to wait for rclone to start, and for each connection (default 30).
    """

    default_limits: ClassVar[Limits] = Limits(connections=32)
    """The limits that ``limits=`` leaves ``None``."""
    default_timeouts: ClassVar[Timeouts] = Timeouts(connect=30.0)
    """The timeouts that ``timeouts=`` leaves ``None``."""

    capabilities = Capabilities(
        server_side_copy=True,
        server_side_hash=True,
        parallel_ranges=True,
        preferred_concurrency=16,
        part_size=8 * MiB,
    )

    def __init__(
        self,
        remote: str,
        *,
        permissions: str | dict[str, str] | None = None,
        rclone: str | None = None,
        limits: Limits | None = None,
        timeouts: Timeouts | None = None,
        **deprecated: Any,
    ) -> None:
        super().__init__(permissions=permissions)
        if not remote or any(c in remote for c in "\r\n\0"):
            raise BackendURLInvalid(f"not an rclone remote: {remote!r}")
        defaults = self._defaults(limits, timeouts)
        _, self.limits, self.timeouts = legacy_options("RcloneBackend", deprecated, _RENAMED, **defaults)
        self.remote = remote
        self.fs = remote if remote.endswith((":", "/")) else remote + "/"
        self.rclone = rclone or os.environ.get("RCLONE_BINARY", "rclone")
        assert self.limits.connections is not None  # the defaults fill them
        assert self.timeouts.connect is not None
        self.connections: int = self.limits.connections
        self.timeout: float = self.timeouts.connect
        self._rcd: _Rcd | None = None
        self._hashes: frozenset[str] = frozenset()
        self._bucket_based = False
        self._placing: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def _defaults(self, limits: Limits | None, timeouts: Timeouts | None) -> dict[str, Any]:
        """``legacy_options``'s keywords: the values given over the class's defaults (``retry``: unused)."""
        return {
            "retry": _REPLACE_GAP,
            "limits": (limits or Limits()).or_defaults(self.default_limits),
            "timeouts": (timeouts or Timeouts()).or_defaults(self.default_timeouts),
        }

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """``rclone:REMOTE`` — everything after ``rclone:`` goes to rclone unchanged (no percent-decoding)."""
        if not url.startswith("rclone:"):
            raise BackendURLInvalid(f"not an rclone: URL: {url!r}")
        return cls(url[len("rclone:") :], **options)

    def __repr__(self) -> str:
        return f"<RcloneBackend {self.remote!r} {'open' if self.opened else 'closed'}>"

    def _describe_location(self) -> str:
        return f"rclone:{self.remote}"

    # talking to rclone -----------------------------------------------------------------------------------

    def _get(self) -> _Rcd:
        self._require_open()
        assert self._rcd is not None
        return self._rcd

    @contextlib.contextmanager
    def _translated(self, what: str) -> Iterator[None]:
        """The boundary where aiohttp's errors become aiodepot's (through ``_ERRORS``)."""
        try:
            yield
        except _NATIVE_ERRORS as exc:
            raise _translate(exc, what) from exc

    async def _rpc(self, rcd: _Rcd, command: str, what: str, **params: Any) -> dict[str, Any]:
        """Call ``command`` of the rc API with ``params`` as JSON; errors become ``StoreError``s."""
        with self._translated(what):
            async with rcd.session.post(rcd.url + command, json=params) as response:
                body = await response.json(content_type=None)
                if response.status != 200:
                    _raise_rc_error(response.status, body, what)
        if not isinstance(body, dict):
            raise BackendError(f"rclone: {what}: unexpected answer {body!r}")
        return body

    def _object_url(self, rcd: _Rcd, name: str) -> URL:
        return URL(rcd.url + quote(f"[{self.fs}]/{name}", safe="/:[],="), encoded=True)

    @contextlib.asynccontextmanager
    async def _lifecycle(self) -> AsyncIterator[_Rcd]:
        """An rcd for create/destroy (the backend is closed then)."""
        rcd = await _Rcd.start(self.rclone, 4, self.timeout)
        try:
            yield rcd
        finally:
            await rcd.stop()

    async def _root_entries(self, rcd: _Rcd) -> builtins.list[dict[str, Any]] | None:
        """The entries at the top of the remote path, or None if it does not exist."""
        try:
            result = await self._rpc(rcd, "operations/list", self.remote, fs=self.fs, remote="", opt=_LIST_OPTIONS)
        except ObjectNotFound:
            return None
        entries: builtins.list[dict[str, Any]] = result.get("list") or []
        return entries

    async def _stat(self, rcd: _Rcd, name: str, **opt: Any) -> dict[str, Any] | None:
        result = await self._rpc(rcd, "operations/stat", name, fs=self.fs, remote=name, opt={"noMimeType": True, **opt})
        item: dict[str, Any] | None = result.get("item")
        return item

    # lifecycle -------------------------------------------------------------------------------------------

    async def _create(self) -> None:
        """Create the remote directory; one that holds anything raises ``StoreExists``."""
        async with self._lifecycle() as rcd:
            if await self._root_entries(rcd):
                raise StoreExists(f"rclone store is not empty: {self.remote}")
            await self._rpc(rcd, "operations/mkdir", self.remote, fs=self.fs, remote="")

    async def _destroy(self) -> None:
        """Remove the remote directory and everything in it (``operations/purge``)."""
        async with self._lifecycle() as rcd:
            if await self._root_entries(rcd) is None:
                raise StoreNotFound(f"rclone store does not exist: {self.remote}")
            await self._rpc(rcd, "operations/purge", self.remote, fs=self.fs, remote="")

    async def _open(self) -> None:
        """Start ``rclone rcd`` and check the store exists; a missing one raises ``StoreNotFound``."""
        rcd = await _Rcd.start(self.rclone, self.connections, self.timeout)
        try:
            if await self._root_entries(rcd) is None:
                raise StoreNotFound(f"rclone store does not exist: {self.remote} (call create())")
            info = await self._rpc(rcd, "operations/fsinfo", self.remote, fs=self.fs)
        except BaseException:
            await rcd.stop()
            raise
        self._hashes = frozenset(str(h).lower() for h in info.get("Hashes") or ())
        self._bucket_based = bool((info.get("Features") or {}).get("BucketBased"))
        self._rcd = rcd

    async def _close(self) -> None:
        """Stop the rclone process."""
        rcd, self._rcd = self._rcd, None
        if rcd is not None:
            await rcd.stop()

    # directories -----------------------------------------------------------------------------------------

    async def _mkdir(self, name: str) -> None:
        """Create a directory (on remotes without directories, such as S3, this may do nothing)."""
        rcd = self._get()
        await self._rpc(rcd, "operations/mkdir", name, fs=self.fs, remote=name)

    async def _rmdir(self, name: str) -> None:
        rcd = self._get()
        item = await self._stat(rcd, name, noModTime=True)
        if item is None or not item.get("IsDir"):
            raise ObjectNotFound(name)
        await self._rpc(rcd, "operations/rmdir", name, fs=self.fs, remote=name)

    # items -----------------------------------------------------------------------------------------------

    async def _info(self, name: str) -> ItemInfo:
        """Describe an item or directory (``operations/stat``)."""
        rcd = self._get()
        leaf = name.rpartition("/")[2]
        item = await self._stat(rcd, name)
        if item is None:
            return ItemInfo.missing(leaf)
        mtime = 0.0
        if item.get("ModTime"):
            with contextlib.suppress(ValueError):
                mtime = datetime.fromisoformat(item["ModTime"]).timestamp()
        is_dir = bool(item.get("IsDir"))
        if is_dir:
            return ItemInfo.for_directory(leaf, mtime=mtime)
        return ItemInfo.for_file(leaf, int(item.get("Size", 0)), mtime=mtime)

    async def _exists(self, rcd: _Rcd, name: str) -> bool:
        item = await self._stat(rcd, name, noModTime=True)
        return item is not None and not item.get("IsDir")

    async def _load(self, name: str, offset: int, size: int | None) -> bytes:
        """``GET`` the item from rclone's file server, with a ``Range`` header for partial loads."""
        rcd = self._get()
        if size == 0:
            if not await self._exists(rcd, name):
                raise ObjectNotFound(name)
            return b""
        if offset < 0:  # rclone mishandles suffix ranges longer than the item: ask for its size first
            item = await self._stat(rcd, name, noModTime=True)
            if item is None or item.get("IsDir"):
                raise ObjectNotFound(name)
            offset = max(int(item["Size"]) + offset, 0)
        byte_range = None
        if offset or size is not None:
            byte_range = f"bytes={offset}-" + ("" if size is None else str(offset + size - 1))
        headers = {"Range": byte_range} if byte_range else {}
        return await self._get_range(rcd, name, headers, offset, size)

    async def _get_range(self, rcd: _Rcd, name: str, headers: dict[str, str], offset: int, size: int | None) -> bytes:
        """GET a range; an item missing or cut short may be caught between rclone's delete and move of a
        replace (not on bucket-based remotes): look again a few times."""

        def in_the_gap(exc: BaseException) -> bool:
            return isinstance(exc, ObjectNotFound | _CutShort) and not self._bucket_based

        try:
            return await _REPLACE_GAP.run(
                lambda: self._get_range_once(rcd, name, headers, offset, size), retryable=in_the_gap
            )
        except (ObjectNotFound, _CutShort):
            lock = self._placing.get(name)
            if self._bucket_based or lock is None or not lock.locked():
                raise
            # A store of this process is moving a value into place under that name, slower than the looks
            # above (a busy machine): look again after its move, holding the next move off meanwhile.
            async with lock:
                return await self._get_range_once(rcd, name, headers, offset, size)

    async def _get_range_once(
        self, rcd: _Rcd, name: str, headers: dict[str, str], offset: int, size: int | None
    ) -> bytes:
        with self._translated(name):
            async with rcd.session.get(self._object_url(rcd, name), headers=headers) as response:
                if response.status == 416:  # the range starts past the end
                    return b""
                try:
                    data = await response.read()
                except aiohttp.ClientPayloadError as exc:  # the item went away while rclone sent it
                    raise _CutShort(f"rclone: {name}: the answer was cut short: {exc}") from exc
                if response.status == 404:
                    _raise_rc_error(response.status, None, name)
                if response.status not in (200, 206):
                    _raise_rc_error(response.status, data.decode(errors="replace"), name)
                if response.status == 200 and headers:  # the server sent everything: cut the range out
                    data = data[offset : None if size is None else offset + size]
        return data

    def _temp_name(self, name: str) -> str:
        return f"{name}.{secrets.token_hex(6)}{TMP_SUFFIX}"

    async def _upload(self, rcd: _Rcd, name: str, body: bytes | memoryview | AsyncIterable[bytes]) -> None:
        """Upload ``body`` to a temp name beside ``name`` and move it into place (on bucket-based remotes:
        straight to ``name``, an upload is atomic there)."""
        temp = name if self._bucket_based else self._temp_name(name)
        directory, _, leaf = temp.rpartition("/")
        form = aiohttp.FormData()
        form.add_field("file", body, filename=leaf, content_type="application/octet-stream")
        try:
            with self._translated(name):
                async with rcd.session.post(
                    rcd.url + "operations/uploadfile", params={"fs": self.fs, "remote": directory}, data=form
                ) as response:
                    if response.status != 200:
                        _raise_rc_error(response.status, await response.json(content_type=None), name)
            if temp != name:
                await self._move_into_place(rcd, temp, name)
        except BaseException:
            if temp == name:
                raise
            with contextlib.suppress(StoreError):
                await asyncio.shield(self._rpc(rcd, "operations/deletefile", temp, fs=self.fs, remote=temp))
            raise

    async def _move_into_place(self, rcd: _Rcd, temp: str, name: str) -> None:
        # rclone replaces an item by deleting it and moving the new one in: two such moves to one name at
        # once fail inside rclone (each finds the other's deletion). Moves to one name take turns here.
        lock = self._placing.get(name)
        if lock is None:
            lock = self._placing[name] = asyncio.Lock()
        async with lock:
            await self._rpc(
                rcd, "operations/movefile", name, srcFs=self.fs, srcRemote=temp, dstFs=self.fs, dstRemote=name
            )

    async def _check_replace(self, rcd: _Rcd, name: str, replace: bool) -> None:
        if not replace and await self._exists(rcd, name):
            self._refuse_replace(name)

    async def _store(self, name: str, value: bytes | memoryview, *, replace: bool) -> None:
        """Upload to a temp name, then move into place (``uploadfile`` + ``movefile``)."""
        rcd = self._get()
        await self._check_replace(rcd, name, replace)
        await self._upload(rcd, name, value)

    async def _store_chunks(self, name: str, chunks: AsyncIterable[bytes], size: int | None, *, replace: bool) -> None:
        """Stream the chunks into the upload (not into memory); a wrong ``size`` stores nothing."""
        rcd = self._get()
        await self._check_replace(rcd, name, replace)

        stream_error: ValueError | None = None

        async def counted() -> AsyncIterator[bytes]:
            nonlocal stream_error
            done = 0
            async for chunk in chunks:
                done += len(chunk)
                if size is not None and done > size:
                    stream_error = ValueError(f"{name}: the stream gave more than the expected {size} bytes")
                    raise stream_error
                yield bytes(chunk)
            if size is not None and done != size:
                stream_error = ValueError(f"{name}: expected {size} bytes, the stream gave {done}")
                raise stream_error

        try:
            await self._upload(rcd, name, counted())
        except StoreError:
            if stream_error is not None:  # the upload broke off because the stream was wrong: say that
                raise stream_error from None
            raise

    async def _delete(self, name: str) -> None:
        """Delete an item (``operations/deletefile``)."""
        rcd = self._get()
        await self._rpc(rcd, "operations/deletefile", name, fs=self.fs, remote=name)

    async def _move(self, src: str, dst: str, *, replace: bool) -> None:
        """Rename an item, replacing ``dst`` (``operations/movefile``, server-side)."""
        rcd = self._get()
        await self._check_replace(rcd, dst, replace)
        await self._rpc(rcd, "operations/movefile", src, srcFs=self.fs, srcRemote=src, dstFs=self.fs, dstRemote=dst)

    async def _list(self, name: str) -> AsyncIterator[ItemInfo]:
        """Yield a directory's entries sorted by name (``operations/list``); temp and foreign names are skipped."""
        rcd = self._get()
        result = await self._rpc(rcd, "operations/list", name, fs=self.fs, remote=name, opt=_LIST_OPTIONS)
        infos = []
        for entry in result.get("list") or ():
            leaf = entry.get("Name", "")
            try:
                validate_backend_name(leaf)
            except StoreError:
                continue  # not ours, or an upload in progress
            is_dir = bool(entry.get("IsDir"))
            infos.append(ItemInfo.for_directory(leaf) if is_dir else ItemInfo.for_file(leaf, int(entry.get("Size", 0))))
        infos.sort(key=lambda info: info.name)
        for info in infos:
            yield info

    async def _hash(self, name: str, algorithm: str) -> str:
        """Let rclone hash the item where the remote has the hash (md5, sha1, sha256 … as it says); read it
        through otherwise."""
        rcd = self._get()
        check_algorithm(algorithm)
        rclone_name = _RCLONE_HASHES.get(algorithm)
        if rclone_name is None or rclone_name not in self._hashes:
            return await super()._hash(name, algorithm)
        item = await self._stat(rcd, name, noModTime=True, showHash=True, hashTypes=[rclone_name])
        if item is None or item.get("IsDir"):
            raise ObjectNotFound(name)
        digest = (item.get("Hashes") or {}).get(rclone_name)
        if not digest:  # the remote has no hash for this object
            return await super()._hash(name, algorithm)
        return str(digest).lower()
