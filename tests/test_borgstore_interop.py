"""Data compatibility with borgstore on posixfs: each library opens, reads and changes the other's stores.

Both stores are built with the same variety: keys nested two levels deep in ``data/``, items left at an
older nesting level by a level migration, flat ``config/`` and ``locks/`` namespaces, empty and bigger
values, and soft-deleted items. The other library must then see every item, value and size.
"""

from __future__ import annotations

import copy
import hashlib
import os
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from borgstore.backends.posixfs import PosixFS
from borgstore.store import Store as BorgStore

import aiodepot

CONFIG: dict[str, dict[str, Any]] = {"data/": {"levels": [2]}, "config/": {"levels": [0]}, "locks/": {"levels": [0]}}
OLD_CONFIG: dict[str, dict[str, Any]] = {**CONFIG, "data/": {"levels": [1]}}
MIGRATING_CONFIG: dict[str, dict[str, Any]] = {**CONFIG, "data/": {"levels": [1, 2]}}

# keys that share their first byte, one at the old level (1) and one at the new level (2): the level-1
# file "abf0…" sorts before the level-2 directory "ab/cd/", which holds the smaller key "abcd…".
OLD_PINNED_KEY = "abf0" + "1" * 60
NEW_PINNED_KEY = "abcd" + "2" * 60


def borg_levels(config: dict[str, dict[str, Any]]) -> dict[str, list[int]]:
    """borgstore's set_levels takes namespace -> levels, not the config shape."""
    return {namespace: list(ns_config["levels"]) for namespace, ns_config in config.items()}


@dataclass
class Content:
    """What a store should hold: live and soft-deleted items with their values, and nesting facts."""

    live: dict[str, bytes] = field(default_factory=dict)
    deleted: dict[str, bytes] = field(default_factory=dict)
    old_level: set[str] = field(default_factory=set)  # data items (live or deleted) left at level 1

    def namespace(self, namespace: str, *, deleted: bool = False) -> dict[str, bytes]:
        """key -> value of the (live or soft-deleted) items of ``namespace``."""
        items = self.deleted if deleted else self.live
        prefix = namespace + "/"
        return {name.removeprefix(prefix): value for name, value in items.items() if name.startswith(prefix)}


def random_value(rnd: random.Random) -> bytes:
    size = rnd.choice([0, 1, rnd.randint(2, 512), rnd.randint(513, 8192), rnd.randint(8193, 70_000)])
    return rnd.randbytes(size)


def random_key(rnd: random.Random) -> str:
    return rnd.randbytes(32).hex()


def populate(store: Any, switch_to_migrating: Callable[[], None], seed: int) -> Content:
    """Fill an open store (aiodepot SyncStore or borgstore Store, configured with OLD_CONFIG)."""
    rnd = random.Random(seed)
    content = Content()

    def put(name: str, value: bytes) -> None:
        store.store(name, value)
        content.live[name] = value

    old_keys = [OLD_PINNED_KEY, *(random_key(rnd) for _ in range(79))]
    for key in old_keys:
        put("data/" + key, random_value(rnd))
    content.old_level.update("data/" + key for key in old_keys)

    switch_to_migrating()
    new_keys = [NEW_PINNED_KEY, *(random_key(rnd) for _ in range(319))]
    for key in new_keys:
        put("data/" + key, random_value(rnd))
    put("data/" + random_key(rnd), rnd.randbytes(300_000))

    put("config/main", b"[repository]\nversion = 2\n")
    put("config/manifest", rnd.randbytes(1000))
    put("config/empty", b"")
    put("locks/exclusive", b'{"host": "h1", "pid": 42}')
    put("locks/shared-1", b"")

    soft_deleted = [*rnd.sample(old_keys[1:], 10), *rnd.sample(new_keys[1:], 15)]
    names = ["data/" + key for key in soft_deleted] + ["config/manifest", "locks/shared-1"]
    for name in names:
        store.move(name, delete=True)
        content.deleted[name] = content.live.pop(name)
    return content


def write_with_aiodepot(path: Path, seed: int) -> Content:
    store = aiodepot.SyncStore(path.as_uri(), config=OLD_CONFIG)
    store.create()
    with store:
        return populate(store, lambda: store.set_levels(MIGRATING_CONFIG), seed)


