"""``aiodepot create``, ``cat``, ``get``, ``put``, ``rm``, ``undelete``, ``mv``."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from aiodepot.cli import items
from tests.servers import require_module
from tests.servers.azurite import start_azurite
from tests.servers.moto import start_moto_server

from .helpers import NESTED, Run, fill, read, soft_delete

VALUE = bytes(range(256)) * 40  # not valid UTF-8: the pipes must stay binary


# create ------------------------------------------------------------------------------------------------------


def test_create_makes_a_store_and_refuses_an_existing_one(run: Run, tmp_path: Path) -> None:
    url = (tmp_path / "new").as_uri()
    assert run("create", url).exit_code == 0
    assert (tmp_path / "new").is_dir()
    fill(url, {"x": b"1"})
    again = run("create", url)
    assert again.exit_code == 1
    assert again.stderr.startswith("aiodepot: ") and "exists already" in again.stderr


@pytest.fixture(scope="module")
def bucket_urls() -> Iterator[dict[str, Callable[[str], str]]]:
    """``scheme -> bucket -> URL`` on moto (s3:) and Azurite (azure:), both on loopback."""
    require_module("moto.server", pip="moto[server]")
    require_module("azure.storage.blob", pip="aiodepot[azure]")
    moto, azurite = start_moto_server(), start_azurite()
    try:
        yield {
            "s3": lambda bucket: moto.url(bucket, "depot"),
            "azure": lambda container: azurite.url(container, "depot"),
        }
    finally:
        moto.stop()
        azurite.stop()


@pytest.mark.parametrize("scheme", ["s3", "azure"])
def test_create_with_bucket_makes_the_missing_bucket(
    run: Run, scheme: str, bucket_urls: dict[str, Callable[[str], str]]
) -> None:
    url = bucket_urls[scheme](f"cli-{scheme}-bucket")
    missing = run("create", url)
    assert missing.exit_code == 1
    word = "bucket" if scheme == "s3" else "container"
    assert f"{word} 'cli-{scheme}-bucket' does not exist (aiodepot create --bucket creates it)" in missing.stderr
    assert "backend option" not in missing.stderr and "testing:testing" not in missing.stderr
    assert run("create", "--bucket", url).exit_code == 0
    assert run("create", "--bucket", url).exit_code == 0  # the bucket and an empty store exist: fine
    assert run("put", url, "x", input=b"1").exit_code == 0
    refused = run("create", "--bucket", url)
    assert refused.exit_code == 1 and "exists already" in refused.stderr


def test_create_with_bucket_names_a_bucket_name_the_service_refuses(
    run: Run, bucket_urls: dict[str, Callable[[str], str]]
) -> None:
    result = run("create", "--bucket", bucket_urls["s3"]("bx"))  # S3 bucket names have 3 characters at least
    assert result.exit_code == 2  # the URL is wrong: a usage error
    assert "bucket 'bx': the service refuses this bucket name (InvalidBucketName: " in result.stderr
    assert "testing:testing" not in result.stderr


def test_create_with_bucket_is_refused_where_there_is_no_bucket(run: Run, tmp_path: Path) -> None:
    result = run("create", "--bucket", (tmp_path / "depot").as_uri())
    assert result.exit_code == 2
    assert "--bucket is for s3:, b2:, gs: and azure: URLs, not file: ones" in result.stderr
    assert not (tmp_path / "depot").exists()


def test_a_local_path_works_as_a_url(run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert run("create", "./here").exit_code == 0
    assert run("put", "./here", "item", input=b"local").exit_code == 0
    assert (tmp_path / "here" / "item").read_bytes() == b"local"


def test_commands_need_an_existing_store(run: Run, tmp_path: Path) -> None:
    url = (tmp_path / "nothing").as_uri()
    result = run("put", url, "x", input=b"1")
    assert result.exit_code == 1
    assert result.stderr == f"aiodepot: {url}: no such store (create one with: aiodepot create {url})\n"
    assert not (tmp_path / "nothing").exists()


# put and cat ---------------------------------------------------------------------------------------------------


def test_put_from_stdin_and_cat_to_stdout(run: Run, depot: str) -> None:
    assert run("put", depot, "data/0123abcd", input=VALUE).exit_code == 0
    assert run("put", depot, "config/empty", "-", input=b"").exit_code == 0
    result = run("cat", depot, "data/0123abcd")
    assert result.exit_code == 0
    assert result.stdout_bytes == VALUE
    assert run("cat", depot, "config/empty").stdout_bytes == b""
    assert read(depot, "data/0123abcd") == VALUE


def test_put_replaces_an_item(run: Run, depot: str) -> None:
    run("put", depot, "k", input=b"old value")
    run("put", depot, "k", input=b"new")
    assert run("cat", depot, "k").stdout_bytes == b"new"


def test_put_from_a_file_streams_it(run: Run, depot: str, tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(VALUE * 10)
    assert run("put", depot, "data/big", str(source)).exit_code == 0
    assert read(depot, "data/big") == VALUE * 10


def test_put_of_a_long_stdin_spools_to_a_file(run: Run, depot: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(items, "SPOOL_LIMIT", 1000)
    assert run("put", depot, "spooled", input=VALUE * 3).exit_code == 0
    assert read(depot, "spooled") == VALUE * 3


def test_put_of_a_missing_file_is_one_line(run: Run, depot: str, tmp_path: Path) -> None:
    result = run("put", depot, "x", str(tmp_path / "absent"))
    assert result.exit_code == 1
    assert result.stderr == f"aiodepot: {tmp_path / 'absent'}: No such file or directory\n"
    result = run("put", depot, "x", str(tmp_path))
    assert result.exit_code == 2
    assert "is a directory" in result.stderr


def test_put_from_a_pipe(run: Run, depot: str) -> None:
    read_end, write_end = os.pipe()
    os.write(write_end, b"through a pipe")
    os.close(write_end)
    try:
        assert run("put", depot, "piped", f"/dev/fd/{read_end}").exit_code == 0
    finally:
        os.close(read_end)
    assert read(depot, "piped") == b"through a pipe"


def test_cat_several_items_and_a_missing_one(run: Run, depot: str) -> None:
    fill(depot, {"a": b"first ", "b": b"second"})
    result = run("cat", depot, "a", "data/xyz", "b")
    assert result.exit_code == 1
    assert result.stdout_bytes == b"first second"
    assert result.stderr == "aiodepot: data/xyz: no such item\n"


def test_cat_ranges(run: Run, depot: str) -> None:
    fill(depot, {"v": VALUE})
    assert run("cat", depot, "v", "--offset", "10", "--size", "5").stdout_bytes == VALUE[10:15]
    assert run("cat", depot, "v", "-o", "1k").stdout_bytes == VALUE[1024:]
    assert run("cat", depot, "v", "-s", "1k").stdout_bytes == VALUE[:1024]
    assert run("cat", depot, "v", "--offset", "-7").stdout_bytes == VALUE[-7:]
    assert run("cat", depot, "v", "--offset", "-7", "--size", "3").stdout_bytes == VALUE[-7:-4]
    assert run("cat", depot, "v", "--offset", "-2", "--size", "5").stdout_bytes == VALUE[-2:]
    assert run("cat", depot, "v", "--offset", str(len(VALUE) + 5)).stdout_bytes == b""
    assert run("cat", depot, "v", "--size", "0").stdout_bytes == b""


def test_cat_in_many_chunks(run: Run, depot: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fill(depot, {"v": VALUE})
    monkeypatch.setattr(items, "_chunk_size", lambda store: 1000)
    assert run("cat", depot, "v").stdout_bytes == VALUE
    assert run("cat", depot, "v", "--offset", "999", "--size", "2001").stdout_bytes == VALUE[999:3000]
    assert run("cat", depot, "v", "--offset", "3000").stdout_bytes == VALUE[3000:]


def test_cat_refuses_bad_ranges(run: Run, depot: str) -> None:
    for args in (["--size", "-1"], ["--offset", "x"], ["--size", "1.5k"]):
        result = run("cat", depot, "v", *args)
        assert result.exit_code == 2, args
        assert "Traceback" not in result.output


def test_cat_of_a_soft_deleted_item(run: Run, depot: str) -> None:
    fill(depot, {"gone": b"still here"})
    soft_delete(depot, "gone")
    assert run("cat", depot, "gone").exit_code == 1
    assert run("cat", depot, "gone", "--deleted").stdout_bytes == b"still here"


# nesting -------------------------------------------------------------------------------------------------------


def test_levels_find_nested_items(run: Run, depot: str, tmp_path: Path) -> None:
    assert run("put", depot, "data/abcdef", "--levels", "data=2", input=b"nested").exit_code == 0
    assert (tmp_path / "depot" / "data" / "ab" / "cd" / "abcdef").read_bytes() == b"nested"
    missing = run("cat", depot, "data/abcdef")
    assert missing.exit_code == 1
    assert missing.stderr == "aiodepot: data/abcdef: no such item\n"
    assert run("cat", depot, "data/abcdef", "--levels", "data=2").stdout_bytes == b"nested"
    assert run("cat", depot, "data/abcdef", "--levels", "data/=1,2").stdout_bytes == b"nested"
    assert run("cat", depot, "data/abcdef", env={"AIODEPOT_LEVELS": "config=0 data=2"}).stdout_bytes == b"nested"


def test_config_as_json_text_or_file(run: Run, depot: str, tmp_path: Path) -> None:
    fill(depot, {"data/abcdef": b"nested"}, config=NESTED)
    inline = '{"data/": {"levels": [1]}}'
    assert run("cat", depot, "data/abcdef", "--config", inline).stdout_bytes == b"nested"
    config_file = tmp_path / "config.json"
    config_file.write_text(inline)
    assert run("cat", depot, "data/abcdef", "--config", str(config_file)).stdout_bytes == b"nested"
    assert run("cat", depot, "data/abcdef", env={"AIODEPOT_CONFIG": str(config_file)}).stdout_bytes == b"nested"


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--levels", "data"),
        ("--levels", "data=x"),
        ("--levels", "Data=1"),
        ("--levels", "data=9"),
        ("--config", "{not json"),
        ("--config", "[1, 2]"),
        ("--config", '{"data/": {"levels": "2"}}'),
        ("--config", "/no/such/config.json"),
    ],
)
def test_bad_store_options_are_usage_errors(run: Run, depot: str, option: str, value: str) -> None:
    result = run("cat", depot, "x", option, value)
    assert result.exit_code == 2
    assert "Traceback" not in result.output


# get -----------------------------------------------------------------------------------------------------------


def test_get_into_a_file_a_directory_and_the_current_directory(
    run: Run, depot: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(depot, {"data/0123abcd": VALUE})
    target = tmp_path / "out.bin"
    assert run("get", depot, "data/0123abcd", str(target)).exit_code == 0
    assert target.read_bytes() == VALUE
    folder = tmp_path / "folder"
    folder.mkdir()
    assert run("get", depot, "data/0123abcd", str(folder)).exit_code == 0
    assert (folder / "0123abcd").read_bytes() == VALUE
    monkeypatch.chdir(folder)
    (folder / "0123abcd").unlink()
    assert run("get", depot, "data/0123abcd").exit_code == 0
    assert (folder / "0123abcd").read_bytes() == VALUE
    assert sorted(os.listdir(folder)) == ["0123abcd"]  # no temporary files left


def test_get_to_stdout_and_ranges(run: Run, depot: str, tmp_path: Path) -> None:
    fill(depot, {"v": VALUE})
    assert run("get", depot, "v", "-").stdout_bytes == VALUE
    assert run("get", depot, "v", "-", "--offset", "-3").stdout_bytes == VALUE[-3:]
    target = tmp_path / "part"
    assert run("get", depot, "v", str(target), "--offset", "100", "--size", "50").exit_code == 0
    assert target.read_bytes() == VALUE[100:150]
    assert sorted(os.listdir(tmp_path)) == ["depot", "part"]


def test_get_of_a_missing_item(run: Run, depot: str, tmp_path: Path) -> None:
    for extra in ([str(tmp_path / "x")], ["-"], [str(tmp_path / "y"), "--size", "3"]):
        result = run("get", depot, "data/xyz", *extra)
        assert result.exit_code == 1
        assert result.stderr == "aiodepot: data/xyz: no such item\n"
    assert sorted(os.listdir(tmp_path)) == ["depot"]
    fill(depot, {"data/xyz": b"1"})
    result = run("get", depot, "data/xyz", str(tmp_path / "no" / "where"))
    assert (result.exit_code, result.stderr) == (1, f"aiodepot: {tmp_path / 'no'}: No such directory\n")


# rm, undelete, mv ----------------------------------------------------------------------------------------------


def test_rm_removes_items_and_reports_missing_ones(run: Run, depot: str) -> None:
    fill(depot, {"a": b"1", "b": b"2", "c": b"3"})
    result = run("rm", depot, "a", "nope", "b")
    assert result.exit_code == 1
    assert result.stderr == "aiodepot: nope: no such item\n"
    assert read(depot, "a") is None and read(depot, "b") is None and read(depot, "c") == b"3"
    assert run("rm", depot, "-f", "nope", "c").exit_code == 0
    assert read(depot, "c") is None


def test_rm_soft_undelete_and_purge(run: Run, depot: str) -> None:
    fill(depot, {"data/0011": b"x", "data/0022": b"y"}, config=NESTED)
    levels = ("--levels", "data=1")
    assert run("rm", "--soft", depot, "data/0011", "data/0022", *levels).exit_code == 0
    assert run("ls", "-R", depot, *levels).stdout == ""
    assert run("ls", "-R", "--deleted", depot, *levels).stdout == "data/0011\ndata/0022\n"
    assert run("undelete", depot, "data/0011", *levels).exit_code == 0
    assert read(depot, "data/0011", config=NESTED) == b"x"
    assert run("rm", "--deleted", depot, "data/0022", *levels).exit_code == 0
    assert run("ls", "-R", "--deleted", depot, *levels).stdout == ""
    missing = run("undelete", depot, "data/0022", *levels)
    assert missing.exit_code == 1
    assert missing.stderr == "aiodepot: data/0022: no such item\n"
    assert run("rm", "--soft", "--deleted", depot, "x").exit_code == 2


def test_rm_recursive_empties_namespaces(run: Run, depot: str) -> None:
    fill(depot, {"data/0011": b"x", "data/sub/0022": b"y", "keep/it": b"z"}, config=NESTED)
    assert run("rm", "-r", depot, "data", "--levels", "data=1").exit_code == 0
    assert run("ls", "-R", depot, "--levels", "data=1").stdout == "keep/it\n"
    result = run("rm", "-r", depot, "nothing")
    assert result.exit_code == 1
    assert result.stderr == "aiodepot: nothing: no such namespace\n"


def test_rm_recursive_soft(run: Run, depot: str) -> None:
    fill(depot, {"data/a": b"x", "data/b": b"y"})
    assert run("rm", "-r", "--soft", depot, "data").exit_code == 0
    assert run("ls", "--deleted", depot, "data").stdout == "data/a\ndata/b\n"
    assert run("rm", "-r", "--deleted", depot, "data").exit_code == 0
    assert run("ls", "--deleted", depot, "data").stdout == ""


def test_mv_renames(run: Run, depot: str) -> None:
    fill(depot, {"data/old": b"value"})
    assert run("mv", depot, "data/old", "archive/new").exit_code == 0
    assert read(depot, "data/old") is None
    assert read(depot, "archive/new") == b"value"
    result = run("mv", depot, "data/old", "data/other")
    assert result.exit_code == 1
    assert result.stderr == "aiodepot: data/old: no such item\n"
    assert run("mv", depot, "archive/new", "Bad Name").exit_code == 2


def test_mv_of_a_soft_deleted_item(run: Run, depot: str) -> None:
    fill(depot, {"a": b"1"})
    soft_delete(depot, "a")
    assert run("mv", "--deleted", depot, "a", "b").exit_code == 0
    assert run("ls", "--deleted", depot).stdout == "b\n"


def test_memory_store_within_one_process(run: Run, tmp_path: Path) -> None:
    url = f"memory://cli-items-{tmp_path.name}"
    assert run("create", url).exit_code == 0
    assert run("put", url, "data/k", input=b"in memory").exit_code == 0
    assert run("cat", url, "data/k").stdout_bytes == b"in memory"
    assert run("rm", url, "data/k").exit_code == 0
