"""A store remembers its nesting levels in ``layout.hid`` (issue 23 point 1): written at create with a nested
config, read at open without one, changed by ``save_layout``; an internal file like ``quota.hid``, left out of
listings, counts, quota usage and the Store's statistics."""

from __future__ import annotations

import contextlib
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from aiodepot import Store, StoreCorrupt, SyncStore
from aiodepot.names import LAYOUT_NAME

NESTED: dict[str, dict[str, Any]] = {"data/": {"levels": [2]}, "": {"levels": [0]}}


@pytest.fixture(params=["file", "memory", "sqlite", "zip"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    kind = request.param
    if kind == "file":
        return (tmp_path / "depot").as_uri()
    if kind == "memory":
        return f"memory://layout-{uuid.uuid4().hex}"  # id() is reused once an object is freed
    return f"{kind}://{tmp_path / ('depot.' + ('db' if kind == 'sqlite' else 'zip'))}"


async def test_the_levels_given_at_create_are_found_without_a_config(url: str) -> None:
    quota = {} if url.startswith("zip:") else {"quota": 10_000}
    store = Store(url, config=NESTED, **quota)
    await store.create()
    async with store:
        await store.store("data/8f3a0c2e", b"chunk")
        await store.store("top", b"12")
        if quota:
            assert (await store.quota())["usage"] == len(b"chunk") + 2  # the layout file is not usage
        async with Store(url, **quota) if not url.startswith("zip:") else contextlib.nullcontext(store) as reader:
            if reader is not store:  # no config: the remembered levels
                assert reader.levels == {"data/": [2], "": [0]}
                assert reader.stats["backend_load_calls"] == 0  # reading the layout is not the user's load
            assert await reader.load("data/8f3a0c2e") == b"chunk"
            listed = [info.name async for info in reader.list("")]
            assert len(listed) == 2 and "top" in listed and LAYOUT_NAME not in listed
            assert await reader.count("") == 2
            assert [info.name async for info in reader.backend.list("")] == ["data", "top"]
            assert await reader.backend.count("") == 2
    async with Store(url) as reader:  # a zip archive is read once it is written
        assert reader.levels == {"data/": [2], "": [0]}
        assert await reader.count("") == 2
    # an explicit config overrides what the store remembers
    async with Store(url, config={"": {"levels": [0]}}) as flat:
        assert flat.levels == {"": [0]}
        assert [info.name async for info in flat.list("data/8f/3a")] == ["8f3a0c2e"]


@pytest.mark.parametrize("url", ["file", "memory", "sqlite"], indirect=True)  # a zip member is written once
async def test_save_layout_changes_the_remembered_levels(url: str) -> None:
    store = Store(url, config=NESTED)
    await store.create()
    async with store:
        await store.store("data/8f3a0c2e", b"old")
        store.set_levels({"data/": {"levels": [2, 1]}, "": {"levels": [0]}})
        await store.save_layout()
        await store.store("data/0123abcd", b"new")
        async with Store(url) as reader:
            assert reader.levels["data/"] == [2, 1]
            assert [info.name async for info in reader.list("data")] == ["0123abcd", "8f3a0c2e"]
            assert await reader.load("data/0123abcd") == b"new"


def test_a_flat_config_or_none_writes_no_layout_file(tmp_path: Path) -> None:
    for config in (None, {"": {"levels": [0]}}, {"data/": {"levels": [0]}, "": {"levels": [0]}}):
        path = tmp_path / f"s{len(config or {})}"
        SyncStore(str(path), config=config).create()
        assert list(path.iterdir()) == []  # byte for byte a borgstore store
    nested = tmp_path / "nested"
    SyncStore(str(nested), config=NESTED).create()
    assert json.loads((nested / LAYOUT_NAME).read_text()) == {"format": 1, "config": NESTED}


def test_sync_store_reads_and_saves_the_layout(tmp_path: Path) -> None:
    path = str(tmp_path / "depot")
    SyncStore(path, config=NESTED).create()
    with SyncStore(path) as store:
        assert store.levels["data/"] == [2]
        store.set_levels({"data/": {"levels": [1]}, "": {"levels": [0]}})
        store.save_layout()
    with SyncStore(path) as store:
        assert store.levels["data/"] == [1]


async def test_a_damaged_layout_file_raises_store_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "depot"
    await Store(str(path), config=NESTED).create()
    (path / LAYOUT_NAME).write_text('{"format": 99}')
    store = Store(str(path))
    with pytest.raises(StoreCorrupt, match=r"layout\.hid"):
        await store.open()
    assert not store.opened
    async with Store(str(path), config=NESTED) as given:  # a config given: the file is not read
        assert given.levels["data/"] == [2]


async def test_a_name_that_looks_internal_is_still_refused_to_users(tmp_path: Path) -> None:
    path = tmp_path / "depot"
    await Store(str(path), config=NESTED).create()
    async with Store(str(path)) as store:
        with pytest.raises(ValueError):
            await store.load(LAYOUT_NAME)
        with pytest.raises(ValueError):
            await store.backend.load(LAYOUT_NAME)
