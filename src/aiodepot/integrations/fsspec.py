"""fsspec on any aiodepot store: [`DepotFileSystem`][aiodepot.integrations.fsspec.DepotFileSystem].

```python
import fsspec, pandas as pd
fs = fsspec.filesystem("aiodepot", url="sftp://backup@nas/srv/depot")
df.to_parquet("aiodepot://tables/sales.parquet", storage_options={"url": "sftp://backup@nas/srv/depot"})
```

Every file is one item of the store: its path becomes the item's key through
[`aiodepot.integrations.paths`][aiodepot.integrations.paths] (so any file name fits), in the namespace
given (the whole store by default). Directories are the ``/`` in the paths, as on object stores: there
are no empty ones. Needs ``pip install 'aiodepot[fsspec]'``.
"""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import AsyncIterator, Mapping
from typing import Any

from ..errors import ObjectExists, ObjectNotFound, StoreNotFound
from ..items import ItemInfo, StoreInput
from ..names import ROOTNS, validate_namespace
from ..store import Store
from .paths import key_path, path_key, path_prefix_key

try:
    import fsspec
    from fsspec.asyn import AsyncFileSystem, sync
    from fsspec.spec import AbstractBufferedFile
except ImportError as exc:  # pragma: no cover - the extra is not installed
    raise ImportError("DepotFileSystem needs fsspec: pip install 'aiodepot[fsspec]'") from exc

__all__ = ["DepotFile", "DepotFileSystem"]

_AFTER_ALL = "~"  # sorts after every character a key holds (a-z 0-9 - _ . %)


