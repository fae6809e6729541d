"""``aiodepot cp`` and ``sync`` between two stores."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from aiodepot.cli import transfer

from .helpers import NESTED, Run, fill, read, soft_delete

LEVELS = ("--levels", "data=1")
ITEMS = {f"data/{i:04x}{'ab' * 4}": bytes([i]) * (i + 1) for i in range(40)} | {
    "config/main": b"settings",
    "config/sub/deep": b"deeper",
    "top": b"at the root",
}


@pytest.fixture
def source(tmp_path: Path) -> str:
    url = (tmp_path / "src").as_uri()
    fill(url, ITEMS, config=NESTED, create=True)
    return url


@pytest.fixture
def target(tmp_path: Path) -> str:
    return (tmp_path / "dst").as_uri()


def listing(run: Run, url: str, *extra: str) -> list[str]:
    result = run("ls", "-R", url, *extra)
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


def assert_same(url: str, items: dict[str, bytes], config: dict[str, dict[str, list[int]]] = NESTED) -> None:
    for name, value in items.items():
        assert read(url, name, config=config) == value, name


# cp ------------------------------------------------------------------------------------------------------------


def test_cp_copies_a_whole_store_into_a_new_one(run: Run, source: str, target: str, tmp_path: Path) -> None:
    result = run("cp", source, target, *LEVELS)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"copied {len(ITEMS)} items (")
    assert listing(run, target, *LEVELS) == sorted(ITEMS)
    assert_same(target, ITEMS)
    assert (tmp_path / "dst" / "data" / "00").is_dir()  # the same nesting as the source


def test_cp_with_other_nesting_at_the_destination(run: Run, source: str, target: str, tmp_path: Path) -> None:
    assert run("cp", source, target, *LEVELS, "--dst-levels", "data=2").exit_code == 0
    assert_same(target, ITEMS, {"data/": {"levels": [2]}, "": {"levels": [0]}})
    assert (tmp_path / "dst" / "data" / "00" / "00" / "0000abababab").is_file()
    config = json.dumps({"data/": {"levels": [0]}})
    assert run("cp", source, (tmp_path / "flat").as_uri(), *LEVELS, "--dst-config", config).exit_code == 0
    assert (tmp_path / "flat" / "data" / "0000abababab").is_file()


def test_cp_of_namespaces_and_single_items(run: Run, source: str, target: str) -> None:
    assert run("cp", source, target, "config", "top", "config/sub", *LEVELS).exit_code == 0
    assert listing(run, target) == ["config/main", "config/sub/deep", "top"]
    missing = run("cp", source, target, "nothing", *LEVELS)
    assert missing.exit_code == 1
    assert missing.stderr == f"aiodepot: {source}: nothing: no such namespace at the source\n"


def test_cp_json_and_quiet(run: Run, source: str, target: str) -> None:
    summary = json.loads(run("cp", "--json", source, target, *LEVELS).stdout)
    assert summary["copied"] == len(ITEMS)
    assert summary["bytes"] == sum(len(value) for value in ITEMS.values())
    assert summary["deleted"] == 0 and summary["dry_run"] is False
    assert run("cp", "-q", source, target, *LEVELS).stdout == ""


def test_cp_in_small_batches_with_a_progress_bar(run: Run, source: str, target: str) -> None:
    result = run("cp", "--batch-size", "3", "--progress", "-c", "2", source, target, *LEVELS)
    assert result.exit_code == 0, result.output
    assert "items" in result.stderr  # the bar's last state
    assert_same(target, ITEMS)


def test_cp_of_big_values_goes_through_a_file(
    run: Run, source: str, target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transfer, "MAX_BYTES_IN_FLIGHT", 20)  # values above 10 bytes go through a file
    assert run("cp", source, target, *LEVELS).exit_code == 0
    assert_same(target, ITEMS)


def test_cp_dry_run_changes_nothing(run: Run, source: str, target: str, tmp_path: Path) -> None:
    result = run("cp", "-n", source, target, "config", *LEVELS)
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "copy config/main",
        "copy config/sub/deep",
        "dry run: would copy 2 items (14 B), delete 0; 0 unchanged",
    ]
    assert not (tmp_path / "dst").exists()


def test_cp_from_memory_to_file(run: Run, target: str, tmp_path: Path) -> None:
    memory = f"memory://cli-cp-{tmp_path.name}"
    fill(memory, {"a/b": b"1", "c": b"2"}, create=True)
    assert run("cp", memory, target).exit_code == 0
    assert listing(run, target) == ["a/b", "c"]
    assert run("cp", target, f"memory://cli-cp-back-{tmp_path.name}").exit_code == 0
    assert listing(run, f"memory://cli-cp-back-{tmp_path.name}") == ["a/b", "c"]


def test_cp_refuses_the_same_store_and_bad_urls(run: Run, source: str) -> None:
    same = run("cp", source, source)
    assert same.exit_code == 2
    assert "the same store" in same.stderr
    bad = run("cp", source, "nosuch://x")
    assert bad.exit_code == 2
    assert "unknown store URL scheme" in bad.stderr
    assert run("cp", "relative/path", source).exit_code == 1  # a local path: no such store there


# sync ----------------------------------------------------------------------------------------------------------


def test_sync_copies_what_is_new_or_changed(run: Run, source: str, target: str) -> None:
    first = json.loads(run("sync", "--json", source, target, *LEVELS).stdout)
    assert (first["copied"], first["unchanged"], first["deleted"]) == (len(ITEMS), 0, 0)
    again = json.loads(run("sync", "--json", source, target, *LEVELS).stdout)
    assert (again["copied"], again["unchanged"]) == (0, len(ITEMS))

    fill(source, {"top": b"a longer value now", "data/ffff0000": b"new"}, config=NESTED)
    fill(target, {"extra": b"only at the destination"}, config=NESTED)
    third = json.loads(run("sync", "--json", source, target, *LEVELS).stdout)
    assert (third["copied"], third["deleted"]) == (2, 0)
    assert read(target, "top") == b"a longer value now"
    assert read(target, "data/ffff0000", config=NESTED) == b"new"
    assert read(target, "extra") == b"only at the destination"  # no --delete: left alone


def test_sync_delete_and_dry_run(run: Run, source: str, target: str) -> None:
    run("sync", source, target, *LEVELS)
    fill(target, {"extra": b"x", "data/eeee0000": b"y", "config/sub/more": b"z"}, config=NESTED)
    fill(source, {"data/ffff0000": b"new"}, config=NESTED)

    plan = run("sync", "--delete", "--dry-run", source, target, *LEVELS)
    assert plan.exit_code == 0
    assert plan.stdout.splitlines() == [
        "copy data/ffff0000",
        "delete config/sub/more",
        "delete data/eeee0000",
        "delete extra",
        f"dry run: would copy 1 item (3 B), delete 3; {len(ITEMS)} unchanged",
    ]
    assert read(target, "extra") == b"x" and read(target, "data/ffff0000", config=NESTED) is None
    as_json = json.loads(run("sync", "--delete", "--dry-run", "--json", source, target, *LEVELS).stdout)
    assert as_json["copy"] == ["data/ffff0000"]
    assert as_json["delete"] == ["config/sub/more", "data/eeee0000", "extra"]
    assert as_json["dry_run"] is True

    done = run("sync", "--delete", source, target, *LEVELS)
    assert done.exit_code == 0
    assert "deleted 3" in done.stdout
    assert listing(run, target, *LEVELS) == listing(run, source, *LEVELS)


def test_sync_of_one_namespace_leaves_the_others(run: Run, source: str, target: str) -> None:
    fill(target, {"keep/me": b"1", "config/stale": b"2"}, create=True)
    assert run("sync", "--delete", source, target, "config", *LEVELS).exit_code == 0
    assert listing(run, target) == ["config/main", "config/sub/deep", "keep/me"]


def test_sync_checksum_finds_changes_of_equal_size(run: Run, source: str, target: str) -> None:
    run("sync", source, target, *LEVELS)
    fill(target, {"top": b"AT THE ROOT"})  # same size, other content
    by_size = json.loads(run("sync", "--json", source, target, *LEVELS).stdout)
    assert by_size["copied"] == 0
    by_hash = json.loads(run("sync", "--json", "--checksum", source, target, *LEVELS).stdout)
    assert (by_hash["copied"], by_hash["unchanged"]) == (1, len(ITEMS) - 1)
    assert read(target, "top") == b"at the root"


def test_sync_dry_run_into_a_missing_store_creates_nothing(run: Run, source: str, target: str, tmp_path: Path) -> None:
    result = run("sync", "--dry-run", "--json", source, target, *LEVELS)
    assert json.loads(result.stdout)["copied"] == len(ITEMS)
    assert not (tmp_path / "dst").exists()


def test_sync_leaves_soft_deleted_items_alone(run: Run, source: str, target: str) -> None:
    soft_delete(source, "top")
    run("sync", source, target, *LEVELS)
    assert read(target, "top") is None
    fill(target, {"gone": b"1"})
    soft_delete(target, "gone")
    assert run("sync", "--delete", source, target, *LEVELS).exit_code == 0
    assert run("ls", "-R", "--deleted", target).stdout == "gone\n"


def test_sync_from_a_missing_store(run: Run, target: str, tmp_path: Path) -> None:
    result = run("sync", (tmp_path / "absent").as_uri(), target)
    assert result.exit_code == 1
    assert "no such store" in result.stderr
    assert not os.path.exists(tmp_path / "dst")
