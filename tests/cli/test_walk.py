"""The walker behind ls, du, rm -r, cp and sync: full names, sorted, nesting looked through."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from aiodepot import ObjectNotFound, Store
from aiodepot.cli.walk import Entry, top_namespaces, walk

NESTED: Mapping[str, Any] = {"data/": {"levels": [2]}, "data/sub/": {"levels": [0]}, "": {"levels": [0]}}


async def names(store: Store, namespace: str = "", **options: Any) -> list[str]:
    return [entry.name async for entry in walk(store, namespace, **options)]


@pytest.fixture
async def store() -> AsyncIterator[Store]:
    store = Store("memory://", config=NESTED)
    await store.create()
    await store.open()
    await store.store_many(
        {
            "a-b": b"1",
            "a/x": b"22",
            "data/abcdef": b"333",
            "data/abcd00": b"4444",
            "data/ff0011": b"55555",
            "data/sub/k": b"6",
            "zz": b"7",
        }
    )
    await store.move("data/ff0011", delete=True)
    yield store
    await store.close()


async def test_recursive_walk_is_sorted_by_full_name(store: Store) -> None:
    found = await names(store)
    assert found == ["a-b", "a/", "a/x", "data/", "data/abcd00", "data/abcdef", "data/sub/", "data/sub/k", "zz"]
    assert found == sorted(found)


async def test_one_level_shows_namespaces_without_their_content(store: Store) -> None:
    assert await names(store, recursive=False) == ["a-b", "a/", "data/", "zz"]
    assert await names(store, "data", recursive=False) == ["data/abcd00", "data/abcdef", "data/sub/"]


async def test_deleted_modes(store: Store) -> None:
    assert await names(store, "data", deleted=True) == ["data/ff0011", "data/sub/"]
    both = [entry async for entry in walk(store, "data", deleted=None) if not entry.is_namespace]
    assert [(entry.name, entry.deleted, entry.size) for entry in both] == [
        ("data/abcd00", False, 4),
        ("data/abcdef", False, 3),
        ("data/ff0011", True, 5),
        ("data/sub/k", False, 1),
    ]


async def test_entries(store: Store) -> None:
    entries = {entry.name: entry async for entry in walk(store)}
    assert entries["data/sub/"].is_namespace and entries["data/sub/"].namespace == "data"
    assert entries["data/sub/k"].namespace == "data/sub" and not entries["data/sub/k"].is_namespace
    assert entries["zz"].namespace == "" and entries["zz"].size == 1 and entries["zz"].mtime > 0
    assert Entry("x").size == 0


async def test_missing_and_configured_namespaces(store: Store) -> None:
    with pytest.raises(ObjectNotFound):
        await names(store, "nothing")
    store.set_levels({**NESTED, "empty/": {"levels": [1]}})
    assert await names(store, "empty") == []


async def test_namespace_between_two_levels() -> None:
    store = Store("memory://", config={"data/": {"levels": [1]}})
    await store.create()
    async with store:
        await store.store_many({"data/abf0": b"1", "data/ab00": b"2"})
        store.set_levels({"data/": {"levels": [1, 2]}})
        await store.store_many({"data/abcd": b"3", "data/ac00": b"4"})
        assert [name async for name in _items(store)] == ["data/ab00", "data/abcd", "data/abf0", "data/ac00"]
        store.set_levels({"data/": {"levels": [2]}})
        strays: list[str] = []
        found = [entry.name async for entry in walk(store, "data", strays=strays)]
        assert found == ["data/abcd", "data/ac00"]  # new items went to the last level
        assert strays == ["data/ab/ab00", "data/ab/abf0"]


async def _items(store: Store) -> Any:
    async for entry in walk(store, "data"):
        yield entry.name


async def test_without_nesting_config_the_nesting_shows_as_namespaces(store: Store) -> None:
    store.set_levels({"": {"levels": [0]}})
    assert await names(store, "data", recursive=False) == ["data/ab/", "data/ff/", "data/sub/"]
    assert "data/ab/cd/abcdef" in await names(store, "data")


def test_top_namespaces() -> None:
    assert top_namespaces([]) == [""]
    assert top_namespaces(["data/sub", "data", "config/", "data"]) == ["config", "data"]
    assert top_namespaces(["data", "/"]) == [""]
    assert top_namespaces(["data-x", "data/y"]) == ["data-x", "data/y"]
