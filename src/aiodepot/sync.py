"""The sync facade: [`SyncStore`][aiodepot.SyncStore] runs the async [`Store`][aiodepot.Store] on a
[`Portal`][aiodepot.Portal].

A portal is a private event loop in a daemon thread, started on first use and shared by the process
(``Portal.default()``). A blocking call submits the coroutine to that loop and waits; if the caller is
interrupted (Ctrl-C) or its timeout passes, the coroutine is cancelled, not left running. The calling
thread may run an event loop of its own (Jupyter). After ``fork()`` the child gets a new loop, thread
and lock on first use, and stores reopen their resources there.
"""

from __future__ import annotations

import asyncio
import atexit
import builtins
import concurrent.futures
import datetime
import os
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping
from threading import get_ident
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Literal, ParamSpec, Self, TypeVar, overload

from . import replicate
from .backends.base import Backend
from .blocking_iter import BlockingIterator
from .items import ItemInfo, Source, StoreInput, StoreValue
from .names import ROOTNS
from .stack import WriteBackOption
from .store import Store
from .store_streams import DEFAULT_CHUNK_SIZE
from .transfer import ProgressCallback

if TYPE_CHECKING:
    from .mapping import StoreMapping

__all__ = ["Portal", "SyncStore", "copy_store", "sync_stores"]

P = ParamSpec("P")
T = TypeVar("T")

_portals: weakref.WeakSet[Portal] = weakref.WeakSet()


