"""copy_store and sync_stores between memory, posixfs and sqlite stores, with other nesting on each side."""

from __future__ import annotations

import os
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

import aiodepot
from aiodepot import Progress, Store, SyncStore
from aiodepot.backends.base import Backend
from aiodepot.backends.memory import MemoryBackend
from aiodepot.backends.posixfs import PosixFSBackend
from aiodepot.errors import ObjectNotFound, PermissionDenied, StoreNotOpen
from aiodepot.items import StoreValue
from aiodepot.replicate import Report, apply_plan, copy_store, plan_copy, plan_sync, sync_stores
from aiodepot.walk import walk

SRC_CONFIG = {"data/": {"levels": [1]}, "": {"levels": [0]}}
DST_CONFIG = {"data/": {"levels": [2]}, "": {"levels": [0]}}
ITEMS = {f"data/{i:04x}{'ab' * 4}": bytes([i]) * (i + 1) for i in range(40)} | {
    "config/main": b"settings",
    "config/sub/deep": b"deeper",
    "top": b"at the root",
}
KINDS = ("memory", "posixfs", "sqlite")

MakeStore = Callable[..., Awaitable[Store]]


@pytest.fixture
async def make_store(tmp_path: Path) -> AsyncIterator[MakeStore]:
    """Create and open a store of a kind; everything made is closed at the end."""
    opened: list[Store] = []

    async def make(kind: str, config: Mapping[str, Any] | None = None, **options: Any) -> Store:
        label = f"{kind}-{uuid.uuid4().hex[:8]}"
        if kind == "memory":
            store = Store(f"memory://{label}", config=config, **options)
        elif kind == "posixfs":
            store = Store((tmp_path / label).as_uri(), config=config, **options)
        elif kind == "sqlite":
            store = Store(f"sqlite://{tmp_path / label}.db", config=config, **options)
        else:
            store = Store(backend=options.pop("backend"), config=config, **options)
        await store.create()
        await store.open()
        opened.append(store)
        return store

    yield make
    for store in opened:
        if store.opened:
            await store.close()


async def contents(store: Store, namespace: str = "", *, deleted: bool = False) -> dict[str, bytes]:
    """Every item of ``namespace`` by full name, with its value."""
    names = [entry.name async for entry in walk(store, namespace, deleted=deleted) if not entry.is_namespace]
    return dict(zip(names, await store.load_many(names, deleted=deleted), strict=True))


async def filled(make_store: MakeStore, kind: str, items: Mapping[str, bytes] = ITEMS) -> Store:
    store = await make_store(kind, SRC_CONFIG)
    await store.store_many(items)
    return store


# copy -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("src_kind", "dst_kind"), [(a, b) for a in KINDS for b in KINDS if a != b])
async def test_copy_between_backends_with_other_nesting(make_store: MakeStore, src_kind: str, dst_kind: str) -> None:
    src = await filled(make_store, src_kind)
    dst = await make_store(dst_kind, DST_CONFIG)
    report = await copy_store(src, dst)
    assert (report.copied, report.bytes, report.skipped, report.deleted) == (
        len(ITEMS),
        sum(map(len, ITEMS.values())),
        0,
        0,
    )
    assert report.ok and not report.dry_run and report.seconds > 0
    assert await contents(dst) == ITEMS
    # the destination nests by its own config: data/ two levels deep
    assert await dst.find("data/0000abababab") == "data/00/00/0000abababab"


async def test_copy_of_namespaces_and_single_items(make_store: MakeStore) -> None:
    src = await filled(make_store, "memory")
    dst = await make_store("memory")
    report = await copy_store(src, dst, ["config/sub", "config", "top"])
    assert report.copied == 3
    assert await contents(dst) == {name: ITEMS[name] for name in ("config/main", "config/sub/deep", "top")}
    with pytest.raises(ObjectNotFound, match="nothing: no such namespace at the source"):
        await copy_store(src, dst, "nothing")


