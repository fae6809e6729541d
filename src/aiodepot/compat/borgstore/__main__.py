"""``python -m borgstore URL`` (with ``install()``) or ``python -m aiodepot.compat.borgstore URL``: a short
tour of the Store API on a new store at URL, which is created, used and — if you confirm — destroyed.
"""

from __future__ import annotations

import hashlib
import sys

__all__ = ["main", "run_demo"]


def run_demo(storage_url: str) -> None:
    """Create a store at ``storage_url``, store, list, load and soft-delete a few items, print what happens,
    then destroy the store if the user types DESTROY."""
    from .backends.errors import BackendAlreadyExists
    from .store import Store

    store = Store(url=storage_url, config={"config/": {"levels": [0]}, "data/": {"levels": [2]}})
    try:
        store.create()
    except BackendAlreadyExists:
        print(f"Error: a store exists at {storage_url} already; give the URL of a new one.")
        return
    with store:
        for name, value in (("config/main", b"answer = 42"), ("config/extra", b"colour = blue")):
            store.store(name, value)
            print(f"stored {name}: {value!r}")
        print(f"config namespace: {[info.name for info in store.list('config')]}")
        names = []
        for value in (b"first blob", b"second blob " * 3):
            name = "data/" + hashlib.sha256(value).hexdigest()
            store.store(name, value)
            names.append(name)
            print(f"stored {name} ({len(value)} bytes), read back: {store.load(name)!r}")
        store.move(names[1], delete=True)
        print(f"soft-deleted {names[1]}")
        print(f"data namespace: {[info.name for info in store.list('data')]}")
        print(f"deleted in data: {[info.name for info in store.list('data', deleted=True)]}")
        print(f"stats: {store.stats}")
    answer = input("Type DESTROY to remove the store (anything else keeps it): ")
    if answer == "DESTROY":
        store.destroy()
        print("destroyed")


def main(argv: list[str] | None = None) -> int:
    """Run `run_demo` on the one URL argument; print the usage otherwise."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(f"usage: python -m borgstore URL\n{__doc__}")
        return 2
    run_demo(args[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
