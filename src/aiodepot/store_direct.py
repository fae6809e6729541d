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
import os
import threading
import weakref
from time import perf_counter_ns
from typing import Any

from .errors import StoreError, StoreNotOpen
from .items import ItemInfo, StoreValue, validate_value
from .names import DEL_SUFFIX, MAX_NAME_LENGTH, nest, plain_name, validate_name
from .store_base import StoreBase, check_range

__all__ = ["CallGate", "DirectCalls", "name_the_store"]


_gates: weakref.WeakSet[CallGate] = weakref.WeakSet()
_DIRECT_OPERATIONS = {"info": "info", "exists": "info", "load": "load", "store": "store", "delete": "delete"}
"""The Store's single-item methods with a direct path, and the backend operation each needs."""


class CallGate:
    """Counts the direct calls running on a store, so ``close()`` can wait for them and refuse new ones.

    A call enters by appending to ``calls`` and leaves by popping from it (both atomic), then looks at
    ``shut``: no lock on the way of a call. ``close()`` sets ``shut`` first and then waits until ``calls``
    is empty; a call that entered meanwhile sees ``shut``, leaves again and raises.
    """

    __slots__ = ("__weakref__", "_idle", "calls", "shut")

    def __init__(self) -> None:
        self._reset()
        _gates.add(self)

    def _reset(self) -> None:
        self._idle = threading.Condition(threading.Lock())
        self.calls: list[None] = []
        """One entry per running call."""
        self.shut = False
        """True while the store is closing: calls are refused."""

    def enter(self) -> None:
        """Let one call in (pair with `leave`); raises ``StoreNotOpen`` while the store is closing."""
        self.calls.append(None)
        if self.shut:
            self.leave()
            raise StoreNotOpen("the store is closing")

    def leave(self) -> None:
        """The call that `enter` let in has finished."""
        calls = self.calls
        calls.pop()
        if self.shut and not calls:
            self._wake()

    def _wake(self) -> None:
        with self._idle:
            self._idle.notify_all()

    def close_gate(self) -> bool:
        """Let no new call in; return True if none is running."""
        self.shut = True
        return not self.calls

    def wait_idle(self) -> None:
        """Block until the calls inside have finished."""
        with self._idle:
            while self.calls:
                self._idle.wait(0.05)  # woken by the last call to leave; the timeout only backs that up

    def reopen(self) -> None:
        """Let calls in again (they find the store open or closed, as it is)."""
        self.shut = False


def _reset_gates_after_fork() -> None:
    # the parent's calling threads do not exist in the child; a lock one of them held would stay held
    for gate in list(_gates):
        gate._reset()


os.register_at_fork(after_in_child=_reset_gates_after_fork)


def name_the_store(store: StoreBase, exc: StoreError) -> None:
    """Put the store's URL on a [`StoreError`][aiodepot.errors.StoreError] that has none, so its message says
    which store failed (a program may have several)."""
    if exc.store is None:
        exc.store = store.url or repr(store.backend)


