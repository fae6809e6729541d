"""The server's coordination: a gate for whole-store operations, one lock per item name, the batching of
small stores, and the bounded table of open repositories."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from typing import Generic, Protocol, TypeVar

from ..backends.base import Backend

__all__ = ["Gate", "Handler", "NameLocks", "Repositories", "StoreBatches"]

logger = logging.getLogger("aiodepot.server")


class Handler(Protocol):
    """What the repository table needs of a store's request handler."""

    backend: Backend
    users: int

    async def close(self) -> None:
        """Close the store (waiting for requests in flight)."""


H = TypeVar("H", bound=Handler)


class Gate:
    """Many requests at once, or one exclusive (create/destroy); a waiting exclusive one goes first."""

    def __init__(self) -> None:
        self._shared = 0
        self._exclusive = False
        self._waiting = 0
        self._condition = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        if self._exclusive or self._waiting:
            async with self._condition:
                await self._condition.wait_for(lambda: not self._exclusive and not self._waiting)
                self._shared += 1
        else:  # the common case: nothing to wait for, no lock to take (one event loop, no await between)
            self._shared += 1
        try:
            yield
        finally:
            self._shared -= 1
            if self._waiting and not self._shared:  # only an exclusive one waits for the shared ones
                async with self._condition:
                    self._condition.notify_all()

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        async with self._condition:
            self._waiting += 1
            try:
                await self._condition.wait_for(lambda: not self._exclusive and not self._shared)
            finally:
                self._waiting -= 1
            self._exclusive = True
        try:
            yield
        finally:
            async with self._condition:
                self._exclusive = False
                self._condition.notify_all()


class NameLocks:
    """One asyncio lock per item name in use, dropped when nobody holds or waits for it (bounded)."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    def hold(self, *names: str) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold the locks of ``names`` (in sorted order, so two holders never wait for each other)."""
        return _Holding(self._locks, sorted(set(names)) if len(names) > 1 else list(names))


class _Holding:
    """The locks of some names, taken in the order given and given back in reverse (a class, not a
    generator: it is on every write's path)."""

    __slots__ = ("_held", "_locks", "_names")

    def __init__(self, locks: dict[str, tuple[asyncio.Lock, int]], names: list[str]) -> None:
        self._locks = locks
        self._names = names
        self._held = 0

    async def __aenter__(self) -> None:
        for name in self._names:
            lock, users = self._locks.get(name) or (asyncio.Lock(), 0)
            self._locks[name] = (lock, users + 1)
            try:
                await lock.acquire()
            except BaseException:  # cancelled while waiting: not held, and no longer waiting
                self._leave(name)
                self._release()
                raise
            self._held += 1

    async def __aexit__(self, *exc_info: object) -> None:
        self._release()

    def _release(self) -> None:
        while self._held:
            self._held -= 1
            name = self._names[self._held]
            self._locks[name][0].release()
            self._leave(name)

    def _leave(self, name: str) -> None:
        lock, users = self._locks[name]
        if users == 1:
            del self._locks[name]
        else:
            self._locks[name] = (lock, users - 1)


class StoreBatches:
    """The small stores of concurrent requests, written by the backend as batches (``store_batch``).

    A request's value joins the pending ones; while a batch is written, the values that arrive wait and go
    together in the next one. A file store then writes N values in one thread job instead of N jobs: its
    threads do not race each other for the interpreter lock, and they do not spin on one directory's lock
    in the kernel while another creates a file there. A value that arrives while nothing is written starts
    a batch of its own at once: a lone request waits for nobody.

    Cancelling a request whose value still waits takes it out (it is not stored); once its batch is
    written, the cancellation waits for the batch, so the value is in place or not before the request ends.
    """

    def __init__(self, backend: Backend, size: int, writers: int = 1) -> None:
        self.backend = backend
        self.size = max(size, 1)
        """Values per batch at most."""
        self.writers = max(writers, 1)
        """Batches written at once at most."""
        self._pending: list[tuple[str, bytes, asyncio.Future[None]]] = []
        self._writing = 0  # writer tasks that have not returned: counted down as they return, not after
        self._tasks: set[asyncio.Task[None]] = set()

    async def store(self, name: str, data: bytes) -> None:
        """Store ``data`` under ``name`` (a valid name, not being written by anyone else), as ``store``."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (name, data, future)
        self._pending.append(entry)
        if self._writing < self.writers:
            self._writing += 1
            writer = asyncio.create_task(self._write())
            self._tasks.add(writer)
            writer.add_done_callback(self._tasks.discard)
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                future.exception()  # the value was written (or failed) before the cancellation came
                raise
            for i, waiting in enumerate(self._pending):
                if waiting is entry:  # not taken yet: it is not written at all
                    del self._pending[i]
                    future.cancel()
                    raise
            await asyncio.wait([future])  # being written: let it finish, then let the cancellation go on
            if not future.cancelled():
                future.exception()  # retrieved: the request is gone, nobody asks
            raise

    async def _write(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending[: self.size], self._pending[self.size :]
                try:
                    results = await self.backend.store_batch([(name, data) for name, data, _ in batch])
                except Exception as exc:  # the whole batch failed (the store was closed, say)
                    results = [exc] * len(batch)
                except BaseException:  # cancelled: the loop is closing
                    for _, _, future in batch:
                        future.cancel()
                    raise
                for (_, _, future), result in zip(batch, results, strict=True):
                    if future.done():
                        continue
                    if result is None:
                        future.set_result(None)
                    else:
                        future.set_exception(result)
        except BaseException:
            for _, _, future in self._pending:  # cancelled: the loop is closing
                future.cancel()
            self._pending = []
            raise
        finally:
            # No await between the last look at the pending values and this: a value that comes later
            # sees fewer writers and starts one.
            self._writing -= 1


class Repositories(Generic[H]):
    """The open repositories of a multi-repository server: at most ``limit`` idle ones are kept (least
    recently used closed first); one nobody is using and that is not open costs nothing."""

    def __init__(self, factory: Callable[[str], H], limit: int) -> None:
        if limit < 1:
            raise ValueError(f"max_open_repos must be >= 1, got {limit}")
        self._factory = factory
        self._limit = limit
        self._handlers: OrderedDict[str, H] = OrderedDict()

    def __len__(self) -> int:
        return len(self._handlers)

    @contextlib.asynccontextmanager
    async def use(self, repo: str) -> AsyncIterator[H]:
        """The handler of ``repo`` (a validated repository name), held for the duration of a request."""
        handler = self._handlers.get(repo)
        if handler is None:
            handler = self._handlers[repo] = self._factory(repo)
        self._handlers.move_to_end(repo)
        handler.users += 1
        try:
            yield handler
        finally:
            handler.users -= 1
            await self._trim()

    async def _trim(self) -> None:
        idle = [(repo, handler) for repo, handler in self._handlers.items() if not handler.users]
        excess = len(self._handlers) - self._limit
        dropped = []
        for repo, handler in idle:
            if not handler.backend.opened or excess > 0:
                if handler.backend.opened:
                    excess -= 1
                del self._handlers[repo]
                dropped.append(handler)
        for handler in dropped:  # out of the table first: a new request makes a new handler meanwhile
            try:
                await handler.close()
            except Exception:
                logger.exception("closing an idle repository failed")

    async def close(self) -> None:
        """Close every repository."""
        handlers, self._handlers = list(self._handlers.values()), OrderedDict()
        for handler in handlers:
            await handler.close()
