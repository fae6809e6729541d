"""Permission maps on posixfs and memory, as PROTOCOL-rest-v1.md "Permissions" describes them.

A map goes from a path prefix to letters (``l`` list, ``r`` read, ``w`` write new, ``W`` write or overwrite,
``D`` delete); the most specific prefix present decides, with no fall-through to shorter ones. Each
operation needs one of its letters: create ``wW`` on "", destroy ``D`` on "", info ``lr``, load/hash/gather
``r``, store ``wW`` (new) or ``W`` (overwrite), delete ``D``, move ``D`` on the source and ``W``/``wW`` on
the destination, defrag ``W`` on the target, list ``l``. A denied operation raises PermissionDenied (a
PermissionError) and changes nothing.

Content is prepared through an unrestricted Store on the same directory or memory name; the store under
test is then opened with permissions.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from aiodepot import PermissionDenied, Store, StoreNotFound
from aiodepot.names import LAYOUT_NAME

CONFIG: dict[str, dict[str, Any]] = {"": {"levels": [0]}, "data/": {"levels": [1]}}
LETTERS = ["", "l", "r", "w", "W", "D"]

KEY = "ab12cd34"  # an existing item's key in every namespace
NEW_KEY = "ef56ab78"  # a key that is not in the store yet
VALUE = b"0123456789abcdef" * 8
NAMESPACES = ["archives", "cache", "config", "data", "keys", "locks", "other"]

Permissions = str | Mapping[str, str] | None


class Location:
    """One store location: a directory or a memory store name, with an unrestricted view of its state."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        if kind == "file":
            self.path: Path | None = tmp_path / f"store-{uuid.uuid4().hex[:8]}"
            self.url = self.path.as_uri()
        else:
            self.path = None
            self.url = f"memory://perm-{uuid.uuid4().hex}"

    def store(self, permissions: Permissions = None) -> Store:
        return Store(self.url, config=CONFIG, permissions=permissions)

    async def prepare(self, items: Mapping[str, bytes], soft_deleted: tuple[str, ...] = ()) -> None:
        """Create the store and write ``items`` without restrictions."""
        store = self.store()
        await store.create()
        async with store:
            for name, value in items.items():
                await store.store(name, value)
            for name in soft_deleted:
                await store.move(name, delete=True)

    async def state(self) -> dict[str, bytes | None] | None:
        """Every file or item (with its value) and directory (None); None if there is no store."""
        if self.path is not None:
            if not self.path.exists():
                return None
            return {
                str(p.relative_to(self.path)): (p.read_bytes() if p.is_file() else None)
                for p in sorted(self.path.rglob("*"))
                if p.relative_to(self.path) != Path(LAYOUT_NAME)  # the remembered levels, not an item
            }
        try:
            async with self.store() as store:
                state: dict[str, bytes | None] = {}

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
        except StoreNotFound:
            return None

    async def load(self, name: str, *, deleted: bool = False) -> bytes:
        async with self.store() as store:
            return await store.load(name, deleted=deleted)

    async def exists(self, name: str, *, deleted: bool = False) -> bool:
        async with self.store() as store:
            return (await store.info(name, deleted=deleted)).exists

    async def cleanup(self) -> None:
        if self.kind == "memory":
            try:
                await self.store().destroy()
            except StoreNotFound:
                pass


@pytest.fixture(params=["file", "memory"])
async def new_location(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Callable[[], Location]]:
    """A factory of fresh locations of one kind (file or memory)."""
    made: list[Location] = []

    def make() -> Location:
        made.append(Location(request.param, tmp_path))
        return made[-1]

    yield make
    for location in made:
        await location.cleanup()


@pytest.fixture
def location(new_location: Callable[[], Location]) -> Location:
    return new_location()


async def assert_denied(location: Location, action: Callable[[], Awaitable[object]]) -> None:
    """``action`` raises PermissionDenied, which is a PermissionError, and the store is unchanged."""
    before = await location.state()
    with pytest.raises(PermissionDenied) as excinfo:
        await action()
    assert isinstance(excinfo.value, PermissionError)
    assert await location.state() == before


