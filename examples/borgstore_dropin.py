"""An application written for borgstore, running unchanged on aiodepot.

``aiodepot.compat.borgstore.install()`` makes ``import borgstore`` give aiodepot's drop-in, so the code
below — plain borgstore 0.7 API — runs on aiodepot's async core. Run it with no arguments; it works in a
temporary directory.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import aiodepot.compat.borgstore

aiodepot.compat.borgstore.install()

from borgstore.backends.errors import ObjectNotFound  # noqa: E402 - after install(), on purpose
from borgstore.store import Store  # noqa: E402

CONFIG = {
    "config/": {"levels": [0]},
    "data/": {"levels": [2], "cache": "writethrough", "size": 1024 * 1024},
}


def main() -> None:
    """Create a store, write, read, soft-delete and list, as a borgstore application would."""
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(url=Path(tmp, "repo").as_uri(), config=CONFIG, cache_url=Path(tmp, "cache").as_uri())
        store.create()
        with store:
            store.store("config/main", b"version = 1")
            for value in (b"alpha", b"beta", b"gamma"):
                store.store("data/" + hashlib.sha256(value).hexdigest(), value)
            doomed = "data/" + hashlib.sha256(b"beta").hexdigest()
            store.move(doomed, delete=True)  # soft delete
            try:
                store.load(doomed)
            except ObjectNotFound:
                print("soft-deleted item is gone")
            for info in store.list("data"):
                print(info.name[:12], info.size, store.load("data/" + info.name))
            print("backend:", store.backend, "| cache hits:", store.stats["cache_hits"])
        store.destroy()
    aiodepot.compat.borgstore.uninstall()


if __name__ == "__main__":
    main()
