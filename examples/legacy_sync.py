"""aiodepot from plain blocking code: SyncStore, no ``async``/``await`` anywhere.

SyncStore has the same arguments and methods as the async Store; each call runs on a private event
loop thread and blocks until it is done. ``list()`` is an ordinary iterator, and a ``timeout`` cancels
calls that take too long. Run it with ``python examples/legacy_sync.py``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import aiodepot


def main(workdir: Path) -> None:
    url = (workdir / "depot").as_uri()
    config = {"config/": {"levels": [0]}, "archives/": {"levels": [1]}}

    store = aiodepot.SyncStore(url, config=config)
    store.create()
    print(f"created {url}")

    with store:  # open() ... close()
        store.store("config/main", b"owner=backup\n")
        for day in range(1, 31):
            store.store(f"archives/{day:02d}2024", f"archive of day {day}".encode())
        print("stored config/main and 30 archives")

        assert store.load("config/main") == b"owner=backup\n"
        assert store.load("archives/152024", offset=-2) == b"15"
        assert store.info("archives/152024").size == len(b"archive of day 15")

        # list() returns a plain iterator; items come over from the loop thread in batches
        names = []
        total = 0
        for info in store.list("archives"):
            names.append(info.name)
            total += info.size
        assert names == sorted(f"{day:02d}2024" for day in range(1, 31))
        print(f"listed {len(names)} archives ({total} bytes), first {names[0]}, last {names[-1]}")

        # the bulk calls block too, and take a plain function as progress callback
        done: list[int] = []
        values = store.load_many(
            [f"archives/{day:02d}2024" for day in range(1, 11)],
            progress=lambda progress: done.append(progress.items_done),
        )
        assert values[0] == b"archive of day 1"
        assert len(done) == 10
        print(f"load_many returned {len(values)} values, progress called {len(done)} times")

        store.move("archives/012024", delete=True)  # soft delete
        assert [info.name for info in store.list("archives", deleted=True)] == ["012024"]
        store.move("archives/012024", undelete=True)
        print("soft-deleted and undeleted archives/012024")

        print(f"stats: {store.stats['store_calls']} stores, {store.stats['load_calls']} loads")

    # A timeout cancels a call that runs too long. To get a slow store on a fast disk, emulate a
    # far-away backend: every backend call then takes at least 0.5 s.
    slow = aiodepot.SyncStore(url, config=config, latency=0.5, timeout=0.1)
    with slow:
        started = time.monotonic()
        try:
            slow.load("config/main")
        except TimeoutError as exc:
            waited = time.monotonic() - started
            print(f"a call on the emulated slow link timed out after {waited:.2f} s: {exc}")
        else:
            raise AssertionError("the load should have timed out")
        assert waited < 0.4, "the timeout must not wait for the slow call to finish"
        slow.timeout = None  # the store stays usable; without a timeout the call completes
        assert slow.load("config/main") == b"owner=backup\n"
        print("without the timeout the same load succeeds")

    store.destroy()
    print("destroyed the store")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="aiodepot-example-") as tmp:
        main(Path(tmp))
    print("ok")
