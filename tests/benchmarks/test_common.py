"""Helpers of the benchmark scenarios (``benchmarks.common``)."""

from __future__ import annotations

import collections

import pytest
from benchmarks.common import balanced_orders


@pytest.mark.parametrize("count", [2, 3, 4, 5, 6, 7])
def test_balanced_orders_put_each_contender_in_each_place_and_after_each_other_equally(count: int) -> None:
    orders = balanced_orders(count)
    assert len(orders) == (count if count % 2 == 0 else 2 * count)
    assert all(sorted(order) == list(range(count)) for order in orders)
    for place in range(count):
        seen = collections.Counter(order[place] for order in orders)
        assert set(seen.values()) == {len(orders) // count}
    pairs = collections.Counter((order[i], order[i + 1]) for order in orders for i in range(count - 1))
    assert len(pairs) == count * (count - 1)  # every ordered pair of two different contenders ...
    assert len(set(pairs.values())) == 1  # ... equally often


def test_four_contenders_take_the_williams_orders() -> None:
    assert balanced_orders(4) == [[0, 1, 3, 2], [1, 2, 0, 3], [2, 3, 1, 0], [3, 0, 2, 1]]
