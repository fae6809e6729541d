"""Listing checks shared by the object-store backends (azure, gs, s3): ``list_range`` against the filtered
whole listing, and that a narrowed listing is asked of the service (a proxy counts the bytes)."""

from __future__ import annotations

from aiodepot import Store
from aiodepot.backends.base import Backend
from tests.servers.faultproxy import FaultProxy

__all__ = ["FLAT_NAMES", "check_list_range", "check_listing_pushed_down"]

FLAT_NAMES = 400
"""Items in the flat namespace of `check_listing_pushed_down`."""

RANGE_NAMES = ["ns/a", "ns/a.del", "ns/a-b", "ns/a/x", "ns/a0", "ns/ab", "ns/b.del", "ns/b/y", "ns/ba", "ns/c"]
RANGE_LISTING = [
    ("a", False),
    ("a", True),
    ("a-b", False),
    ("a.del", False),
    ("a0", False),
    ("ab", False),
    ("b", True),
    ("b.del", False),
    ("ba", False),
    ("c", False),
]
"""What listing ``ns`` gives after storing `RANGE_NAMES`: sorted by name, a directory beside a same-named item."""
BOUNDS: list[tuple[str, str | None]] = [
    ("a", None),
    ("", "a"),
    ("a", "a-b"),
    ("b", "b"),
    ("", "a.del"),
    ("z", None),
    ("", "c"),
]


async def check_list_range(backend: Backend) -> None:
    """Store `RANGE_NAMES` (one by one) in an open ``backend``; every ``list_range`` over ``BOUNDS`` gives what
    filtering the whole listing gives (a directory compares as ``name/``)."""
    for name in RANGE_NAMES:
        await backend.store(name, name.encode())
    whole = [(info.name, info.directory) async for info in backend.list("ns")]
    assert whole == RANGE_LISTING
    for prefix, start_after in BOUNDS:
        narrowed = [
            (i.name, i.directory) async for i in backend.list_range("ns", prefix=prefix, start_after=start_after)
        ]
        expected = [
            entry
            for entry in whole
            if (entry[0] + "/" if entry[1] else entry[0]).startswith(prefix)
            and (start_after is None or (entry[0] + "/" if entry[1] else entry[0]) > start_after)
        ]
        assert narrowed == expected, (prefix, start_after)


async def check_listing_pushed_down(proxy: FaultProxy, backend: Backend, *, start_key: bool = True) -> None:
    """Through ``proxy`` (between ``backend``, not yet created, and its service): `FLAT_NAMES` items in a flat
    namespace, listed whole, from a start key, by a prefix and by both; each narrowed listing gives the right
    names and fetches less than a tenth of the bytes of the whole one. ``start_key=False``: the service has no
    start key (Azure), so ``start_after`` alone is filtered by the client and not held to the byte bound."""
    store = Store(backend=backend, config={"flat/": {"levels": [0]}})
    await store.create()
    async with store:
        await store.store_many({f"flat/{i:04d}": b"" for i in range(FLAT_NAMES)}, max_concurrency=32)

        async def listed(**bounds: str) -> tuple[list[str], int]:
            before = proxy.counters().bytes_down
            names = [info.name async for info in store.list("flat", **bounds)]
            return names, proxy.counters().bytes_down - before

        everything, whole = await listed()
        tail, tail_bytes = await listed(start_after="0389")
        some, some_bytes = await listed(prefix="012")
        both, both_bytes = await listed(prefix="03" if start_key else "039", start_after="0395")
    await store.destroy()
    assert everything == [f"{i:04d}" for i in range(FLAT_NAMES)]
    assert tail == [f"{i:04d}" for i in range(390, FLAT_NAMES)]
    assert some == [f"{i:04d}" for i in range(120, 130)]
    assert both == [f"{i:04d}" for i in range(396, FLAT_NAMES)]
    narrowed = [some_bytes, both_bytes] + ([tail_bytes] if start_key else [])
    assert max(narrowed) * 10 < whole, (whole, tail_bytes, some_bytes, both_bytes)
