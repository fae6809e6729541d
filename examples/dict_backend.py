"""A complete backend in one file: items in a dict, on the skeleton of ``aiodepot.Backend``.

The public methods of ``Backend`` check the open state, the names and the permission map, then call the
protected hooks below; a backend only translates to its storage. This one passes the project's
conformance suite (tests/backends/test_dict_example.py runs it). Run it with
``python examples/dict_backend.py``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any, Self
from urllib.parse import unquote

import aiodepot
from aiodepot import Backend, BackendError, Capabilities, ItemInfo, ObjectNotFound, StoreExists, StoreNotFound


class _Storage:
    """One store's data: item name -> (value, mtime), and the directories made by ``mkdir``."""

    def __init__(self) -> None:
        self.items: dict[str, tuple[bytes, float]] = {}
        self.dirs: set[str] = set()


_stores: dict[str, _Storage] = {}  # dict://NAME: stores of one name share their data in this process
_stores_lock = threading.Lock()


class DictBackend(Backend):
    """``dict://NAME``: items in a dict of this process, shared by the backends of the same name."""

    capabilities = Capabilities(preferred_concurrency=8)  # the default for each new instance

    def __init__(self, name: str = "", *, permissions: str | Mapping[str, str] | None = None) -> None:
        super().__init__(permissions=permissions)  # sets opened, permissions and capabilities
        self.name = name
        self._data: _Storage | None = None  # set while open

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """``dict://NAME``."""
        if not url.startswith("dict://"):
            raise aiodepot.BackendURLInvalid(f"not a dict: URL: {url!r}")
        return cls(unquote(url[len("dict://") :]), **options)

    @property
    def _storage(self) -> _Storage:
        assert self._data is not None  # the template calls the item hooks only while open
        return self._data

    # lifecycle: the template checks the state (and the permissions of "") and sets ``opened`` ----------

    async def _create(self) -> None:
        with _stores_lock:
            existing = _stores.get(self.name)
            if existing is not None and (existing.items or existing.dirs):
                raise StoreExists(f"dict store {self.name!r} holds data")
            _stores[self.name] = _Storage()

    async def _destroy(self) -> None:
        with _stores_lock:
            if _stores.pop(self.name, None) is None:
                raise StoreNotFound(f"dict store {self.name!r} does not exist")

    async def _open(self) -> None:
        with _stores_lock:
            self._data = _stores.get(self.name)
        if self._data is None:
            raise StoreNotFound(f"dict store {self.name!r} does not exist: call create()")

    async def _close(self) -> None:
        self._data = None

    # items: names are valid and permitted when they arrive --------------------------------------------

    def _is_dir(self, name: str) -> bool:
        storage = self._storage
        return not name or name in storage.dirs or any(path.startswith(name + "/") for path in storage.items)

    async def _mkdir(self, name: str) -> None:
        if name in self._storage.items:
            raise BackendError(f"{name!r} is an item")
        parts = name.split("/")
        self._storage.dirs.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))

    async def _rmdir(self, name: str) -> None:
        if not self._is_dir(name):
            raise ObjectNotFound(name)
        if any(path.startswith(name + "/") for path in [*self._storage.items, *self._storage.dirs]):
            raise BackendError(f"directory {name!r} is not empty")
        self._storage.dirs.discard(name)

    async def _info(self, name: str) -> ItemInfo:
        leaf = name.rpartition("/")[2]
        if name in self._storage.items:
            value, mtime = self._storage.items[name]
            return ItemInfo.for_file(leaf, len(value), mtime=mtime)
        if self._is_dir(name):
            return ItemInfo.for_directory(leaf)
        return ItemInfo.missing(leaf)

    async def _load(self, name: str, offset: int, size: int | None) -> bytes:
        if name not in self._storage.items:
            raise ObjectNotFound(name)
        value = self._storage.items[name][0]
        start = max(len(value) + offset, 0) if offset < 0 else offset
        return value[start : None if size is None else start + size]

    async def _store(self, name: str, value: bytes | memoryview, *, replace: bool) -> None:
        # replace=False: the permission map lets this name be created, not replaced
        if not replace and name in self._storage.items:
            self._refuse_replace(name)
        if self._is_dir(name):
            raise BackendError(f"{name!r} is a directory")
        self._storage.items[name] = (bytes(value), time.time())  # a copy: keep no reference to the buffer

    async def _delete(self, name: str) -> None:
        if self._storage.items.pop(name, None) is None:
            raise ObjectNotFound(name)

    async def _move(self, src: str, dst: str, *, replace: bool) -> None:
        items = self._storage.items
        if src not in items:
            raise ObjectNotFound(src)
        if not replace and dst in items:
            self._refuse_replace(dst)
        items[dst] = items.pop(src)

    async def _list(self, name: str) -> AsyncIterator[ItemInfo]:
        if not self._is_dir(name):
            raise ObjectNotFound(name)
        prefix = name + "/" if name else ""
        entries: dict[str, ItemInfo] = {}
        for path in [*self._storage.dirs, *self._storage.items]:
            if path.startswith(prefix):
                leaf, below, _ = path[len(prefix) :].partition("/")
                if below or path in self._storage.dirs:
                    entries[leaf] = ItemInfo.for_directory(leaf)
                else:
                    value, mtime = self._storage.items[path]
                    entries[leaf] = ItemInfo.for_file(leaf, len(value), mtime=mtime)
        for leaf in sorted(entries):
            yield entries[leaf]


async def main() -> None:
    aiodepot.register_backend("dict", DictBackend)
    store = aiodepot.Store("dict://example", config={"data/": {"levels": [1]}})
    await store.create()
    async with store:
        await store.store("data/0123abcd", b"value")  # nested as data/01/0123abcd by the Store
        print("listed:", [info.name async for info in store.list("data")])
        print("loaded:", await store.load("data/0123abcd", offset=1, size=3))
        print("sha256:", await store.hash("data/0123abcd"))  # the Backend default, built on _read_chunks
    await store.destroy()


if __name__ == "__main__":
    asyncio.run(main())
