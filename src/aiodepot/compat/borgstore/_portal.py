"""How the compat layer calls into the async core: one Portal call per operation, errors translated."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, ParamSpec, TypeVar

from ...sync import Portal
from .backends.errors import translate

__all__ = ["construct", "direct", "iterate", "run"]

P = ParamSpec("P")
T = TypeVar("T")

LIST_BATCH = 1000
"""Items fetched per portal hop while a list generator runs."""


def run(func: Callable[P, Coroutine[Any, Any, T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``func(*args, **kwargs)`` on the shared portal; aiodepot errors leave as borgstore's classes."""
    try:
        return Portal.default().call(func, *args, **kwargs)
    except Exception as exc:
        translated = translate(exc)
        if translated is exc:
            raise
        raise translated from exc


def direct(func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a blocking twin of the async core (``Store._load_direct`` …) in this thread; errors as for `run`."""
    try:
        return func(*args, **kwargs)
    except Exception as exc:
        translated = translate(exc)
        if translated is exc:
            raise
        raise translated from exc


def construct(factory: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Call ``factory`` (e.g. an aiodepot backend class) here; aiodepot errors leave as borgstore's classes."""
    try:
        return factory(*args, **kwargs)
    except Exception as exc:
        translated = translate(exc)
        if translated is exc:
            raise
        raise translated from exc


def iterate(
    open_iterator: Callable[[], AsyncIterator[T]],
    *,
    batch: int = LIST_BATCH,
    on_fetch: Callable[[int], None] | None = None,
) -> Iterator[T]:
    """Yield what the async iterator made by ``open_iterator`` yields, fetching ``batch`` items per hop.

    ``on_fetch`` gets the nanoseconds each hop took. Closing the generator early closes the async iterator.
    """
    source: AsyncIterator[T] | None = None

    async def fetch() -> list[T]:
        nonlocal source
        if source is None:
            source = open_iterator()
        items: list[T] = []
        async for item in source:
            items.append(item)
            if len(items) >= batch:
                break
        return items

    async def close() -> None:
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()

    finished = False
    try:
        while True:
            started = time.perf_counter_ns()
            try:
                items = run(fetch)
            finally:
                if on_fetch is not None:
                    on_fetch(time.perf_counter_ns() - started)
            if not items:
                finished = True
                return
            yield from items
            if len(items) < batch:
                finished = True
                return
    finally:
        if not finished and source is not None:
            run(close)
