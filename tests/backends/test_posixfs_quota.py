"""Quota on posixfs (``Store("file://...", quota=N)``), and its core rules on the memory backend.

The limit, overwrite and delete rules hold for both backends; persistence in ``quota.hid``, rebuilding it by
scanning and merging the usage of concurrent sessions are posixfs's.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

import aiodepot
from aiodepot import QuotaExceeded, Store

CONFIG = {"": {"levels": [0]}, "data/": {"levels": [2]}}
KEY_A = "data/" + "a1" * 32
KEY_B = "data/" + "b2" * 32
KEY_C = "data/" + "c3" * 32


def disk_state(path: Path) -> dict[str, bytes | None]:
    """Every file (with its content) and directory (None) below ``path``."""
    return {str(p.relative_to(path)): (p.read_bytes() if p.is_file() else None) for p in sorted(path.rglob("*"))}


def disk_usage(path: Path) -> int:
    """The bytes of the items: the store's own quota.hid and layout.hid are not usage."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and p.name not in ("quota.hid", "layout.hid"))


def temp_files(path: Path) -> list[Path]:
    return list(path.rglob("*.tmp"))


def quota_file(path: Path) -> str:
    return (path / "quota.hid").read_text()


async def backend_state(url: str) -> dict[str, bytes | None]:
    """Every item (with its value) and directory (None) of a store, seen through an unrestricted backend."""
    state: dict[str, bytes | None] = {}
    async with Store(url) as store:

        async def walk(name: str) -> None:
            async for info in store.backend.list(name):
                full = f"{name}/{info.name}" if name else info.name
                if info.directory:
                    state[full] = None
                    await walk(full)
                else:
                    state[full] = await store.backend.load(full)

        await walk("")
    return state


# limit, overwrite and delete: posixfs and memory ---------------------------------------------------------


