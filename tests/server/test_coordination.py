"""The server's gate (whole-store operations alone) and its per-name locks."""

from __future__ import annotations

import asyncio

from aiodepot.server._coordination import Gate, NameLocks


async def test_an_exclusive_holder_waits_for_the_shared_ones_and_goes_before_new_ones() -> None:
    gate = Gate()
    order: list[str] = []
    release_shared = asyncio.Event()

    async def shared(name: str, wait: asyncio.Event | None = None) -> None:
        async with gate.shared():
            order.append(f"{name} in")
            if wait is not None:
                await wait.wait()
            order.append(f"{name} out")

    async def exclusive() -> None:
        async with gate.exclusive():
            order.append("exclusive")

    first = asyncio.create_task(shared("first", release_shared))
    await asyncio.sleep(0)
    closing = asyncio.create_task(exclusive())
    await asyncio.sleep(0)
    later = asyncio.create_task(shared("later"))
    await asyncio.sleep(0.01)
    assert order == ["first in"]  # the exclusive one waits for "first"; "later" waits for the exclusive one
    release_shared.set()
    await asyncio.gather(first, closing, later)
    assert order == ["first in", "first out", "exclusive", "later in", "later out"]


async def test_one_writer_of_a_name_at_a_time_and_no_lock_kept_after() -> None:
    locks = NameLocks()
    held: dict[str, str] = {}
    most_at_once = 0

    async def write(tag: str, *names: str) -> None:
        nonlocal most_at_once
        async with locks.hold(*names):
            assert not held.keys() & set(names), f"{tag} got a name someone holds: {held}"
            held.update(dict.fromkeys(names, tag))
            most_at_once = max(most_at_once, len(set(held.values())))
            await asyncio.sleep(0.01)
            for name in names:
                del held[name]

    # "b" and "c" name the same two in opposite orders: sorted, they never wait for each other
    await asyncio.gather(write("a", "x"), write("b", "x", "y"), write("c", "y", "x"), write("d", "z"))
    assert most_at_once == 2  # "d" names nothing the others do: it ran beside them
    assert locks._locks == {}


async def test_a_cancelled_waiter_holds_nothing_and_leaves_no_lock() -> None:
    locks = NameLocks()
    holding = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with locks.hold("x"):
            holding.set()
            await release.wait()

    first = asyncio.create_task(holder())
    await holding.wait()
    waiter = asyncio.create_task(locks.hold("a", "x").__aenter__())  # takes "a", then waits for "x"
    await asyncio.sleep(0.01)
    assert set(locks._locks) == {"a", "x"}
    waiter.cancel()
    await asyncio.wait([waiter])
    assert set(locks._locks) == {"x"}  # "a" given back, no longer counted as waiting for "x"
    release.set()
    await first
    assert locks._locks == {}
    async with locks.hold("a", "x"):  # free again
        pass
