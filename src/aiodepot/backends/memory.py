"""``memory://name`` — items in process memory.

Stores with the same name share their data within the process (so a test, a cache layer or a server can
reach one store from several Store objects); ``memory://`` without a name is private to its backend.
Useful for tests and as a fast cache; the data is gone when the process ends.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import AsyncIterator
from typing import Any, Self
from urllib.parse import unquote

from ..errors import (
    BackendError,
    BackendURLInvalid,
    ObjectNotFound,
    QuotaExceeded,
    StoreExists,
    StoreNotFound,
)
from ..items import ItemInfo
from ..names import DEL_SUFFIX, is_internal
from .base import Backend, Capabilities

__all__ = ["MemoryBackend"]


class _File:
    __slots__ = ("atime", "data", "mtime")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.mtime = self.atime = time.time()


class _Dir:
    __slots__ = ("children", "mtime")

    def __init__(self) -> None:
        self.children: dict[str, _Dir | _File] = {}
        self.mtime = time.time()


class _Space:
    """One store's data: a directory tree, its byte count and a lock (stores may be shared by threads)."""

    def __init__(self) -> None:
        self.root = _Dir()
        self.usage = 0
        self.lock = threading.Lock()

    def walk(self, name: str, *, create: bool = False) -> _Dir | _File | None:
        node: _Dir | _File | None = self.root
        for part in name.split("/") if name else ():
            if not isinstance(node, _Dir):
                return None
            child = node.children.get(part)
            if child is None and create:
                child = node.children[part] = _Dir()
            node = child
        return node

    def parent_of(self, name: str, *, create: bool) -> tuple[_Dir | None, str]:
        parent_name, _, leaf = name.rpartition("/")
        parent = self.walk(parent_name, create=create)
        return (parent if isinstance(parent, _Dir) else None), leaf


_named: dict[str, _Space] = {}
_named_lock = threading.Lock()


def _reset_locks_after_fork() -> None:
    global _named_lock
    _named_lock = threading.Lock()
    for space in _named.values():
        space.lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_locks_after_fork)


