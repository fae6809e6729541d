"""The server's coordination: a gate for whole-store operations, one lock per item name, and the bounded
table of open repositories."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from typing import Generic, Protocol, TypeVar

from ..backends.base import Backend

__all__ = ["Gate", "Handler", "NameLocks", "Repositories"]

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
        async with self._condition:
            await self._condition.wait_for(lambda: not self._exclusive and not self._waiting)
            self._shared += 1
        try:
            yield
        finally:
            async with self._condition:
                self._shared -= 1
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

    @contextlib.asynccontextmanager
    async def hold(self, *names: str) -> AsyncIterator[None]:
        """Hold the locks of ``names`` (in sorted order, so two holders never wait for each other)."""
        async with contextlib.AsyncExitStack() as stack:
            for name in sorted(set(names)):
                await stack.enter_async_context(self._one(name))
            yield

    @contextlib.asynccontextmanager
    async def _one(self, name: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(name) or (asyncio.Lock(), 0)
        self._locks[name] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[name]
            if users == 1:
                del self._locks[name]
            else:
                self._locks[name] = (lock, users - 1)


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
