"""Shared helpers for the benchmark scenarios."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any


@dataclasses.dataclass
class Row:
    """One measurement: a contender doing one operation of a scenario."""

    scenario: str
    operation: str
    contender: str
    seconds: float
    note: str = ""


def timed(func: Callable[[], object]) -> float:
    """Seconds ``func()`` takes."""
    started = time.perf_counter()
    func()
    return time.perf_counter() - started


def names(count: int, namespace: str = "data") -> list[str]:
    """``count`` realistic 64-hex-digit item names."""
    return [f"{namespace}/{i:064x}" for i in range(count)]


def sequential_store_load(store: Any, items: Sequence[str], value: bytes) -> dict[str, float]:
    """Seconds to store, then load, every item one call after another (how borgstore is used)."""
    return {
        "store": timed(lambda: [store.store(name, value) for name in items]),
        "load": timed(lambda: [store.load(name) for name in items]),
    }


async def bulk_store_load(store: Any, items: Sequence[str], value: bytes) -> dict[str, float]:
    """Seconds for aiodepot's ``store_many`` of every item, then ``load_many`` of them, on an open Store."""
    started = time.perf_counter()
    await store.store_many((name, value) for name in items)
    stored = time.perf_counter() - started
    started = time.perf_counter()
    await store.load_many(items)
    return {"store": stored, "load": time.perf_counter() - started}
