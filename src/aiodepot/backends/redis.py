"""``redis://host[:port]/db[/prefix]`` — items as Redis strings, through ``redis.asyncio``.

Layout, for the store ``prefix`` (default ``aiodepot``):

- an item ``name`` is the string key ``{prefix}/name``: an 8-byte header (the store time, a big-endian
  double) followed by the value. The header gives ``info`` an ``mtime`` (Redis keeps none) in the same key,
  so a store, a ``RENAME`` and an expiry all act on one key, atomically;
- a directory ``name`` is the empty key ``{prefix}/name/``, set for the parents of every stored item and by
  ``mkdir``; the store itself is the key ``{prefix}/``.

``list`` is a ``SCAN`` of the directory's key prefix, sorted (SCAN walks the whole keyspace of the database
or node, so give big stores a database of their own); ranged loads are one ``GETRANGE`` (in a small Lua
script that also tells a missing item from an empty one); ``move`` is a ``RENAME``. The braces make the
prefix a Redis Cluster hash tag: all keys of a store are in one hash slot, so ``RENAME`` and multi-key
commands work on a cluster as they do on one server (``redis+cluster://``). Items can expire: see
[`store_with_ttl`][aiodepot.backends.redis.RedisBackend.store_with_ttl] and ``default_ttl``.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any, ClassVar, Self
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis
import redis.exceptions as redis_errors
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

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
)
from ..items import ItemInfo, StoreValue, validate_value
from ..names import DEL_SUFFIX, validate_backend_name
from .base import Backend, Capabilities
from .options import Limits, Rename, RetryPolicy, Timeouts, legacy_options

__all__ = ["RedisBackend"]

MiB = 1024 * 1024
_HEADER = struct.Struct(">d")
_SCAN_COUNT = 1000
_PIPELINE_CHUNK = 1000
_SCHEMES = {
    "redis": (False, False),
    "rediss": (False, True),
    "redis+cluster": (True, False),
    "rediss+cluster": (True, True),
}

# KEYS[1] item; ARGV offset (negative: from the end), size (-1: to the end). nil for a missing item.
_LOAD_RANGE = """
local n = redis.call('STRLEN', KEYS[1])
if n == 0 then return false end
n = n - 8
local start = tonumber(ARGV[1])
local size = tonumber(ARGV[2])
if start < 0 then start = math.max(n + start, 0) elseif start > n then start = n end
local stop = n
if size >= 0 then stop = math.min(start + size, n) end
if stop <= start then return '' end
return redis.call('GETRANGE', KEYS[1], start + 8, stop + 7)
"""

# KEYS[1] source, KEYS[2] destination, KEYS[3..] directory keys of the destination's parents. 0: no source.
_MOVE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for i = 3, #KEYS do redis.call('SET', KEYS[i], '', 'NX') end
redis.call('RENAME', KEYS[1], KEYS[2])
return 1
"""


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _ancestors(name: str) -> list[str]:
    parts = name.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


_RENAMED: dict[str, Rename] = {"max_connections": ("limits", "connections", None)}
"""The keywords before ``limits=`` (deprecated)."""

_ERRORS: tuple[tuple[type[redis_errors.RedisError] | str, type[StoreError]], ...] = (
    (redis_errors.AuthenticationError, PermissionDenied),
    (redis_errors.NoPermissionError, PermissionDenied),
    (redis_errors.ConnectionError, ConnectionLost),
    (redis_errors.TimeoutError, ConnectionLost),
    (redis_errors.ClusterDownError, ConnectionLost),
    ("OOM", QuotaExceeded),
    ("NOPERM", PermissionDenied),
    ("NOAUTH", PermissionDenied),
)
"""redis-py error type, or the start of the server's error message → aiodepot error class; the first match
wins, anything else is a [`BackendError`][aiodepot.errors.BackendError]."""


def _translate(exc: redis_errors.RedisError, name: str) -> StoreError:
    """The [`StoreError`][aiodepot.errors.StoreError] for a redis-py error (the caller raises it ``from exc``)."""
    name = name or "the store"
    message = str(exc)
    for match, kind in _ERRORS:
        if message.startswith(match) if isinstance(match, str) else isinstance(exc, match):
            return kind(f"{name}: {message}")
    return BackendError(f"{name}: {message}")


