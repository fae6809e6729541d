"""Model-based tests: a hypothesis state machine drives a Store against a dict model.

The machine stores, loads (whole and ranged, negative offsets too), describes, renames, soft-deletes,
undeletes, deletes, lists, hashes and does the bulk calls on a small pool of names, so overwrites,
collisions and operations on missing or deleted items happen all the time; midway it changes the nesting
levels of a namespace and migrates some items (the rest must still be found and listed). Every answer is
compared with a model of live items, soft-deleted items and levels per namespace.

It runs through [`SyncStore`][aiodepot.SyncStore] (so the sync facade is exercised too) on memory, posixfs,
sftp (OpenSSH's sshd), s3 (moto's server) and rest (aiodepot's server over posixfs). The default run is
bounded; ``-m slow`` runs the full counts.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from aiodepot import ObjectNotFound, SyncStore
from aiodepot.backends.memory import MemoryBackend
from aiodepot.backends.posixfs import PosixFSBackend
from tests.servers import require_module
from tests.servers.moto import MotoServer, start_moto_server
from tests.servers.rest import ThreadedServer
from tests.servers.sshd import Sshd, sshd

NAMESPACES = ("data", "meta")
KEYS = ("00aa11bb", "00aa11bc", "0a0b0c0d", "ffeeddcc")
NAMES = [f"{ns}/{key}" for ns in NAMESPACES for key in KEYS]
START_LEVELS = {"data": 2, "meta": 0}

names = st.sampled_from(NAMES)
namespaces = st.sampled_from(NAMESPACES)
values = st.one_of(
    st.just(b""),
    st.binary(max_size=40),
    # a few KB of random bytes (drawn from a seed: cheaper to generate and shrink than the bytes themselves)
    st.builds(lambda seed, size: random.Random(seed).randbytes(size), st.integers(0, 2**32), st.integers(1, 5000)),
)
offsets = st.one_of(st.integers(-6000, 6000), st.sampled_from([0, -1, 1]))
sizes = st.one_of(st.none(), st.integers(0, 6000), st.sampled_from([0, 1]))


def expected_range(value: bytes, offset: int, size: int | None) -> bytes:
    """What ``load(offset=, size=)`` returns: negative offsets count from the end, a range past the end
    comes back short."""
    start = max(len(value) + offset, 0) if offset < 0 else offset
    return value[start:] if size is None else value[start : start + size]


StoreFactory = Callable[[dict[str, Any]], tuple[SyncStore, Callable[[], None]]]


class StoreModel(RuleBasedStateMachine):
    """A Store and its model: live and soft-deleted values per name, nesting levels per namespace."""

    factory: StoreFactory  # set by the test before the machine runs
    list_everything: bool = False
    """Also list the nested namespace (live and deleted) after every step: cheap on local backends."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[str, bytes] = {}
        self.deleted: dict[str, bytes] = {}
        self.levels: dict[str, list[int]] = {ns: [level] for ns, level in START_LEVELS.items()}
        self.store, self._cleanup = type(self).factory(self.config())
        self.store.create()
        self.store.open()

    def config(self) -> dict[str, Any]:
        return {f"{ns}/": {"levels": list(levels)} for ns, levels in self.levels.items()}

    def teardown(self) -> None:
        try:
            if self.store.opened:
                self.store.close()
        finally:
            self._cleanup()

    @initialize(seed=st.dictionaries(names, values, max_size=4))
    def prefill(self, seed: dict[str, bytes]) -> None:
        for name, value in seed.items():
            self.store.store(name, value)
            self.live[name] = value

    # writes ----------------------------------------------------------------------------------------------

    @rule(name=names, value=values)
    def store_value(self, name: str, value: bytes) -> None:
        self.store.store(name, value)
        self.live[name] = value

    @rule(name=names, new_name=names)
    def rename(self, name: str, new_name: str) -> None:
        if name not in self.live:
            with pytest.raises(ObjectNotFound):
                self.store.move(name, new_name)
            return
        self.store.move(name, new_name)
        self.live[new_name] = self.live.pop(name)

    @rule(name=names)
    def soft_delete(self, name: str) -> None:
        if name not in self.live:
            with pytest.raises(ObjectNotFound):
                self.store.move(name, delete=True)
            return
        self.store.move(name, delete=True)
        self.deleted[name] = self.live.pop(name)

    @rule(name=names)
    def undelete(self, name: str) -> None:
        if name not in self.deleted:
            with pytest.raises(ObjectNotFound):
                self.store.move(name, undelete=True)
            return
        self.store.move(name, undelete=True)
        self.live[name] = self.deleted.pop(name)

    @rule(name=names, deleted=st.booleans())
    def delete(self, name: str, deleted: bool) -> None:
        items = self.deleted if deleted else self.live
        if name not in items:
            with pytest.raises(ObjectNotFound):
                self.store.delete(name, deleted=deleted)
            return
        self.store.delete(name, deleted=deleted)
        del items[name]

    @rule(items=st.dictionaries(names, values, min_size=1, max_size=5))
    def store_many(self, items: dict[str, bytes]) -> None:
        assert self.store.store_many(items) == [None] * len(items)
        self.live.update(items)

    @rule(chosen=st.lists(names, min_size=1, max_size=5, unique=True))
    def delete_many(self, chosen: list[str]) -> None:
        outcomes = self.store.delete_many(chosen, return_exceptions=True)
        for name, outcome in zip(chosen, outcomes, strict=True):
            if name in self.live:
                assert outcome is None, (name, outcome)
                del self.live[name]
            else:
                assert isinstance(outcome, ObjectNotFound), (name, outcome)

    # nesting levels --------------------------------------------------------------------------------------

    @precondition(lambda self: len(self.levels["data"]) == 1)
    @rule(level=st.integers(0, 3))
    def start_migration(self, level: int) -> None:
        """Add a new last level to ``data/``: new items go there, old ones are still found where they are."""
        if level == self.levels["data"][-1]:
            return
        self.levels["data"].append(level)
        self.store.set_levels(self.config())

    @precondition(lambda self: len(self.levels["data"]) > 1)
    @rule(name=st.sampled_from([n for n in NAMES if n.startswith("data/")]), deleted=st.booleans())
    def migrate_one(self, name: str, deleted: bool) -> None:
        items = self.deleted if deleted else self.live
        if name not in items:
            with pytest.raises(ObjectNotFound):
                self.store.move(name, change_level=True, deleted=deleted)
            return
        self.store.move(name, change_level=True, deleted=deleted)

    @precondition(lambda self: len(self.levels["data"]) > 1)
    @rule()
    def finish_migration(self) -> None:
        """Move every remaining item to the new level, then drop the old level from the config."""
        for name in sorted(self.live):
            if name.startswith("data/"):
                self.store.move(name, change_level=True)
        for name in sorted(self.deleted):
            if name.startswith("data/"):
                self.store.move(name, change_level=True, deleted=True)
        self.levels["data"] = self.levels["data"][-1:]
        self.store.set_levels(self.config())
        self.check_listing("data", deleted=False)
        self.check_listing("data", deleted=True)

    # the same rules on a name the model has (drawn from it), so hits are as common as misses ----------------

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def load_present(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.live)), label="name")
        self.load(name, data.draw(offsets, label="offset"), data.draw(sizes, label="size"), False)

    @precondition(lambda self: self.deleted)
    @rule(data=st.data())
    def load_deleted_present(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.deleted)), label="name")
        self.load(name, data.draw(offsets, label="offset"), data.draw(sizes, label="size"), True)

    @precondition(lambda self: self.deleted)
    @rule(data=st.data())
    def store_over_deleted(self, data: st.DataObject) -> None:
        """A new value under a soft-deleted name: both forms exist (at different levels while migrating)."""
        self.store_value(data.draw(st.sampled_from(sorted(self.deleted)), label="name"), data.draw(values))

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def modify_present(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.live)), label="name")
        action = data.draw(st.sampled_from(["rename", "soft_delete", "delete", "hash", "info"]), label="action")
        if action == "rename":
            self.rename(name, data.draw(names, label="new_name"))
        elif action == "soft_delete":
            self.soft_delete(name)
        elif action == "delete":
            self.delete(name, False)
        elif action == "hash":
            self.hash(name)
        else:
            self.info(name, False)

    @precondition(lambda self: self.deleted)
    @rule(data=st.data())
    def modify_deleted_present(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.deleted)), label="name")
        action = data.draw(st.sampled_from(["undelete", "delete", "info"]), label="action")
        if action == "undelete":
            self.undelete(name)
        elif action == "delete":
            self.delete(name, True)
        else:
            self.info(name, True)

    @precondition(
        lambda self: len(self.levels["data"]) > 1 and any(n.startswith("data/") for n in [*self.live, *self.deleted])
    )
    @rule(data=st.data())
    def migrate_present(self, data: st.DataObject) -> None:
        choices = [(n, False) for n in sorted(self.live)] + [(n, True) for n in sorted(self.deleted)]
        name, deleted = data.draw(st.sampled_from([c for c in choices if c[0].startswith("data/")]), label="item")
        self.migrate_one(name, deleted)

    # reads -----------------------------------------------------------------------------------------------

    @rule(name=names, offset=offsets, size=sizes, deleted=st.booleans())
    def load(self, name: str, offset: int, size: int | None, deleted: bool) -> None:
        items = self.deleted if deleted else self.live
        if name not in items:
            with pytest.raises(ObjectNotFound):
                self.store.load(name, offset=offset, size=size, deleted=deleted)
            return
        got = self.store.load(name, offset=offset, size=size, deleted=deleted)
        assert got == expected_range(items[name], offset, size), (name, offset, size, len(items[name]))

    @rule(name=names, deleted=st.booleans())
    def info(self, name: str, deleted: bool) -> None:
        items = self.deleted if deleted else self.live
        info = self.store.info(name, deleted=deleted)
        assert info.name == name
        assert info.exists == (name in items), name
        if info.exists:
            assert (info.size, info.directory) == (len(items[name]), False)

    @rule(name=names)
    def hash(self, name: str) -> None:
        if name not in self.live:
            with pytest.raises(ObjectNotFound):
                self.store.hash(name)
            return
        assert self.store.hash(name) == hashlib.sha256(self.live[name]).hexdigest()

    @rule(chosen=st.lists(names, min_size=1, max_size=6))
    def load_many(self, chosen: list[str]) -> None:
        outcomes = self.store.load_many(chosen, return_exceptions=True)
        for name, outcome in zip(chosen, outcomes, strict=True):
            if name in self.live:
                assert outcome == self.live[name], name
            else:
                assert isinstance(outcome, ObjectNotFound), (name, outcome)

    @rule(namespace=namespaces, deleted=st.booleans())
    def list(self, namespace: str, deleted: bool) -> None:
        self.check_listing(namespace, deleted=deleted)

    def check_listing(self, namespace: str, *, deleted: bool) -> None:
        items = self.deleted if deleted else self.live
        want = sorted(
            (name.partition("/")[2], len(value)) for name, value in items.items() if name.startswith(namespace + "/")
        )
        got = [(info.name, info.size) for info in self.store.list(namespace, deleted=deleted)]
        assert got == want, (namespace, deleted, self.levels)

    # invariants ------------------------------------------------------------------------------------------

    @invariant()
    def flat_namespace_lists_the_model(self) -> None:
        """After every step: one listing of the flat namespace (a single backend call) matches the model;
        on local backends the nested namespace, live and deleted, too."""
        self.check_listing("meta", deleted=False)
        if self.list_everything:
            self.check_listing("data", deleted=False)
            self.check_listing("data", deleted=True)


