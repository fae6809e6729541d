"""The emulator's model and its accounting, checked without a clock: the waits are recorded, not slept."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from aiodepot import ObjectNotFound, Store
from aiodepot.emulation import Emulator

CONFIG = {"flat/": {"levels": [0]}}


class RecordingEmulator(Emulator):
    """Notes the waits it owes instead of sleeping them."""

    __slots__ = ("waits",)

    def __init__(self, latency: float = 0.0, bandwidth: float = 0.0) -> None:
        super().__init__(latency, bandwidth)
        self.waits: list[float] = []

    async def _wait(self, seconds: float) -> None:
        self.waits.append(seconds)


async def test_a_round_trip_waits_what_it_lacks_of_the_latency() -> None:
    emulator = RecordingEmulator(latency=1000)
    started = emulator.begin()
    assert emulator.in_flight == 1
    await emulator.delay(started, 0)
    [wait] = emulator.waits
    assert 999 < wait <= 1000  # the latency, less the (tiny) time the call itself took
    assert (emulator.round_trips, emulator.in_flight, emulator.most_in_flight) == (1, 0, 1)
    assert emulator.longest == pytest.approx(1000)  # deadline - start: float rounding at a large clock


async def test_parallel_round_trips_overlap_their_latency_and_queue_for_the_link() -> None:
    emulator = RecordingEmulator(latency=10, bandwidth=8)  # 1 byte/s
    started = emulator.begin(4)
    await asyncio.gather(*(emulator.delay(started, 100) for _ in range(4)))
    # each one's latency counts from its own start; the link carries the bytes one call after the other
    assert [round(wait) for wait in emulator.waits] == [110, 210, 310, 410]
    assert (emulator.round_trips, emulator.in_flight, emulator.most_in_flight) == (4, 0, 4)
    assert emulator.longest == pytest.approx(410)
    assert emulator.link_busy_until == pytest.approx(started + 400)  # the link carried 400 bytes at 1 byte/s


async def test_a_failed_or_cancelled_call_ends_its_round_trip() -> None:
    name = f"memory://{uuid.uuid4().hex}"
    setup = Store(name, config=CONFIG)
    await setup.create()
    async with setup:
        await setup.store("flat/x", b"x")
    store = Store(name, config=CONFIG, latency=1000)
    async with store:
        with pytest.raises(ObjectNotFound):
            await store.load("flat/missing")  # fails at once: no latency to wait
        assert store.emulator.round_trips >= 1 and store.emulator.in_flight == 0
        load = asyncio.create_task(store.load("flat/x"))
        for _ in range(1000):  # a few steps of the loop bring it to its wait
            await asyncio.sleep(0)
            if load.done() or store.emulator.in_flight:
                break
        assert store.emulator.in_flight == 1
        load.cancel()  # in its 1000 s of latency
        with pytest.raises(asyncio.CancelledError):
            await load
        assert store.emulator.in_flight == 0
    await setup.destroy()