def write_with_borgstore(path: Path, seed: int) -> Content:
    store = BorgStore(url=path.as_uri(), config=OLD_CONFIG)
    store.create()
    with store:
        return populate(store, lambda: store.set_levels(borg_levels(MIGRATING_CONFIG)), seed)


def disk_names(path: Path) -> set[str]:
    """Every file below ``path`` as a relative name."""
    return {str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()}


def nested_name(name: str, level: int, *, deleted: bool = False) -> str:
    namespace, _, key = name.rpartition("/")
    parts = [namespace, *(key[2 * i : 2 * i + 2] for i in range(level)), key]
    return "/".join(parts) + (".del" if deleted else "")


def expected_layout(content: Content) -> set[str]:
    """The files the on-disk layout (shared by both libraries) must have for ``content``."""
    files = set()
    for items, deleted in ((content.live, False), (content.deleted, True)):
        for name in items:
            level = (1 if name in content.old_level else 2) if name.startswith("data/") else 0
            files.add(nested_name(name, level, deleted=deleted))
    return files


def info_tuples(infos: Any) -> list[tuple[str, bool, int, bool, float]]:
    return [(i.name, i.exists, i.size, i.directory, i.mtime) for i in infos]


# aiodepot writes, borgstore reads ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def aiodepot_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Content]:
    path = tmp_path_factory.mktemp("interop") / "by-aiodepot"
    return path, write_with_aiodepot(path, seed=1)


def test_aiodepot_layout_is_borgstores(aiodepot_store: tuple[Path, Content]) -> None:
    path, content = aiodepot_store
    # and layout.hid, the nesting aiodepot remembers (a .hid file, which borgstore ignores)
    assert disk_names(path) == expected_layout(content) | {"layout.hid"}


def test_borgstore_lists_aiodepot_items(aiodepot_store: tuple[Path, Content]) -> None:
    path, content = aiodepot_store
    with BorgStore(url=path.as_uri(), config=MIGRATING_CONFIG) as store:
        for namespace in ("data", "config", "locks"):
            for deleted in (False, True):
                expected = {key: len(value) for key, value in content.namespace(namespace, deleted=deleted).items()}
                listed = list(store.list(namespace, deleted=deleted))
                assert {info.name: info.size for info in listed} == expected
                assert len(listed) == len(expected)  # nothing twice
                assert all(info.exists and not info.directory for info in listed)


def test_borgstore_loads_aiodepot_values(aiodepot_store: tuple[Path, Content]) -> None:
    path, content = aiodepot_store
    with BorgStore(url=path.as_uri(), config=MIGRATING_CONFIG) as store:
        for name, value in content.live.items():
            assert store.load(name) == value, name
            info = store.info(name)
            assert info.exists
            assert info.size == len(value)
            assert not store.info(name, deleted=True).exists
        for name, value in content.deleted.items():
            assert store.load(name, deleted=True) == value, name
            assert store.info(name, deleted=True).size == len(value)
            assert not store.info(name).exists