# backends ----------------------------------------------------------------------------------------------------

BOUNDED_EXAMPLES = {"memory": 100, "posixfs": 50, "sftp": 15, "s3": 12, "rest": 20}
BOUNDED_STEPS = {"memory": 50, "posixfs": 40, "sftp": 30, "s3": 25, "rest": 30}
FULL_EXAMPLES = 250
FULL_STEPS = 50
BACKENDS = ["memory", "posixfs", "sftp", "s3", "rest"]
LOCAL = {"memory", "posixfs"}


@pytest.fixture(scope="module")
def openssh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    with sshd(tmp_path_factory.mktemp("model-sshd")) as server:
        yield server


@pytest.fixture(scope="module")
def moto_server() -> Iterator[MotoServer]:
    require_module("moto.server", pip="moto[server]")
    server = start_moto_server()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def rest_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    """aiodepot's server with one posixfs repository per example (``/<repo>/<item>``)."""
    root = tmp_path_factory.mktemp("model-rest")
    with ThreadedServer(None, repos=lambda repo: PosixFSBackend(root / repo)) as server:
        yield server


def factory_for(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """A function that makes a fresh, not yet created store of ``kind`` for one example."""

    def nothing() -> None:
        pass

    if kind == "memory":
        return lambda config: (SyncStore(backend=MemoryBackend(), config=config), nothing)
    if kind == "posixfs":

        def posixfs(config: dict[str, Any]) -> tuple[SyncStore, Callable[[], None]]:
            return SyncStore(f"file://{tmp_path}/{uuid.uuid4().hex}", config=config), nothing

        return posixfs
    if kind == "sftp":
        from aiodepot.backends.sftp import SftpBackend

        openssh: Sshd = request.getfixturevalue("openssh")

        def sftp(config: dict[str, Any]) -> tuple[SyncStore, Callable[[], None]]:
            backend = SftpBackend.from_url(openssh.url(tmp_path / uuid.uuid4().hex), **openssh.options())
            return SyncStore(backend=backend, config=config), nothing

        return sftp
    if kind == "s3":
        from aiodepot.backends.s3 import S3Backend

        moto: MotoServer = request.getfixturevalue("moto_server")
        bucket = f"aiodepot-model-{uuid.uuid4().hex[:16]}"

        def s3(config: dict[str, Any]) -> tuple[SyncStore, Callable[[], None]]:
            url = moto.url(bucket, f"model/{uuid.uuid4().hex}")
            return SyncStore(backend=S3Backend.from_url(url, create_bucket=True), config=config), nothing

        return s3
    assert kind == "rest"
    from aiodepot.backends.rest import RestBackend

    server: ThreadedServer = request.getfixturevalue("rest_server")

    def rest(config: dict[str, Any]) -> tuple[SyncStore, Callable[[], None]]:
        backend = RestBackend(
            f"{server.url}/{uuid.uuid4().hex[:16]}", retry=RestBackend.default_retry.with_backoff(0.01)
        )
        return SyncStore(backend=backend, config=config), nothing

    return rest


def run_model(kind: str, request: pytest.FixtureRequest, tmp_path: Path, *, examples: int, steps: int) -> None:
    machine = type(
        f"StoreModel_{kind}",
        (StoreModel,),
        {"factory": staticmethod(factory_for(kind, request, tmp_path)), "list_everything": kind in LOCAL},
    )
    run_state_machine_as_test(  # type: ignore[no-untyped-call]
        machine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,  # real servers: a step's time depends on the machine's load, not on the code
            database=None,
            derandomize=examples < FULL_EXAMPLES,  # the bounded run checks the same sequences every time
            # reason: a few KB values and real servers make generation and steps slow by hypothesis' measure
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        ),
    )