class DirectCalls(StoreBase):
    """The blocking twins of ``info``, ``exists``, ``load``, ``store`` and ``delete`` (mixed into `Store`).

    They are for the sync facade and the borgstore drop-in, which ask `_direct_ok` first. Each is written
    out in full, without helpers or decorators: a call on ``memory://`` costs about 2 µs in the backend,
    so every function call here shows.
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
        self._learn_direct_path()

    def _learn_direct_path(self) -> None:
        """Work out once (at construction and at open) which operations have a direct path."""
        calls = self._calls
        self._direct_ops = frozenset(
            operation
            for operation, needs in _DIRECT_OPERATIONS.items()
            # finding an item on a namespace with several nesting levels takes infos
            if operation not in self._overridden and calls.has_blocking(needs) and calls.has_blocking("info")
        )

    def _direct_ok(self, operation: str) -> bool:
        """True if ``operation`` (``info``, ``exists``, ``load``, ``store``, ``delete``) may run in the
        caller's thread now: the top of the layer stack has a blocking twin for it (no cache, no emulation
        in the way), no per-operation timeout is set and no subclass overrides the async method."""
        return self.timeout is None and operation in self._direct_ops

    async def open(self) -> None:
        """Open the store (see [`aiodepot.Store.open`][aiodepot.Store.open])."""
        await super().open()
        self._learn_direct_path()

    async def close(self) -> None:
        """Stop using the store, once the direct calls running in other threads have finished."""
        gate = self._gate
        if not gate.close_gate():
            await asyncio.to_thread(gate.wait_idle)
        try:
            await super().close()
        finally:
            gate.reopen()

    def _find_blocking(self, name: str, deleted: bool) -> str:
        if self._flat:
            return name + DEL_SUFFIX if deleted else name
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

    def _info_direct(self, name: str, *, deleted: bool = False) -> ItemInfo:
        """`info` in the caller's thread (only where ``_direct_ok("info")``)."""
        try:
            validate_name(name)
            gate = self._gate
            gate.enter()
            try:
                if not self.backend.opened:
                    self._require_open()
                stats = self._stats
                started = stats.begin("info")
                try:
                    info = self._calls.info_blocking(self._find_blocking(name, deleted))
                finally:
                    stats.end("info", started)
            finally:
                gate.leave()
        except StoreError as exc:
            name_the_store(self, exc)
            raise
        return info.with_name(name)

    def _exists_direct(self, name: str, *, deleted: bool = False) -> bool:
        """`exists` in the caller's thread (only where ``_direct_ok("info")``)."""
        info = self._info_direct(name, deleted=deleted)
        return info.exists and not info.directory

    def _load_direct(self, name: str, offset: int = 0, size: int | None = None, deleted: bool = False) -> bytes:
        """`load` in the caller's thread (only where ``_direct_ok("load")``)."""
        try:
            if not (type(name) is str and len(name) <= MAX_NAME_LENGTH and plain_name(name)):
                validate_name(name)  # says what is wrong with it
            if offset or size is not None:
                check_range(offset, size)
            gate = self._gate
            calls = gate.calls
            calls.append(None)  # CallGate.enter, written out
            try:
                if gate.shut or not self.backend.opened:
                    self._refuse()
                nested = name if self._flat and not deleted else self._find_blocking(name, deleted)
                counts = self._load_counts
                started = perf_counter_ns()  # OpCounts.begin, written out
                counts._starts.append(started)
                data: bytes | None = None
                bare = self._bare
                try:
                    if bare is None:
                        data = self._calls.load_blocking(nested, offset=offset, size=size)
                    else:
                        if bare.permissions.restricted:
                            bare.permissions.check(nested, "r")
                        data = bare._load_blocking(nested, offset, size)
                finally:
                    if data is None:  # failed: no volume, and the backend call is not counted (as Meter does)
                        counts.end(started)
                    else:
                        counts.end(started, len(data), 1, bare is not None)
            finally:
                calls.pop()  # CallGate.leave, written out
                if gate.shut and not calls:
                    gate._wake()
        except StoreError as exc:
            name_the_store(self, exc)
            raise
        return data

    def _store_direct(self, name: str, value: StoreValue) -> None:
        """`store` of bytes or a buffer in the caller's thread (only where ``_direct_ok("store")``)."""
        try:
            if not (type(name) is str and len(name) <= MAX_NAME_LENGTH and plain_name(name)):
                validate_name(name)  # says what is wrong with it
            data = validate_value(value)
            gate = self._gate
            calls = gate.calls
            calls.append(None)  # CallGate.enter, written out
            try:
                if gate.shut or not self.backend.opened:
                    self._refuse()
                nested = name if self._flat else self._find_blocking(name, False)
                counts = self._store_counts
                started = perf_counter_ns()  # OpCounts.begin, written out
                counts._starts.append(started)
                size = -1
                bare = self._bare
                if bare is not None and bare.permissions.restricted:
                    bare = None  # the backend decides about replacing: through the meter
                try:
                    if bare is None:
                        self._calls.store_blocking(nested, data)
                    else:
                        bare._store_blocking(nested, data, replace=True)
                    size = len(data)
                finally:
                    if size < 0:  # failed: no volume, and the backend call is not counted (as Meter does)
                        counts.end(started)
                    else:
                        counts.end(started, size, 1, bare is not None)
            finally:
                calls.pop()  # CallGate.leave, written out
                if gate.shut and not calls:
                    gate._wake()
        except StoreError as exc:
            name_the_store(self, exc)
            raise

    def _delete_direct(self, name: str, *, deleted: bool = False) -> None:
        """`delete` in the caller's thread (only where ``_direct_ok("delete")``)."""
        try:
            validate_name(name)
            gate = self._gate
            gate.enter()
            try:
                if not self.backend.opened:
                    self._require_open()
                stats = self._stats
                started = stats.begin("delete")
                try:
                    self._calls.delete_blocking(self._find_blocking(name, deleted))
                finally:
                    stats.end("delete", started)
            finally:
                gate.leave()
        except StoreError as exc:
            name_the_store(self, exc)
            raise

    def _refuse(self) -> None:
        if self._gate.shut:
            raise StoreNotOpen("the store is closing")
        self._require_open()