def test_borgstore_partial_loads_and_hash_of_aiodepot_values(aiodepot_store: tuple[Path, Content]) -> None:
    path, content = aiodepot_store
    with BorgStore(url=path.as_uri(), config=MIGRATING_CONFIG) as store:
        for name, value in content.live.items():
            if len(value) >= 10:
                assert store.load(name, offset=3, size=5) == value[3:8]
                assert store.load(name, offset=len(value) // 2) == value[len(value) // 2 :]
                assert store.load(name, offset=-7) == value[-7:]
                assert store.load(name, offset=-10, size=4) == value[-10:-6]
            assert store.hash(name) == hashlib.sha256(value).hexdigest()
            assert store.hash(name, algorithm="sha512") == hashlib.sha512(value).hexdigest()
        for name, value in content.deleted.items():
            assert store.hash(name, deleted=True) == hashlib.sha256(value).hexdigest()


def test_aiodepot_and_borgstore_hash_alike(aiodepot_store: tuple[Path, Content]) -> None:
    path, content = aiodepot_store
    names = sorted(content.live)[:40]
    with BorgStore(url=path.as_uri(), config=MIGRATING_CONFIG) as borg:
        borg_hashes = [borg.hash(name, algorithm="blake3") for name in names]
    with aiodepot.SyncStore(path.as_uri(), config=MIGRATING_CONFIG) as store:
        assert [store.hash(name, "blake3") for name in names] == borg_hashes


# borgstore writes, aiodepot reads ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def borgstore_original(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Content]:
    path = tmp_path_factory.mktemp("interop") / "by-borgstore"
    return path, write_with_borgstore(path, seed=2)


@pytest.fixture
def borgstore_store(borgstore_original: tuple[Path, Content], tmp_path: Path) -> tuple[Path, Content]:
    """A private copy of the store borgstore wrote, for a test to change."""
    original, content = borgstore_original
    path = tmp_path / "by-borgstore"
    shutil.copytree(original, path)
    return path, copy.deepcopy(content)


def test_borgstore_layout_is_aiodepots(borgstore_store: tuple[Path, Content]) -> None:
    path, content = borgstore_store
    assert disk_names(path) == expected_layout(content)


def test_aiodepot_reads_borgstore_items(borgstore_store: tuple[Path, Content]) -> None:
    path, content = borgstore_store
    live, deleted = sorted(content.live), sorted(content.deleted)
    with aiodepot.SyncStore(path.as_uri(), config=MIGRATING_CONFIG) as store:
        assert store.load_many(live) == [content.live[name] for name in live]
        infos = store.info_many(live)
        assert [(i.name, i.exists, i.size, i.directory) for i in infos] == [
            (name, True, len(content.live[name]), False) for name in live
        ]
        assert store.load_many(deleted, deleted=True) == [content.deleted[name] for name in deleted]
        assert [i.size for i in store.info_many(deleted, deleted=True)] == [len(content.deleted[n]) for n in deleted]
        assert not any(i.exists for i in store.info_many(deleted))
        for name in deleted:
            with pytest.raises(aiodepot.ObjectNotFound):
                store.load(name)
        for name, value in content.live.items():
            assert store.hash(name) == hashlib.sha256(value).hexdigest()
            if len(value) >= 10:
                assert store.load(name, offset=2, size=6) == value[2:8]
                assert store.load(name, offset=-9, size=3) == value[-9:-6]


def test_aiodepot_lists_borgstore_items(borgstore_store: tuple[Path, Content]) -> None:
    path, content = borgstore_store
    with aiodepot.SyncStore(path.as_uri(), config=MIGRATING_CONFIG) as store:
        for namespace in ("data", "config", "locks"):
            for deleted in (False, True):
                expected = content.namespace(namespace, deleted=deleted)
                listed = list(store.list(namespace, deleted=deleted))
                assert [info.name for info in listed] == sorted(expected)
                assert [info.size for info in listed] == [len(expected[key]) for key in sorted(expected)]


def test_list_equals_borgstores_list_in_flat_namespaces(borgstore_store: tuple[Path, Content]) -> None:
    path, _ = borgstore_store
    with BorgStore(url=path.as_uri(), config=MIGRATING_CONFIG) as borg:
        expected = {
            (namespace, deleted): info_tuples(borg.list(namespace, deleted=deleted))
            for namespace in ("config", "locks")
            for deleted in (False, True)
        }
    with aiodepot.SyncStore(path.as_uri(), config=MIGRATING_CONFIG) as store:
        for (namespace, deleted), borg_list in expected.items():
            assert info_tuples(store.list(namespace, deleted=deleted)) == borg_list
            assert borg_list  # the comparison is not vacuous


def test_list_equals_borgstores_list_while_migrating(borgstore_store: tuple[Path, Content]) -> None:
    # borgstore walks directories depth first, so its listing of a namespace with items at two nesting
    # levels is not sorted; aiodepot merges the levels into key order: the same items, sorted.
    path, _ = borgstore_store
    with BorgStore(url=path.as_uri(), config=MIGRATING_CONFIG) as borg:
        borg_lists = {deleted: info_tuples(borg.list("data", deleted=deleted)) for deleted in (False, True)}
    with aiodepot.SyncStore(path.as_uri(), config=MIGRATING_CONFIG) as store:
        for deleted, borg_list in borg_lists.items():
            listed = info_tuples(store.list("data", deleted=deleted))
            assert [entry[0] for entry in listed] == sorted(entry[0] for entry in listed)
            assert listed == sorted(borg_list)


def test_list_equals_borgstores_list_at_one_level(borgstore_store: tuple[Path, Content]) -> None:
    # after a completed migration every item is at one level: both listings are the same sorted stream
    path, content = borgstore_store
    with BorgStore(url=path.as_uri(), config=MIGRATING_CONFIG) as borg:
        for name in content.old_level:
            deleted = name in content.deleted
            borg.move(name, change_level=True, deleted=deleted)
    with BorgStore(url=path.as_uri(), config=CONFIG) as borg:
        expected = {
            (namespace, deleted): info_tuples(borg.list(namespace, deleted=deleted))
            for namespace in ("data", "config", "locks")
            for deleted in (False, True)
        }
    with aiodepot.SyncStore(path.as_uri(), config=CONFIG) as store:
        for (namespace, deleted), borg_list in expected.items():
            assert info_tuples(store.list(namespace, deleted=deleted)) == borg_list
        assert [entry[0] for entry in expected["data", False]] == sorted(content.namespace("data"))
        for name, value in content.live.items():
            assert store.load(name) == value


def test_aiodepot_undeletes_what_borgstore_soft_deleted(borgstore_store: tuple[Path, Content]) -> None:
    path, content = borgstore_store
    old = next(name for name in sorted(content.deleted) if name in content.old_level)
    new = next(name for name in sorted(content.deleted) if name.startswith("data/") and name not in content.old_level)
    revived = [old, new, "config/manifest", "locks/shared-1"]
    with aiodepot.SyncStore(path.as_uri(), config=MIGRATING_CONFIG) as store:
        for name in revived:
            store.move(name, undelete=True)
    with BorgStore(url=path.as_uri(), config=MIGRATING_CONFIG) as borg:
        for name in revived:
            assert borg.load(name) == content.deleted[name]
            assert not borg.info(name, deleted=True).exists
        for namespace in ("data", "config", "locks"):
            live = {info.name for info in borg.list(namespace)}
            gone = {info.name for info in borg.list(namespace, deleted=True)}
            revived_here = {name.removeprefix(namespace + "/") for name in revived if name.startswith(namespace + "/")}
            assert live == set(content.namespace(namespace)) | revived_here
            assert gone == set(content.namespace(namespace, deleted=True)) - revived_here
    assert (path / nested_name(old, 1)).is_file()  # undeleted where it was: still at the old level
    assert (path / nested_name(new, 2)).is_file()


def test_each_library_continues_the_others_store(borgstore_store: tuple[Path, Content]) -> None:
    path, content = borgstore_store
    rnd = random.Random(5)
    added = {"data/" + random_key(rnd): random_value(rnd) for _ in range(30)}
    victim = sorted(content.namespace("data"))[0]
    with aiodepot.SyncStore(path.as_uri(), config=MIGRATING_CONFIG) as store:
        store.store_many(added)
        store.move("data/" + victim, delete=True)
        for name in sorted(content.old_level & content.live.keys())[:5]:
            store.move(name, change_level=True)  # migrate a few items to level 2
            assert (path / nested_name(name, 2)).is_file()
        store.store("config/main", b"overwritten by aiodepot")
    content.live.update(added)
    content.deleted["data/" + victim] = content.live.pop("data/" + victim)
    content.live["config/main"] = b"overwritten by aiodepot"
    with BorgStore(url=path.as_uri(), config=MIGRATING_CONFIG) as borg:
        assert {info.name for info in borg.list("data")} == set(content.namespace("data"))
        assert {info.name for info in borg.list("data", deleted=True)} == set(content.namespace("data", deleted=True))
        for name, value in content.live.items():
            assert borg.load(name) == value
        borg.move("data/" + victim, undelete=True)
        borg.delete("config/empty")
    with aiodepot.SyncStore(path.as_uri(), config=MIGRATING_CONFIG) as store:
        assert store.load("data/" + victim) == content.deleted["data/" + victim]
        assert not store.info("config/empty").exists
        assert [info.name for info in store.list("config")] == ["main"]


# quota.hid ------------------------------------------------------------------------------------------------


def disk_usage(path: Path) -> int:
    """The true usage: every file below ``path`` but the internal quota.hid and layout.hid (aiodepot's
    remembered levels; borgstore's rebuild of a lost quota.hid would count its ~100 bytes)."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and p.name not in ("quota.hid", "layout.hid"))


def quota_file(path: Path) -> int:
    return int((path / "quota.hid").read_text())


def borg_with_quota(path: Path, limit: int) -> BorgStore:
    return BorgStore(backend=PosixFS(path, quota=limit), config=CONFIG)


def test_borgstore_understands_aiodepots_quota_file(tmp_path: Path) -> None:
    path = tmp_path / "quota-a2b"
    store = aiodepot.SyncStore(path.as_uri(), config=CONFIG, quota=100_000)
    store.create()
    with store:
        store.store("config/main", b"x" * 1000)
        store.store("data/" + "00" * 32, b"y" * 30_000)
        store.store("locks/l", b"z" * 500)
        store.delete("locks/l")
        usage = store.quota()["usage"]
    assert usage == 31_000 == disk_usage(path) == quota_file(path)
    # a file the quota does not know of: borgstore must take quota.hid's word, not rescan
    (path / "config" / "untracked").write_bytes(b"u" * 777)
    borg = borg_with_quota(path, 100_000)
    with borg:
        assert borg.quota() == {"limit": 100_000, "usage": 31_000}
        borg.store("data/" + "11" * 32, b"b" * 9000)
        assert borg.quota()["usage"] == 40_000
    assert quota_file(path) == 40_000
    with aiodepot.SyncStore(path.as_uri(), config=CONFIG, quota=41_000) as store:
        assert store.quota() == {"limit": 41_000, "usage": 40_000}
        with pytest.raises(aiodepot.QuotaExceeded):
            store.store("data/" + "22" * 32, b"c" * 1001)  # borgstore's 9000 bytes count against it
        store.store("data/" + "22" * 32, b"c" * 1000)


def test_aiodepot_understands_borgstores_quota_file(tmp_path: Path) -> None:
    path = tmp_path / "quota-b2a"
    borg = borg_with_quota(path, 50_000)
    borg.create()
    with borg:
        borg.store("config/main", b"x" * 2000)
        borg.store("data/" + "aa" * 32, b"y" * 20_000)
        borg.store("data/" + "bb" * 32, b"y" * 3000)
        borg.delete("data/" + "bb" * 32)
    assert quota_file(path) == 22_000 == disk_usage(path)
    (path / "config" / "untracked").write_bytes(b"u" * 555)
    with aiodepot.SyncStore(path.as_uri(), config=CONFIG, quota=50_000) as store:
        assert store.quota() == {"limit": 50_000, "usage": 22_000}
        store.store("data/" + "cc" * 32, b"z" * 8000)
        store.store("config/main", b"x" * 1000)  # shrinks by 1000
        assert store.quota()["usage"] == 29_000
    assert quota_file(path) == 29_000
    borg = borg_with_quota(path, 30_000)
    with borg:
        assert borg.quota() == {"limit": 30_000, "usage": 29_000}


def test_concurrent_sessions_of_both_libraries_merge_their_usage(tmp_path: Path) -> None:
    path = tmp_path / "quota-both"
    store = aiodepot.SyncStore(path.as_uri(), config=CONFIG, quota=10**9)
    store.create()
    borg = borg_with_quota(path, 10**9)
    with store:
        store.store("config/main", b"a" * 100)
        borg.open()
        try:
            borg.store("config/other", b"b" * 2000)
            store.store("data/" + "01" * 32, b"c" * 30_000)
            borg.store("data/" + "02" * 32, b"d" * 400_000)
            borg.delete("config/other")
            store.store("config/main", b"a" * 150)
        finally:
            borg.close()
    assert quota_file(path) == disk_usage(path) == 150 + 30_000 + 400_000
    assert not [p for p in path.rglob("*.tmp")]
    assert os.path.getsize(path / "quota.hid") == len(str(430_150))
