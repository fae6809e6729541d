"""Blocking iteration over an async iterator that runs on a [`Portal`][aiodepot.Portal].

[`SyncStore.list`][aiodepot.SyncStore.list] and the sync mapping views pull their async listings through
the portal a batch at a time: one thread hop per batch, not per item.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Self, TypeVar

if TYPE_CHECKING:
    from .sync import Portal

__all__ = ["BlockingIterator"]

T = TypeVar("T")


class BlockingIterator(Iterator[T]):
    """Pulls an async iterator through the portal a batch at a time (one thread hop per batch).

    Args:
        portal: the portal whose event loop runs ``source``.
        source: the async iterator.
        timeout: seconds after which fetching one batch is cancelled and raises ``TimeoutError``.
        batch: items fetched per thread hop (default ``BATCH``; 1 for big items such as chunks of a value).
    """

    BATCH = 1000

    def __init__(
        self, portal: Portal, source: AsyncIterator[T], *, timeout: float | None = None, batch: int | None = None
    ) -> None:
        if batch is not None and batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        self._batch = batch or self.BATCH
        self._portal = portal
        self._timeout = timeout
        self._source: AsyncIterator[T] | None = source
        self._buffer: list[T] = []
        self._position = 0

    def __iter__(self) -> Self:
        return self

    async def _fetch(self) -> list[T]:
        assert self._source is not None
        batch: list[T] = []
        async for item in self._source:
            batch.append(item)
            if len(batch) >= self._batch:
                break
        return batch

    def __next__(self) -> T:
        if self._position >= len(self._buffer):
            if self._source is None:
                raise StopIteration
            self._buffer, self._position = self._portal.call_with_timeout(self._timeout, self._fetch), 0
            if not self._buffer:
                self._source = None
                raise StopIteration
        item = self._buffer[self._position]
        self._position += 1
        return item

    def close(self) -> None:
        """Stop early and release the async iterator."""
        source, self._source = self._source, None
        self._buffer, self._position = [], 0
        aclose = getattr(source, "aclose", None)
        if aclose is not None and self._portal.running:
            self._portal.call_with_timeout(self._timeout, aclose)

    def __del__(self) -> None:
        # Never block in a finalizer: it may run in any thread, even one the portal is starting and
        # waiting for. Only schedule the close on the portal's loop.
        source, self._source = self._source, None
        aclose = getattr(source, "aclose", None)
        if aclose is not None and self._portal.running:
            try:
                self._portal.spawn(aclose)
            except Exception:  # pragma: no cover - interpreter shutdown
                pass