@pytest.mark.parametrize("kind", BACKENDS)
def test_store_follows_the_model(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    run_model(kind, request, tmp_path, examples=BOUNDED_EXAMPLES[kind], steps=BOUNDED_STEPS[kind])


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("kind", BACKENDS)
def test_store_follows_the_model_full(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    run_model(kind, request, tmp_path, examples=FULL_EXAMPLES, steps=FULL_STEPS)


# regressions the machine found, kept as plain tests ------------------------------------------------------------


@pytest.mark.parametrize("kind", BACKENDS)
def test_empty_load_of_a_missing_item_raises(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """``load(name, size=0)`` of a missing item raised nothing over REST: the client sent no request
    and the server answered ``Range: bytes=-0`` without looking (shrunk from a model run)."""
    store, cleanup = factory_for(kind, request, tmp_path)({"data/": {"levels": [2]}})
    store.create()
    try:
        with store:
            with pytest.raises(ObjectNotFound):
                store.load("data/00aa11bb", size=0)
            with pytest.raises(ObjectNotFound):
                store.load("data/00aa11bb", offset=-5, size=0)
            store.store("data/00aa11bb", b"value")
            assert store.load("data/00aa11bb", size=0) == b""
            assert store.load("data/00aa11bb", offset=-5, size=0) == b""
    finally:
        cleanup()


@pytest.mark.parametrize("kind", BACKENDS)
def test_soft_delete_and_undelete_leave_no_copy_at_another_level(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """While a namespace is between two nesting levels, undelete and soft delete put the item where its
    other copy already is, so no second copy is left behind at the other level (found on s3 by a slow
    model run, ~50 steps; these are the shortest sequences that show it)."""
    name = "data/ffeeddcc"
    store, cleanup = factory_for(kind, request, tmp_path)({"data/": {"levels": [2]}})
    store.create()
    try:
        with store:
            # undelete: the deleted value is at level 2, a newer live one at level 0
            store.store(name, b"old")
            store.move(name, delete=True)
            store.set_levels({"data/": {"levels": [2, 0]}})
            store.store(name, b"new")  # not at level 2 any more: goes to level 0
            store.move(name, undelete=True)  # replaces the live value, wherever it is
            assert store.load(name) == b"old"
            assert [(i.name, i.size) for i in store.list("data")] == [("ffeeddcc", 3)]
            store.delete(name)
            assert not store.info(name).exists
            assert list(store.list("data")) == []
            # soft delete: an older deleted value at level 2, the live one at level 0
            store.store(name, b"live")
            store.move(name, delete=True)  # goes where nothing is yet: level 0 (.del)
            store.set_levels({"data/": {"levels": [0, 2]}})
            store.store(name, b"newer")  # level 2 now comes last: a new item goes there
            store.move(name, delete=True)  # replaces the deleted copy at level 0
            assert [(i.name, i.size) for i in store.list("data", deleted=True)] == [("ffeeddcc", 5)]
            store.move(name, undelete=True)
            assert store.load(name) == b"newer"
            assert list(store.list("data", deleted=True)) == []
    finally:
        cleanup()
