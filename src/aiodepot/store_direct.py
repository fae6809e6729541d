"""The direct path: single-item calls of a [`Store`][aiodepot.Store] in the caller's thread, for the sync facade.

A blocking caller of a local backend (memory, files, SQLite reads) pays more for the two thread hand-offs
to the portal's event loop and back than for the operation itself. When nothing in the layer stack needs
the loop (no cache, no emulation, no per-operation timeout), [`SyncStore`][aiodepot.SyncStore] runs the
Store's checks and the backend's blocking code here instead (``Backend.has_blocking``): the same name
checks, nesting, statistics and errors as the async methods, in the calling thread.

Ordering with ``close()``: every direct call passes a [`CallGate`][aiodepot.store_direct.CallGate];
``close()`` shuts it and waits for the calls inside to finish before the backend closes, and a call that
comes after sees a closed store (``StoreNotOpen``).
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
import weakref
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

from .errors import StoreError, StoreNotOpen
from .items import ItemInfo, StoreValue, validate_value
from .names import DEL_SUFFIX, nest, validate_name
from .store_base import StoreBase, check_range

__all__ = ["CallGate", "DirectCalls"]

P = ParamSpec("P")
T = TypeVar("T")
S = TypeVar("S", bound="DirectCalls")

_gates: weakref.WeakSet[CallGate] = weakref.WeakSet()
_DIRECT_OPERATIONS = {"info": "info", "exists": "info", "load": "load", "store": "store", "delete": "delete"}
"""The Store's single-item methods with a direct path, and the backend operation each needs."""


class CallGate:
    """Counts the direct calls running on a store, so ``close()`` can wait for them and refuse new ones."""

    __slots__ = ("__weakref__", "_idle", "_lock", "_running", "_shut")

    def __init__(self) -> None:
        self._reset()
        _gates.add(self)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._running = 0
        self._shut = False

    def enter(self) -> None:
        """Let one call in (pair with `leave`); raises ``StoreNotOpen`` while the store is closing."""
        with self._lock:
            if self._shut:
                raise StoreNotOpen("the store is closing")
            self._running += 1

    def leave(self) -> None:
        """The call that `enter` let in has finished."""
        with self._lock:
            self._running -= 1
            if not self._running:
                self._idle.notify_all()

    def shut(self) -> bool:
        """Let no new call in; return True if none is running."""
        with self._lock:
            self._shut = True
            return not self._running

    def wait_idle(self) -> None:
        """Block until the calls inside have finished."""
        with self._lock:
            while self._running:
                self._idle.wait()

    def reopen(self) -> None:
        """Let calls in again (they find the store open or closed, as it is)."""
        with self._lock:
            self._shut = False


def _reset_gates_after_fork() -> None:
    # the parent's calling threads do not exist in the child; a lock one of them held would stay held
    for gate in list(_gates):
        gate._reset()


os.register_at_fork(after_in_child=_reset_gates_after_fork)


def _naming_the_store(method: Callable[Concatenate[S, P], T]) -> Callable[Concatenate[S, P], T]:
    """As for the async methods: a [`StoreError`][aiodepot.errors.StoreError] carries the store's URL."""

    @functools.wraps(method)
    def named(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return method(self, *args, **kwargs)
        except StoreError as exc:
            if exc.store is None:
                exc.store = self.url or repr(self.backend)
            raise

    return named


class DirectCalls(StoreBase):
    """The blocking twins of ``info``, ``exists``, ``load``, ``store`` and ``delete`` (mixed into `Store`).

    They are for the sync facade and the borgstore drop-in, which ask `_direct_ok` first.
    """

    _overridden: frozenset[str] = frozenset()
    """The single-item methods a subclass overrides: their direct path would bypass the override."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "_overridden" not in vars(cls):
            cls._overridden = cls._overridden | (_DIRECT_OPERATIONS.keys() & vars(cls).keys())

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._gate = CallGate()

    def _direct_ok(self, operation: str) -> bool:
        """True if ``operation`` (``info``, ``exists``, ``load``, ``store``, ``delete``) may run in the
        caller's thread now: the top of the layer stack has a blocking twin for it (no cache, no emulation
        in the way), no per-operation timeout is set and no subclass overrides the async method."""
        calls = self._calls
        # finding an item on a namespace with several nesting levels takes infos
        return (
            self.timeout is None
            and operation not in self._overridden
            and calls.has_blocking(_DIRECT_OPERATIONS[operation])
            and calls.has_blocking("info")
        )

    async def close(self) -> None:
        """Stop using the store, once the direct calls running in other threads have finished."""
        gate = self._gate
        if not gate.shut():
            await asyncio.to_thread(gate.wait_idle)
        try:
            await super().close()
        finally:
            gate.reopen()

    def _find_blocking(self, name: str, deleted: bool) -> str:
        levels = self._levels_for(name)
        suffix = DEL_SUFFIX if deleted else None
        if len(levels) == 1:
            return nest(name, levels[0], add_suffix=suffix)
        candidates = [nest(name, level, add_suffix=suffix) for level in levels]
        for candidate in candidates:
            info = self._calls.info_blocking(candidate)
            if info.exists and not info.directory:
                return candidate
        return candidates[-1]

    @_naming_the_store
    def _info_direct(self, name: str, *, deleted: bool = False) -> ItemInfo:
        """`info` in the caller's thread (only where ``_direct_ok("info")``)."""
        validate_name(name)
        gate = self._gate
        gate.enter()
        try:
            self._require_open()
            started = self._stats.begin("info")
            try:
                info = self._calls.info_blocking(self._find_blocking(name, deleted))
            finally:
                self._stats.end("info", started)
        finally:
            gate.leave()
        return info.with_name(name)

    def _exists_direct(self, name: str, *, deleted: bool = False) -> bool:
        """`exists` in the caller's thread (only where ``_direct_ok("info")``)."""
        info = self._info_direct(name, deleted=deleted)
        return info.exists and not info.directory

    @_naming_the_store
    def _load_direct(self, name: str, *, offset: int = 0, size: int | None = None, deleted: bool = False) -> bytes:
        """`load` in the caller's thread (only where ``_direct_ok("load")``)."""
        validate_name(name)
        check_range(offset, size)
        gate = self._gate
        gate.enter()
        try:
            self._require_open()
            started = self._stats.begin("load")
            data = b""
            try:
                data = self._calls.load_blocking(self._find_blocking(name, deleted), offset=offset, size=size)
            finally:
                self._stats.end("load", started, len(data))
        finally:
            gate.leave()
        return data

    @_naming_the_store
    def _store_direct(self, name: str, value: StoreValue) -> None:
        """`store` of bytes or a buffer in the caller's thread (only where ``_direct_ok("store")``)."""
        validate_name(name)
        data = validate_value(value)
        gate = self._gate
        gate.enter()
        try:
            self._require_open()
            started = self._stats.begin("store")
            size = 0
            try:
                self._calls.store_blocking(self._find_blocking(name, False), data)
                size = len(data)
            finally:
                self._stats.end("store", started, size)
        finally:
            gate.leave()

    @_naming_the_store
    def _delete_direct(self, name: str, *, deleted: bool = False) -> None:
        """`delete` in the caller's thread (only where ``_direct_ok("delete")``)."""
        validate_name(name)
        gate = self._gate
        gate.enter()
        try:
            self._require_open()
            started = self._stats.begin("delete")
            try:
                self._calls.delete_blocking(self._find_blocking(name, deleted))
            finally:
                self._stats.end("delete", started)
        finally:
            gate.leave()