def allowed(granted: str, required: str) -> bool:
    return bool(set(granted) & set(required))


# each operation's letters -------------------------------------------------------------------------------

EXISTING = "data/" + KEY
OTHER = "data/cd" + KEY
NEW = "data/" + NEW_KEY
ITEMS = {EXISTING: VALUE, OTHER: b"other value", "config/main": b"main"}


async def run_info(store: Store, location: Location) -> None:
    info = await store.info(EXISTING)
    assert (info.exists, info.size, info.name) == (True, len(VALUE), EXISTING)


async def run_load(store: Store, location: Location) -> None:
    assert await store.load(EXISTING) == VALUE
    assert await store.load(EXISTING, offset=5, size=10) == VALUE[5:15]


async def run_hash(store: Store, location: Location) -> None:
    assert await store.hash(EXISTING) == hashlib.sha256(VALUE).hexdigest()


async def run_gather(store: Store, location: Location) -> None:
    data = await store.gather([(KEY, 0, 3), ("cd" + KEY, 2, 4), (KEY, -2, 2)], namespace="data")
    assert data == VALUE[:3] + b"her " + VALUE[-2:]


async def run_list(store: Store, location: Location) -> None:
    assert [info.name async for info in store.list("data")] == sorted([KEY, "cd" + KEY])


async def run_store_new(store: Store, location: Location) -> None:
    await store.store(NEW, b"new value")
    assert await location.load(NEW) == b"new value"


async def run_store_overwrite(store: Store, location: Location) -> None:
    await store.store(EXISTING, b"overwritten")
    assert await location.load(EXISTING) == b"overwritten"


async def run_delete(store: Store, location: Location) -> None:
    await store.delete(EXISTING)
    assert not await location.exists(EXISTING)


OPERATIONS = {
    "info": ("lr", run_info),
    "load": ("r", run_load),
    "hash": ("r", run_hash),
    "gather": ("r", run_gather),
    "list": ("l", run_list),
    "store-new": ("wW", run_store_new),
    "store-overwrite": ("W", run_store_overwrite),
    "delete": ("D", run_delete),
}


@pytest.mark.parametrize("granted", LETTERS)
@pytest.mark.parametrize("operation", list(OPERATIONS))
async def test_operation_needs_one_of_its_letters(location: Location, operation: str, granted: str) -> None:
    required, run = OPERATIONS[operation]
    await location.prepare(ITEMS)
    async with location.store({"": granted}) as store:
        if allowed(granted, required):
            await run(store, location)
        else:
            await assert_denied(location, lambda: run(store, location))


@pytest.mark.parametrize("granted", ["lr", "lrW", "lrwWD"])
async def test_store_new_vs_overwrite(location: Location, granted: str) -> None:
    # "w" is for new items only; with it alone an existing item cannot be overwritten
    await location.prepare(ITEMS)
    async with location.store({"": "lr", "data": granted + "w"}) as store:
        await store.store(NEW, b"first")
        if "W" in granted:
            await store.store(NEW, b"second")
            assert await location.load(NEW) == b"second"
        else:
            await assert_denied(location, lambda: store.store(NEW, b"second"))
            assert await location.load(NEW) == b"first"


@pytest.mark.parametrize("granted", [*LETTERS, "wW", "lrwW"])
async def test_create_needs_w_or_W_on_the_root(location: Location, granted: str) -> None:
    store = location.store({"": granted, "data": "lrwWD"})
    if allowed(granted, "wW"):
        await store.create()
        assert await location.state() == {}
        async with location.store() as unrestricted:
            await unrestricted.store(NEW, b"x")
    else:
        await assert_denied(location, store.create)
        assert await location.state() is None


@pytest.mark.parametrize("granted", [*LETTERS, "lrwW"])
async def test_destroy_needs_D_on_the_root(location: Location, granted: str) -> None:
    await location.prepare(ITEMS)
    store = location.store({"": granted, "data": "lrwWD"})
    if allowed(granted, "D"):
        await store.destroy()
        state = await location.state()
        assert not state  # gone, or (file) at most the empty base directory
    else:
        await assert_denied(location, store.destroy)
        assert await location.load(EXISTING) == VALUE