async def test_copy_without_overwrite_skips_existing_items(make_store: MakeStore) -> None:
    src = await filled(make_store, "posixfs")
    dst = await make_store("memory", DST_CONFIG)
    await dst.store("top", b"keep me")
    report = await copy_store(src, dst, overwrite=False)
    assert (report.copied, report.skipped) == (len(ITEMS) - 1, 1)
    assert await dst.load("top") == b"keep me"
    overwritten = await copy_store(src, dst, "top")
    assert overwritten.copied == 1
    assert await dst.load("top") == ITEMS["top"]


async def test_copy_dry_run_changes_nothing(make_store: MakeStore) -> None:
    src = await filled(make_store, "memory")
    dst = await make_store("sqlite")
    report = await copy_store(src, dst, dry_run=True)
    assert report.dry_run and report.copied == len(ITEMS) and report.bytes == sum(map(len, ITEMS.values()))
    assert [entry.name for entry in report.plan.copy] == sorted(ITEMS)
    assert await contents(dst) == {}


async def test_refuses_the_same_store_and_closed_stores(make_store: MakeStore) -> None:
    src = await filled(make_store, "memory")
    with pytest.raises(ValueError, match="same store"):
        await copy_store(src, src)
    closed = Store("memory://never-opened")
    with pytest.raises(StoreNotOpen, match="destination store is not open"):
        await copy_store(src, closed)
    dst = await make_store("memory")
    with pytest.raises(ValueError, match="batch_size"):
        await copy_store(src, dst, batch_size=0)


# sync -----------------------------------------------------------------------------------------------------


async def test_sync_copies_what_is_new_or_changed_and_deletes_on_request(make_store: MakeStore) -> None:
    src = await filled(make_store, "sqlite")
    dst = await make_store("posixfs", DST_CONFIG)
    first = await sync_stores(src, dst)
    assert (first.copied, first.skipped, first.deleted) == (len(ITEMS), 0, 0)
    again = await sync_stores(src, dst)
    assert (again.copied, again.skipped) == (0, len(ITEMS))

    await src.store_many({"top": b"a longer value now", "data/ffff0000": b"new"})
    await dst.store_many({"extra": b"only at the destination", "config/sub/more": b"z"})
    third = await sync_stores(src, dst)
    assert (third.copied, third.deleted) == (2, 0)
    assert [entry.name for entry in third.plan.copy] == ["data/ffff0000", "top"]
    assert await dst.load("extra") == b"only at the destination"

    planned = await sync_stores(src, dst, delete=True, dry_run=True)
    assert [entry.name for entry in planned.plan.delete] == ["config/sub/more", "extra"]
    assert planned.deleted == 2 and (await dst.info("extra")).exists  # a dry run deletes nothing

    done = await sync_stores(src, dst, delete=True)
    assert done.deleted == 2
    assert await contents(dst) == await contents(src)


async def test_sync_of_one_namespace_leaves_the_others(make_store: MakeStore) -> None:
    src = await filled(make_store, "memory")
    dst = await make_store("memory")
    await dst.store_many({"keep/me": b"1", "config/stale": b"2"})
    report = await sync_stores(src, dst, "config", delete=True)
    assert (report.copied, report.deleted) == (2, 1)
    assert sorted(await contents(dst)) == ["config/main", "config/sub/deep", "keep/me"]


async def test_sync_checksum_finds_changes_of_equal_size(make_store: MakeStore) -> None:
    src = await filled(make_store, "posixfs")
    dst = await make_store("sqlite", DST_CONFIG)
    await sync_stores(src, dst)
    await dst.store("top", b"AT THE ROOT")  # same size, other content
    by_size = await sync_stores(src, dst)
    assert by_size.copied == 0
    by_hash = await sync_stores(src, dst, checksum=True)
    assert (by_hash.copied, by_hash.skipped) == (1, len(ITEMS) - 1)
    assert await dst.load("top") == b"at the root"


async def test_sync_dry_run_changes_nothing(make_store: MakeStore) -> None:
    src = await filled(make_store, "memory")
    dst = await make_store("memory")
    await dst.store_many({"top": b"other", "extra": b"x"})
    before = await contents(dst)
    report = await sync_stores(src, dst, delete=True, checksum=True, dry_run=True)
    assert report.dry_run and (report.copied, report.deleted) == (len(ITEMS), 1)
    assert await contents(dst) == before


