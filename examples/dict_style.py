"""Dict-style access for legacy code: a namespace of a store as a ``MutableMapping[str, bytes]``.

``SyncStore.mapping(namespace)`` gives a view that code written for a dict can use unchanged: ``[]``,
``in``, ``get``, ``update``, ``del``, iteration and ``keys(prefix)``. Every operation is a store call
(``in`` is one ``info``, not a load). ``Store.mapping`` is the async twin. Run it with
``python examples/dict_style.py``.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import MutableMapping
from pathlib import Path

import aiodepot


def legacy_cache_fill(cache: MutableMapping[str, bytes]) -> None:
    """Code that was written against a plain dict."""
    cache["user/alice"] = b"admin"
    cache["user/bob"] = b"reader"
    cache.update({"motd": b"hello", "theme": b"dark"})
    if "theme" in cache:
        cache["theme"] = cache["theme"].upper()
    cache.setdefault("motd", b"not used: motd exists")
    del cache["user/bob"]


def main(workdir: Path) -> None:
    store = aiodepot.SyncStore((workdir / "depot").as_uri())
    store.create()
    with store:
        cache = store.mapping("cache")
        legacy_cache_fill(cache)
        print("keys:", list(cache))
        print("user keys:", list(cache.keys(prefix="user/")))
        assert list(cache) == ["motd", "theme", "user/alice"]
        assert dict(cache.items()) == {"motd": b"hello", "theme": b"DARK", "user/alice": b"admin"}
        assert cache == {"motd": b"hello", "theme": b"DARK", "user/alice": b"admin"}
        assert cache.get("missing", b"default") == b"default"
        assert "missing" not in cache
        assert store.load("cache/theme") == b"DARK"  # the view is the store: same items, full names

        try:
            cache["missing"]
        except KeyError as exc:
            print("missing key:", repr(exc))

        # Content-addressed values: the name is the hash, so storing the same bytes twice stores once.
        blobs = store.mapping("blobs")
        name = store.store_new("blobs", b"some shared content")
        assert store.store_new("blobs", b"some shared content") == name
        assert len(blobs) == 1
        assert blobs[name.removeprefix("blobs/")] == b"some shared content"
        print("content key:", name)

    async def async_twin() -> None:
        async with aiodepot.Store((workdir / "depot").as_uri()) as astore:
            view = astore.mapping("cache")
            await view.set("counter", b"1")
            assert await view.contains("counter")
            assert await view.load("counter") == b"1"
            print("async keys:", [key async for key in view])

    asyncio.run(async_twin())
    print("done")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="aiodepot-example-") as directory:
        main(Path(directory))