async def test_without_a_map_everything_is_allowed(location: Location) -> None:
    await location.prepare(ITEMS)
    async with location.store(None) as store:
        for _, run in OPERATIONS.values():
            if run is not run_delete:
                await run(store, location)
        await store.move(NEW, delete=True)
        await store.defrag([(KEY, 0, 4)], target=NEW_KEY, namespace="data")
        await run_delete(store, location)


# move, soft delete, undelete ------------------------------------------------------------------------------

MOVE_SOURCE_LETTERS = ["D", "lrwW", "lrwWD", ""]
MOVE_DEST_LETTERS = ["w", "W", "wW", "lrD", ""]


@pytest.mark.parametrize("dest_exists", [False, True], ids=["new-dest", "existing-dest"])
@pytest.mark.parametrize("dest", MOVE_DEST_LETTERS)
@pytest.mark.parametrize("source", MOVE_SOURCE_LETTERS)
async def test_move_needs_D_on_the_source_and_w_or_W_on_the_destination(
    location: Location, source: str, dest: str, dest_exists: bool
) -> None:
    items = {"src/item": b"moving", "dst/old": b"old"}
    await location.prepare(items)
    target = "dst/old" if dest_exists else "dst/new"
    ok = "D" in source and allowed(dest, "W" if dest_exists else "wW")
    async with location.store({"": "lr", "src": source, "dst": dest}) as store:
        if ok:
            await store.move("src/item", target)
            assert await location.load(target) == b"moving"
            assert not await location.exists("src/item")
        else:
            await assert_denied(location, lambda: store.move("src/item", target))


@pytest.mark.parametrize("granted", ["D", "Dw", "DW", "wW", "lrwW", "lrwWD"])
async def test_soft_delete_is_a_move(location: Location, granted: str) -> None:
    await location.prepare(ITEMS)
    async with location.store({"": "lr", "data": granted}) as store:
        if "D" in granted and allowed(granted, "wW"):
            await store.move(EXISTING, delete=True)
            assert await location.load(EXISTING, deleted=True) == VALUE
            assert not await location.exists(EXISTING)
        else:
            await assert_denied(location, lambda: store.move(EXISTING, delete=True))


@pytest.mark.parametrize("granted", ["D", "Dw", "DW", "wW", "lrwW", "lrwWD"])
async def test_undelete_is_a_move(location: Location, granted: str) -> None:
    await location.prepare(ITEMS, soft_deleted=(EXISTING,))
    async with location.store({"": "lr", "data": granted}) as store:
        if "D" in granted and allowed(granted, "wW"):
            await store.move(EXISTING, undelete=True)
            assert await location.load(EXISTING) == VALUE
        else:
            await assert_denied(location, lambda: store.move(EXISTING, undelete=True))
            assert await location.load(EXISTING, deleted=True) == VALUE


async def test_soft_deleted_items_follow_the_map_of_their_namespace(location: Location) -> None:
    await location.prepare(ITEMS, soft_deleted=(EXISTING,))
    async with location.store({"": "lrwWD", "data": "l"}) as store:
        assert [info.name async for info in store.list("data", deleted=True)] == [KEY]
        await assert_denied(location, lambda: store.load(EXISTING, deleted=True))
        await assert_denied(location, lambda: store.delete(EXISTING, deleted=True))


# defrag ---------------------------------------------------------------------------------------------------

DEFRAG_ITEMS = {"d/one": b"0123456789", "d/two": b"abcdefghij"}
DEFRAG_SOURCES = [("one", 2, 3), ("two", 0, 4)]


@pytest.mark.parametrize("granted", ["w", "W", "wW", "lrwD", "rW", ""])
async def test_defrag_needs_W_on_the_target(location: Location, granted: str) -> None:
    await location.prepare(DEFRAG_ITEMS)
    async with location.store({"": "lr", "d": "lr", "d/target": granted}) as store:
        if "W" in granted:
            assert await store.defrag(DEFRAG_SOURCES, target="target", namespace="d") == "target"
            assert await location.load("d/target") == b"234abcd"
        else:
            await assert_denied(location, lambda: store.defrag(DEFRAG_SOURCES, target="target", namespace="d"))