async def test_plans_against_a_missing_destination(make_store: MakeStore) -> None:
    src = await filled(make_store, "memory")
    sync_plan = await plan_sync(src, None, ["config", "top"], delete=True)
    copy_plan = await plan_copy(src, None, ["config", "top"], overwrite=False)
    assert [entry.name for entry in sync_plan.copy] == [entry.name for entry in copy_plan.copy]
    assert [entry.name for entry in sync_plan.copy] == ["config/main", "config/sub/deep", "top"]
    assert sync_plan.delete == [] and sync_plan.copy_bytes == 8 + 6 + 11


# soft-deleted items ---------------------------------------------------------------------------------------


async def test_soft_deleted_items_are_left_alone_by_default(make_store: MakeStore) -> None:
    src = await filled(make_store, "memory")
    await src.move("top", delete=True)
    dst = await make_store("posixfs")
    await dst.store("gone", b"1")
    await dst.move("gone", delete=True)
    report = await sync_stores(src, dst, delete=True)
    assert report.copied == len(ITEMS) - 1
    assert not (await dst.info("top")).exists and not (await dst.info("top", deleted=True)).exists
    assert (await dst.info("gone", deleted=True)).exists


@pytest.mark.parametrize("big", [False, True], ids=["batched", "through-a-file"])
async def test_include_deleted_copies_and_syncs_the_deleted_state(make_store: MakeStore, big: bool) -> None:
    src = await filled(make_store, "sqlite")
    await src.move("top", delete=True)
    await src.move("data/0001abababab", delete=True)
    dst = await make_store("posixfs", DST_CONFIG)
    await dst.store("top", b"a live one at the destination")
    await dst.store("stale", b"1")
    await dst.move("stale", delete=True)
    limit = 4 if big else 1 << 20  # 4 bytes in flight: every value goes through a temporary file
    report = await sync_stores(src, dst, include_deleted=True, delete=True, max_bytes_in_flight=limit)
    assert report.ok
    assert await contents(dst, deleted=True) == {"data/0001abababab": ITEMS["data/0001abababab"], "top": b"at the root"}
    assert await contents(dst) == await contents(src)
    assert {(entry.name, entry.deleted) for entry in report.plan.delete} == {("top", False), ("stale", True)}
    assert (await sync_stores(src, dst, include_deleted=True, delete=True)).plan.copy == []


# progress, memory, errors ---------------------------------------------------------------------------------


async def test_progress_counts_items_and_bytes(make_store: MakeStore) -> None:
    src = await filled(make_store, "memory")
    dst = await make_store("sqlite")
    await dst.store_many({"extra1": b"1", "extra2": b"2"})
    seen: list[Progress] = []
    report = await sync_stores(src, dst, delete=True, batch_size=7, progress=seen.append)
    total = sum(map(len, ITEMS.values()))
    assert len(seen) == len(ITEMS) + 2
    assert [state.items_done for state in seen] == list(range(1, len(ITEMS) + 3))
    assert all(state.items_total == len(ITEMS) + 2 and state.bytes_total == total for state in seen)
    assert seen[-1].bytes_done == report.bytes == total
    assert [state.bytes_done for state in seen] == sorted(state.bytes_done for state in seen)

    async def slow_callback(state: Progress) -> None:  # a coroutine callback is awaited
        seen.append(state)

    seen.clear()
    await copy_store(src, dst, "config", max_bytes_in_flight=8, progress=slow_callback)
    assert [(state.items_done, state.bytes_done) for state in seen] == [(1, 8), (2, 14)]


class RangedPosixFS(PosixFSBackend):
    """posixfs through the generic ranged paths network backends use (no in-kernel copy)."""

    capabilities = PosixFSBackend.capabilities.replace(part_size=512 * 1024)
    _read_into = Backend._read_into
    _store_file = Backend._store_file


