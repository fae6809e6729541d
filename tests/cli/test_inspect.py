"""``aiodepot ls``, ``hash``, ``info``, ``du``/``stats``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from .helpers import NESTED, Run, fill, soft_delete

LEVELS = ("--levels", "data=1")
ITEMS = {
    "top": b"t" * 5,
    "config/x": b"c" * 3,
    "config/sub/y": b"y" * 4,
    "data/abcdef": b"d" * 10,
    "data/0011": b"e" * 20,
}


@pytest.fixture
def filled(depot: str) -> str:
    fill(depot, ITEMS, config=NESTED)
    soft_delete(depot, "data/0011", config=NESTED)
    return depot


# ls ------------------------------------------------------------------------------------------------------------


def test_ls_shows_the_root_with_namespaces(run: Run, filled: str) -> None:
    result = run("ls", filled, *LEVELS)
    assert result.exit_code == 0
    assert result.stdout == "config/\ndata/\ntop\n"


def test_ls_recursive_gives_full_sorted_names(run: Run, filled: str) -> None:
    assert run("ls", "-R", filled, *LEVELS).stdout == "config/sub/y\nconfig/x\ndata/abcdef\ntop\n"
    assert run("ls", filled, "config", *LEVELS).stdout == "config/sub/\nconfig/x\n"
    assert run("ls", filled, "config/", "-R", *LEVELS).stdout == "config/sub/y\nconfig/x\n"


def test_ls_deleted(run: Run, filled: str) -> None:
    assert run("ls", "-R", "--deleted", filled, *LEVELS).stdout == "data/0011\n"
    assert run("ls", "--deleted", filled, "data", *LEVELS).stdout == "data/0011\n"


def test_ls_long_and_human(run: Run, depot: str) -> None:
    fill(depot, {"data/big": b"x" * 3000, "data/small": b"y"})
    lines = run("ls", "-l", depot, "data").stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["3000", "1"]
    assert [line.split()[-1] for line in lines] == ["data/big", "data/small"]
    human = run("ls", "-l", "-H", depot, "data").stdout
    assert "2.9 KiB" in human and "1 B" in human
    namespaces = run("ls", "-l", depot).stdout
    assert namespaces.split() == ["-", "-", "data/"]


def test_ls_json(run: Run, filled: str) -> None:
    listing = json.loads(run("ls", "--json", filled, *LEVELS).stdout)
    assert [entry["name"] for entry in listing] == ["config/", "data/", "top"]
    assert {key: listing[0][key] for key in ("name", "type", "size", "deleted")} == {
        "name": "config/",
        "type": "namespace",
        "size": 0,
        "deleted": False,
    }
    assert listing[2]["type"] == "item" and listing[2]["size"] == 5 and listing[2]["deleted"] is False
    assert listing[2]["mtime"] > 0
    deleted = json.loads(run("ls", "--json", "-R", "--deleted", filled, *LEVELS).stdout)
    assert [(entry["name"], entry["deleted"], entry["size"]) for entry in deleted] == [("data/0011", True, 20)]
    assert json.loads(run("ls", "--json", filled, "data/sub", "--levels", "data/sub=0").stdout) == []


def test_ls_of_an_item_shows_it(run: Run, filled: str) -> None:
    assert run("ls", filled, "data/abcdef", *LEVELS).stdout == "data/abcdef\n"
    assert json.loads(run("ls", "--json", filled, "top").stdout)[0]["size"] == 5


def test_ls_of_a_missing_namespace(run: Run, filled: str) -> None:
    result = run("ls", filled, "nothing")
    assert result.exit_code == 1
    assert result.stderr == "aiodepot: nothing: no such namespace or item\n"
    assert run("ls", filled, "nothing", "--levels", "nothing=1").stdout == ""  # configured: empty


def test_ls_without_levels_shows_nesting_as_namespaces(run: Run, filled: str) -> None:
    assert run("ls", "-R", filled).stdout == "config/sub/y\nconfig/x\ndata/ab/abcdef\ntop\n"


def test_ls_warns_about_items_outside_the_nesting(run: Run, depot: str) -> None:
    fill(depot, {"data/flat": b"1"})
    fill(depot, {"data/0011": b"2"}, config=NESTED)
    result = run("ls", "-R", depot, *LEVELS)
    assert result.stdout == "data/0011\n"
    assert "skipped 1 item(s) outside the configured nesting levels, e.g. data/flat" in result.stderr
    assert run("ls", "-R", depot, "--levels", "data=0,1").stdout == "data/0011\ndata/flat\n"


def test_ls_bad_url_and_bad_namespace(run: Run, tmp_path: Path) -> None:
    result = run("ls", "nosuch://x")
    assert result.exit_code == 2
    assert result.stderr.startswith("aiodepot: nosuch://x: unknown store URL scheme 'nosuch'")
    assert result.stderr.count("\n") == 1
    result = run("ls", "file://relative/path")
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    result = run("ls", (tmp_path / "absent").as_uri())
    assert result.exit_code == 1
    assert "no such store" in result.stderr
    result = run("ls", (tmp_path / "absent").as_uri(), "Bad")
    assert result.exit_code == 2


# hash ----------------------------------------------------------------------------------------------------------


def test_hash_like_sha256sum(run: Run, filled: str) -> None:
    result = run("hash", filled, "top", "config/x")
    assert result.exit_code == 0
    assert result.stdout == (
        f"{hashlib.sha256(ITEMS['top']).hexdigest()}  top\n{hashlib.sha256(ITEMS['config/x']).hexdigest()}  config/x\n"
    )


def test_hash_algorithms_and_json(run: Run, filled: str) -> None:
    digests = json.loads(run("hash", "--json", "-a", "md5", filled, "top", "data/abcdef", *LEVELS).stdout)
    assert digests == {
        "top": hashlib.md5(ITEMS["top"]).hexdigest(),
        "data/abcdef": hashlib.md5(ITEMS["data/abcdef"]).hexdigest(),
    }
    blake = run("hash", "--algorithm", "blake3", filled, "top").stdout.split()[0]
    assert len(blake) == 64
    assert run("hash", "--deleted", filled, "data/0011", *LEVELS).stdout.startswith(
        hashlib.sha256(ITEMS["data/0011"]).hexdigest()
    )


def test_hash_errors(run: Run, filled: str) -> None:
    bad = run("hash", "-a", "nonsense", filled, "top")
    assert bad.exit_code == 2
    assert "unsupported hash algorithm" in bad.stderr
    missing = run("hash", filled, "top", "nope")
    assert missing.exit_code == 1
    assert missing.stdout.endswith("  top\n")
    assert missing.stderr == "aiodepot: nope: no such item\n"


# info ----------------------------------------------------------------------------------------------------------


def test_info_of_the_store(run: Run, filled: str) -> None:
    document = json.loads(run("info", "--json", filled, *LEVELS, "-c", "7").stdout)
    assert document["url"] == filled
    assert document["backend"] == "PosixFSBackend"
    assert document["levels"] == {"data/": [1], "": [0]}
    assert document["max_concurrency"] == 7
    assert document["capabilities"]["batch_ops"] is True
    assert document["quota"] == {"limit": -1, "usage": -1}
    text = run("info", filled, *LEVELS).stdout
    assert "PosixFSBackend" in text and "data=[1]" in text and "quota:           none" in text


def test_info_of_items(run: Run, filled: str) -> None:
    items = json.loads(run("info", "--json", filled, "top", "data/abcdef", *LEVELS).stdout)
    assert [(item["name"], item["size"]) for item in items] == [("top", 5), ("data/abcdef", 10)]
    assert all(item["mtime"] > 0 for item in items)
    text = run("info", filled, "top").stdout
    assert "name:  top" in text and "size:  5" in text
    missing = run("info", filled, "top", "nope")
    assert missing.exit_code == 1
    assert missing.stderr == "aiodepot: nope: no such item\n"
    assert "name:  top" in missing.stdout
    assert json.loads(run("info", "--json", "--deleted", filled, "data/0011", *LEVELS).stdout)[0]["size"] == 20


@pytest.mark.parametrize("url", ["http://user:secret@127.0.0.1:port/depot", "sftp://user:secret@host:port/x"])
def test_messages_hide_passwords(run: Run, url: str) -> None:
    result = run("info", url)
    assert result.exit_code == 2
    assert "user:***@" in result.stderr
    assert "secret" not in result.output


# du / stats ----------------------------------------------------------------------------------------------------


def test_du_counts_per_namespace(run: Run, filled: str) -> None:
    document = json.loads(run("du", "--json", filled, *LEVELS).stdout)
    assert document["namespaces"] == {
        "": {"items": 1, "bytes": 5, "deleted_items": 0, "deleted_bytes": 0},
        "config": {"items": 1, "bytes": 3, "deleted_items": 0, "deleted_bytes": 0},
        "config/sub": {"items": 1, "bytes": 4, "deleted_items": 0, "deleted_bytes": 0},
        "data": {"items": 1, "bytes": 10, "deleted_items": 1, "deleted_bytes": 20},
    }
    assert document["total"] == {"items": 4, "bytes": 22, "deleted_items": 1, "deleted_bytes": 20}
    assert document["quota"] == {"limit": -1, "usage": -1}
    assert run("stats", "--json", filled, *LEVELS).stdout == run("du", "--json", filled, *LEVELS).stdout


def test_du_of_some_namespaces_and_as_text(run: Run, filled: str) -> None:
    document = json.loads(run("du", "--json", filled, "config", "config/sub", *LEVELS).stdout)
    assert list(document["namespaces"]) == ["config", "config/sub"]
    assert document["total"]["bytes"] == 7
    lines = run("du", filled, *LEVELS).stdout.splitlines()
    assert lines[0].split() == ["items", "bytes", "deleted", "del.", "bytes", "namespace"]
    assert lines[1].split() == ["1", "5", "0", "0", "/"]
    assert lines[-1].split() == ["4", "22", "1", "20", "total"]
    assert "KiB" not in run("du", "-H", filled).stdout and " B " in run("du", "-H", filled).stdout
    missing = run("du", filled, "nothing")
    assert missing.exit_code == 1
    assert missing.stderr == "aiodepot: nothing: no such namespace\n"


def test_du_of_an_empty_memory_store(run: Run, tmp_path: Path) -> None:
    url = f"memory://cli-du-{tmp_path.name}"
    run("create", url)
    document = json.loads(run("du", "--json", url).stdout)
    assert document["total"] == {"items": 0, "bytes": 0, "deleted_items": 0, "deleted_bytes": 0}
