"""The REST scenario (``benchmarks.rest``): every client/server pair, the small values in rounds."""

from __future__ import annotations

import pytest

from benchmarks import common, rest


def test_every_pair_stores_and_loads_its_share_in_each_round(monkeypatch: pytest.MonkeyPatch) -> None:
    orders: list[list[int]] = []
    balanced = common.balanced_orders

    def recorded(count: int) -> list[list[int]]:
        orders.extend(balanced(count))
        return balanced(count)

    monkeypatch.setattr(rest, "balanced_orders", recorded)
    monkeypatch.setattr(rest, "local_dirs", lambda: common.local_dirs()[:1])
    rows = rest.run(count=16, size=1024, big_mib=1)
    pairs = [f"{client} client -> {server} server" for server in rest.SERVERS for client in rest.CLIENTS]
    small = [row for row in rows if row.unit == "op"]
    assert [(row.operation, row.contender) for row in small] == [
        (op, pair) for op in ("store", "load") for pair in pairs
    ]
    for row in small:
        assert row.work == 16 and row.note == f"{16 / row.seconds:,.0f} items/s"
        assert row.client_cpu is not None and row.client_cpu > 0 and row.server_cpu is not None
    assert [(row.operation, row.contender) for row in rows if row.unit == "MB"] == [
        ("store", rest.PAIR),
        ("load", rest.PAIR),
    ]
    assert len(orders) == rest.ROUNDS and sorted(order[0] for order in orders) == [0, 1, 2, 3]