@contextlib.contextmanager
def _translated(name: str) -> Iterator[None]:
    """The boundary where redis-py's errors become aiodepot's (through ``_ERRORS``)."""
    try:
        yield
    except redis_errors.RedisError as exc:
        raise _translate(exc, name) from exc


class _PolicyRetry(Retry):
    """redis-py's retry hook (a command whose connection broke), run by the shared RetryPolicy."""

    def __init__(self, policy: RetryPolicy) -> None:
        super().__init__(NoBackoff(), policy.retries)
        self.policy = policy

    async def call_with_retry(  # redis-py >= 5.1 passes the last two
        self,
        do: Callable[[], Awaitable[Any]],
        fail: Callable[..., Awaitable[Any]],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> Any:
        failures = 0

        def retryable(exc: BaseException) -> bool:
            return isinstance(exc, self._supported_errors) and (is_retryable is None or is_retryable(exc))

        async def attempt() -> Any:
            nonlocal failures
            try:
                return await do()
            except Exception as exc:
                if retryable(exc):  # redis-py drops the connection after each such failure
                    failures += 1
                    await (fail(exc, failures) if with_failure_count else fail(exc))
                raise

        return await self.policy.run(attempt, retryable=retryable)


def _decode(raw: bytes, name: str) -> tuple[float, bytes]:
    if len(raw) < _HEADER.size:
        raise BackendError(f"{name}: not an aiodepot item (shorter than its header)")
    return _HEADER.unpack_from(raw)[0], raw[_HEADER.size :]


class RedisBackend(Backend):
    """Items as Redis strings below a key prefix, on one server or a Redis Cluster.

    Args:
        host: the server (for a cluster: any node of it).
        port: its port.
        db: the database number (always 0 on a cluster).
        prefix: the store's key prefix; one database holds many stores with different prefixes.
        cluster: talk to a Redis Cluster (``redis+cluster://``).
        tls: connect with TLS (``rediss://``).
        username: for Redis ACLs.
        password: the password (``AUTH``).
        permissions: a permission map, shortcut name or JSON (see [`aiodepot.permissions`][aiodepot.permissions]).
        default_ttl: seconds after which every stored item expires (None: never); a ``move`` keeps the
            item's expiry.
        retry: how a command whose connection broke or timed out is sent again (default ``default_retry``:
            once, no retry; a ``move`` sent again after it was done raises ``ObjectNotFound``).
        limits: ``connections``: the size of the connection pool (callers beyond it wait for a
            connection; default 64).
        timeouts: ``connect``, ``read`` (for a reply) and ``pool`` (for a free connection); default: none.
    """

    default_retry: ClassVar[RetryPolicy] = RetryPolicy(attempts=1, backoff=0.01, cap=1.0)
    """The retry policy without ``retry=``."""
    default_limits: ClassVar[Limits] = Limits(connections=64)
    """The limits that ``limits=`` leaves ``None``."""
    default_timeouts: ClassVar[Timeouts] = Timeouts()
    """The timeouts that ``timeouts=`` leaves ``None`` (none: wait as long as it takes)."""

    capabilities = Capabilities(
        batch_ops=True,
        batch_size=256,
        server_side_copy=True,
        atomic_create=True,  # SET NX
        preferred_concurrency=32,
        part_size=8 * MiB,
    )

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 6379,
        db: int = 0,
        prefix: str = "aiodepot",
        *,
        cluster: bool = False,
        tls: bool = False,
        username: str | None = None,
        password: str | None = None,
        permissions: str | dict[str, str] | None = None,
        default_ttl: float | None = None,
        retry: RetryPolicy | None = None,
        limits: Limits | None = None,
        timeouts: Timeouts | None = None,
        **deprecated: Any,
    ) -> None:
        super().__init__(permissions=permissions)
        if not prefix or not prefix.isascii() or any(c in "{}" or not c.isprintable() or c.isspace() for c in prefix):
            raise BackendURLInvalid(
                f"the redis key prefix must be printable ASCII without blanks or braces: {prefix!r}"
            )
        if cluster and db != 0:
            raise BackendURLInvalid(f"a Redis Cluster has only database 0, not {db}")
        if default_ttl is not None and default_ttl <= 0:
            raise ValueError(f"default_ttl must be > 0 seconds or None, got {default_ttl!r}")
        defaults = self._defaults(retry, limits, timeouts)
        self.retry, self.limits, self.timeouts = legacy_options("RedisBackend", deprecated, _RENAMED, **defaults)
        assert self.limits.connections is not None  # the default fills it
        self.host, self.port, self.db, self.prefix = host, port, db, prefix
        self.cluster, self.tls = cluster, tls
        self.username, self.password = username, password
        self.default_ttl = default_ttl
        self.max_connections: int = self.limits.connections
        self._base = "{" + prefix + "}/"
        self._client: aioredis.Redis | RedisCluster | None = None
        self._load_range: Any = None
        self._limit: asyncio.Semaphore | None = None
        self._move_script: Any = None

    def _defaults(self, retry: RetryPolicy | None, limits: Limits | None, timeouts: Timeouts | None) -> dict[str, Any]:
        """``legacy_options``'s keywords: the values given over the class's defaults."""
        return {
            "retry": retry or self.default_retry,
            "limits": (limits or Limits()).or_defaults(self.default_limits),
            "timeouts": timeouts or self.default_timeouts,
        }

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """``redis[s][+cluster]://[[user]:password@]host[:port][/db[/prefix]]``.

        The db defaults to 0 and the prefix to ``aiodepot``; the prefix may contain ``/``.
        """
        scheme = url.partition(":")[0].lower()
        if scheme not in _SCHEMES:
            raise BackendURLInvalid(f"not a redis: URL: {url!r}")
        cluster, tls = _SCHEMES[scheme]
        try:
            parts = urlsplit(url)
            port = parts.port or 6379
        except ValueError as exc:
            raise BackendURLInvalid(f"bad redis URL {url!r}: {exc}") from None
        if not parts.hostname or parts.query or parts.fragment:
            raise BackendURLInvalid(f"a redis URL needs a host and no query: {url!r}")
        db_text, _, prefix = parts.path.lstrip("/").partition("/")
        if db_text and not db_text.isdigit():
            raise BackendURLInvalid(f"the redis database must be a number, got {db_text!r} in {url!r}")
        if prefix:
            options.setdefault("prefix", unquote(prefix).rstrip("/"))
        return cls(
            unquote(parts.hostname),
            port,
            int(db_text or 0),
            cluster=cluster,
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
            **options,
        )

    def __repr__(self) -> str:
        kind = "cluster " if self.cluster else ""
        where = f"{self.host}:{self.port}/{self.db}/{self.prefix}"
        return f"<RedisBackend {kind}{where} {'open' if self.opened else 'closed'}>"

    def _describe_location(self) -> str:
        scheme = ("rediss" if self.tls else "redis") + ("+cluster" if self.cluster else "")
        return f"{scheme}://{self.host}:{self.port}/{self.db}/{self.prefix}"

    # keys and connections --------------------------------------------------------------------------------

    def _key(self, name: str) -> str:
        return self._base + name

    def _dir_key(self, name: str) -> str:
        return self._base + name + "/" if name else self._base

    def _make_client(self) -> aioredis.Redis | RedisCluster:
        options: dict[str, Any] = {
            option: seconds
            for option, seconds in (
                ("socket_connect_timeout", self.timeouts.connect),
                ("socket_timeout", self.timeouts.read),
            )
            if seconds is not None  # else redis-py's own default (none; 5 s on a cluster)
        }
        if self.retry.attempts > 1:
            options["retry"] = _PolicyRetry(self.retry)
        if self.cluster:
            return RedisCluster(
                host=self.host,
                port=self.port,
                username=self.username,
                password=self.password,
                ssl=self.tls,
                max_connections=self.max_connections,
                **options,
            )
        kwargs: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "db": self.db,
            "username": self.username,
            "password": self.password,
            "max_connections": self.max_connections,
            "timeout": self.timeouts.pool,
            **options,
        }
        if self.tls:
            kwargs["connection_class"] = aioredis.SSLConnection
        return aioredis.Redis.from_pool(aioredis.BlockingConnectionPool(**kwargs))  # the client owns the pool

    def _get(self) -> aioredis.Redis | RedisCluster:
        client = self._client
        if client is None:
            self._require_open()
            raise AssertionError("an open redis backend has its client")
        return client

    @contextlib.asynccontextmanager
    async def _using(self, name: str) -> AsyncIterator[None]:
        """One operation: a connection's worth of the pool (a cluster client fails rather than waits when
        it has none left), errors translated."""
        assert self._limit is not None
        async with self._limit:
            with _translated(name):
                yield

    async def _scan(self, client: aioredis.Redis | RedisCluster, prefix: str) -> builtins.list[str]:
        """Every key that starts with ``prefix`` (one SCAN over the database, or the store's cluster node)."""
        match = _glob_escape(prefix) + "*"
        if isinstance(client, RedisCluster):
            await client.initialize()  # no-op once the slot map is loaded
            node = client.get_node_from_key(self._base)
            keys = [key async for key in client.scan_iter(match=match, count=_SCAN_COUNT, target_nodes=node)]
        else:
            keys = [key async for key in client.scan_iter(match=match, count=_SCAN_COUNT)]
        return [key.decode() for key in keys]

    async def _exists(self, client: aioredis.Redis | RedisCluster, name: str) -> bool:
        return bool(await client.exists(self._key(name)))

    # lifecycle -------------------------------------------------------------------------------------------

    async def _create(self) -> None:
        """Mark the store as created (the key ``{prefix}/``); a store with items raises ``StoreExists``."""
        client = self._make_client()
        try:
            with _translated(""):
                if [key for key in await self._scan(client, self._base) if key != self._base]:
                    raise StoreExists(f"redis store {self.prefix!r} is not empty")
                await client.set(self._base, b"")
        finally:
            await client.aclose()

    async def _destroy(self) -> None:
        """Delete every key of the store."""
        client = self._make_client()
        try:
            with _translated(""):
                if not await client.exists(self._base):
                    raise StoreNotFound(f"redis store {self.prefix!r} does not exist")
                keys = await self._scan(client, self._base)
                for i in range(0, len(keys), _PIPELINE_CHUNK):
                    await client.unlink(*keys[i : i + _PIPELINE_CHUNK])
        finally:
            await client.aclose()

    async def _open(self) -> None:
        """Connect; a store that was not created raises ``StoreNotFound``."""
        client = self._make_client()
        try:
            with _translated(""):
                if not await client.exists(self._base):
                    raise StoreNotFound(f"redis store {self.prefix!r} does not exist (call create())")
        except BaseException:
            await client.aclose()
            raise
        self._client = client
        self._limit = asyncio.Semaphore(self.max_connections)
        self._load_range = client.register_script(_LOAD_RANGE)
        self._move_script = client.register_script(_MOVE)

    async def _close(self) -> None:
        """Close the connection pool."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    # directories -----------------------------------------------------------------------------------------

    async def _mkdir(self, name: str) -> None:
        """Set the directory keys of ``name`` and its parents."""
        client = self._get()
        async with self._using(name), client.pipeline(transaction=False) as pipe:
            for directory in [*_ancestors(name), name]:
                pipe.set(self._dir_key(directory), b"", nx=True)
            await pipe.execute()

    async def _rmdir(self, name: str) -> None:
        """Delete the key of an empty directory."""
        client = self._get()
        async with self._using(name):
            marker = self._dir_key(name)
            keys = await self._scan(client, marker)
            if marker not in keys:
                raise ObjectNotFound(name)
            if len(keys) > 1:
                raise BackendError(f"directory {name!r} is not empty")
            await client.delete(marker)

    # items -----------------------------------------------------------------------------------------------

    async def _info(self, name: str) -> ItemInfo:
        """Describe an item or directory (one round trip)."""
        client = self._get()
        async with self._using(name), client.pipeline(transaction=False) as pipe:
            self._queue_info(pipe, name)
            replies = await pipe.execute()
        return self._parse_info(name, replies)

    def _queue_info(self, pipe: Any, name: str) -> None:
        if name:
            pipe.getrange(self._key(name), 0, _HEADER.size - 1)
            pipe.strlen(self._key(name))
        pipe.exists(self._dir_key(name))

    def _parse_info(self, name: str, replies: Sequence[Any]) -> ItemInfo:
        leaf = name.rpartition("/")[2]
        if name:
            header, length, is_dir = replies
            if length:
                mtime = _HEADER.unpack(header)[0] if len(header) == _HEADER.size else 0.0
                return ItemInfo.for_file(leaf, max(length - _HEADER.size, 0), mtime=mtime)
        else:
            (is_dir,) = replies
        if is_dir:
            return ItemInfo.for_directory(leaf)
        return ItemInfo.missing(leaf)

    async def _load(self, name: str, offset: int, size: int | None) -> bytes:
        """Read a whole value (``GET``) or a range of it (``GETRANGE``)."""
        client = self._get()
        async with self._using(name):
            if offset == 0 and size is None:
                raw = await client.get(self._key(name))
                if raw is None:
                    raise ObjectNotFound(name)
                assert isinstance(raw, bytes)  # the client does not decode responses
                return _decode(raw, name)[1]
            data = await self._load_range(keys=[self._key(name)], args=[offset, -1 if size is None else size])
        if data is None:
            raise ObjectNotFound(name)
        return bytes(data)

    def _queue_store(
        self, pipe: Any, name: str, data: bytes | memoryview, ttl: float | None, *, create: bool = False
    ) -> None:
        """Queue the item's ``SET`` (last in the pipeline: with ``create`` it is ``SET NX``, whose reply is
        None when the key exists) after the ``SET NX`` of its directory keys."""
        for directory in ["", *_ancestors(name)]:
            pipe.set(self._dir_key(directory), b"", nx=True)
        value = _HEADER.pack(time.time()) + data
        pipe.set(self._key(name), value, px=None if ttl is None else max(int(ttl * 1000), 1), nx=create)

    async def _store(self, name: str, value: bytes | memoryview, *, replace: bool) -> None:
        """Set the item's key (and its parents' directory keys) in one round trip; ``default_ttl`` applies."""
        await self._set(name, value, self.default_ttl, replace=replace)

    async def store_with_ttl(self, name: str, value: StoreValue, ttl: float | None) -> None:
        """Store ``value`` under ``name`` so that it expires after ``ttl`` seconds (None: never).

        Redis deletes an expired item by itself; until then it behaves as any other. This is a method of
        the redis backend only (reach it as ``store.backend.store_with_ttl``): the
        [`Store`][aiodepot.Store] API has no expiry, since most backends cannot do it.
        """
        if ttl is not None and ttl <= 0:
            raise ValueError(f"ttl must be > 0 seconds or None, got {ttl!r}")
        self._require_open()
        data = validate_value(value)
        validate_backend_name(name)
        await self._set(name, data, ttl, replace=self._may_replace(name))

    async def _set(self, name: str, data: bytes | memoryview, ttl: float | None, *, replace: bool) -> None:
        client = self._get()
        async with self._using(name):
            async with client.pipeline(transaction=False) as pipe:
                self._queue_store(pipe, name, data, ttl, create=not replace)
                replies = await pipe.execute()
            if not replace and replies[-1] is None:  # SET NX: the key exists, nothing was written
                self._refuse_replace(name)

    async def _delete(self, name: str) -> None:
        """Delete the item's key."""
        client = self._get()
        async with self._using(name):
            if not await client.delete(self._key(name)):
                raise ObjectNotFound(name)

    async def _move(self, src: str, dst: str, *, replace: bool) -> None:
        """``RENAME`` the item (replacing ``dst``; the expiry goes along) and set ``dst``'s directory keys."""
        client = self._get()
        async with self._using(src):
            if not replace and await self._exists(client, dst):
                self._refuse_replace(dst)
            parents = [self._dir_key(directory) for directory in ["", *_ancestors(dst)]]
            moved = await self._move_script(keys=[self._key(src), self._key(dst), *parents])
        if not moved:
            raise ObjectNotFound(src)

    async def _list(self, name: str) -> AsyncIterator[ItemInfo]:
        """``SCAN`` the directory's key prefix; yield its items and sub-directories, sorted by name."""
        client = self._get()
        prefix = self._dir_key(name)
        async with self._using(name):
            keys = await self._scan(client, prefix)
            if not keys:
                raise ObjectNotFound(name)
            dirs: set[str] = set()
            items: builtins.list[str] = []
            for key in keys:
                rest = key[len(prefix) :]
                child, sep, _ = rest.partition("/")
                if sep:
                    dirs.add(child)
                elif child:
                    items.append(child)
            infos = [ItemInfo.for_directory(child) for child in dirs]
            for i in range(0, len(items), _PIPELINE_CHUNK):
                chunk = items[i : i + _PIPELINE_CHUNK]
                async with client.pipeline(transaction=False) as pipe:
                    for child in chunk:
                        pipe.getrange(prefix + child, 0, _HEADER.size - 1)
                        pipe.strlen(prefix + child)
                    replies = await pipe.execute()
                for child, header, length in zip(chunk, replies[::2], replies[1::2], strict=True):
                    if length >= _HEADER.size:  # else: gone (or expired) since the scan
                        mtime = _HEADER.unpack(header)[0]
                        infos.append(ItemInfo.for_file(child, length - _HEADER.size, mtime=mtime))
        infos.sort(key=lambda info: info.name)
        for info in infos:
            try:
                validate_backend_name(info.name)
            except StoreError:
                continue  # a key that is not ours
            yield info

    async def _count(self, name: str, deleted: bool) -> int:
        """One ``SCAN`` of the directory's key prefix, counting the item keys (no values are read)."""
        client = self._get()
        prefix = self._dir_key(name)
        async with self._using(name):
            keys = await self._scan(client, prefix)
        if not keys:
            raise ObjectNotFound(name)
        total = 0
        for key in keys:
            rest = key[len(prefix) :]
            if not rest or rest.endswith("/") or rest.endswith(DEL_SUFFIX) != deleted:
                continue  # a directory marker, or the other kind
            try:
                validate_backend_name(rest)
            except StoreError:
                continue  # a key that is not ours
            total += 1
        return total

    # batches: one pipeline each --------------------------------------------------------------------------

    async def _load_batch(self, names: Sequence[str]) -> builtins.list[bytes | Exception]:
        """Load many whole values in one pipeline."""
        client = self._get()
        results: builtins.list[Any] = [None] * len(names)
        if names:
            async with self._using(names[0]), client.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.get(self._key(name))
                replies = await pipe.execute()
            for index, raw in enumerate(replies):
                try:
                    if raw is None:
                        raise ObjectNotFound(names[index])
                    results[index] = _decode(raw, names[index])[1]
                except StoreError as exc:
                    results[index] = exc
        return results

    async def _store_batch(
        self, items: Sequence[tuple[str, bytes | memoryview, bool]]
    ) -> builtins.list[Exception | None]:
        """Store many values in one pipeline (each ``SET`` is atomic); ``default_ttl`` applies."""
        client = self._get()
        results: builtins.list[Exception | None] = [None] * len(items)
        accepted: builtins.list[tuple[str, bytes | memoryview]] = []
        for index, (name, data, replace) in enumerate(items):
            try:
                if not replace:
                    async with self._using(name):
                        if await self._exists(client, name):
                            self._refuse_replace(name)
                accepted.append((name, data))
            except StoreError as exc:
                results[index] = exc
        if accepted:
            async with self._using(accepted[0][0]), client.pipeline(transaction=False) as pipe:
                for name, data in accepted:
                    self._queue_store(pipe, name, data, self.default_ttl)
                await pipe.execute()
        return results

    async def _delete_batch(self, names: Sequence[str]) -> builtins.list[Exception | None]:
        """Delete many items in one pipeline."""
        client = self._get()
        results: builtins.list[Exception | None] = [None] * len(names)
        if names:
            async with self._using(names[0]), client.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.delete(self._key(name))
                replies = await pipe.execute()
            for index, deleted in enumerate(replies):
                if not deleted:
                    results[index] = ObjectNotFound(names[index])
        return results

    async def _info_batch(self, names: Sequence[str]) -> builtins.list[ItemInfo | Exception]:
        """Describe many items in one pipeline."""
        client = self._get()
        results: builtins.list[Any] = [None] * len(names)
        if names:
            async with self._using(names[0]), client.pipeline(transaction=False) as pipe:
                for name in names:
                    self._queue_info(pipe, name)
                replies = await pipe.execute()
            position = 0
            for index in range(len(names)):
                count = 3 if names[index] else 1
                results[index] = self._parse_info(names[index], replies[position : position + count])
                position += count
        return results