class Portal:
    """A private event loop in its own thread, to run coroutines from blocking code.

    Args:
        name: the loop thread's name.
    """

    _default: Portal | None = None
    _default_lock = threading.Lock()

    def __init__(self, name: str = "aiodepot-portal") -> None:
        self.name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ident: int | None = None  # the loop thread's ident (cheaper to compare than the thread)
        self._pid = os.getpid()
        _portals.add(self)

    @classmethod
    def default(cls) -> Portal:
        """The process-wide portal that SyncStores use unless given another."""
        with cls._default_lock:
            if cls._default is None:
                cls._default = cls()
            return cls._default

    def __repr__(self) -> str:
        return f"<Portal {self.name!r} {'running' if self.running else 'stopped'}>"

    @property
    def running(self) -> bool:
        """True while the loop thread is alive (in this process)."""
        return self._thread is not None and self._thread.is_alive() and self._pid == os.getpid()

    @property
    def thread(self) -> threading.Thread | None:
        """The loop's thread, once started."""
        return self._thread

    def _after_fork(self) -> None:
        # The parent's loop thread does not exist in the child, and its lock may have been held.
        self._lock = threading.Lock()
        self._loop = None
        self._thread = None
        self._ident = None
        self._pid = os.getpid()

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self._pid != os.getpid():
            self._after_fork()
        with self._lock:
            if self._loop is None or self._thread is None or not self._thread.is_alive():
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    try:
                        loop.run_forever()
                    finally:
                        _finish_loop(loop)

                thread = threading.Thread(target=run, name=self.name, daemon=True)
                thread.start()
                ready.wait()
                self._loop, self._thread, self._ident = loop, thread, thread.ident
            return self._loop

    def call(
        self,
        func: Callable[P, Coroutine[Any, Any, T]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run ``func(*args, **kwargs)`` on the portal's loop and return its result (blocking)."""
        return self.call_with_timeout(None, func, *args, **kwargs)

    def call_with_timeout(
        self,
        timeout: float | None,
        func: Callable[P, Coroutine[Any, Any, T]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Like [`call`][aiodepot.Portal.call]; after ``timeout`` seconds the coroutine is cancelled.

        The call then raises ``TimeoutError``; one the coroutine raises itself comes through unchanged.
        """
        if threading.current_thread() is self._thread and self._pid == os.getpid():
            raise RuntimeError(
                "a blocking aiodepot call was made from the portal's own event loop thread; "
                "inside async code, await the async Store instead of using SyncStore"
            )
        loop = self._ensure_loop()
        call = _Call(loop, func(*args, **kwargs))
        try:
            done = call.wait(timeout)
        except BaseException:  # KeyboardInterrupt, SystemExit: stop the work we started
            call.cancel()
            raise
        if not done:
            call.cancel()
            raise TimeoutError(f"{getattr(func, '__qualname__', func)} did not finish in {timeout} s")
        # The coroutine's own outcome: a TimeoutError it raised is its own, not the portal's.
        return call.result()

    def spawn(self, func: Callable[[], Coroutine[Any, Any, object]]) -> None:
        """Start ``func()`` on the portal's loop without waiting for it (safe from any thread)."""
        loop = self._loop
        if loop is None or not self.running:
            return
        loop.call_soon_threadsafe(lambda: loop.create_task(func()))

    def stop(self) -> None:
        """Stop the loop and join its thread (it starts again on next use)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None or self._pid != os.getpid():
            return
        if thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
        else:  # pragma: no cover - the thread died on its own
            loop.close()


_POLL_INTERVAL = 0.1
"""Longest single lock wait of a blocked caller: a lock wait is not woken by ``_thread.interrupt_main()``
or by a SIGINT another thread received, so the caller returns to Python code this often to let them in."""


class _Call(Generic[T]):
    """One coroutine running as a task on the portal's loop, and a lock its caller waits on.

    One ``call_soon_threadsafe`` there and one lock release back: about half the cost of
    ``run_coroutine_threadsafe`` and its two chained futures, which matters for every single call.
    """

    __slots__ = ("_coro", "_done", "_loop", "_task")

    def __init__(self, loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> None:
        self._loop = loop
        self._coro: Coroutine[Any, Any, T] | None = coro
        self._task: asyncio.Task[T] | None = None
        self._done = threading.Lock()
        self._done.acquire()  # released once the task is done
        try:
            loop.call_soon_threadsafe(self._start)
        except BaseException:
            coro.close()
            raise

    def _start(self) -> None:  # on the loop
        coro, self._coro = self._coro, None
        assert coro is not None
        task = self._loop.create_task(coro)
        self._task = task
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[T]) -> None:  # on the loop
        if not task.cancelled():
            task.exception()  # retrieved: the caller may be gone (interrupted), asyncio need not log it
        self._done.release()

    def wait(self, timeout: float | None) -> bool:
        """Wait until the task is done or ``timeout`` seconds passed; return whether it is done."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = _POLL_INTERVAL if deadline is None else min(_POLL_INTERVAL, deadline - time.monotonic())
            if wait <= 0:
                return self._try_done(0)
            if self._try_done(wait):
                return True

    def _try_done(self, seconds: float) -> bool:
        acquired = self._done.acquire(timeout=seconds) if seconds > 0 else self._done.acquire(blocking=False)
        if acquired:
            self._done.release()  # done stays done for later waits
        return acquired

    def cancel(self, grace: float = 5.0) -> None:
        """Cancel the task and give it ``grace`` seconds to run its cleanup before the caller goes on."""

        def cancel() -> None:  # on the loop, after _start (callbacks run in order)
            if self._task is not None:
                self._task.cancel()

        try:
            self._loop.call_soon_threadsafe(cancel)
        except RuntimeError:  # pragma: no cover - the loop is closed: nothing runs there any more
            return
        try:
            self._try_done(grace)
        except BaseException:  # pragma: no cover - a second interrupt while cleaning up
            pass

    def result(self) -> T:
        """The task's result, or its exception raised (a task cancelled on the loop: ``CancelledError``)."""
        task = self._task
        assert task is not None
        if task.cancelled():
            raise concurrent.futures.CancelledError()
        return task.result()


def _finish_loop(loop: asyncio.AbstractEventLoop) -> None:
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()


def _reset_portals_after_fork() -> None:
    for portal in list(_portals):
        portal._after_fork()
    Portal._default_lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_portals_after_fork)


@atexit.register
def _stop_default_portal() -> None:
    portal = Portal._default
    if portal is not None:
        portal.stop()


class SyncStore:
    """The blocking twin of [`Store`][aiodepot.Store]: same arguments, same methods, no ``await``.

    ```python
    with aiodepot.SyncStore("file:///srv/depot") as store:
        store.store("config/main", b"...")
        for info in store.list("data"):
            ...
    ```

    Args:
        url: as for [`Store`][aiodepot.Store], like all arguments up to ``cache_backend``, and ``writeback``.
        portal: the event loop thread to run on (default: the shared [`Portal.default`][aiodepot.Portal.default]).
        timeout: seconds after which a call is cancelled and raises ``TimeoutError`` (default: none); the
            async store's own per-operation ``timeout`` stays unset (set ``store.async_store.timeout``).

    Single-item calls (``info``, ``exists``, ``load``, ``store`` of bytes, ``delete``) on a local backend
    (``memory://``, ``file://``; SQLite reads) run in the caller's thread, without crossing to the portal,
    when no cache, emulation or timeout needs the event loop: the same checks, errors and statistics, a
    fraction of the cost. Everything else runs on the portal.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        backend: Backend | None = None,
        config: Mapping[str, Mapping[str, Any]] | None = None,
        permissions: str | Mapping[str, str] | None = None,
        quota: int | None = None,
        latency: float | None = None,
        bandwidth: float | None = None,
        max_concurrency: int | None = None,
        backend_options: Mapping[str, Any] | None = None,
        gather_gap: int = 64 * 1024,
        max_bytes_in_flight: int = 256 * 1024 * 1024,
        cache_url: str | None = None,
        cache_backend: Backend | None = None,
        portal: Portal | None = None,
        timeout: float | None = None,
        writeback: WriteBackOption = None,
    ) -> None:
        self.async_store = Store(
            url,
            backend=backend,
            config=config,
            permissions=permissions,
            quota=quota,
            latency=latency,
            bandwidth=bandwidth,
            max_concurrency=max_concurrency,
            backend_options=backend_options,
            gather_gap=gather_gap,
            max_bytes_in_flight=max_bytes_in_flight,
            cache_url=cache_url,
            cache_backend=cache_backend,
            writeback=writeback,
        )
        self.portal = portal or Portal.default()
        self.timeout = timeout

    @classmethod
    def wrap(cls, store: Store, *, portal: Portal | None = None, timeout: float | None = None) -> SyncStore:
        """A SyncStore around an existing async [`Store`][aiodepot.Store]."""
        self = cls.__new__(cls)
        self.async_store, self.portal, self.timeout = store, portal or Portal.default(), timeout
        return self

    def __repr__(self) -> str:
        return f"<SyncStore {self.async_store!r}>"

    def __del__(self) -> None:
        store = getattr(self, "async_store", None)
        if store is not None and store.opened:
            warnings.warn(f"{self!r} was not closed", ResourceWarning, stacklevel=2)

    def _run(self, func: Callable[P, Coroutine[Any, Any, T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self.portal.call_with_timeout(self.timeout, func, *args, **kwargs)

    def _direct(self, operation: str) -> bool:
        """Whether ``operation`` runs in this thread (see the class docs): no timeout to enforce, the store
        allows it, and this is not the portal's own thread (where a blocking call is refused, as always)."""
        store = self.async_store
        return (
            self.timeout is None
            and store.timeout is None
            and operation in store._direct_ops
            and get_ident() != self.portal._ident
        )

    # configuration and state -----------------------------------------------------------------------------

    @property
    def url(self) -> str | None:
        """The store URL with its secrets hidden, if the store was made from one."""
        return self.async_store.url

    @property
    def backend(self) -> Backend:
        """The backend instance."""
        return self.async_store.backend

    @property
    def opened(self) -> bool:
        """True between ``open()`` and ``close()``."""
        return self.async_store.opened

    @property
    def levels(self) -> dict[str, builtins.list[int]]:
        """The namespace → nesting levels configuration in force."""
        return self.async_store.levels

    def set_levels(self, config: Mapping[str, Mapping[str, Any]]) -> None:
        """See [`aiodepot.Store.set_levels`][aiodepot.Store.set_levels]."""
        self.async_store.set_levels(config)

    def save_layout(self) -> None:
        """See [`aiodepot.Store.save_layout`][aiodepot.Store.save_layout]."""
        self._run(self.async_store.save_layout)

    @property
    def stats(self) -> dict[str, Any]:
        """See [`aiodepot.Store.stats`][aiodepot.Store.stats]."""
        return self.async_store.stats

    def cache_invalidate(self, name: str = ROOTNS, *, deleted: bool = False) -> int:
        """See [`aiodepot.Store.cache_invalidate`][aiodepot.Store.cache_invalidate]."""
        return self._run(self.async_store.cache_invalidate, name, deleted=deleted)

    # lifecycle -------------------------------------------------------------------------------------------

    def create(self, *, remember_layout: bool = True) -> None:
        """See [`aiodepot.Store.create`][aiodepot.Store.create]."""
        self._run(self.async_store.create, remember_layout=remember_layout)

    def create_levels(self) -> None:
        """See [`aiodepot.Store.create_levels`][aiodepot.Store.create_levels]."""
        self._run(self.async_store.create_levels)

    def destroy(self) -> None:
        """See [`aiodepot.Store.destroy`][aiodepot.Store.destroy]."""
        self._run(self.async_store.destroy)

    def open(self) -> None:
        """See [`aiodepot.Store.open`][aiodepot.Store.open]."""
        self._run(self.async_store.open)

    def close(self) -> None:
        """See [`aiodepot.Store.close`][aiodepot.Store.close]."""
        self._run(self.async_store.close)

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # single items ----------------------------------------------------------------------------------------

    def find(self, name: str, *, deleted: bool = False) -> str:
        """See [`aiodepot.Store.find`][aiodepot.Store.find]."""
        return self._run(self.async_store.find, name, deleted=deleted)

    def info(self, name: str, *, deleted: bool = False) -> ItemInfo:
        """See [`aiodepot.Store.info`][aiodepot.Store.info]."""
        store = self.async_store
        if self._direct("info"):
            return store._info_direct(name, deleted=deleted)
        return self._run(store.info, name, deleted=deleted)

    def load(self, name: str, *, offset: int = 0, size: int | None = None, deleted: bool = False) -> bytes:
        """See [`aiodepot.Store.load`][aiodepot.Store.load]."""
        store = self.async_store
        # `_direct("load")`, written out: this is the hot path of every blocking load
        if (
            self.timeout is None
            and store.timeout is None
            and "load" in store._direct_ops
            and get_ident() != self.portal._ident
        ):
            return store._load_direct(name, offset, size, deleted)
        return self._run(store.load, name, offset=offset, size=size, deleted=deleted)

    def store(self, name: str, value: StoreInput, *, if_absent: bool = False) -> None:
        """See [`aiodepot.Store.store`][aiodepot.Store.store]; a binary file object is the blocking way to stream."""
        store = self.async_store
        # `_direct("store")`, written out: this is the hot path of every blocking store
        if (
            not if_absent
            and self.timeout is None
            and store.timeout is None
            and "store" in store._direct_ops
            and isinstance(value, bytes | bytearray | memoryview)
            and get_ident() != self.portal._ident
        ):
            store._store_direct(name, value)
        else:
            self._run(store.store, name, value, if_absent=if_absent)

    def url_for(self, name: str, *, expires: float | datetime.timedelta, method: str = "GET") -> str:
        """See [`aiodepot.Store.url_for`][aiodepot.Store.url_for]."""
        return self._run(self.async_store.url_for, name, expires=expires, method=method)

    def exists(self, name: str, *, deleted: bool = False) -> bool:
        """See [`aiodepot.Store.exists`][aiodepot.Store.exists]."""
        store = self.async_store
        if self._direct("exists"):
            return store._exists_direct(name, deleted=deleted)
        return self._run(store.exists, name, deleted=deleted)

    def open_reader(
        self,
        name: str,
        *,
        offset: int = 0,
        size: int | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        deleted: bool = False,
    ) -> BlockingIterator[bytes]:
        """See [`aiodepot.Store.open_reader`][aiodepot.Store.open_reader]; a blocking iterator of chunks.

        Call its ``close()`` (or use ``contextlib.closing``) to stop early.
        """
        reader = self.async_store.open_reader(name, offset=offset, size=size, chunk_size=chunk_size, deleted=deleted)
        return BlockingIterator(self.portal, reader, timeout=self.timeout, batch=1)

    def delete(self, name: str, *, deleted: bool = False) -> None:
        """See [`aiodepot.Store.delete`][aiodepot.Store.delete]."""
        store = self.async_store
        if self._direct("delete"):
            store._delete_direct(name, deleted=deleted)
        else:
            self._run(store.delete, name, deleted=deleted)

    def move(
        self,
        name: str,
        new_name: str | None = None,
        *,
        delete: bool = False,
        undelete: bool = False,
        change_level: bool = False,
        deleted: bool = False,
    ) -> None:
        """See [`aiodepot.Store.move`][aiodepot.Store.move]."""
        self._run(
            self.async_store.move,
            name,
            new_name,
            delete=delete,
            undelete=undelete,
            change_level=change_level,
            deleted=deleted,
        )

    def hash(self, name: str, algorithm: str = "sha256", *, deleted: bool = False) -> str:
        """See [`aiodepot.Store.hash`][aiodepot.Store.hash]."""
        return self._run(self.async_store.hash, name, algorithm, deleted=deleted)

    def list(
        self,
        name: str = ROOTNS,
        *,
        prefix: str | None = None,
        start_after: str | None = None,
        deleted: bool = False,
    ) -> Iterator[ItemInfo]:
        """See [`aiodepot.Store.list`][aiodepot.Store.list]; returns an iterator that fetches items in batches."""
        listing = self.async_store.list(name, prefix=prefix, start_after=start_after, deleted=deleted)
        return BlockingIterator(self.portal, listing, timeout=self.timeout)

    def count(self, name: str = ROOTNS, *, deleted: bool = False) -> int:
        """See [`aiodepot.Store.count`][aiodepot.Store.count]."""
        return self._run(self.async_store.count, name, deleted=deleted)

    def gather(self, sources: Iterable[Source], *, namespace: str | None = None, deleted: bool = False) -> bytes:
        """See [`aiodepot.Store.gather`][aiodepot.Store.gather]."""
        return self._run(self.async_store.gather, sources, namespace=namespace, deleted=deleted)

    def defrag(
        self,
        sources: Iterable[Source],
        *,
        target: str | None = None,
        algorithm: str | None = None,
        namespace: str | None = None,
        deleted: bool = False,
    ) -> str:
        """See [`aiodepot.Store.defrag`][aiodepot.Store.defrag]."""
        return self._run(
            self.async_store.defrag,
            sources,
            target=target,
            algorithm=algorithm,
            namespace=namespace,
            deleted=deleted,
        )

    def quota(self) -> dict[str, int]:
        """See [`aiodepot.Store.quota`][aiodepot.Store.quota]."""
        return self._run(self.async_store.quota)

    def flush(self) -> None:
        """See [`aiodepot.Store.flush`][aiodepot.Store.flush]."""
        self._run(self.async_store.flush)

    # files -----------------------------------------------------------------------------------------------

    def load_file(
        self,
        name: str,
        path: str | os.PathLike[str],
        *,
        deleted: bool = False,
        max_concurrency: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> int:
        """See [`aiodepot.Store.load_file`][aiodepot.Store.load_file]."""
        return self._run(
            self.async_store.load_file,
            name,
            path,
            deleted=deleted,
            max_concurrency=max_concurrency,
            progress=progress,
        )

    def store_file(
        self,
        name: str,
        path: str | os.PathLike[str],
        *,
        progress: ProgressCallback | None = None,
    ) -> int:
        """See [`aiodepot.Store.store_file`][aiodepot.Store.store_file]."""
        return self._run(self.async_store.store_file, name, path, progress=progress)

    # bulk ------------------------------------------------------------------------------------------------

    @overload
    def load_many(
        self,
        names: Iterable[str],
        *,
        max_concurrency: int | None = ...,
        return_exceptions: Literal[False] = ...,
        progress: ProgressCallback | None = ...,
        deleted: bool = ...,
    ) -> builtins.list[bytes]: ...

    @overload
    def load_many(
        self,
        names: Iterable[str],
        *,
        max_concurrency: int | None = ...,
        return_exceptions: Literal[True],
        progress: ProgressCallback | None = ...,
        deleted: bool = ...,
    ) -> builtins.list[bytes | Exception]: ...

    def load_many(
        self,
        names: Iterable[str],
        *,
        max_concurrency: int | None = None,
        return_exceptions: bool = False,
        progress: ProgressCallback | None = None,
        deleted: bool = False,
    ) -> builtins.list[bytes] | builtins.list[bytes | Exception]:
        """See [`aiodepot.Store.load_many`][aiodepot.Store.load_many]."""
        return self._run(
            self.async_store.load_many,  # type: ignore[arg-type]
            names,
            max_concurrency=max_concurrency,
            return_exceptions=return_exceptions,
            progress=progress,
            deleted=deleted,
        )

    def store_many(
        self,
        items: Mapping[str, StoreValue] | Iterable[tuple[str, StoreValue]],
        *,
        max_concurrency: int | None = None,
        return_exceptions: bool = False,
        progress: ProgressCallback | None = None,
    ) -> builtins.list[Exception | None]:
        """See [`aiodepot.Store.store_many`][aiodepot.Store.store_many]."""
        return self._run(
            self.async_store.store_many,
            items,
            max_concurrency=max_concurrency,
            return_exceptions=return_exceptions,
            progress=progress,
        )

    def delete_many(
        self,
        names: Iterable[str],
        *,
        max_concurrency: int | None = None,
        return_exceptions: bool = False,
        progress: ProgressCallback | None = None,
        deleted: bool = False,
    ) -> builtins.list[Exception | None]:
        """See [`aiodepot.Store.delete_many`][aiodepot.Store.delete_many]."""
        return self._run(
            self.async_store.delete_many,
            names,
            max_concurrency=max_concurrency,
            return_exceptions=return_exceptions,
            progress=progress,
            deleted=deleted,
        )

    def info_many(
        self,
        names: Iterable[str],
        *,
        max_concurrency: int | None = None,
        progress: ProgressCallback | None = None,
        deleted: bool = False,
    ) -> builtins.list[ItemInfo]:
        """See [`aiodepot.Store.info_many`][aiodepot.Store.info_many]."""
        return self._run(
            self.async_store.info_many,
            names,
            max_concurrency=max_concurrency,
            progress=progress,
            deleted=deleted,
        )

    # generated keys and dict-style views ------------------------------------------------------------------

    def store_new(self, namespace: str, value: StoreValue, *, key: str = "sha256") -> str:
        """See [`aiodepot.Store.store_new`][aiodepot.Store.store_new]."""
        return self._run(self.async_store.store_new, namespace, value, key=key)

    def store_many_new(
        self,
        namespace: str,
        values: Iterable[StoreValue],
        *,
        key: str = "sha256",
        max_concurrency: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> builtins.list[str]:
        """See [`aiodepot.Store.store_many_new`][aiodepot.Store.store_many_new]."""
        return self._run(
            self.async_store.store_many_new,
            namespace,
            values,
            key=key,
            max_concurrency=max_concurrency,
            progress=progress,
        )

    def mapping(self, namespace: str = ROOTNS, *, soft_delete: bool = False) -> StoreMapping:
        """A ``MutableMapping[str, bytes]`` view of ``namespace``: ``m[key]``, ``key in m``, ``for key in m``.

        See [`StoreMapping`][aiodepot.mapping.StoreMapping]; with ``soft_delete=True``, ``del m[key]``
        soft-deletes.
        """
        from .mapping import StoreMapping

        return StoreMapping(self, namespace, soft_delete=soft_delete)


def _shared_portal(src: SyncStore, dst: SyncStore) -> Portal:
    if src.portal is not dst.portal:
        raise ValueError("both stores must run on the same Portal (the default one, unless you gave another)")
    return src.portal


def copy_store(
    src: SyncStore,
    dst: SyncStore,
    namespaces: str | Iterable[str] | None = None,
    *,
    overwrite: bool = True,
    include_deleted: bool = False,
    dry_run: bool = False,
    max_concurrency: int | None = None,
    max_bytes_in_flight: int = replicate.DEFAULT_MAX_BYTES_IN_FLIGHT,
    batch_size: int = replicate.DEFAULT_BATCH_SIZE,
    progress: ProgressCallback | None = None,
    collect_errors: bool = False,
) -> replicate.Report:
    """The blocking [`aiodepot.copy_store`][aiodepot.replicate.copy_store], between two SyncStores.

    ``progress`` is called on the portal's thread.
    """
    return _shared_portal(src, dst).call_with_timeout(
        src.timeout,
        replicate.copy_store,
        src.async_store,
        dst.async_store,
        namespaces,
        overwrite=overwrite,
        include_deleted=include_deleted,
        dry_run=dry_run,
        max_concurrency=max_concurrency,
        max_bytes_in_flight=max_bytes_in_flight,
        batch_size=batch_size,
        progress=progress,
        collect_errors=collect_errors,
    )


def sync_stores(
    src: SyncStore,
    dst: SyncStore,
    namespaces: str | Iterable[str] | None = None,
    *,
    delete: bool = False,
    checksum: bool = False,
    include_deleted: bool = False,
    dry_run: bool = False,
    max_concurrency: int | None = None,
    max_bytes_in_flight: int = replicate.DEFAULT_MAX_BYTES_IN_FLIGHT,
    batch_size: int = replicate.DEFAULT_BATCH_SIZE,
    progress: ProgressCallback | None = None,
    collect_errors: bool = False,
) -> replicate.Report:
    """The blocking [`aiodepot.sync_stores`][aiodepot.replicate.sync_stores], between two SyncStores.

    ``progress`` is called on the portal's thread.
    """
    return _shared_portal(src, dst).call_with_timeout(
        src.timeout,
        replicate.sync_stores,
        src.async_store,
        dst.async_store,
        namespaces,
        delete=delete,
        checksum=checksum,
        include_deleted=include_deleted,
        dry_run=dry_run,
        max_concurrency=max_concurrency,
        max_bytes_in_flight=max_bytes_in_flight,
        batch_size=batch_size,
        progress=progress,
        collect_errors=collect_errors,
    )