@pytest.mark.parametrize("granted", ["rw", "rW", "rwWD", "rlD"])
async def test_defrag_to_a_content_named_item_needs_W_in_the_namespace(location: Location, granted: str) -> None:
    await location.prepare(DEFRAG_ITEMS)
    async with location.store({"": "lr", "d": granted}) as store:
        if "W" in granted:
            name = await store.defrag(DEFRAG_SOURCES, algorithm="sha256", namespace="d")
            assert name == hashlib.sha256(b"234abcd").hexdigest()
            assert await location.load("d/" + name) == b"234abcd"
        else:
            await assert_denied(location, lambda: store.defrag(DEFRAG_SOURCES, algorithm="sha256", namespace="d"))


async def test_defrag_needs_r_on_the_sources(location: Location) -> None:
    await location.prepare(DEFRAG_ITEMS)
    async with location.store({"": "lr", "d": "lwWD"}) as store:
        await assert_denied(location, lambda: store.defrag(DEFRAG_SOURCES, target="target", namespace="d"))
        await assert_denied(location, lambda: store.gather(DEFRAG_SOURCES, namespace="d"))


# most specific prefix ------------------------------------------------------------------------------------


async def test_the_most_specific_prefix_wins_without_fall_through(location: Location) -> None:
    await location.prepare(ITEMS)
    async with location.store({"": "lrwWD", "data": "l"}) as store:
        assert [info.name async for info in store.list("data")] == sorted([KEY, "cd" + KEY])
        assert (await store.info(EXISTING)).exists  # info: "l" is enough
        # "" grants everything, but "data" is more specific and decides alone
        await assert_denied(location, lambda: store.load(EXISTING))
        await assert_denied(location, lambda: store.store(NEW, b"x"))
        await assert_denied(location, lambda: store.delete(EXISTING))
        assert await store.load("config/main") == b"main"  # outside "data", "" decides
        await store.store("config/main", b"changed")
        await store.delete("config/main")


async def test_a_name_without_a_matching_prefix_is_denied(location: Location) -> None:
    await location.prepare({**ITEMS, "database/x": b"not data", "rootitem": b"r"})
    async with location.store({"data": "lrwWD"}) as store:
        assert await store.load(EXISTING) == VALUE
        await store.store(NEW, b"allowed")
        await assert_denied(location, lambda: store.load("config/main"))
        await assert_denied(location, lambda: store.load("rootitem"))
        # prefixes match whole path elements: "data" does not cover "database"
        await assert_denied(location, lambda: store.load("database/x"))
        await assert_denied(location, lambda: store.store("database/y", b"x"))

        async def list_root() -> list[str]:
            return [info.name async for info in store.list("")]

        await assert_denied(location, list_root)


async def test_a_more_specific_prefix_can_also_grant_more(location: Location) -> None:
    await location.prepare(ITEMS)
    async with location.store({"": "lr", "data": "lr", "data/ab": "lrwWD"}) as store:
        # the item data/ab12cd34 lives at data/ab/ab12cd34 (one nesting level): "data/ab" decides for it
        await store.store(EXISTING, b"overwritten")
        assert await location.load(EXISTING) == b"overwritten"
        await store.store("data/ab" + NEW_KEY, b"new")
        await assert_denied(location, lambda: store.store(NEW, b"x"))  # data/ef/...: "data" decides
        await assert_denied(location, lambda: store.store(OTHER, b"x"))
        await store.delete(EXISTING)


async def test_a_nesting_directory_prefix_can_deny_listing(location: Location) -> None:
    await location.prepare(ITEMS)
    async with location.store({"": "lr", "data": "lr", "data/ab": "r"}) as store:
        assert await store.load(EXISTING) == VALUE

        async def list_data() -> list[str]:
            return [info.name async for info in store.list("data")]

        await assert_denied(location, list_data)  # the listing walks into data/ab


