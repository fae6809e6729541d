"""Shared helpers for the benchmark scenarios."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable


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