class DepotFileSystem(AsyncFileSystem):  # type: ignore[misc]
    """An fsspec file system over an aiodepot store (protocol ``aiodepot``).

    Args:
        url: the store URL (``memory://x``, ``file:///srv/depot``, ``sftp://host/path``, …).
        store_url: the same as ``url``, for ``storage_options`` of pandas and others, where ``url`` is
            fsspec's own word for the path.
        store: an aiodepot [`Store`][aiodepot.Store] instead of ``url`` (its owner opens and closes it).
        namespace: the namespace the files live in (default: the whole store).
        config: the store config, with ``url`` (default: one flat namespace).
        create: create the store if it does not exist yet (default: true, with ``url``).
        store_options: further keyword arguments for [`Store`][aiodepot.Store] (``max_concurrency``, …).
        block_size: the buffer size of file objects (default 5 MiB).

    Reads and writes go through the store: ``open(path, "rb")`` reads ranges, ``open(path, "wb")``
    streams the buffered blocks into one atomic store (a multipart upload on S3), ``get``/``put`` copy
    files in parallel ranges (``load_file``/``store_file``) with the store's ``max_concurrency``.
    Missing files raise ``FileNotFoundError``; a path whose key is too long for the store raises
    ``ValueError``; a store without write permission raises ``PermissionError``.
    """

    protocol = ("aiodepot",)
    root_marker = ""
    async_impl = True

    def __init__(
        self,
        url: str | None = None,
        *,
        store_url: str | None = None,
        store: Store | None = None,
        namespace: str = ROOTNS,
        config: Mapping[str, Mapping[str, Any]] | None = None,
        create: bool = True,
        store_options: Mapping[str, Any] | None = None,
        block_size: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if url is not None and store_url is not None:
            raise ValueError("give url= or store_url= (the same thing), not both")
        url = url if url is not None else store_url
        if (url is None) == (store is None):
            raise ValueError("give either url= (a store URL) or store= (an aiodepot Store)")
        bare = validate_namespace(namespace.rstrip("/"))
        self._prefix = bare + "/" if bare else ""
        self._namespace = bare
        self._owned = store is None
        self.store: Store = store if store is not None else Store(url, config=config, **dict(store_options or {}))
        """The aiodepot store the files live in."""
        self._create = create
        self._opening: asyncio.Lock | None = None
        self.blocksize = block_size or AbstractBufferedFile.DEFAULT_BLOCK_SIZE
        if kwargs.get("batch_size") is None:
            self.batch_size: int = self.store.max_concurrency

    # lifecycle -------------------------------------------------------------------------------------------

    async def _ready(self) -> Store:
        """The store, opened (and created if need be) on first use."""
        store = self.store
        if store.opened or not self._owned:
            return store
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if not store.opened:
                try:
                    await store.open()
                except StoreNotFound:
                    if not self._create:
                        raise
                    await store.create()
                    await store.open()
        return store

    async def _close(self) -> None:
        if self._owned and self.store.opened:
            await self.store.close()

    def close(self) -> None:
        """Close the store this file system opened (a store given as ``store=`` is its owner's to close)."""
        if self.asynchronous:
            raise RuntimeError("use 'await fs._close()' on an asynchronous DepotFileSystem")
        if self._owned and self.store.opened:
            sync(self.loop, self._close)

    # paths -----------------------------------------------------------------------------------------------

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = str(path)
        if path.startswith("aiodepot://"):
            path = path[len("aiodepot://") :]
        elif path.startswith("aiodepot::"):
            path = path[len("aiodepot::") :]
        return path.strip("/")

    def _name(self, path: str) -> str:
        """The store name of file ``path``."""
        return self._prefix + path_key(self._strip_protocol(path), room=100 - len(self._prefix))

    def _key_prefix(self, directory: str) -> str:
        """The key prefix of everything below ``directory``."""
        return path_prefix_key(directory + "/") if directory else ""

    async def _below(self, directory: str) -> AsyncIterator[tuple[str, ItemInfo]]:
        """Every file below ``directory`` (all, for the root) as ``(path, info)``, in key order."""
        store = await self._ready()
        try:
            async for info in store.list(self._namespace, prefix=self._key_prefix(directory)):
                yield key_path(info.name), info
        except ObjectNotFound:
            return

    def _file_entry(self, path: str, info: ItemInfo) -> dict[str, Any]:
        return {"name": path, "size": info.size, "type": "file", "mtime": info.mtime}

    @staticmethod
    def _dir_entry(path: str) -> dict[str, Any]:
        return {"name": path, "size": 0, "type": "directory"}

    # information -----------------------------------------------------------------------------------------

    async def _info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        path = self._strip_protocol(path)
        if not path:
            return self._dir_entry("")
        store = await self._ready()
        info = await store.info(self._name(path))
        if info.exists and not info.directory:
            return self._file_entry(path, info)
        async for _ in self._below(path):
            return self._dir_entry(path)
        raise FileNotFoundError(path)

    async def _exists(self, path: str, **kwargs: Any) -> bool:
        try:
            await self._info(path)
        except (FileNotFoundError, ValueError):
            return False
        return True

    async def _ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        path = self._strip_protocol(path)
        entries: dict[str, dict[str, Any]] = {}
        cut = len(path) + 1 if path else 0
        async for name, info in self._below(path):
            child, sep, _ = name[cut:].partition("/")
            child_path = f"{path}/{child}" if path else child
            if sep:
                entries.setdefault(child_path, self._dir_entry(child_path))
            else:
                entries[child_path] = self._file_entry(child_path, info)
        if not entries and path:
            entries[path] = await self._info(path)  # a file lists as itself; a missing path raises
        listing = [entries[name] for name in sorted(entries)]
        return listing if detail else [entry["name"] for entry in listing]

    async def _find(
        self, path: str, maxdepth: int | None = None, withdirs: bool = False, **kwargs: Any
    ) -> list[str] | dict[str, dict[str, Any]]:
        if maxdepth is not None and maxdepth < 1:
            raise ValueError("maxdepth must be at least 1")
        detail = kwargs.pop("detail", False)
        path = self._strip_protocol(path)
        found: dict[str, dict[str, Any]] = {}
        cut = len(path) + 1 if path else 0
        below = False
        async for name, info in self._below(path):
            below = True
            parts = name[cut:].split("/")
            if maxdepth is None or len(parts) <= maxdepth:
                found[name] = self._file_entry(name, info)
            if withdirs:
                for depth in range(1, len(parts) if maxdepth is None else min(len(parts), maxdepth + 1)):
                    directory = "/".join(parts[:depth])
                    directory = f"{path}/{directory}" if path else directory
                    found.setdefault(directory, self._dir_entry(directory))
        if withdirs and below and path:
            found[path] = self._dir_entry(path)
        if not found and path:
            try:
                entry = await self._info(path)
            except (FileNotFoundError, ValueError):
                entry = None
            if entry is not None and entry["type"] == "file":
                found[path] = entry
        names = sorted(found)
        return {name: found[name] for name in names} if detail else names

    async def _mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        """Directories exist through the files in them: nothing to do."""

    async def _makedirs(self, path: str, exist_ok: bool = False) -> None:
        """Directories exist through the files in them: nothing to do."""

    # whole files -----------------------------------------------------------------------------------------

    async def _cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        store = await self._ready()
        name = self._name(path)
        try:
            if (start is not None and start < 0) or (end is not None and end < 0):
                size = (await store.info(name)).size
                start = 0 if start is None else max(start + size, 0) if start < 0 else start
                end = None if end is None else max(end + size, 0) if end < 0 else end
            offset = start or 0
            length = None if end is None else max(end - offset, 0)
            return await store.load(name, offset=offset, size=length)
        except ObjectNotFound:
            raise FileNotFoundError(self._strip_protocol(path)) from None

    async def _pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        store = await self._ready()
        name = self._name(path)
        if mode != "create":
            await store.store(name, value)
            return
        await self._store_new(store, name, value, path)

    async def _store_new(self, store: Store, name: str, value: StoreInput, path: str) -> None:
        """Store ``value`` only if ``name`` is new (``FileExistsError`` if not): atomically where the backend
        creates atomically (``if_absent``), elsewhere a check, then the write."""
        if store.backend.capabilities.atomic_create:
            try:
                await store.store(name, value, if_absent=True)
            except ObjectExists:
                raise FileExistsError(self._strip_protocol(path)) from None
            return
        if await store.exists(name):
            raise FileExistsError(self._strip_protocol(path))
        await store.store(name, value)

    async def _rm_file(self, path: str, **kwargs: Any) -> None:
        store = await self._ready()
        try:
            await store.delete(self._name(path))
        except ObjectNotFound:
            raise FileNotFoundError(self._strip_protocol(path)) from None

    async def _rm(
        self, path: Any, recursive: bool = False, batch_size: int | None = None, maxdepth: int | None = None, **kw: Any
    ) -> None:
        store = await self._ready()
        paths = await self._expand_path(path, recursive=recursive, maxdepth=maxdepth)
        names = []
        for item in paths:
            try:
                if (await self._info(item))["type"] == "file":
                    names.append(self._name(item))
            except FileNotFoundError:
                continue
        results = await store.delete_many(names, max_concurrency=batch_size or self.batch_size, return_exceptions=True)
        for result in results:
            if result is not None and not isinstance(result, ObjectNotFound):
                raise result

    async def _cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        store = await self._ready()
        source, target = self._name(path1), self._name(path2)
        if not await store.exists(source):
            if await self._isdir(path1):
                return  # directories come with their files
            raise FileNotFoundError(self._strip_protocol(path1))
        async with store.open_reader(source, chunk_size=self.blocksize) as reader:
            await store.store(target, reader)

    async def _mv_file(self, path1: str, path2: str) -> None:
        store = await self._ready()
        try:
            await store.move(self._name(path1), self._name(path2))
        except ObjectNotFound:
            raise FileNotFoundError(self._strip_protocol(path1)) from None

    def mv(self, path1: Any, path2: Any, recursive: bool = False, maxdepth: int | None = None, **kwargs: Any) -> None:
        """Move files: a single file is renamed where it is (``Store.move``); trees are copied, then removed."""
        if isinstance(path1, str) and isinstance(path2, str) and not recursive and self.isfile(path1):
            if self.isdir(path2):
                path2 = f"{self._strip_protocol(path2)}/{self._strip_protocol(path1).rpartition('/')[2]}"
            sync(self.loop, self._mv_file, path1, path2)
            return
        super().mv(path1, path2, recursive=recursive, maxdepth=maxdepth, **kwargs)

    # local files -----------------------------------------------------------------------------------------

    async def _put_file(self, lpath: str, rpath: str, mode: str = "overwrite", **kwargs: Any) -> None:
        if await asyncio.to_thread(os.path.isdir, lpath):
            return  # directories come with their files
        store = await self._ready()
        name = self._name(rpath)
        if mode != "create":
            await store.store_file(name, lpath)
            return
        f = await asyncio.to_thread(open, lpath, "rb")
        try:
            await self._store_new(store, name, f, rpath)  # the Store reads the file in a worker thread
        finally:
            await asyncio.to_thread(f.close)

    async def _get_file(self, rpath: str, lpath: str, **kwargs: Any) -> None:
        store = await self._ready()
        name = self._name(rpath)
        if await asyncio.to_thread(os.path.isdir, lpath) and not await store.exists(name):
            return
        try:
            await store.load_file(name, lpath)
        except ObjectNotFound:
            if await self._isdir(rpath):
                await asyncio.to_thread(os.makedirs, lpath, exist_ok=True)
                return
            raise FileNotFoundError(self._strip_protocol(rpath)) from None

    # file objects ----------------------------------------------------------------------------------------

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> DepotFile:
        exclusive = mode == "xb"
        if exclusive:
            if self.exists(path):  # fail early; the store at close decides atomically where it can
                raise FileExistsError(self._strip_protocol(path))
            mode = "wb"
        if mode not in ("rb", "wb"):
            raise ValueError(f"DepotFileSystem opens files in 'rb', 'wb' or 'xb' mode, not {mode!r}")
        return DepotFile(
            self,
            path,
            mode,
            exclusive=exclusive,
            block_size=block_size or self.blocksize,
            autocommit=autocommit,
            cache_options=cache_options,
            **kwargs,
        )


class DepotFile(AbstractBufferedFile):  # type: ignore[misc]
    """A buffered file of a [`DepotFileSystem`][aiodepot.integrations.fsspec.DepotFileSystem].

    Reading fetches ranges (``block_size`` at a time, with fsspec's read-ahead cache). Writing streams the
    buffered blocks into one store of the item, which lands when the file is closed; a file that is
    discarded or fails leaves nothing behind.
    """

    fs: DepotFileSystem

    def __init__(
        self, fs: DepotFileSystem, path: str, mode: str = "rb", *, exclusive: bool = False, **kwargs: Any
    ) -> None:
        self._queue: asyncio.Queue[bytes | BaseException | None] | None = None
        self._upload: asyncio.Future[None] | None = None
        self.exclusive = exclusive
        """Opened in ``xb`` mode: the item is stored only if it is new (atomically where the backend
        creates atomically); else closing raises ``FileExistsError``."""
        super().__init__(fs, path, mode, **kwargs)

    def _fetch_range(self, start: int, end: int) -> bytes:
        data: bytes = sync(self.fs.loop, self.fs._cat_file, self.path, start, end)
        return data

    # writing -------------------------------------------------------------------------------------------

    def _initiate_upload(self) -> None:
        sync(self.fs.loop, self._start_upload)

    async def _start_upload(self) -> None:
        store = await self.fs._ready()
        queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(maxsize=2)
        self._queue = queue

        async def chunks() -> AsyncIterator[bytes]:
            while (item := await queue.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item

        name = self.fs._name(self.path)
        upload = self.fs._store_new(store, name, chunks(), self.path) if self.exclusive else store.store(name, chunks())
        self._upload = asyncio.ensure_future(upload)

    async def _put(self, item: bytes | BaseException | None) -> None:
        """Hand ``item`` to the upload; at the end (None, or an error to abort it) wait for the upload."""
        assert self._queue is not None
        assert self._upload is not None
        put = asyncio.ensure_future(self._queue.put(item))
        await asyncio.wait([put, self._upload], return_when=asyncio.FIRST_COMPLETED)
        if not put.done():
            put.cancel()  # the upload ended early (failed): nobody takes the item
        if item is None or isinstance(item, BaseException):
            await asyncio.wait([self._upload])
        if self._upload.done():
            self._upload.result()  # raises the upload's error

    def _upload_chunk(self, final: bool = False) -> bool:
        data = self.buffer.getvalue()
        if data:
            sync(self.fs.loop, self._put, data)
        if final:
            sync(self.fs.loop, self._put, None)
        return True

    def discard(self) -> None:
        """Throw away what was written: the item is not stored (or keeps its old value)."""
        if self._upload is not None and not self._upload.done():
            try:
                sync(self.fs.loop, self._put, _Discarded())
            except _Discarded:
                pass
        self.buffer = io.BytesIO()
        self.closed = True

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is not None and self.mode == "wb" and not self.closed:
            self.discard()  # an error inside 'with': store nothing, not what was written so far
            return
        self.close()

    def close(self) -> None:
        """Finish the file: a written one is stored now, whole; on error nothing is."""
        if self.closed or self.mode != "wb":
            super().close()
            return
        try:
            super().close()
        except BaseException:
            self.discard()
            raise


class _Discarded(Exception):
    """Ends the stream of a discarded file, so the store writes nothing."""


fsspec.register_implementation("aiodepot", DepotFileSystem, clobber=True)
