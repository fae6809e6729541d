"""``FtpBackend``: the backend's hooks, its connections' lifecycle and the reconnect-and-retry loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import posixpath
import re
import ssl as ssl_module
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, ClassVar, Self, TypeVar
from urllib.parse import unquote

import aiofiles
import aioftp

from ...errors import (
    BackendError,
    BackendURLInvalid,
    NotSupported,
    ObjectNotFound,
    PermissionDenied,
    StoreError,
    StoreExists,
    StoreNotFound,
    StoreNotOpen,
)
from ...items import ItemInfo
from ...names import temp_name, validate_backend_name
from ..base import Backend, Capabilities
from ..options import Limits, RetryPolicy, Timeouts, never_reached
from ._connection import Client, DataConnection, Download, Pool, close_client, closed, item_info, mlsx_entry
from ._errors import is_lost, is_missing, reply, translate

__all__ = ["FtpBackend"]

log = logging.getLogger("aiodepot.backends.ftp")

T = TypeVar("T")
MiB = 1024 * 1024
PIECE = 256 * 1024
"""Bytes handed to the data connection at once (a memoryview slice: no copy)."""

_URL = re.compile(
    r"""(?P<scheme>ftps?)://
    (?:(?P<user>[^:@/]*)(?::(?P<password>[^@/]*))?@)?
    (?P<host>\[[^\]/]+\]|[^:/\[\]@]+)
    (?::(?P<port>\d+))?
    /(?P<path>.+)   # the slash after the host separates; the path may start with another (absolute)
    """,
    re.VERBOSE | re.DOTALL | re.IGNORECASE,
)
_REQUIRED_FEATURES = {"MLST": "MLST/MLSD (RFC 3659)", "REST STREAM": "REST STREAM (RFC 3659)"}


class FtpBackend(Backend):
    """Items as files below ``path`` on an FTP server, in borgstore's layout.

    Args:
        host: the server.
        path: the store's base directory; relative paths start in the login directory.
        port: the control port (default 21).
        username: the login (default: ``anonymous``).
        password: the password (default: none, or ``anonymous@`` for the anonymous login).
        tls: explicit TLS (``AUTH TLS``, encrypted data connections): what ``ftps://`` means.
        ssl: for TLS, an ``ssl.SSLContext`` to use, or False to skip certificate checks (test servers only);
            default: the system's trusted certificates, and ``cafile`` if given.
        cafile: a PEM file of certificates to trust (a private CA or a self-signed server).
        retry: how an operation that lost its connection is run again on a new one (default
            ``default_retry``: 4 attempts, waits from 0.2 s doubling up to 10 s).
        limits: ``connections``: control connections in the pool, hence operations at once (default 4).
        timeouts: ``connect``: seconds to connect and log in (default 30); ``read``: seconds a reply or
            the next piece of data may take (default 60); ``pool``: seconds to wait for a free connection
            (default: no limit).
        permissions: a permission map, shortcut name or JSON (see [`aiodepot.permissions`][aiodepot.permissions]).
    """

    default_retry: ClassVar[RetryPolicy] = RetryPolicy(attempts=4, backoff=0.2, multiplier=2.0, cap=10.0, jitter=0.5)
    """The retry policy without ``retry=``."""
    default_limits: ClassVar[Limits] = Limits(connections=4)
    """The limits that ``limits=`` leaves ``None``."""
    default_timeouts: ClassVar[Timeouts] = Timeouts(connect=30.0, read=60.0)
    """The timeouts that ``timeouts=`` leaves ``None``."""

    capabilities = Capabilities(
        server_side_copy=True,  # move is a rename on the server
        atomic_create=False,  # RNTO replaces on most servers: see the module docs
        parallel_ranges=True,  # each range is a REST + RETR on its own connection
        preferred_concurrency=4,
        part_size=8 * MiB,
    )

    def __init__(
        self,
        host: str,
        path: str,
        *,
        port: int | None = None,
        username: str | None = None,
        password: str | None = None,
        tls: bool = False,
        ssl: ssl_module.SSLContext | bool | None = None,
        cafile: str | os.PathLike[str] | None = None,
        retry: RetryPolicy | None = None,
        limits: Limits | None = None,
        timeouts: Timeouts | None = None,
        permissions: str | Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(permissions=permissions)
        if not host:
            raise BackendURLInvalid("the ftp backend needs a host")
        if not path:
            raise BackendURLInvalid("the ftp backend needs a path")
        if any(c in path for c in "\r\n"):
            raise BackendURLInvalid(f"the ftp path must not contain line breaks: {path!r}")
        self.host = host
        self.path = path if path == "/" else path.rstrip("/")
        self.port = port or 21
        self.username = username
        self.password = password
        self.tls = tls
        self.ssl = ssl
        self.cafile = None if cafile is None else os.fspath(cafile)
        self.retry = retry or self.default_retry
        self.limits = (limits or Limits()).or_defaults(self.default_limits)
        self.timeouts = (timeouts or Timeouts()).or_defaults(self.default_timeouts)
        connections = self.limits.connections or 4
        self.capabilities = self.capabilities.replace(preferred_concurrency=connections)
        self._prefix = "/" if self.path == "/" else self.path + "/"
        self._pool = Pool(self._connect, connections, self.timeouts.pool)
        self._checked_features = False
        self._epsv = True  # until the server refuses it

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """``ftp[s]://[user[:password]@]host[:port]/relative/path`` or ``…//absolute/path``.

        The user, password and path may be percent-encoded; an IPv6 address goes in brackets.
        """
        match = _URL.fullmatch(url)
        if match is None:
            raise BackendURLInvalid(
                "not an ftp URL (ftp[s]://[user[:password]@]host[:port]/relative/path or "
                f"ftp://host//absolute/path): {_without_password(url)!r}"
            )
        port = int(match["port"]) if match["port"] else None
        if port is not None and not 0 < port < 65536:
            raise BackendURLInvalid(f"invalid port in {_without_password(url)!r}")
        options.setdefault("tls", match["scheme"].lower() == "ftps")
        return cls(
            match["host"].removeprefix("[").removesuffix("]"),
            unquote(match["path"]),
            port=port,
            username=unquote(match["user"]) if match["user"] else None,
            password=unquote(match["password"]) if match["password"] is not None else None,
            **options,
        )

    def __repr__(self) -> str:
        user = f"{self.username}@" if self.username else ""
        scheme = "ftps" if self.tls else "ftp"
        return (
            f"<FtpBackend {scheme}://{user}{self.host}:{self.port} {self.path!r} {'open' if self.opened else 'closed'}>"
        )

    def _describe_location(self) -> str:
        user = f"{self.username}@" if self.username else ""
        return f"{'ftps' if self.tls else 'ftp'}://{user}{self.host}:{self.port}{self.path}"

    @property
    def _where(self) -> str:
        return self.location

    # connections -----------------------------------------------------------------------------------------

    def _ssl_context(self) -> ssl_module.SSLContext:
        if isinstance(self.ssl, ssl_module.SSLContext):
            return self.ssl
        context = ssl_module.create_default_context(cafile=self.cafile)
        if self.ssl is False:
            context.check_hostname = False
            context.verify_mode = ssl_module.CERT_NONE
        return context

    async def _connect(self) -> aioftp.Client:
        """A new control connection: connect, TLS, log in, binary mode; the first one checks ``FEAT``."""
        client = Client(
            reply_timeout=self.timeouts.read,
            connection_timeout=self.timeouts.connect,
            passive_commands=("epsv", "pasv"),
        )
        try:
            async with asyncio.timeout(self.timeouts.connect):
                await client.connect(self.host, self.port)
                if self.tls:
                    await client.upgrade_to_tls(self._ssl_context())
                user = self.username or "anonymous"
                password = self.password if self.password is not None else ("anonymous@" if user == "anonymous" else "")
                try:
                    await client.login(user, password)
                except aioftp.StatusCodeError as exc:
                    raise PermissionDenied(f"{self._where}: login as {user!r} refused: {' '.join(reply(exc))}") from exc
                await client.command("TYPE I", "200")
                if not self._checked_features:
                    await self._check_features(client)
        except BaseException:
            await close_client(client)
            raise
        return client

    async def _check_features(self, client: aioftp.Client) -> None:
        """Refuse a server without what this backend needs (``MLST``/``MLSD``, ``REST STREAM``)."""
        try:
            _, lines = await client.command("FEAT", "211")
        except aioftp.StatusCodeError as exc:
            raise NotSupported(
                f"{self._where}: the server does not answer FEAT ({' '.join(reply(exc))}); the ftp backend "
                "needs MLST/MLSD and REST STREAM (RFC 3659)"
            ) from exc
        features = {line.strip().upper() for line in lines}
        names = {feature.split(" ", 1)[0] for feature in features}
        missing = [
            label
            for feature, label in _REQUIRED_FEATURES.items()
            if (feature not in features if " " in feature else feature not in names)
        ]
        if missing:
            raise NotSupported(f"{self._where}: the server lacks {' and '.join(missing)}, which the ftp backend needs")
        self._checked_features = True

    async def _data(self, client: aioftp.Client, command: str, offset: int = 0) -> DataConnection:
        """Open a passive data connection and start ``command`` on it (after ``REST offset`` if given)."""
        host, port = await self._passive(client)
        reader, writer = await client._open_connection(host, port)  # resumes the control's TLS session
        try:
            if offset:
                await client.command(f"REST {offset}", "350")
            await client.command(command, "1xx")
        except BaseException:
            writer.transport.abort()
            await closed(writer)
            raise
        assert self.timeouts.read is not None
        return DataConnection(client, reader, writer, self.timeouts.read)

    async def _download(
        self,
        client: aioftp.Client,
        path: str,
        offset: int,
        *,
        target: memoryview | None = None,
        limit: int | None = None,
    ) -> Download:
        """Open a passive data connection, put a [`Download`][aiodepot.backends.ftp._connection.Download] on
        it, and start ``RETR path`` (after ``REST offset`` if given)."""
        host, port = await self._passive(client)
        _, writer = await client._open_connection(host, port)  # resumes the control's TLS session
        assert self.timeouts.read is not None
        download = Download(writer, target, limit, self.timeouts.read)
        try:
            if offset:
                await client.command(f"REST {offset}", "350")
            await client.command("RETR " + path, "1xx")
        except BaseException:
            download.abort()
            raise
        return download

    async def _retrieve(self, client: aioftp.Client, download: Download) -> None:
        """Wait for a download to complete (or end), then close it and read the transfer's final reply."""
        try:
            await download.wait()
        except BaseException:
            download.abort()
            raise
        await download.finish(client)

    async def _passive(self, client: aioftp.Client) -> tuple[str, int]:
        if self._epsv:
            try:
                _, info = await client.command("EPSV", "229")
                return self.host, client.parse_epsv_response(info[-1])[1]
            except aioftp.StatusCodeError as exc:
                if not exc.received_codes[-1].matches("50x"):
                    raise
                self._epsv = False
        _, info = await client.command("PASV", "227")
        return self.host, client.parse_pasv_response(info[-1])[1]  # the server's own address is not trusted

    async def _run(
        self,
        name: str,
        op: Callable[[aioftp.Client], Awaitable[T]],
        *,
        may_retry: Callable[[], bool] | None = None,
        gone_is_done: bool = False,
    ) -> T:
        """Run ``op`` on a pooled connection; after a connection loss, run it again on a new one.

        Native errors become [`StoreError`][aiodepot.errors.StoreError]s. With ``gone_is_done`` (delete,
        rmdir, move) a retry that finds its item missing counts as done: the try before did the work and
        the connection broke before the answer.
        """
        was_open = self.opened
        tries = 0

        async def attempt() -> T:
            nonlocal tries
            if tries and was_open and not self.opened:
                raise StoreNotOpen("the ftp backend was closed while an operation waited to retry")
            tries += 1
            async with self._pool.connection() as client:
                try:
                    return await op(client)
                except aioftp.StatusCodeError as exc:
                    if gone_is_done and tries > 1 and is_missing(exc):
                        return None  # type: ignore[return-value]
                    raise

        def retryable(exc: BaseException) -> bool:
            if not was_open and never_reached(exc):  # opening: a wrong address fails at once
                return False
            return is_lost(exc) and not isinstance(exc, StoreError) and (may_retry is None or may_retry())

        def on_retry(exc: BaseException, number: int, wait: float) -> None:
            log.info("%s: %s: connection lost (%r); retry %d in %.2f s", self._where, name or "/", exc, number, wait)

        try:
            return await self.retry.run(attempt, retryable=retryable, on_retry=on_retry)
        except StoreError:
            raise
        except (aioftp.AIOFTPException, OSError, EOFError, TimeoutError) as exc:
            raise translate(exc, f"{self._where}: {name or '/'}") from exc

    # paths and small commands ----------------------------------------------------------------------------

    def _path(self, name: str) -> str:
        return self._prefix + name if name else self.path

    async def _stat(self, client: aioftp.Client, path: str) -> dict[str, str] | None:
        """The ``MLST`` facts of ``path``, or None where nothing is there."""
        try:
            _, lines = await client.command("MLST " + path, "2xx")
        except aioftp.StatusCodeError as exc:
            if is_missing(exc):
                return None
            raise
        for line in lines[1:]:
            if "=" in line:
                return mlsx_entry(line)[1]
        raise BackendError(f"{self._where}: {path}: MLST gave no facts: {lines!r}")

    async def _is_dir(self, client: aioftp.Client, path: str) -> bool:
        facts = await self._stat(client, path)
        return facts is not None and facts.get("type", "").lower() in ("dir", "cdir", "pdir")

    async def _size(self, client: aioftp.Client, path: str) -> int:
        _, lines = await client.command("SIZE " + path, "213")
        return int(lines[0].strip())

    async def _makedirs(self, client: aioftp.Client, path: str) -> None:
        """Create directory ``path`` and missing parents; one that exists (or appears meanwhile) is fine."""
        try:
            await client.command("MKD " + path, "257")
            return
        except aioftp.StatusCodeError as exc:
            if not is_missing(exc):
                raise
            if await self._is_dir(client, path):
                return
        parent = posixpath.dirname(path)
        if parent not in ("", "/", path):
            await self._makedirs(client, parent)
        try:
            await client.command("MKD " + path, "257")
        except aioftp.StatusCodeError:
            if not await self._is_dir(client, path):
                raise

    async def _rename(self, client: aioftp.Client, src: str, dst: str) -> None:
        await client.command("RNFR " + src, "350")
        await client.command("RNTO " + dst, "2xx")

    async def _entries(self, client: aioftp.Client, path: str) -> list[tuple[str, dict[str, str]]]:
        """The ``MLSD`` entries of directory ``path`` (without ``.`` and ``..``)."""
        data = await self._data(client, "MLSD " + path)
        text = (await self._receive(data, None)).decode("utf-8", "surrogateescape")
        entries = []
        for line in text.splitlines():
            if not line.strip():
                continue
            name, facts = mlsx_entry(line)
            if facts.get("type", "").lower() in ("cdir", "pdir") or name in (".", ".."):
                continue
            entries.append((name, facts))
        return entries

    async def _receive(self, data: DataConnection, size: int | None) -> bytes:
        """Read a transfer to its end, or its first ``size`` bytes (then cut it: the server answers 226 or
        426)."""
        parts = []
        got = 0
        try:
            while size is None or got < size:
                chunk = await data.read(MiB if size is None else min(MiB, size - got))
                if not chunk:
                    break
                parts.append(chunk)
                got += len(chunk)
        except BaseException:
            await data.abort()
            raise
        if size is not None and got >= size:
            await data.finish(("2xx", "426"), cut=True)
        else:
            await data.finish()
        return parts[0] if len(parts) == 1 else b"".join(parts)

    # lifecycle -------------------------------------------------------------------------------------------

    async def _create(self) -> None:
        """Create the base directory (and parents); an existing empty directory is accepted."""

        async def op(client: aioftp.Client) -> None:
            await self._makedirs(client, self.path)
            if await self._entries(client, self.path):
                raise StoreExists(f"{self._where}: store directory is not empty: {self.path}")

        try:
            await self._run("", op)
        finally:
            await self._pool.close()

    async def _destroy(self) -> None:
        """Remove everything below the base directory, and the directory itself."""

        async def op(client: aioftp.Client) -> None:
            if not await self._is_dir(client, self.path):
                raise StoreNotFound(f"{self._where}: store directory does not exist: {self.path}")
            await self._remove_tree(client, self.path)

        try:
            await self._run("", op)
        finally:
            await self._pool.close()

    async def _remove_tree(self, client: aioftp.Client, path: str) -> None:
        for name, facts in await self._entries(client, path):
            child = posixpath.join(path, name)
            if facts.get("type", "").lower() == "dir":
                await self._remove_tree(client, child)
            else:
                await client.command("DELE " + child, "2xx")
        await client.command("RMD " + path, "2xx")

    async def _open(self) -> None:
        """Connect and check that the base directory exists."""

        async def op(client: aioftp.Client) -> None:
            if not await self._is_dir(client, self.path):
                raise StoreNotFound(f"{self._where}: store directory does not exist: {self.path}")

        try:
            await self._run("", op)
        except BaseException:
            await self._pool.close()
            raise

    async def _close(self) -> None:
        await self._pool.close()

    # directories -----------------------------------------------------------------------------------------

    async def _mkdir(self, name: str) -> None:
        path = self._path(name)

        async def op(client: aioftp.Client) -> None:
            await self._makedirs(client, path)

        await self._run(name, op)

    async def _rmdir(self, name: str) -> None:
        path = self._path(name)

        async def op(client: aioftp.Client) -> None:
            await client.command("RMD " + path, "2xx")

        await self._run(name, op, gone_is_done=True)

    # items -----------------------------------------------------------------------------------------------

    async def _info(self, name: str) -> ItemInfo:
        """Describe an item or directory (one ``MLST``)."""
        path = self._path(name)
        leaf = name.rpartition("/")[2]

        async def op(client: aioftp.Client) -> ItemInfo:
            facts = await self._stat(client, path)
            return ItemInfo.missing(leaf) if facts is None else item_info(leaf, facts)

        return await self._run(name, op)

    async def _load(self, name: str, offset: int, size: int | None) -> bytes:
        """``RETR`` the value, from ``offset`` (``REST``) and only ``size`` bytes of it when given."""
        path = self._path(name)

        async def op(client: aioftp.Client) -> bytes:
            start = offset
            if start < 0:
                start = max(await self._size(client, path) + start, 0)
            if size == 0:
                await self._size(client, path)  # a missing item still raises
                return b""
            download = await self._start_download(client, path, start, limit=size)
            if download is None:
                return b""
            await self._retrieve(client, download)
            return download.value()

        return await self._run(name, op)

    async def _load_into(self, name: str, offset: int, buffer: memoryview) -> int:
        """``RETR`` from ``offset`` straight into ``buffer`` (the socket reads into it: no copy)."""
        path = self._path(name)

        async def op(client: aioftp.Client) -> int:
            if not buffer:
                await self._size(client, path)  # a missing item still raises
                return 0
            download = await self._start_download(client, path, offset, target=buffer)
            if download is None:
                return 0
            await self._retrieve(client, download)
            return download.received

        return await self._run(name, op)

    async def _start_download(
        self,
        client: aioftp.Client,
        path: str,
        offset: int,
        *,
        target: memoryview | None = None,
        limit: int | None = None,
    ) -> Download | None:
        """`_download`; None where ``offset`` is past the end of the file (the range is empty)."""
        try:
            return await self._download(client, path, offset, target=target, limit=limit)
        except aioftp.StatusCodeError as exc:
            if offset and reply(exc)[0] == "554" and offset >= await self._size(client, path):
                return None
            raise

    async def _store(self, name: str, value: bytes | memoryview, *, replace: bool) -> None:
        """``STOR`` a temp file beside the item, then rename it over the item."""
        path = self._path(name)

        async def chunks() -> AsyncIterator[bytes | memoryview]:
            yield value

        await self._run(name, self._uploader(name, path, chunks, len(value), replace=replace))

    def _uploader(
        self,
        name: str,
        path: str,
        chunks: Callable[[], AsyncIterator[bytes | memoryview]],
        size: int | None,
        *,
        replace: bool,
    ) -> Callable[[aioftp.Client], Awaitable[None]]:
        """An op that uploads ``chunks()`` to a new temp file beside ``path`` and renames it into place.

        A failure removes the temp file on the same connection where it still works; after a lost
        connection the next try removes it first. ``replace=False`` checks that ``path`` is absent just
        before the rename (not atomic: see the module docs).
        """
        stale: list[str] = []

        async def op(client: aioftp.Client) -> None:
            while stale:
                with contextlib.suppress(aioftp.StatusCodeError):
                    await client.command("DELE " + stale.pop(), "2xx")
            tmp = temp_name(path)
            try:
                data = await self._start_upload(client, tmp, path)
            except aioftp.StatusCodeError:
                raise  # nothing was created
            stale.append(tmp)
            in_step = True
            try:
                in_step = False
                await self._send(data, chunks(), size, name)
                in_step = True
                if not replace and await self._stat(client, path) is not None:
                    self._refuse_replace(name)
                await self._rename(client, tmp, path)
                stale.remove(tmp)
            except BaseException as exc:
                if (in_step or getattr(exc, "_ftp_in_step", False)) and not is_lost(exc):
                    with contextlib.suppress(Exception):  # the connection is in step: clean up now
                        await client.command("DELE " + tmp, "2xx")
                    stale.remove(tmp)
                raise

        return op

    async def _start_upload(self, client: aioftp.Client, tmp: str, path: str) -> DataConnection:
        """``STOR`` to ``tmp``; a missing directory is created and the ``STOR`` sent again."""
        try:
            return await self._data(client, "STOR " + tmp)
        except aioftp.StatusCodeError as exc:
            if not is_missing(exc):
                raise
        await self._makedirs(client, posixpath.dirname(path))
        return await self._data(client, "STOR " + tmp)

    async def _send(
        self, data: DataConnection, chunks: AsyncIterator[bytes | memoryview], size: int | None, name: str
    ) -> None:
        """Write the stream to the data connection; end the transfer (226) only if its size is right."""
        sent = 0
        try:
            async for chunk in chunks:
                view = memoryview(chunk).cast("B")
                sent += len(view)
                if size is not None and sent > size:
                    raise ValueError(f"{name}: expected {size} bytes, the stream gave more")
                for start in range(0, len(view), PIECE):
                    await data.write(view[start : start + PIECE])
            if size is not None and sent != size:
                raise ValueError(f"{name}: expected {size} bytes, the stream gave {sent}")
        except BaseException as exc:
            await data.abort()
            if not is_lost(exc):
                # the server ends the transfer and says so: read that reply, so that the connection stays
                # in step for the clean-up (the marker tells the caller it is)
                try:
                    await data.finish(("2xx", "4xx", "5xx"))
                    exc._ftp_in_step = True  # type: ignore[attr-defined]
                except Exception:
                    log.debug("%s: %s: no reply after an upload was cut", self._where, name, exc_info=True)
            raise
        await data.finish()

    async def _delete(self, name: str) -> None:
        path = self._path(name)

        async def op(client: aioftp.Client) -> None:
            await client.command("DELE " + path, "2xx")

        await self._run(name, op, gone_is_done=True)

    async def _move(self, src: str, dst: str, *, replace: bool) -> None:
        """Rename an item on the server (replacing the destination), creating directories as needed."""
        src_path, dst_path = self._path(src), self._path(dst)

        async def op(client: aioftp.Client) -> None:
            if not replace and await self._stat(client, dst_path) is not None:
                self._refuse_replace(dst)
            try:
                await self._rename(client, src_path, dst_path)
            except aioftp.StatusCodeError as exc:
                if not is_missing(exc) or await self._stat(client, src_path) is None:
                    raise
                await self._makedirs(client, posixpath.dirname(dst_path))  # the target directory is missing
                await self._rename(client, src_path, dst_path)

        await self._run(src, op, gone_is_done=True)

    async def _list(self, name: str) -> AsyncIterator[ItemInfo]:
        """Yield a directory's entries sorted by name (one ``MLSD``); temp and foreign files are skipped."""
        path = self._path(name)

        async def op(client: aioftp.Client) -> list[tuple[str, dict[str, str]]]:
            try:
                return await self._entries(client, path)
            except aioftp.StatusCodeError as exc:
                if reply(exc)[0] == "501" and not await self._is_dir(client, path):
                    raise ObjectNotFound(f"{self._where}: {name}: not a directory") from exc
                raise

        infos = []
        for filename, facts in await self._run(name, op):
            try:
                validate_backend_name(filename)
            except StoreError:
                continue  # not ours, or still being written
            infos.append(item_info(filename, facts))
        infos.sort(key=lambda info: info.name)
        for info in infos:
            yield info

    # streaming and files ---------------------------------------------------------------------------------

    async def _store_chunks(self, name: str, chunks: AsyncIterable[bytes], size: int | None, *, replace: bool) -> None:
        """Stream into a temp file, then rename it over. A stream cannot be replayed: once it has started,
        a lost connection raises [`ConnectionLost`][aiodepot.errors.ConnectionLost]."""
        path = self._path(name)
        started = False

        async def once() -> AsyncIterator[bytes | memoryview]:
            nonlocal started
            started = True
            async for chunk in chunks:
                yield chunk

        await self._run(name, self._uploader(name, path, once, size, replace=replace), may_retry=lambda: not started)

    async def _store_file(self, name: str, path: str, size: int, *, replace: bool) -> None:
        """Stream a local file into a temp file and rename it over; after a lost connection, start again."""
        remote = self._path(name)
        part = self.capabilities.part_size

        async def chunks() -> AsyncIterator[bytes | memoryview]:
            async with aiofiles.open(path, "rb") as f:
                while chunk := await f.read(part):
                    yield chunk

        await self._run(name, self._uploader(name, remote, chunks, size, replace=replace))


def _without_password(url: str) -> str:
    """``url`` with the password (if any) replaced by ``***``, for messages."""
    return re.sub(r"^(ftps?://[^:@/]*):[^@/]*@", r"\1:***@", url, flags=re.IGNORECASE)