class MemoryBackend(Backend):
    """Items in a tree of dicts in process memory.

    Args:
        name: stores with the same name share their data in this process; None gives a private store.
        permissions: a permission map, shortcut name or JSON (see [`aiodepot.permissions`][aiodepot.permissions]).
        quota: a byte limit for the whole store.
    """

    capabilities = Capabilities(
        server_side_hash=False, server_side_copy=True, atomic_create=True, preferred_concurrency=64
    )
    blocking_operations = frozenset({"info", "load", "store", "delete"})

    def __init__(
        self,
        name: str | None = None,
        *,
        permissions: str | dict[str, str] | None = None,
        quota: int | None = None,
    ) -> None:
        super().__init__(permissions=permissions)
        if quota is not None and (not isinstance(quota, int) or quota < 0):
            raise ValueError(f"quota must be a byte count >= 0, got {quota!r}")
        self.name = name
        self.quota_limit = quota
        self._private: _Space | None = None
        self._space: _Space | None = None

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """``memory://name`` (shared in the process) or ``memory://`` (private)."""
        if not url.startswith("memory://"):
            raise BackendURLInvalid(f"not a memory: URL: {url!r}")
        name = unquote(url[len("memory://") :]).strip("/")
        return cls(name or None, **options)

    def __repr__(self) -> str:
        return f"<MemoryBackend {self.name or '(private)'} {'open' if self.opened else 'closed'}>"

    def _describe_location(self) -> str:
        return f"memory://{self.name}" if self.name else "a private memory:// store"

    def _lookup(self) -> _Space | None:
        if self.name is None:
            return self._private
        with _named_lock:
            return _named.get(self.name)

    def _get(self) -> _Space:
        space = self._space
        if space is None:
            self._require_open()
            raise AssertionError("an open memory backend has its space")
        return space

    # lifecycle -----------------------------------------------------------------------------------------

    async def _create(self) -> None:
        if self.name is None:
            if self._private is not None and self._private.root.children:
                raise StoreExists("the private memory store exists already")
            self._private = _Space()
            return
        with _named_lock:
            existing = _named.get(self.name)
            if existing is not None and existing.root.children:
                raise StoreExists(f"memory store {self.name!r} exists already")
            _named[self.name] = _Space()

    async def _destroy(self) -> None:
        if self.name is None:
            if self._private is None:
                raise StoreNotFound("the private memory store does not exist")
            self._private = None
            return
        with _named_lock:
            if _named.pop(self.name, None) is None:
                raise StoreNotFound(f"memory store {self.name!r} does not exist")

    async def _open(self) -> None:
        space = self._lookup()
        if space is None:
            raise StoreNotFound(f"memory store {self.name or '(private)'!r} does not exist (call create())")
        self._space = space

    async def _close(self) -> None:
        self._space = None  # the data stays for other users of the same name

    # items ---------------------------------------------------------------------------------------------

    async def _mkdir(self, name: str) -> None:
        space = self._get()
        with space.lock:
            if not isinstance(space.walk(name, create=True), _Dir):
                raise BackendError(f"{name!r} exists and is not a directory")

    async def _rmdir(self, name: str) -> None:
        space = self._get()
        with space.lock:
            parent, leaf = space.parent_of(name, create=False)
            node = parent.children.get(leaf) if parent else None
            if not isinstance(node, _Dir):
                raise ObjectNotFound(name)
            if node.children:
                raise BackendError(f"directory {name!r} is not empty")
            assert parent is not None
            del parent.children[leaf]

    async def _info(self, name: str) -> ItemInfo:
        return self._info_blocking(name)

    def _info_blocking(self, name: str) -> ItemInfo:
        space = self._get()
        leaf = name.rpartition("/")[2]
        with space.lock:
            node = space.walk(name)
        if isinstance(node, _File):
            return ItemInfo.for_file(leaf, len(node.data), atime=node.atime, mtime=node.mtime)
        if isinstance(node, _Dir):
            return ItemInfo.for_directory(leaf, atime=node.mtime, mtime=node.mtime)
        return ItemInfo.missing(leaf)

    async def _load(self, name: str, offset: int, size: int | None) -> bytes:
        return self._load_blocking(name, offset, size)

    def _load_blocking(self, name: str, offset: int, size: int | None) -> bytes:
        space = self._get()
        with space.lock:
            node = space.walk(name)
            if not isinstance(node, _File):
                raise ObjectNotFound(name)
            node.atime = time.time()
            data = node.data
        if offset == 0 and size is None:
            return data
        start = max(len(data) + offset, 0) if offset < 0 else offset
        return data[start : None if size is None else start + size]

    async def _store(self, name: str, value: bytes | memoryview, *, replace: bool) -> None:
        self._store_blocking(name, value, replace=replace)

    def _store_blocking(self, name: str, value: bytes | memoryview, *, replace: bool) -> None:
        space = self._get()
        data = bytes(value)  # a copy: the caller's buffer is not referenced
        with space.lock:
            parent, leaf = space.parent_of(name, create=False)
            old = parent.children.get(leaf) if parent is not None else None
            if isinstance(old, _Dir):
                raise BackendError(f"{name!r} is a directory")
            if old is not None and not replace:
                self._refuse_replace(name)
            delta = len(data) - (len(old.data) if old is not None else 0)
            if is_internal(name):
                delta = 0  # the store's own file (layout.hid) is not the user's usage
            self._check_quota(space, delta)
            if parent is None:  # create the directories only once the store is sure to happen
                parent, leaf = space.parent_of(name, create=True)
                if parent is None:
                    raise ObjectNotFound(f"a parent of {name!r} is not a directory")
            parent.children[leaf] = _File(data)
            space.usage += delta

    def _check_quota(self, space: _Space, delta: int) -> None:
        if self.quota_limit is not None and delta > 0 and space.usage + delta > self.quota_limit:
            raise QuotaExceeded(f"quota exceeded: {space.usage + delta} > {self.quota_limit} bytes")

    async def _delete(self, name: str) -> None:
        self._delete_blocking(name)

    def _delete_blocking(self, name: str) -> None:
        space = self._get()
        with space.lock:
            parent, leaf = space.parent_of(name, create=False)
            node = parent.children.get(leaf) if parent else None
            if not isinstance(node, _File) or parent is None:
                raise ObjectNotFound(name)
            del parent.children[leaf]
            space.usage -= len(node.data)

    async def _move(self, src: str, dst: str, *, replace: bool) -> None:
        space = self._get()
        with space.lock:
            src_parent, src_leaf = space.parent_of(src, create=False)
            node = src_parent.children.get(src_leaf) if src_parent else None
            if not isinstance(node, _File) or src_parent is None:
                raise ObjectNotFound(src)
            dst_parent, dst_leaf = space.parent_of(dst, create=False)
            replaced = dst_parent.children.get(dst_leaf) if dst_parent is not None else None
            if isinstance(replaced, _Dir):
                raise BackendError(f"{dst!r} is a directory")
            if replaced is not None and not replace:
                self._refuse_replace(dst)
            if replaced is node:
                return
            if dst_parent is None:
                dst_parent, dst_leaf = space.parent_of(dst, create=True)
                if dst_parent is None:
                    raise ObjectNotFound(f"a parent of {dst!r} is not a directory")
            del src_parent.children[src_leaf]
            dst_parent.children[dst_leaf] = node
            if replaced is not None:
                space.usage -= len(replaced.data)

    async def _list(self, name: str) -> AsyncIterator[ItemInfo]:
        space = self._get()
        with space.lock:
            node = space.walk(name)
            if not isinstance(node, _Dir):
                raise ObjectNotFound(name)
            infos = [
                ItemInfo.for_file(key, len(child.data), atime=child.atime, mtime=child.mtime)
                if isinstance(child, _File)
                else ItemInfo.for_directory(key, atime=child.mtime, mtime=child.mtime)
                for key, child in node.children.items()
            ]
        infos.sort(key=lambda info: info.name)
        for info in infos:
            yield info

    async def _count(self, name: str, deleted: bool) -> int:
        """Count the files in the directory's subtree (no values are touched)."""
        space = self._get()
        with space.lock:
            node = space.walk(name)
            if not isinstance(node, _Dir):
                raise ObjectNotFound(name)
            total, todo = 0, [node]
            while todo:
                here = todo.pop()
                for key, child in here.children.items():
                    if isinstance(child, _Dir):
                        todo.append(child)
                    elif key.endswith(DEL_SUFFIX) == deleted and not (here is space.root and is_internal(key)):
                        total += 1
        return total

    async def _quota_usage(self) -> dict[str, int]:
        if self.quota_limit is None:
            return {"limit": -1, "usage": -1}
        return {"limit": self.quota_limit, "usage": self._get().usage}
