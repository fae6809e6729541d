"""``aiodepot bench``."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from aiodepot import BackendError, Store, StoreNotFound

from .helpers import Run, fill, read


def test_bench_in_an_existing_store_leaves_it_as_it_was(run: Run, depot: str, tmp_path: Path) -> None:
    fill(depot, {"data/keep": b"mine"})
    before = sorted(os.listdir(tmp_path / "depot"))
    result = run("bench", depot, "-n", "50", "-s", "1k", "--json")
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["count"] == 50 and figures["size"] == 1024 and figures["fresh_store"] is False
    assert set(figures["results"]) == {"store", "load", "delete"}
    for op, numbers in figures["results"].items():
        assert numbers["seconds"] >= 0
        assert numbers["items_per_second"] is None or numbers["items_per_second"] > 0
        assert (numbers["mib_per_second"] is None) == (op == "delete" or not numbers["seconds"])
    assert sorted(os.listdir(tmp_path / "depot")) == before
    assert read(depot, "data/keep") == b"mine"


def test_bench_with_nesting_removes_its_directories(run: Run, depot: str, tmp_path: Path) -> None:
    result = run("bench", depot, "-n", "20", "--nesting", "2", "-c", "4")
    assert result.exit_code == 0, result.output
    assert "store" in result.stdout and "MiB/s" in result.stdout and "concurrency 4" in result.stdout
    assert os.listdir(tmp_path / "depot") == []


def test_bench_without_a_store_uses_a_fresh_one(run: Run, tmp_path: Path) -> None:
    url = f"memory://cli-bench-{tmp_path.name}"
    figures = json.loads(run("bench", url, "-n", "30", "--json").stdout)
    assert figures["fresh_store"] is True
    with pytest.raises(StoreNotFound):
        asyncio.run(Store(url).open())  # destroyed afterwards
    local = tmp_path / "fresh"
    assert run("bench", str(local), "-n", "10").exit_code == 0
    assert not local.exists()


def test_bench_bad_options(run: Run, depot: str) -> None:
    assert run("bench", depot, "-n", "0").exit_code == 2
    assert run("bench", depot, "-s", "lots").exit_code == 2
    assert run("bench", depot, "--nesting", "5").exit_code == 2


def test_bench_cleans_up_after_a_failure(run: Run, depot: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(self: Store, names: object, **options: object) -> list[bytes]:
        raise BackendError("disk on fire")

    monkeypatch.setattr(Store, "load_many", broken)
    result = run("bench", depot, "-n", "10")
    assert (result.exit_code, result.stderr) == (1, "aiodepot: disk on fire\n")
    assert os.listdir(tmp_path / "depot") == []


def test_bench_verifies_what_it_loads(run: Run, depot: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def wrong(self: Store, names: list[str], **options: object) -> list[bytes]:
        return [b"not it"] * len(names)

    monkeypatch.setattr(Store, "load_many", wrong)
    result = run("bench", depot, "-n", "10")
    assert (result.exit_code, result.stderr) == (
        1,
        "aiodepot: verification failed: 10 of 10 values came back different\n",
    )
    assert os.listdir(tmp_path / "depot") == []
