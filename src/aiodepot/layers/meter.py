"""The metering layer: counts the calls and bytes that reach the backend it wraps.

[`Meter`][aiodepot.layers.meter.Meter] adds ``backend_<op>_calls`` and ``backend_<op>_volume`` to a
[`Stats`][aiodepot.stats.Stats] for loads, stores, deletes and gathers (a batch counts one call per item;
a ranged copy of ``load_file`` one load per range; ``store_file`` one store). The Store keeps one on top
of its layers; the borgstore drop-in keeps it right above the primary, so cache hits are not counted
there, as borgstore counts.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence

from ..backends.base import Backend, FirstRange
from ..items import ItemInfo, Source, StoreValue
from ..stats import Stats
from .base import Layer

__all__ = ["Meter"]


class Meter(Layer):
    """Count what reaches ``inner`` into ``stats``.

    Args:
        inner: the backend whose calls are counted.
        stats: the counters to add to (the Store's).
    """

    def __init__(self, inner: Backend, stats: Stats) -> None:
        super().__init__(inner)
        self.stats = stats

    def __repr__(self) -> str:
        return f"<Meter over {self.inner!r}>"

    async def load(self, name: str, *, offset: int = 0, size: int | None = None) -> bytes:
        """Counted: one load and its bytes."""
        data = await self.inner.load(name, offset=offset, size=size)
        self.stats.add_call("backend_load_calls", "backend_load_volume", len(data))
        return data

    async def load_first(self, name: str, offset: int, size: int) -> FirstRange:
        """Counted as `load`: one load and its bytes (an ``info`` it takes below is not counted apart)."""
        first = await self.inner.load_first(name, offset, size)
        self.stats.add_call("backend_load_calls", "backend_load_volume", len(first.data))
        return first

    async def load_into(
        self, name: str, offset: int, buffer: bytearray | memoryview, *, version: str | None = None
    ) -> int:
        """Counted as `load`: one load and its bytes."""
        count = await self.inner.load_into(name, offset, buffer, version=version)
        self.stats.add_call("backend_load_calls", "backend_load_volume", count)
        return count

    async def store(self, name: str, value: StoreValue, *, if_absent: bool = False) -> None:
        """Counted: one store and its bytes."""
        await self.inner.store(name, value, if_absent=if_absent)
        self.stats.add_call("backend_store_calls", "backend_store_volume", len(value))

    async def delete(self, name: str) -> None:
        """Counted: one delete."""
        await self.inner.delete(name)
        self.stats.add("backend_delete_calls")

    # blocking twins: the meter needs no event loop, so it offers what the backend below offers

    def has_blocking(self, operation: str) -> bool:
        """What the metered backend offers."""
        return self.inner.has_blocking(operation)

    def info_blocking(self, name: str) -> ItemInfo:
        """Forwarded (single infos are not counted, as in `info`)."""
        return self.inner.info_blocking(name)

    def load_blocking(self, name: str, *, offset: int = 0, size: int | None = None) -> bytes:
        """Counted as `load`."""
        data = self.inner.load_blocking(name, offset=offset, size=size)
        self.stats.add_call("backend_load_calls", "backend_load_volume", len(data))
        return data

    def store_blocking(self, name: str, value: StoreValue) -> None:
        """Counted as `store`."""
        self.inner.store_blocking(name, value)
        self.stats.add_call("backend_store_calls", "backend_store_volume", len(value))

    def delete_blocking(self, name: str) -> None:
        """Counted as `delete`."""
        self.inner.delete_blocking(name)
        self.stats.add("backend_delete_calls")

    async def gather(self, sources: Iterable[Source]) -> bytes:
        """Counted: one gather and its bytes."""
        data = await self.inner.gather(sources)
        self.stats.add("backend_gather_calls")
        if data:
            self.stats.add("backend_gather_volume", len(data))
        return data

    async def read_into(self, name: str, fd: int, *, offset: int, size: int) -> None:
        """Counted as one load of ``size`` bytes."""
        await self.inner.read_into(name, fd, offset=offset, size=size)
        self.stats.add("backend_load_calls")
        if size:
            self.stats.add("backend_load_volume", size)

    async def store_file(self, name: str, path: str, *, size: int) -> None:
        """Counted as one store of ``size`` bytes."""
        await self.inner.store_file(name, path, size=size)
        self.stats.add("backend_store_calls")
        if size:
            self.stats.add("backend_store_volume", size)

    def _count_batch(self, op: str, count: int, volume: int) -> None:
        self.stats.add(f"backend_{op}_calls", count)
        if volume:
            self.stats.add(f"backend_{op}_volume", volume)

    async def load_batch(self, names: Sequence[str]) -> builtins.list[bytes | Exception]:
        """Counted: one load per item, and the bytes of those that succeeded."""
        volume = 0
        try:
            outcomes = await self.inner.load_batch(names)
            volume = sum(len(data) for data in outcomes if not isinstance(data, Exception))
        finally:
            self._count_batch("load", len(names), volume)
        return outcomes

    async def store_batch(self, items: Sequence[tuple[str, StoreValue]]) -> builtins.list[Exception | None]:
        """Counted: one store per item, and the bytes of those that succeeded."""
        volume = 0
        try:
            outcomes = await self.inner.store_batch(items)
            volume = sum(len(value) for (_, value), outcome in zip(items, outcomes, strict=True) if outcome is None)
        finally:
            self._count_batch("store", len(items), volume)
        return outcomes

    async def delete_batch(self, names: Sequence[str]) -> builtins.list[Exception | None]:
        """Counted: one delete per item."""
        try:
            return await self.inner.delete_batch(names)
        finally:
            self._count_batch("delete", len(names), 0)

    async def info_batch(self, names: Sequence[str]) -> builtins.list[ItemInfo | Exception]:
        """Counted: one info per item (``backend_info_calls``; single ``info`` calls are not counted)."""
        try:
            return await self.inner.info_batch(names)
        finally:
            self._count_batch("info", len(names), 0)
