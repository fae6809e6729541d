"""The moto probe (``benchmarks.moto_probe``): moto's app on werkzeug's threaded server, counting per object
request whether its thread found the request and the client's end waiting; against a real probe server."""

from __future__ import annotations

import asyncio

import pytest

from aiodepot import Store
from benchmarks import moto_probe


def test_the_probe_counts_each_object_store_and_load_once() -> None:
    server = moto_probe.start_probe_server()
    try:

        async def run() -> dict[str, dict[str, float]]:
            store = Store(server.url("probe", "store"), backend_options={"create_bucket": True})
            await store.create()
            async with store:
                await asyncio.to_thread(moto_probe.take_counts, server)  # what the create and open asked
                for i in range(5):
                    await store.store(f"k{i}", b"v" * 100)
                for i in range(5):
                    assert await store.load(f"k{i}") == b"v" * 100
                return await asyncio.to_thread(moto_probe.take_counts, server)

        counts = asyncio.run(run())
        assert counts["PUT"]["requests"] == 5 and counts["GET"]["requests"] == 5  # no bucket or listing calls
        for method in ("PUT", "GET"):
            seen = counts[method]
            assert 0 <= seen["first_look"] <= seen["requests"] and 0 <= seen["end_there"] <= seen["drains"] <= 5
            assert seen["drains"] == 5  # werkzeug drains after every reply: each one measured
            assert seen["cpu"] > 0
        assert moto_probe.take_counts(server) == {}  # taken means reset; the probe's own requests do not count
    finally:
        server.stop()


def test_the_probe_runs_its_rounds_and_prints_a_row_per_contender_and_operation(
    capsys: pytest.CaptureFixture[str],
) -> None:
    moto_probe.main(["--count", "20", "--rounds", "2"])
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    assert [(row[0], row[1], row[2]) for row in rows] == [
        ("1", "aiodepot", "store"),
        ("1", "aiodepot", "load"),
        ("1", "obstore", "store"),
        ("1", "obstore", "load"),
        ("2", "obstore", "store"),
        ("2", "obstore", "load"),
        ("2", "aiodepot", "store"),
        ("2", "aiodepot", "load"),
    ]
    assert all(row[4].endswith("%") and row[5].endswith("%") and row[7] == "µs" for row in rows)