@pytest.fixture(params=["file", "memory"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., Store]:
    """A factory of Stores on one fresh location (a directory or a unique memory store)."""
    url = (tmp_path / "store").as_uri() if request.param == "file" else f"memory://quota-{uuid.uuid4().hex}"

    def make(quota: int | None = None) -> Store:
        return Store(url, config=CONFIG, quota=quota)

    return make


@pytest.fixture
async def quota_store(make_store: Callable[..., Store]) -> AsyncIterator[Store]:
    """An open, empty store with a quota of 1000 bytes."""
    await make_store().create()
    store = make_store(quota=1000)
    async with store:
        yield store
    await make_store().destroy()


async def state_of(store: Store) -> dict[str, bytes | None]:
    assert store.url is not None
    return await backend_state(store.url)


async def test_quota_reports_limit_and_usage(quota_store: Store) -> None:
    assert await quota_store.quota() == {"limit": 1000, "usage": 0}
    await quota_store.store(KEY_A, b"a" * 300)
    await quota_store.store("config/main", b"c" * 12)
    assert await quota_store.quota() == {"limit": 1000, "usage": 312}


async def test_store_up_to_the_limit_succeeds(quota_store: Store) -> None:
    await quota_store.store(KEY_A, b"a" * 600)
    await quota_store.store(KEY_B, b"b" * 400)
    assert await quota_store.quota() == {"limit": 1000, "usage": 1000}
    await quota_store.store(KEY_C, b"")  # nothing more is nothing more
    assert await quota_store.load(KEY_B) == b"b" * 400


async def test_store_beyond_the_limit_raises_and_leaves_nothing(quota_store: Store) -> None:
    await quota_store.store(KEY_A, b"a" * 600)
    before = await state_of(quota_store)
    with pytest.raises(QuotaExceeded):
        await quota_store.store(KEY_B, b"b" * 401)
    assert not (await quota_store.info(KEY_B)).exists
    assert await quota_store.quota() == {"limit": 1000, "usage": 600}
    assert await state_of(quota_store) == before  # no item, no directory for it
    assert [info.name async for info in quota_store.list("data")] == [KEY_A.removeprefix("data/")]
    await quota_store.store(KEY_B, b"b" * 400)  # the failed attempt did not use up anything
    assert await quota_store.quota() == {"limit": 1000, "usage": 1000}


async def test_a_single_value_bigger_than_the_limit_is_refused(quota_store: Store) -> None:
    with pytest.raises(QuotaExceeded):
        await quota_store.store(KEY_A, bytes(1001))
    assert await quota_store.quota() == {"limit": 1000, "usage": 0}
    assert not (await quota_store.info(KEY_A)).exists


async def test_quota_exceeded_in_bulk_stores_only_what_fits(quota_store: Store) -> None:
    results = await quota_store.store_many(
        [(KEY_A, b"a" * 500), (KEY_B, b"b" * 500), (KEY_C, b"c" * 500)], max_concurrency=1, return_exceptions=True
    )
    assert results[:2] == [None, None]
    assert isinstance(results[2], QuotaExceeded)
    assert not (await quota_store.info(KEY_C)).exists
    assert await quota_store.quota() == {"limit": 1000, "usage": 1000}


async def test_overwrite_counts_only_the_difference(quota_store: Store) -> None:
    await quota_store.store(KEY_A, b"a" * 800)
    await quota_store.store(KEY_A, b"A" * 1000)  # +200: fits although 800 + 1000 would not
    assert await quota_store.quota() == {"limit": 1000, "usage": 1000}
    await quota_store.store(KEY_A, b"x" * 100)  # shrinking gives space back
    assert await quota_store.quota() == {"limit": 1000, "usage": 100}
    await quota_store.store(KEY_B, b"b" * 900)
    with pytest.raises(QuotaExceeded):
        await quota_store.store(KEY_A, b"y" * 101)  # +1 too many
    assert await quota_store.load(KEY_A) == b"x" * 100  # the old value is untouched
    assert await quota_store.quota() == {"limit": 1000, "usage": 1000}
    await quota_store.store(KEY_A, b"z" * 100)  # same size: no change needed
    assert await quota_store.load(KEY_A) == b"z" * 100


async def test_delete_frees_usage(quota_store: Store) -> None:
    await quota_store.store(KEY_A, b"a" * 700)
    await quota_store.store(KEY_B, b"b" * 300)
    with pytest.raises(QuotaExceeded):
        await quota_store.store(KEY_C, b"c" * 500)
    await quota_store.delete(KEY_A)
    assert await quota_store.quota() == {"limit": 1000, "usage": 300}
    await quota_store.store(KEY_C, b"c" * 700)
    assert await quota_store.quota() == {"limit": 1000, "usage": 1000}
    await quota_store.delete_many([KEY_B, KEY_C])
    assert await quota_store.quota() == {"limit": 1000, "usage": 0}


async def test_soft_delete_keeps_usage_and_a_replacing_move_frees_it(quota_store: Store) -> None:
    await quota_store.store(KEY_A, b"a" * 400)
    await quota_store.store(KEY_B, b"b" * 300)
    await quota_store.move(KEY_A, delete=True)  # still on the storage
    assert await quota_store.quota() == {"limit": 1000, "usage": 700}
    await quota_store.delete(KEY_A, deleted=True)
    assert await quota_store.quota() == {"limit": 1000, "usage": 300}
    await quota_store.store(KEY_C, b"c" * 200)
    await quota_store.move(KEY_C, KEY_B)  # replaces the 300 bytes of KEY_B
    assert await quota_store.quota() == {"limit": 1000, "usage": 200}
    assert await quota_store.load(KEY_B) == b"c" * 200


async def test_no_quota_reports_minus_one(make_store: Callable[..., Store]) -> None:
    store = make_store()
    await store.create()
    async with store:
        await store.store(KEY_A, b"a" * 5000)
        assert await store.quota() == {"limit": -1, "usage": -1}


async def test_quota_must_be_a_byte_count(make_store: Callable[..., Store]) -> None:
    with pytest.raises(ValueError, match="quota"):
        make_store(quota=-1)


# posixfs: persistence in quota.hid ---------------------------------------------------------------------


def file_store(path: Path, quota: int | None = None) -> Store:
    return Store(path.as_uri(), config=CONFIG, quota=quota)


@pytest.fixture
async def store_dir(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    await file_store(path).create()
    return path


async def test_quota_exceeded_leaves_no_temp_file_on_disk(store_dir: Path) -> None:
    async with file_store(store_dir, quota=1000) as store:
        await store.store(KEY_A, b"a" * 900)
        before = disk_state(store_dir)
        for name in (KEY_A, KEY_B, "config/new"):
            with pytest.raises(QuotaExceeded):
                await store.store(name, b"x" * 1101)
        assert disk_state(store_dir) == before
        assert not temp_files(store_dir)


async def test_usage_persists_in_quota_hid(store_dir: Path) -> None:
    async with file_store(store_dir, quota=10_000) as store:
        await store.store(KEY_A, b"a" * 1234)
        await store.store("config/main", b"c" * 66)
        await store.store(KEY_B, b"b" * 500)
        await store.delete(KEY_B)
        assert (await store.quota())["usage"] == 1300
    assert quota_file(store_dir) == "1300"
    assert disk_usage(store_dir) == 1300
    async with file_store(store_dir, quota=10_000) as store:
        assert await store.quota() == {"limit": 10_000, "usage": 1300}


async def test_reopening_takes_the_usage_from_quota_hid(store_dir: Path) -> None:
    async with file_store(store_dir, quota=10_000) as store:
        await store.store(KEY_A, b"a" * 2000)
    (store_dir / "untracked").write_bytes(b"u" * 300)  # not known to the quota: proves no rescan
    async with file_store(store_dir, quota=2500) as store:
        assert await store.quota() == {"limit": 2500, "usage": 2000}
        await store.store(KEY_B, b"b" * 500)
        with pytest.raises(QuotaExceeded):
            await store.store(KEY_C, b"c")
    assert quota_file(store_dir) == "2500"


async def test_a_missing_quota_hid_is_rebuilt_by_scanning(store_dir: Path) -> None:
    async with file_store(store_dir) as store:  # no quota: nothing tracked
        await store.store(KEY_A, b"a" * 700)
        await store.store("config/main", b"c" * 50)
        await store.store(KEY_B, b"b" * 30)
        await store.move(KEY_B, delete=True)
    assert not (store_dir / "quota.hid").exists()
    async with file_store(store_dir, quota=1000) as store:
        assert await store.quota() == {"limit": 1000, "usage": 780}
        with pytest.raises(QuotaExceeded):
            await store.store(KEY_C, b"c" * 221)
        await store.store(KEY_C, b"c" * 220)
    assert quota_file(store_dir) == "1000"


@pytest.mark.parametrize("damage", [b"", b"garbage", b"12ab", b"\x00\xff"])
async def test_a_damaged_quota_hid_is_rebuilt_by_scanning(store_dir: Path, damage: bytes) -> None:
    async with file_store(store_dir, quota=10_000) as store:
        await store.store(KEY_A, b"a" * 4321)
    (store_dir / "quota.hid").write_bytes(damage)
    async with file_store(store_dir, quota=10_000) as store:
        assert await store.quota() == {"limit": 10_000, "usage": 4321}
    assert quota_file(store_dir) == "4321"


async def test_concurrent_sessions_merge_their_usage(store_dir: Path) -> None:
    first = file_store(store_dir, quota=10**9)
    second = file_store(store_dir, quota=10**9)
    await first.open()
    await second.open()
    try:
        await first.store(KEY_A, b"a" * 1000)
        await second.store(KEY_B, b"b" * 20_000)
        await first.store("config/one", b"1" * 300)
        await second.store("config/two", b"2" * 4000)
        await first.delete("config/one")
        await second.store(KEY_B, b"b" * 15_000)  # -5000
        await asyncio.gather(
            *(first.store(f"data/{i:064x}", bytes(i)) for i in range(1, 40)),
            *(second.store(f"data/{i:064x}", bytes(i)) for i in range(100, 140)),
        )
        await first.close()
        # the first session's share is persisted, the second's is pending
        assert quota_file(store_dir) == str(1000 + sum(range(1, 40)))
    finally:
        if first.opened:
            await first.close()
        await second.close()
    expected = 1000 + 15_000 + 4000 + sum(range(1, 40)) + sum(range(100, 140))
    assert disk_usage(store_dir) == expected
    assert quota_file(store_dir) == str(expected)
    async with file_store(store_dir, quota=10**9) as store:
        assert (await store.quota())["usage"] == expected


async def test_sessions_that_open_and_close_in_turn_see_each_others_usage(store_dir: Path) -> None:
    first = file_store(store_dir, quota=5000)
    await first.open()
    try:
        await first.store(KEY_A, b"a" * 3000)
        async with file_store(store_dir, quota=5000) as second:
            await second.store(KEY_B, b"b" * 1000)
        async with file_store(store_dir, quota=5000) as third:
            assert (await third.quota())["usage"] == 1000  # the first session has not persisted yet
            await third.delete(KEY_B)
    finally:
        await first.close()
    assert quota_file(store_dir) == "3000" == str(disk_usage(store_dir))


async def test_without_quota_open_removes_a_stale_quota_hid(store_dir: Path) -> None:
    async with file_store(store_dir, quota=10_000) as store:
        await store.store(KEY_A, b"a" * 100)
    assert (store_dir / "quota.hid").exists()
    async with file_store(store_dir) as store:
        assert not (store_dir / "quota.hid").exists()
        assert await store.quota() == {"limit": -1, "usage": -1}
        await store.store(KEY_B, b"b" * 200)
    assert not (store_dir / "quota.hid").exists()
    async with file_store(store_dir, quota=10_000) as store:  # the untracked session's data is counted
        assert (await store.quota())["usage"] == 300


async def test_quota_hid_is_not_an_item(store_dir: Path) -> None:
    async with file_store(store_dir, quota=10_000) as store:
        await store.store("config/main", b"x")
        await store.close()
        await store.open()
        assert (store_dir / "quota.hid").exists()
        assert [info.name async for info in store.list("")] == ["main"]
        with pytest.raises(aiodepot.InvalidName):
            await store.load("quota.hid")


async def test_quota_state_reads_the_accounting_and_the_adapter_hooks_move_it(store_dir: Path) -> None:
    """``quota_state`` (what the borgstore drop-in reads), ``update_quota`` and ``set_quota_persisted_at``
    (what it writes through), on the backend directly."""
    from aiodepot.backends.posixfs import PosixFSBackend, QuotaState

    backend = PosixFSBackend(store_dir, quota=10_000)
    assert backend.quota_state is None  # closed
    await backend.open()
    try:
        opened = backend.quota_state
        assert opened is not None and opened.persisted_at > 0  # open persists once
        assert (opened.limit, opened.usage, opened.persisted) == (10_000, 0, 0)
        await backend.store("item", b"x" * 100)
        assert backend.quota_state == QuotaState(10_000, 100, 0, opened.persisted_at)  # small: not persisted yet
        await asyncio.to_thread(backend.update_quota, 20_000)  # unchecked, past the limit; small: not persisted
        assert backend.quota_state == QuotaState(10_000, 20_100, 0, opened.persisted_at)
        long_ago = time.monotonic() - 301  # the persist interval is 300 s
        backend.set_quota_persisted_at(long_ago)
        assert backend.quota_state == QuotaState(10_000, 20_100, 0, long_ago)
        await asyncio.to_thread(backend.update_quota)  # due now
        state = backend.quota_state
        assert state is not None and state.persisted == 20_100 and state.persisted_at > long_ago
        assert quota_file(store_dir) == "20100"
        await asyncio.to_thread(backend.update_quota, -20_000, force=True)
        assert quota_file(store_dir) == "100"
    finally:
        await backend.close()
    assert backend.quota_state is None
    without = PosixFSBackend(store_dir)
    await without.open()
    try:
        assert without.quota_state is None
        without.update_quota(5, force=True)  # no quota: nothing to account, no file I/O
        without.set_quota_persisted_at(1.0)
        assert without.quota_state is None
    finally:
        await without.close()
