"""The compat layer's own tests: errors, install()/uninstall(), backends, and posixfs data compatibility
with the real borgstore package in both directions."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

import borgstore.store as real_store
import pytest
from borgstore.backends.errors import ObjectNotFound as RealObjectNotFound

import aiodepot
import aiodepot.compat.borgstore as compat
from aiodepot.compat.borgstore.backends import errors
from aiodepot.compat.borgstore.backends._base import BackendBase, ItemInfo
from aiodepot.compat.borgstore.backends.posixfs import PosixFS
from aiodepot.compat.borgstore.store import Store

CONFIG: dict[str, Any] = {"data/": {"levels": [2]}, "config/": {"levels": [0]}}
LEVELS = {"data/": [2], "config/": [0]}


def keys(count: int) -> list[str]:
    return [hashlib.sha256(str(i).encode()).hexdigest() for i in range(count)]


def fill(store: Any, names: list[str]) -> dict[str, bytes]:
    content = {f"data/{key}": key.encode() * (i % 3) for i, key in enumerate(names)}
    content["config/main"] = b"config"
    with store:
        for name, value in content.items():
            store.store(name, value)
        store.move(f"data/{names[0]}", delete=True)
    del content[f"data/{names[0]}"]
    return content


def read_all(store: Any) -> tuple[dict[str, bytes], list[str]]:
    with store:
        found = {
            f"{ns}/{info.name}": store.load(f"{ns}/{info.name}") for ns in ("data", "config") for info in store.list(ns)
        }
        deleted = [info.name for info in store.list("data", deleted=True)]
    return found, deleted


def test_errors_are_both_borgstore_and_aiodepot_errors() -> None:
    assert issubclass(errors.ObjectNotFound, aiodepot.ObjectNotFound)
    assert issubclass(errors.ObjectNotFound, errors.BackendError)
    assert issubclass(errors.BackendError, aiodepot.StoreError)
    assert issubclass(errors.PermissionDenied, PermissionError)
    translated = errors.translate(aiodepot.ObjectNotFound("data/x"))
    assert type(translated) is errors.ObjectNotFound and isinstance(translated.__cause__, aiodepot.ObjectNotFound)
    real = errors.translate(RealObjectNotFound("x"))
    assert type(real) is errors.ObjectNotFound
    short = errors.translate(aiodepot.ReadRangeError("data/ab: wanted 20 bytes at offset 2, got 8"))
    assert str(short) == "Read range error from data/ab (requested 20 bytes at offset 2, got 8)"


def test_store_semantics(tmp_path: Path) -> None:
    store = Store(url=(tmp_path / "s").as_uri(), config=CONFIG)
    store.create()
    names = keys(3)
    with store:
        store.store(f"data/{names[1]}", b"value")
        info = store.info(f"data/{names[1]}")
        assert info == ItemInfo(names[1], True, 5, False, info.atime, info.mtime)
        assert store.find(f"data/{names[1]}") == f"data/{names[1][:2]}/{names[1][2:4]}/{names[1]}"
        with pytest.raises(errors.ObjectNotFound):
            store.load(f"data/{names[2]}")
        with pytest.raises(aiodepot.ObjectNotFound):
            store.delete(f"data/{names[2]}")
        with pytest.raises(KeyError):
            store.load("unconfigured/x")
        assert store.load(f"data/{names[1]}", offset=-3) == b"lue"
        listing = store.list("data")
        assert next(listing).name == names[1]
        listing.close()
        with pytest.raises(KeyError):  # as in borgstore: "" is not a configured namespace here
            store.info("")
        assert store.quota() == {"limit": -1, "usage": -1}
    with pytest.raises(errors.BackendAlreadyExists):  # not empty any more
        store.create()
    store.destroy()
    with pytest.raises(errors.BackendDoesNotExist):
        store.destroy()


def test_posixfs_compat_layer_writes_borgstore_reads(tmp_path: Path) -> None:
    url = (tmp_path / "store").as_uri()
    ours = Store(url=url, config=CONFIG)
    ours.create()
    names = keys(40)
    content = fill(ours, names)
    found, deleted = read_all(real_store.Store(url=url, config=CONFIG))
    assert found == content
    assert deleted == [names[0]]


def test_posixfs_borgstore_writes_compat_layer_reads(tmp_path: Path) -> None:
    url = (tmp_path / "store").as_uri()
    theirs = real_store.Store(url=url, config=CONFIG)
    theirs.create()
    names = keys(40)
    content = fill(theirs, names)
    ours = Store(url=url, config=CONFIG)
    found, deleted = read_all(ours)
    assert found == content
    assert deleted == [names[0]]
    ours.set_levels({"data/": [2, 1], "config/": [0]})
    with ours:  # a level migration started by us, finished by borgstore
        ours.move(f"data/{names[1]}", change_level=True)
        assert ours.find(f"data/{names[1]}") == f"data/{names[1][:2]}/{names[1]}"
    theirs.set_levels({"data/": [2, 1], "config/": [0]})
    with theirs:
        assert theirs.load(f"data/{names[1]}") == content[f"data/{names[1]}"]


class Recording(BackendBase):
    """A third-party borgstore-style backend: the compat Store must call it, serialized, in a thread."""

    def __init__(self, inner: PosixFS) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def __getattribute__(self, name: str) -> Any:
        if name in ("inner", "calls", "precreate_dirs", "__class__", "__dict__") or name.startswith("__"):
            return object.__getattribute__(self, name)
        object.__getattribute__(self, "calls").append(name)
        return getattr(object.__getattribute__(self, "inner"), name)

    create = destroy = open = close = mkdir = rmdir = info = load = store = delete = move = list = None  # type: ignore[assignment]


def test_foreign_backend_and_cache(tmp_path: Path) -> None:
    backend = Recording(PosixFS(tmp_path / "primary"))
    config = {"data/": {"levels": [1], "cache": "writethrough", "size": 10}}
    store = Store(backend=backend, config=config, cache_url=(tmp_path / "cache").as_uri())
    store.create()
    with store:
        for i in range(4):
            store.store(f"data/{i:02d}aa", b"x" * 4)
        assert store.load("data/03aa") == b"xxxx"
        stats = store.stats
        assert stats["cache_hits"] == 1
        assert stats["cache_delete_calls"] >= 2  # the size limit evicted the oldest
    assert {"store", "open", "close"} <= set(backend.calls)  # the load was a cache hit
    store.destroy()


def test_install_and_uninstall() -> None:
    code = (
        "import sys, borgstore.store as real\n"
        "import aiodepot.compat.borgstore as c\n"
        "c.install(); c.install()\n"
        "import borgstore.store, borgstore.backends.errors as e, borgstore.utils.nesting as n\n"
        "assert borgstore.store.Store.__module__ == 'aiodepot.compat.borgstore.store'\n"
        "assert n.nest('ns/12345678', 2) == 'ns/12/34/12345678'\n"
        "import borgstore.server.rest as srv, borgstore.backends._utils as u, borgstore.__main__ as m\n"
        "assert srv.__name__ == 'aiodepot.compat.borgstore.server.rest'\n"
        "assert srv.get_backend is borgstore.store.get_backend\n"
        "assert u.make_range_header(5, 10) == 'bytes=5-14' and callable(m.run_demo)\n"
        "c.uninstall()\n"
        "import borgstore.store as again\n"
        "assert again is real and not c.installed()\n"
    )
    import subprocess

    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stderr


def test_rclone_and_missing_backends_fail_clearly(tmp_path: Path) -> None:
    from aiodepot.compat.borgstore.store import get_backend

    assert get_backend("nothing:here") is None
    with pytest.raises(ValueError):
        get_backend("sftp://host/path", permissions={"": "lr"})
    assert compat.installed() is False


def test_single_calls_of_a_file_store_run_in_the_callers_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(url=f"file://{tmp_path}/s", config=CONFIG)
    store.create()
    with store:
        assert store.async_store._direct_ok("load") and store.async_store._direct_ok("store")
        key = keys(1)[0]
        store.store(f"data/{key}", b"value")
        assert store.load(f"data/{key}") == b"value"
        info = store.info(f"data/{key}")
        assert (info.name, info.exists, info.size) == (key, True, 5)
        missing = keys(2)[1]
        with pytest.raises(errors.ObjectNotFound):  # the drop-in's error class, as on the portal
            store.load(f"data/{missing}")
        assert not store.info(f"data/{missing}").exists
        store.delete(f"data/{key}")
        assert store.stats["load_calls"] == 2 and store.stats["store_calls"] == 1
    # emulated latency needs the loop (the caller sleeps what it owes): no direct path there
    monkeypatch.setenv("BORGSTORE_LATENCY", "1")
    slow = Store(url=f"file://{tmp_path}/s", config=CONFIG)
    with slow:
        assert not slow.async_store._direct_ok("load")
        slow.store(f"data/{key}", b"x")
        assert slow.load(f"data/{key}") == b"x"