async def test_memory_stays_bounded(make_store: MakeStore, tmp_path: Path) -> None:
    mib = 1024 * 1024
    budget = 4 * mib
    src = await make_store("custom", backend=RangedPosixFS(str(tmp_path / "src")), max_bytes_in_flight=budget)
    dst = await make_store("custom", backend=RangedPosixFS(str(tmp_path / "dst")), max_bytes_in_flight=budget)
    big = tmp_path / "big.bin"
    block = os.urandom(mib)
    with big.open("wb") as f:
        for _ in range(24):
            f.write(block)
    await src.store_file("big", big)
    small = {f"small/{i:03d}": bytes([i]) * (mib // 2) for i in range(48)}  # 24 MiB in small values
    await src.store_many(small)
    del small
    tracemalloc.start()
    try:
        report = await copy_store(src, dst, max_bytes_in_flight=budget, max_concurrency=8)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert report.copied == 49 and report.bytes == 48 * mib
    assert peak < 2 * budget, f"{peak / mib:.1f} MiB held at the peak"
    assert await dst.hash("big") == await src.hash("big")
    assert await dst.load("small/047") == bytes([47]) * (mib // 2)


class FailingMemory(MemoryBackend):
    """A memory backend that refuses to store names containing "bad"."""

    async def store(self, name: str, value: StoreValue, *, if_absent: bool = False) -> None:
        if "bad" in name:
            raise PermissionDenied(f"{name}: refused by the test backend")
        await super().store(name, value, if_absent=if_absent)


async def test_a_failing_item_is_reported_not_skipped(make_store: MakeStore) -> None:
    items = {"a": b"1", "bad": b"2", "c": b"3"}
    src = await filled(make_store, "memory", items)
    dst = await make_store("custom", backend=FailingMemory())
    await dst.store("extra", b"x")
    with pytest.raises(PermissionDenied, match="refused by the test backend"):
        await sync_stores(src, dst, delete=True)
    assert (await dst.info("extra")).exists  # a failed sync removes nothing

    report = await sync_stores(src, dst, delete=True, collect_errors=True)
    assert not report.ok
    assert [(error.name, error.action, type(error.error)) for error in report.errors] == [
        ("bad", "copy", PermissionDenied)
    ]
    assert report.copied == 0 and report.skipped == 2  # a and c came across on the first try
    assert report.deleted == 0 and (await dst.info("extra")).exists  # nothing deleted after a failed copy


async def test_an_item_gone_from_the_source_is_an_error(make_store: MakeStore) -> None:
    src = await filled(make_store, "posixfs")
    dst = await make_store("memory")
    plan = await plan_copy(src, dst, "config")
    await src.delete("config/main")
    report = await apply_plan(src, dst, plan, collect_errors=True)
    assert [(error.name, type(error.error)) for error in report.errors] == [("config/main", ObjectNotFound)]
    assert report.copied == 1
    with pytest.raises(ObjectNotFound):
        await apply_plan(src, dst, plan)


# exports and the blocking twins ---------------------------------------------------------------------------


def test_exported_from_the_package() -> None:
    assert aiodepot.copy_store is copy_store and aiodepot.sync_stores is sync_stores


def test_blocking_copy_and_sync_between_sync_stores(tmp_path: Path) -> None:
    src = SyncStore((tmp_path / "src").as_uri(), config=SRC_CONFIG)
    dst = SyncStore(f"sqlite://{tmp_path / 'dst.db'}", config=DST_CONFIG)
    src.create()
    dst.create()
    with src, dst:
        src.store_many(ITEMS)
        copied = aiodepot.sync.copy_store(src, dst, "data")
        assert isinstance(copied, Report) and copied.copied == 40
        dst.store("extra", b"x")
        synced = aiodepot.sync.sync_stores(src, dst, delete=True)
        assert (synced.copied, synced.skipped, synced.deleted) == (3, 40, 1)
        assert dict(dst.mapping("config").items()) == {"main": b"settings", "sub/deep": b"deeper"}
        other = SyncStore("memory://elsewhere", portal=aiodepot.Portal("other"))
        with pytest.raises(ValueError, match="same Portal"):
            aiodepot.sync.copy_store(src, other)
