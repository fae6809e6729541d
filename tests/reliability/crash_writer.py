"""A writer for the crash tests: stores values in bulk until it is killed, recording each acknowledged store.

Run as ``python -m tests.reliability.crash_writer URL ACKS --seed N --profile small|big`` from the
repository root. Every value is made by :func:`make_value` from its name and a version number, so a test can
tell a whole value from a torn one without knowing what the writer did. After a store call returns, the
writer appends ``name version sha256`` to the ack file and flushes it: a line in that file is a promise the
store made. Versions only grow: on start the writer continues from the versions the ack file holds.

Half of the stores go through ``store_many`` (the backend's batch path), half as concurrent single stores.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import sys
from pathlib import Path
from typing import Any

from aiodepot import Store

CONFIG: dict[str, dict[str, Any]] = {"data/": {"levels": [1]}}
"""One nesting level, so the values (and their temp files) spread over 256 directories."""
MiB = 1024 * 1024


def make_value(name: str, version: int, size: int) -> bytes:
    """The value ``name`` holds at ``version``: a header naming both and ``size`` bytes in all (at least the
    header), the rest pseudo-random bytes that depend on name and version only."""
    header = f"{name}|{version}|{size}\n".encode()
    rest = max(size - len(header), 0)
    return header + random.Random(f"{name}|{version}").randbytes(rest)


def check_value(listed_name: str, data: bytes) -> int:
    """The version of a whole, correct value stored under ``listed_name``; AssertionError if it is torn."""
    header, newline, _ = data.partition(b"\n")
    assert newline, f"{listed_name}: no header in {len(data)} bytes (torn or foreign value)"
    name, version, size = header.decode().split("|")
    assert name == listed_name, f"{listed_name} holds the value of {name}"
    expected = make_value(name, int(version), int(size))
    assert len(data) == len(expected), f"{listed_name} v{version}: {len(data)} bytes instead of {len(expected)}"
    assert data == expected, f"{listed_name} v{version}: the bytes differ from what was written"
    return int(version)


def read_acks(path: Path) -> dict[str, tuple[int, str]]:
    """name → (highest acknowledged version, its sha256) from an ack file (an unfinished last line is no ack)."""
    acks: dict[str, tuple[int, str]] = {}
    if not path.exists():
        return acks
    for line in path.read_text().splitlines(keepends=True):
        if not line.endswith("\n"):
            continue
        name, version, digest = line.split()
        if name not in acks or int(version) >= acks[name][0]:
            acks[name] = (int(version), digest)
    return acks


def pick_size(rng: random.Random, profile: str) -> int:
    """Mostly small values, some bigger; ``big`` adds values over the REST server's 8 MiB streaming limit."""
    roll = rng.random()
    if profile == "big" and roll < 0.04:
        return rng.randint(8 * MiB + 1, 12 * MiB)
    if roll < 0.15:
        return rng.randint(256 * 1024, 2 * MiB)
    return rng.randint(1, 64 * 1024)


class Writer:
    """Stores new values and new versions of acknowledged ones, for ever."""

    def __init__(self, url: str, acks: Path, seed: int, profile: str) -> None:
        self.store = Store(url, config=CONFIG)
        self.rng = random.Random(seed)
        self.profile = profile
        self.seed = seed
        self.versions = {name: version for name, (version, _) in read_acks(acks).items()}
        self.acks = acks.open("a")
        self.counter = 0
        self.busy: set[str] = set()

    def _next(self) -> tuple[str, bytes]:
        idle = sorted(set(self.versions) - self.busy)  # one write per name at a time: then the last ack wins
        if idle and self.rng.random() < 0.2:  # a new version of a value stored before
            name = self.rng.choice(idle)
        else:
            self.counter += 1
            name = "data/" + hashlib.sha256(f"{self.seed}-{self.counter}".encode()).hexdigest()[:24]
        version = self.versions.get(name, 0) + 1
        self.versions[name] = version
        self.busy.add(name)
        return name, make_value(name, version, pick_size(self.rng, self.profile))

    def _ack(self, name: str, value: bytes) -> None:
        version = value.partition(b"|")[2].partition(b"|")[0].decode()
        self.acks.write(f"{name} {version} {hashlib.sha256(value).hexdigest()}\n")
        self.acks.flush()

    async def _batch(self) -> None:
        items = dict(self._next() for _ in range(self.rng.randint(8, 48)))
        try:
            results = await self.store.store_many(items, return_exceptions=True)
        finally:
            self.busy.difference_update(items)
        for (name, value), error in zip(items.items(), results, strict=True):
            if error is None:
                self._ack(name, value)

    async def _single(self) -> None:
        name, value = self._next()
        try:
            await self.store.store(name, value)
        finally:
            self.busy.discard(name)
        self._ack(name, value)

    async def run(self) -> None:
        async with self.store:
            print("ready", flush=True)
            while True:
                jobs = [self._batch()] + [self._single() for _ in range(self.rng.randint(4, 16))]
                await asyncio.gather(*jobs, return_exceptions=True)


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments and write until killed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("acks", type=Path)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--profile", choices=("small", "big"), default="small")
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    asyncio.run(Writer(args.url, args.acks, args.seed, args.profile).run())


if __name__ == "__main__":
    main()
