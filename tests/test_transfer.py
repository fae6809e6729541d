"""The bounded fan-out engine."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiodepot.transfer import ByteBudget, Progress, plan_ranges, run_bounded


async def test_results_in_order_and_concurrency_bounded() -> None:
    running = peak = 0

    async def work(i: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.001 * (i % 5))
        running -= 1
        return i * i

    assert await run_bounded(list(range(200)), work, max_concurrency=7) == [i * i for i in range(200)]
    assert peak == 7


async def test_first_failure_cancels_the_rest_and_is_raised_as_itself() -> None:
    started: list[int] = []
    cancelled: list[int] = []

    async def work(i: int) -> int:
        started.append(i)
        if i == 3:
            raise LookupError("item 3")
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(i)
            raise
        return i

    with pytest.raises(LookupError, match="item 3") as caught:
        await asyncio.wait_for(run_bounded(list(range(100)), work, max_concurrency=5), 5)
    assert not isinstance(caught.value, BaseExceptionGroup)
    assert len(started) < 100  # the rest never started
    assert set(cancelled) == set(started) - {3}


async def test_return_exceptions_collects_per_item() -> None:
    async def work(i: int) -> int:
        if i % 3 == 0:
            raise ValueError(i)
        return i

    results = await run_bounded(list(range(9)), work, max_concurrency=4, return_exceptions=True)
    for i, result in enumerate(results):
        if i % 3 == 0:
            assert isinstance(result, ValueError) and result.args == (i,)
        else:
            assert result == i


async def test_progress_sync_and_async() -> None:
    events: list[Progress] = []
    await run_bounded(
        [b"a", b"bb", b"ccc"],
        lambda v: asyncio.sleep(0, v),
        max_concurrency=2,
        progress=events.append,
        bytes_total=6,
        bytes_of=lambda job, _: len(job),
    )
    assert [e.items_done for e in events] == [1, 2, 3]
    assert events[-1] == Progress(3, 3, 6, 6) and events[-1].fraction == 1.0

    seen: list[int] = []

    async def callback(progress: Progress) -> None:
        await asyncio.sleep(0)
        seen.append(progress.items_done)

    await run_bounded([1, 2], lambda v: asyncio.sleep(0, v), max_concurrency=1, progress=callback)
    assert seen == [1, 2]


async def test_progress_callback_failure_propagates() -> None:
    def callback(progress: Progress) -> None:
        raise RuntimeError("callback broke")

    with pytest.raises(RuntimeError, match="callback broke"):
        await run_bounded([1, 2, 3], lambda v: asyncio.sleep(0, v), max_concurrency=2, progress=callback)


async def test_empty_and_invalid() -> None:
    assert await run_bounded([], lambda v: asyncio.sleep(0, v), max_concurrency=3) == []
    with pytest.raises(ValueError):
        await run_bounded([1], lambda v: asyncio.sleep(0, v), max_concurrency=0)


def test_plan_ranges_merges_near_ranges_per_item() -> None:
    sources = [("a", 0, 10), ("a", 10, 5), ("b", 100, 10), ("a", 50, 5), ("a", -5, 5), ("b", 0, 0), ("a", 12, 2)]
    plan = plan_ranges(sources, max_gap=16)
    assert sorted(plan.reads) == sorted([("a", -5, 5), ("a", 0, 15), ("a", 50, 5), ("b", 100, 10)])
    blobs = {
        ("a", -5, 5): b"TAIL!",
        ("a", 0, 15): bytes(range(15)),
        ("a", 50, 5): b"fifty",
        ("b", 100, 10): b"B" * 10,
    }
    data = plan.assemble([blobs[read] for read in plan.reads])
    expected = bytes(range(10)) + bytes(range(10, 15)) + b"B" * 10 + b"fifty" + b"TAIL!" + bytes(range(12, 14))
    assert data == expected
    assert len(plan_ranges(sources, max_gap=100).reads) == 3  # 0..15 and 50..55 merge too
    assert len(plan_ranges([("a", 10, 1), ("a", 0, 1)], max_gap=0).reads) == 2
    with pytest.raises(ValueError):
        plan_ranges(sources, max_gap=-1)


@given(
    st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 300), st.integers(0, 40)), max_size=30),
    st.integers(0, 64),
)
def test_plan_ranges_assembles_exactly_what_was_asked(sources: list[tuple[str, int, int]], gap: int) -> None:
    items = {name: bytes((i * 7 + ord(name)) % 256 for i in range(400)) for name in "abc"}
    plan = plan_ranges(sources, gap)
    assert len(plan.reads) <= len(sources)
    fetched = [items[name][offset : offset + size] for name, offset, size in plan.reads]
    expected = b"".join(items[name][offset : offset + size] for name, offset, size in sources)
    assert plan.assemble(fetched) == expected


async def test_byte_budget_bounds_bytes_in_flight() -> None:
    budget = ByteBudget(100)
    peak = 0

    async def use(nbytes: int) -> None:
        nonlocal peak
        async with budget.reserve(nbytes):
            peak = max(peak, budget.in_flight)
            await asyncio.sleep(0.001)

    await asyncio.gather(*(use(n) for n in [30, 50, 40, 60, 10, 100, 250, 20] * 5))
    assert peak <= 100
    assert budget.in_flight == 0


async def test_byte_budget_is_first_come_first_served_and_survives_cancellation() -> None:
    budget = ByteBudget(100)
    await budget.acquire(80)
    order: list[str] = []

    async def waiter(name: str, nbytes: int) -> None:
        await budget.acquire(nbytes)
        order.append(name)

    big = asyncio.create_task(waiter("big", 50))
    small = asyncio.create_task(waiter("small", 10))  # would fit now, but queues behind "big"
    cancelled = asyncio.create_task(waiter("cancelled", 5))
    await asyncio.sleep(0.01)
    assert order == []
    cancelled.cancel()
    await asyncio.sleep(0.01)
    budget.release(80)
    await asyncio.gather(big, small)
    assert order == ["big", "small"]
    assert budget.in_flight == 60
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    with pytest.raises(ValueError):
        ByteBudget(0)