async def test_permissions_given_as_json(location: Location) -> None:
    await location.prepare(ITEMS)
    async with location.store(json.dumps({"": "lr", "data": "lrw"})) as store:
        await store.store(NEW, b"new")
        await assert_denied(location, lambda: store.store(EXISTING, b"x"))
        assert await store.load("config/main") == b"main"
        await assert_denied(location, lambda: store.store("config/main", b"x"))


# the shortcuts --------------------------------------------------------------------------------------------

# each probe runs on a fresh store holding <namespace>/ab12cd34


async def probe_list(store: Store, ns: str) -> None:
    assert [info.name async for info in store.list(ns)] == [KEY]


async def probe_info(store: Store, ns: str) -> None:
    assert (await store.info(f"{ns}/{KEY}")).size == len(VALUE)


async def probe_load(store: Store, ns: str) -> None:
    assert await store.load(f"{ns}/{KEY}") == VALUE


async def probe_store_new(store: Store, ns: str) -> None:
    await store.store(f"{ns}/{NEW_KEY}", b"new")


async def probe_overwrite(store: Store, ns: str) -> None:
    await store.store(f"{ns}/{KEY}", b"over")


async def probe_delete(store: Store, ns: str) -> None:
    await store.delete(f"{ns}/{KEY}")


async def probe_soft_delete(store: Store, ns: str) -> None:
    await store.move(f"{ns}/{KEY}", delete=True)


PROBES: dict[str, Callable[[Store, str], Awaitable[None]]] = {
    "L": probe_list,
    "I": probe_info,
    "R": probe_load,
    "N": probe_store_new,
    "O": probe_overwrite,
    "X": probe_delete,
    "S": probe_soft_delete,
}

# which probes each shortcut allows in each namespace ("other" is covered by no entry but "")
ALL = "LIRNOXS"
SHORTCUT_EXPECTATIONS: dict[str, dict[str, str]] = {
    "borgbackup-all": dict.fromkeys(NAMESPACES, ALL),
    "borgbackup-no-delete": {
        "archives": "LIRN",
        "cache": ALL,
        "config": "LIRNO",
        "data": "LIRN",
        "keys": "LIR",
        "locks": "LIRNXS",
        "other": "LIR",
    },
    "borgbackup-write-only": {
        "archives": "LIN",
        "cache": ALL,
        "config": "LIRNO",
        "data": "LIN",
        "keys": "LIR",
        "locks": "LIRNXS",
        "other": "LI",
    },
    "borgbackup-read-only": {**dict.fromkeys(NAMESPACES, "LIR"), "locks": "LIRNXS"},
}


@pytest.mark.parametrize("namespace", NAMESPACES)
@pytest.mark.parametrize("shortcut", list(SHORTCUT_EXPECTATIONS))
async def test_shortcut(new_location: Callable[[], Location], shortcut: str, namespace: str) -> None:
    expected = SHORTCUT_EXPECTATIONS[shortcut][namespace]
    for code, probe in PROBES.items():
        location = new_location()
        await location.prepare({f"{namespace}/{KEY}": VALUE})
        async with location.store(shortcut) as store:
            if code in expected:
                before = await location.state()
                await probe(store, namespace)
                changes = code in "NOXS"
                assert (await location.state() != before) == changes, (shortcut, namespace, code)
            else:
                await assert_denied(location, lambda: probe(store, namespace))  # noqa: B023


@pytest.mark.parametrize("shortcut", ["borgbackup-no-delete", "borgbackup-write-only", "borgbackup-read-only"])
async def test_shortcuts_allow_the_lock_dance(location: Location, shortcut: str) -> None:
    # borg creates and removes its lock files even in restricted modes, but never overwrites one
    await location.prepare({"config/main": b"cfg"})
    async with location.store(shortcut) as store:
        await store.store("locks/exclusive", b"me")
        assert [info.name async for info in store.list("locks")] == ["exclusive"]
        await assert_denied(location, lambda: store.store("locks/exclusive", b"someone else"))
        await store.delete("locks/exclusive")
        assert not await location.exists("locks/exclusive")
