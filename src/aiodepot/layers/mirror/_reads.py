"""Reads of the mirror layer: the first good answer (children asked in order, or raced), per item for
batches, and the merge of the children's listings."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Literal, TypeVar

from ...backends.base import Backend
from ...errors import IntegrityError, InvalidName, ObjectNotFound, StoreError, StoreStateError
from ...items import ItemInfo

__all__ = ["ReadMode", "first_answer", "merged_listing", "resolve_batch"]

logger = logging.getLogger("aiodepot.layers.mirror")

T = TypeVar("T")
ReadMode = Literal["ordered", "fastest"]

FATAL = (InvalidName, StoreStateError)  # the call itself is wrong: asking another child cannot help


async def first_answer(
    name: str,
    live: Sequence[Backend],
    call: Callable[[Backend], Awaitable[T]],
    *,
    found: Callable[[T], bool] = lambda _: True,
    ordered: bool,
) -> tuple[T, Backend, builtins.list[Backend]]:
    """The first good answer for ``name``: (result, the child that gave it, children that lack it).

    ``ordered`` asks the children one after the other, else all at once (the others are cancelled).
    Raises ``ObjectNotFound`` if no child has the item, or the first child's error if some failed and
    none had it.
    """
    lacking: builtins.list[Backend] = []
    errors: builtins.list[BaseException] = []
    missing: BaseException | None = None

    def judge(child: Backend, outcome: T | BaseException) -> bool:
        nonlocal missing
        if isinstance(outcome, FATAL):
            raise outcome
        if isinstance(outcome, ObjectNotFound | IntegrityError) or (
            not isinstance(outcome, BaseException) and not found(outcome)
        ):
            lacking.append(child)
            if isinstance(outcome, IntegrityError):
                errors.append(outcome)
            elif missing is None:
                missing = outcome if isinstance(outcome, BaseException) else None
            return False
        if isinstance(outcome, BaseException):
            if not isinstance(outcome, StoreError):
                raise outcome
            errors.append(outcome)
            return False
        return True

    if ordered or len(live) == 1:
        for child in live:
            outcome: Any
            try:
                outcome = await call(child)
            except Exception as exc:
                outcome = exc
            if judge(child, outcome):
                return outcome, child, lacking
    else:
        tasks = {asyncio.ensure_future(call(child)): child for child in live}
        try:
            pending = set(tasks)
            while pending:
                finished, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in sorted(finished, key=lambda t: live.index(tasks[t])):
                    error = task.exception()
                    outcome = error if error is not None else task.result()
                    if judge(tasks[task], outcome):
                        return outcome, tasks[task], lacking
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    if errors:
        raise errors[0]
    if missing is not None:
        raise missing
    raise ObjectNotFound(name)


async def resolve_batch(
    names: Sequence[str],
    live: Sequence[Backend],
    call: Callable[[Backend, builtins.list[str]], Awaitable[builtins.list[T | Exception]]],
    found: Callable[[T], bool],
    *,
    ordered: bool,
) -> tuple[builtins.list[T | Exception], builtins.list[Backend | None], builtins.list[builtins.list[Backend]]]:
    """Per item, the first child's good answer, the child that gave it and the children that lack it;
    ordered: children asked in turn for what is still open; else all children at once, answers taken as
    they come."""
    count = len(names)
    results: builtins.list[T | Exception | None] = [None] * count
    sources: builtins.list[Backend | None] = [None] * count
    lacking: builtins.list[builtins.list[Backend]] = [[] for _ in range(count)]
    errors: builtins.list[Exception | None] = [None] * count
    open_items = set(range(count))

    def take(
        child: Backend, indexes: builtins.list[int], outcome: builtins.list[T | Exception] | BaseException
    ) -> None:
        for position, index in enumerate(indexes):
            if index not in open_items:
                continue
            item = outcome if isinstance(outcome, BaseException) else outcome[position]
            if isinstance(item, FATAL):
                raise item
            if isinstance(item, BaseException):
                if not isinstance(item, Exception):
                    raise item
                if isinstance(item, ObjectNotFound | IntegrityError):
                    lacking[index].append(child)
                if errors[index] is None or isinstance(errors[index], ObjectNotFound):
                    errors[index] = item
            elif not found(item):
                lacking[index].append(child)
                results[index] = item
            else:
                results[index], sources[index] = item, child
                open_items.discard(index)

    if ordered or len(live) == 1:
        for child in live:
            if not open_items:
                break
            indexes = sorted(open_items)
            try:
                outcome: builtins.list[T | Exception] | BaseException = await call(child, [names[i] for i in indexes])
            except Exception as exc:
                outcome = exc
            take(child, indexes, outcome)
    else:
        everything = builtins.list(range(count))
        tasks = {asyncio.ensure_future(call(child, builtins.list(names))): child for child in live}
        try:
            pending = set(tasks)
            while pending and open_items:
                finished, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in sorted(finished, key=lambda t: live.index(tasks[t])):
                    error = task.exception()
                    take(tasks[task], everything, error if error is not None else task.result())
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    final: builtins.list[T | Exception] = []
    for index in range(count):
        result = results[index]
        if index in open_items:
            error = errors[index]
            if result is not None and (error is None or isinstance(error, ObjectNotFound)):
                final.append(result)  # a "not found" answer (info)
            else:
                final.append(error if error is not None else ObjectNotFound(names[index]))
        else:
            assert result is not None
            final.append(result)
    return final, sources, lacking


async def merged_listing(name: str, live: Sequence[Backend]) -> AsyncIterator[ItemInfo]:
    """The union of the children's listings of ``name``, sorted, each name once (the first child's info wins).

    A child that lacks the directory adds nothing; if none has it, ``ObjectNotFound``. A child that fails
    is skipped while another one answers.
    """
    streams = [child.list(name) for child in live]
    heads: builtins.list[ItemInfo | None] = [None] * len(streams)
    active: builtins.list[int] = []
    try:
        firsts = await asyncio.gather(*(next_or(stream) for stream in streams), return_exceptions=True)
        errors: builtins.list[BaseException] = []
        missing: BaseException | None = None
        for index, first in enumerate(firsts):
            if isinstance(first, ObjectNotFound):
                missing = missing or first
            elif isinstance(first, FATAL) or (isinstance(first, BaseException) and not isinstance(first, StoreError)):
                raise first
            elif isinstance(first, BaseException):
                errors.append(first)
                logger.warning("mirror: listing %r on %r failed: %s", name, live[index], first)
            else:
                active.append(index)
                heads[index] = first
        if not active:
            raise errors[0] if errors else (missing or ObjectNotFound(name))
        while True:
            candidates = [heads[i] for i in active if heads[i] is not None]
            if not candidates:
                return
            smallest = min(info.name for info in candidates if info is not None)
            chosen = next(heads[i] for i in active if heads[i] is not None and heads[i].name == smallest)  # type: ignore[union-attr]
            assert chosen is not None
            yield chosen
            advance = [i for i in active if heads[i] is not None and heads[i].name == smallest]  # type: ignore[union-attr]
            for i in advance:  # one after the other: listings are buffered, a task per step costs more
                heads[i] = await next_or(streams[i])
    finally:
        for stream in streams:
            with contextlib.suppress(Exception):
                await aclose(stream)


async def next_or(stream: AsyncIterator[T]) -> T | None:
    """The next item of ``stream``, or None at its end."""
    try:
        return await anext(stream)
    except StopAsyncIteration:
        return None


async def aclose(stream: AsyncIterator[Any]) -> None:
    """Close an async generator now, so its ``finally`` runs."""
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()
