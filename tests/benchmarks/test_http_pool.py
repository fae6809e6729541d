"""The HTTP pool scenario (``benchmarks.http_pool``): three clients against its closing server on loopback."""

from __future__ import annotations

from benchmarks import http_pool


def test_every_client_sends_its_requests_at_1_and_32_in_flight_and_the_cpu_is_measured() -> None:
    rows = http_pool.run(count=40)
    assert [(row.scenario.split(",")[0], row.contender) for row in rows] == [
        (f"http pool {in_flight} in flight", contender)
        for in_flight in (1, 32)
        for contender in ("aiodepot", "aiohttp", "asyncio streams")
    ]
    for row in rows:
        assert row.work == 40 and row.unit == "op" and row.note.endswith("req/s")
        assert row.client_cpu is not None and row.client_cpu > 0
        assert row.server_cpu is not None  # the server's own process (in 10 ms ticks: 40 requests may show 0)
