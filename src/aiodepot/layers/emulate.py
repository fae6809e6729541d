"""The emulation layer: makes the backend it wraps behave like a slow, far-away one.

[`Emulate`][aiodepot.layers.emulate.Emulate] stretches each call of the backend contract to the latency
and bandwidth of an [`Emulator`][aiodepot.emulation.Emulator]. The Store puts it right above the primary
backend, below a [`Cache`][aiodepot.layers.cache.Cache]: the emulation stands for the far-away primary, so
a cache hit is not delayed (as in borgstore).
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import TypeVar

from ..backends.base import Backend
from ..emulation import Emulator
from ..items import ItemInfo, Source, StoreValue
from .base import Layer

__all__ = ["Emulate"]

T = TypeVar("T")
R = TypeVar("R")


class Emulate(Layer):
    """Stretch every data call of ``inner`` to the emulated latency and bandwidth.

    Args:
        inner: the backend to slow down.
        emulator: the latency/bandwidth model; layers that share one emulator share its link.

    Each call (``info``, ``load``, ``store``, ``delete``, ``move``, ``hash``, ``gather``, ``defrag``,
    ``read_into``, ``store_file``) takes at least ``latency``; its bytes queue for the shared link. A batch
    call counts as one round trip per item, overlapping as parallel calls; a listing as one round trip.
    Lifecycle calls, ``mkdir``, ``rmdir`` and ``quota`` are not delayed.
    """

    def __init__(self, inner: Backend, emulator: Emulator) -> None:
        super().__init__(inner)
        self.emulator = emulator

    def __repr__(self) -> str:
        return f"<Emulate {self.emulator!r} over {self.inner!r}>"

    async def _timed(self, call: Awaitable[T], volume: int | Callable[[T], int] = 0) -> T:
        """One round trip: ``call``, then the wait for the latency and for ``volume`` bytes (or the result's)."""
        emulator = self.emulator
        started = emulator.begin()
        try:
            result = await call
        except BaseException:
            emulator.end()
            raise
        await emulator.delay(started, volume if isinstance(volume, int) else volume(result))
        return result

    async def _each(
        self,
        call: Awaitable[builtins.list[R]],
        count: int,
        volumes: Callable[[builtins.list[R]], Iterable[int]] = lambda outcomes: (0 for _ in outcomes),
    ) -> builtins.list[R]:
        """One round trip per item of a batch of ``count`` (moving ``volumes(outcomes)`` bytes each),
        overlapping as parallel calls do."""
        emulator = self.emulator
        started = emulator.begin(count)
        try:
            outcomes = await call
        except BaseException:
            emulator.end(count)
            raise
        await asyncio.gather(*(emulator.delay(started, volume) for volume in volumes(outcomes)))
        return outcomes

    async def _listing_round_trip(self) -> None:
        # a listing's latency is spent on the loop, before its first entry (also in the borgstore drop-in)
        emulator = self.emulator
        started = emulator.begin()
        try:
            remaining = emulator.owed(started, 0)
            if remaining > 0:
                await asyncio.sleep(remaining)
        finally:
            emulator.end()

    async def info(self, name: str) -> ItemInfo:
        """Delayed."""
        return await self._timed(self.inner.info(name))

    async def load(self, name: str, *, offset: int = 0, size: int | None = None) -> bytes:
        """Delayed by the latency and the value's time on the link."""
        return await self._timed(self.inner.load(name, offset=offset, size=size), len)

    async def store(self, name: str, value: StoreValue, *, if_absent: bool = False) -> None:
        """Delayed by the latency and the value's time on the link."""
        await self._timed(self.inner.store(name, value, if_absent=if_absent), len(value))

    async def delete(self, name: str) -> None:
        """Delayed."""
        await self._timed(self.inner.delete(name))

    async def move(self, src: str, dst: str) -> None:
        """Delayed."""
        await self._timed(self.inner.move(src, dst))

    async def hash(self, name: str, algorithm: str = "sha256") -> str:
        """Delayed (the digest is computed far away)."""
        return await self._timed(self.inner.hash(name, algorithm))

    async def gather(self, sources: Iterable[Source]) -> bytes:
        """Delayed by the latency and the bytes' time on the link."""
        return await self._timed(self.inner.gather(sources), len)

    async def defrag(
        self,
        sources: Iterable[Source],
        *,
        target: str | None = None,
        algorithm: str | None = None,
        namespace: str | None = None,
        levels: int = 0,
    ) -> str:
        """Delayed (done far away)."""
        return await self._timed(
            self.inner.defrag(sources, target=target, algorithm=algorithm, namespace=namespace, levels=levels)
        )

    async def read_into(self, name: str, fd: int, *, offset: int, size: int) -> None:
        """Delayed by the latency and the range's time on the link."""
        await self._timed(self.inner.read_into(name, fd, offset=offset, size=size), size)

    async def store_file(self, name: str, path: str, *, size: int) -> None:
        """Delayed by the latency and the file's time on the link."""
        await self._timed(self.inner.store_file(name, path, size=size), size)

    async def list(self, name: str) -> AsyncIterator[ItemInfo]:
        """One round trip for the listing, not one per entry."""
        async for info in self.list_range(name):
            yield info

    async def list_range(
        self, name: str, *, prefix: str = "", start_after: str | None = None
    ) -> AsyncIterator[ItemInfo]:
        """One round trip for the listing, not one per entry (the hints forwarded)."""
        listing = self.inner.list_range(name, prefix=prefix, start_after=start_after)
        await self._listing_round_trip()
        async for info in listing:
            yield info

    async def count(self, name: str, *, deleted: bool = False) -> int:
        """One round trip."""
        await self._listing_round_trip()
        return await self.inner.count(name, deleted=deleted)

    async def load_batch(self, names: Sequence[str]) -> builtins.list[bytes | Exception]:
        """One round trip per item."""
        return await self._each(
            self.inner.load_batch(names),
            len(names),
            lambda outcomes: (0 if isinstance(data, Exception) else len(data) for data in outcomes),
        )

    async def store_batch(self, items: Sequence[tuple[str, StoreValue]]) -> builtins.list[Exception | None]:
        """One round trip per item."""
        return await self._each(
            self.inner.store_batch(items),
            len(items),
            lambda outcomes: (
                0 if outcome is not None else len(value) for (_, value), outcome in zip(items, outcomes, strict=True)
            ),
        )

    async def delete_batch(self, names: Sequence[str]) -> builtins.list[Exception | None]:
        """One round trip per item."""
        return await self._each(self.inner.delete_batch(names), len(names))

    async def info_batch(self, names: Sequence[str]) -> builtins.list[ItemInfo | Exception]:
        """One round trip per item."""
        return await self._each(self.inner.info_batch(names), len(names))
