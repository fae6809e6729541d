"""Issue 23: what a new user meets first — foreign and damaged stores, messages that name the store, hints.

Every check runs the real console script in a subprocess: one ``aiodepot:`` line, the store URL in it,
the documented exit code, no traceback.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from aiodepot import BackendURLInvalid, Store, StoreCorrupt, StoreError, StoreExists
from aiodepot.cli.common import display_url

from .helpers import SCRIPT, one_line_error, script

STORE_COMMANDS = (("ls",), ("put", "x"), ("info",))


def _foreign_and_damaged(tmp_path: Path) -> dict[str, str]:
    """URL → what the message must say, for files and directories that are not usable stores."""
    random_file = tmp_path / "random.db"
    random_file.write_bytes(bytes(range(256)) * 20)
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE t (x)")
    conn.close()
    good = tmp_path / "good.db"
    asyncio.run(Store(f"sqlite://{good}").create())
    truncated = tmp_path / "truncated.db"
    truncated.write_bytes(good.read_bytes()[:3000])
    not_zip = tmp_path / "junk.zip"
    not_zip.write_bytes(b"junk" * 100)
    plain_file = tmp_path / "plain"
    plain_file.write_text("x")
    directory = tmp_path / "dir.db"
    directory.mkdir()
    return {
        f"sqlite://{random_file}": "damaged or not a SQLite database",
        f"sqlite://{foreign}": "a SQLite database of something else",
        f"sqlite://{truncated}": "damaged",
        f"zip://{not_zip}": "not a zip archive",
        plain_file.as_uri(): "not a directory",
        f"sqlite://{directory}": "not a file",
    }


def test_foreign_or_damaged_files_give_one_line_naming_the_store(tmp_path: Path) -> None:
    for url, says in _foreign_and_damaged(tmp_path).items():
        for command, *rest in STORE_COMMANDS:
            done = script(command, url, *rest, input=b"value")
            one_line_error(done, url, says)


def test_foreign_or_damaged_files_raise_store_corrupt_in_python(tmp_path: Path) -> None:
    for url in _foreign_and_damaged(tmp_path):

        async def go(url: str = url) -> None:
            async with Store(url):
                pass

        with pytest.raises(StoreCorrupt) as caught:
            asyncio.run(go())
        assert url.split("://", 1)[1] in str(caught.value)


def test_create_over_foreign_files_says_what_is_in_the_way(tmp_path: Path) -> None:
    cases = _foreign_and_damaged(tmp_path)
    for url in cases:
        one_line_error(script("create", url), url)  # "a store exists already (…)" or what is wrong
        with pytest.raises(StoreError):
            asyncio.run(Store(url).create())
    foreign = next(url for url in cases if url.endswith("/foreign.db"))
    # ls and create agree that it is somebody else's database
    assert "something else" in script("ls", foreign).stderr.decode()
    assert "something else" in script("create", foreign).stderr.decode()
    with pytest.raises(StoreExists):
        asyncio.run(Store(foreign).create())


def test_a_damaged_zip_member_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a", b"x" * 1000)
    data = bytearray(path.read_bytes())
    data[40:60] = b"\0" * 20  # inside member a's data
    path.write_bytes(data)
    one_line_error(script("cat", f"zip://{path}", "a"), str(path), "CRC")


def test_memory_store_hint(tmp_path: Path) -> None:
    created = script("create", "memory://x")
    assert created.returncode == 0
    assert b"only inside this process" in created.stderr
    one_line_error(script("put", "memory://x", "a", input=b"v"), "memory://x", "lives only inside the process")


# point 5: refused connections, missing servers: at once, naming the URL -----------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_refused_connection_fails_at_once_naming_the_url() -> None:
    port = _closed_port()
    urls = [
        f"http://127.0.0.1:{port}/",
        f"http://user:sekrit@127.0.0.1:{port}/store",
        f"sftp://127.0.0.1:{port}/store",
        f"redis://127.0.0.1:{port}/0",
        f"rest://127.0.0.1:{port}/store",  # ssh to a closed port
        "sftp://no-such-host.invalid/store",
        f"ftp://user:sekrit@127.0.0.1:{port}/store",
        f"ftps://127.0.0.1:{port}/store",
        f"gs://bucket/store?endpoint=http://127.0.0.1:{port}",
        f"azure://devstoreaccount1:c2Vrcml0@container/store?endpoint=http://127.0.0.1:{port}/devstoreaccount1",
        f"azure://devstoreaccount1:c2Vr/3JpdA==@container/store?endpoint=http://127.0.0.1:{port}/devstoreaccount1",
    ]
    for url in urls:
        for command in ("ls", "create"):
            started = time.monotonic()
            done = script(command, url)
            took = time.monotonic() - started
            text = one_line_error(done, display_url(url), "is the server running")
            # no retries: RestBackend's would wait 3 x 5 s; the bound leaves room for a slow start under load
            assert took < 10, (url, took)
            assert "sekrit" not in text and "c2Vrcml0" not in text and "c2Vr/3Jp" not in text and "retry" not in text
            assert "the store:" not in text, text  # the URL names the store already


def test_retries_go_to_the_log_at_debug_level() -> None:
    port = _closed_port()
    env = {**os.environ, "AIODEPOT_DEBUG": "1"}
    done = subprocess.run(
        [str(SCRIPT), "ls", f"http://127.0.0.1:{port}/"], capture_output=True, timeout=60, env=env, check=False
    )
    assert done.returncode == 1
    assert all(line.startswith("aiodepot: ") for line in done.stderr.decode().splitlines())


# points 11, 12: the missing item's message, local paths in Python ----------------------------------------------


def test_object_not_found_names_the_item_and_the_store(tmp_path: Path) -> None:
    url = (tmp_path / "depot").as_uri()

    async def go() -> str:
        store = Store(str(tmp_path / "depot"))  # a plain path, as the command line takes it
        await store.create()
        async with store:
            with pytest.raises(KeyError) as caught:
                await store.load("nokey")
        return str(caught.value)

    assert asyncio.run(go()) == f"no item 'nokey' in {url}"
    one_line_error(script("cat", str(tmp_path / "depot"), "nokey"), "nokey: no such item")


# point 6: query strings and fragments -----------------------------------------------------------------------


def test_a_query_or_fragment_is_refused(tmp_path: Path) -> None:
    for url in (f"{tmp_path.as_uri()}/q?x=1", f"{tmp_path.as_uri()}/q#frag", f"sqlite://{tmp_path}/q.db?mode=ro"):
        one_line_error(script("create", url), "take no query", code=2)
        with pytest.raises(BackendURLInvalid):
            Store(url)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    literal = tmp_path / "q?x=1"  # a local path is a path: '?' is part of the name
    assert script("create", str(literal)).returncode == 0
    assert literal.is_dir()


# point 7: get names the user's file ---------------------------------------------------------------------------


def test_get_into_a_missing_directory_names_the_target(tmp_path: Path) -> None:
    depot = str(tmp_path / "depot")
    assert script("create", depot).returncode == 0
    assert script("put", depot, "k", input=b"value").returncode == 0
    for target in (tmp_path / "nodir" / "x", f"{tmp_path / 'nodir'}/"):
        text = one_line_error(script("get", depot, "k", str(target)), "nodir", "No such directory")
        assert ".part" not in text
    assert not (tmp_path / "nodir").exists()


# the walk: no permission, a full disk ----------------------------------------------------------------------------


def _without_dac_override(*args: str) -> subprocess.CompletedProcess[bytes]:
    """The console script as root without CAP_DAC_OVERRIDE: file permission bits apply to it, as to a user."""
    return subprocess.run(
        ["capsh", "--drop=cap_dac_override,cap_dac_read_search", "--", "-c", 'exec "$0" "$@"', str(SCRIPT), *args],
        capture_output=True,
        timeout=120,
        check=False,
        input=b"value",
    )


def test_no_permission_is_one_line_naming_the_store(tmp_path: Path) -> None:
    if shutil.which("capsh") is None:
        pytest.skip("capsh (libcap2-bin) is needed to drop root's permission override")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    probe = subprocess.run(
        ["capsh", "--drop=cap_dac_override,cap_dac_read_search", "--", "-c", f"touch {locked}/probe"],
        capture_output=True,
        check=False,
    )
    if probe.returncode == 0:
        pytest.skip("permission bits do not bind here (no capability to drop)")
    depot = tmp_path / "depot"
    assert script("create", str(depot)).returncode == 0
    assert script("put", str(depot), "data/k", input=b"v").returncode == 0
    for path in (depot, depot / "data"):
        path.chmod(0o555)
    url = depot.as_uri()
    one_line_error(_without_dac_override("put", str(depot), "data/x"), url, "Permission denied")
    one_line_error(_without_dac_override("create", str(locked / "sub")), "locked/sub", "Permission denied")
    one_line_error(_without_dac_override("cp", str(depot), str(locked / "copy")), "Permission denied")
    depot.chmod(0o000)
    for command in (("ls",), ("cat", "data/k"), ("info",), ("du",)):
        one_line_error(_without_dac_override(command[0], str(depot), *command[1:]), url, "Permission denied")
    depot.chmod(0o755)
    assert not (locked / "sub").exists() and not (locked / "copy").exists()
    assert [p.name for p in (depot / "data").iterdir()] == ["k"]


def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    """A real full file system: a 256 KiB tmpfs in a private mount namespace."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is needed to mount a small file system")
    small = tmp_path / "small"
    small.mkdir()
    probe = subprocess.run(
        ["unshare", "-m", "mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(small)], check=False
    )
    if probe.returncode != 0:
        pytest.skip("no permission to mount a tmpfs in a mount namespace")
    source = tmp_path / "source"
    big = os.urandom(1024 * 1024)
    assert script("create", str(source)).returncode == 0
    assert script("put", str(source), "big", input=big).returncode == 0
    (tmp_path / "big.bin").write_bytes(big)
    steps = [
        f"mount -t tmpfs -o size=256k tmpfs {small}",
        f"{SCRIPT} create {small}/depot",
        f"{SCRIPT} put {small}/depot big {tmp_path}/big.bin; echo put=$? >&2",
        f"{SCRIPT} get {source} big {small}/got.bin; echo get=$? >&2",
        f"{SCRIPT} cp {source} {small}/copy; echo cp=$? >&2",
        f"find {small}",
    ]
    done = subprocess.run(
        ["unshare", "-m", "sh", "-c", " && ".join(steps[:2]) + "; " + "; ".join(steps[2:])],
        capture_output=True,
        timeout=120,
        check=False,
    )
    text = done.stderr.decode()
    lines = [line for line in text.splitlines() if line.startswith("aiodepot: ")]
    assert "put=1" in text and "get=1" in text and "cp=1" in text, text
    assert len(lines) == 3 and all("No space left on device" in line for line in lines), text
    assert f"{small.as_uri()}/depot" in lines[0], text
    assert f"{small}/got.bin" in lines[1], text
    assert f"{small.as_uri()}/copy" in lines[2], text
    left = done.stdout.decode().split()
    assert not [path for path in left if path.endswith(("big", "got.bin")) or ".part" in path or ".tmp" in path], left


# point 8: an interrupted put says what happened ------------------------------------------------------------------


def _wait_for(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_an_interrupted_put_says_whether_it_stored(tmp_path: Path) -> None:
    depot = tmp_path / "depot"
    assert script("create", str(depot)).returncode == 0
    value = os.urandom(4 * 1024 * 1024)
    source = tmp_path / "value.bin"
    source.write_bytes(value)
    env = {key: val for key, val in os.environ.items() if not key.startswith("AIODEPOT_")}
    env["BORGSTORE_LATENCY"] = "2000000"  # 2 s of emulated latency after each backend call (after the write too)

    def interrupted_put(name: str, when: Callable[[], bool]) -> tuple[int, bytes]:
        process = subprocess.Popen([str(SCRIPT), "put", str(depot), name, str(source)], stderr=subprocess.PIPE, env=env)
        _wait_for(when)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
        return process.returncode, err

    # Ctrl-C once the store is open (its session registered), while the item is looked up: nothing changed
    code, err = interrupted_put("early", lambda: any(depot.glob("session.*")))
    assert (code, err) == (130, b"aiodepot: interrupted: early was not stored (nothing changed)\n")
    assert not (depot / "early").exists()
    # Ctrl-C once the value is in place (during the latency that follows the write): stored, exit 0
    code, err = interrupted_put("late", (depot / "late").exists)
    assert (code, err) == (0, b"aiodepot: interrupted, but late was stored completely\n")
    assert (depot / "late").read_bytes() == value
    assert not [p for p in depot.iterdir() if p.name.endswith(".tmp")]


# point 9: cp leaves nothing when it cannot start, says how to resume, and can keep going -------------------------


def test_cp_that_cannot_start_creates_nothing(tmp_path: Path) -> None:
    source, target = tmp_path / "src", tmp_path / "dst"
    assert script("create", str(source)).returncode == 0
    assert script("put", str(source), "a", input=b"a").returncode == 0
    one_line_error(script("cp", str(source), str(target), "nosuchns"), source.as_uri(), "no such namespace")
    assert not target.exists()


def test_cp_keep_going_and_the_resume_hint(tmp_path: Path) -> None:
    source, target = tmp_path / "src", tmp_path / "dst"
    assert script("create", str(source)).returncode == 0
    for name in ("a", "b", "c"):
        assert script("put", str(source), name, input=name.encode()).returncode == 0
    assert script("create", str(target)).returncode == 0
    (target / "b").mkdir()  # a directory where item b would go: copying b fails
    (target / "b" / "x").write_bytes(b"")
    failed = script("cp", str(source), str(target))
    assert failed.returncode == 1
    text = one_line_error(failed, "aiodepot: b: ")
    assert f"to copy only the rest: aiodepot sync {source.as_uri()} {target.as_uri()})" in text
    going = script("cp", "--keep-going", str(source), str(target))
    assert going.returncode == 1
    assert going.stderr.decode().splitlines() == ["aiodepot: copy b: no item 'b'"]
    assert going.stdout.decode().startswith("copied 2 items")
    assert (target / "a").read_bytes() == b"a" and (target / "c").read_bytes() == b"c"


# point 10: one vocabulary for sizes, complete JSON, a reference page that cannot drift ------------------------


def test_demo_takes_sizes_like_bench(tmp_path: Path) -> None:
    done = script("demo", "-n", "20", "-s", "4k", str(tmp_path / "demo"))
    assert done.returncode == 0, done.stderr
    assert b"20 x 4.0 KiB" in done.stdout


def test_ls_json_gives_every_field_for_namespaces_too(tmp_path: Path) -> None:
    depot = str(tmp_path / "depot")
    assert script("create", depot).returncode == 0
    assert script("put", depot, "data/k", input=b"v").returncode == 0
    entries = json.loads(script("ls", "--json", depot).stdout)
    assert entries and all(set(entry) == {"name", "type", "size", "mtime", "deleted"} for entry in entries), entries
    assert [entry["type"] for entry in entries] == ["namespace"]


def test_the_cli_reference_page_is_generated_from_the_commands() -> None:
    page = Path(__file__).parents[2] / "docs" / "cli.md"
    done = subprocess.run(
        [sys.executable, "-m", "aiodepot.cli.reference", "--check", str(page)], capture_output=True, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    text = page.read_text()
    for command in ("ls", "cat", "get", "put", "rm", "undelete", "mv", "cp", "sync", "hash", "info", "du"):
        assert f"<!-- aiodepot-help: {command} -->" in text
    for command in ("create", "config", "bench", "demo", "serve"):
        assert f"<!-- aiodepot-help: {command} -->" in text


def test_the_bulk_page_gives_the_file_backends_real_figures() -> None:
    from aiodepot.backends.posixfs import PosixFSBackend

    capabilities = PosixFSBackend.capabilities
    text = (Path(__file__).parents[2] / "docs" / "bulk.md").read_text()
    assert f"`file://` handles {capabilities.batch_size} items per" in text
    assert f"its default of {capabilities.preferred_concurrency} means" in text
    assert f"{capabilities.preferred_concurrency} for `file://`" in text


# point 3: cp from a plain directory says what it cannot copy ------------------------------------------------------


def test_cp_of_a_plain_directory_says_what_it_skips(tmp_path: Path) -> None:
    real, target = tmp_path / "real", tmp_path / "dst"
    (real / "Sub").mkdir(parents=True)
    (real / "ok").mkdir()
    for name in ("README.md", "my file.txt", "Sub/x.txt", "über.txt", "y.tmp", "good", "ok/fine"):
        (real / name).write_text(name)
    refused = script("cp", str(real), str(target))
    text = one_line_error(refused, real.as_uri(), "5 file(s)", "README.md (must be lowercase)", "--skip-invalid")
    assert "nothing was copied" in text
    assert not target.exists()
    skipped = script("cp", "--skip-invalid", str(real), str(target))
    assert skipped.returncode == 0, skipped.stderr
    assert skipped.stderr.decode().startswith(f"aiodepot: warning: {real.as_uri()}: skipped 5 file(s)")
    assert skipped.stdout.decode().startswith("copied 2 items")
    assert (target / "good").read_text() == "good" and (target / "ok" / "fine").read_text() == "ok/fine"
    # a store's own files and soft-deleted items are not foreign
    assert script("cp", str(target), str(tmp_path / "again")).returncode == 0


# point 1: a store remembers its nesting levels --------------------------------------------------------------------


def test_a_store_created_with_levels_remembers_them(tmp_path: Path) -> None:
    depot = tmp_path / "depot"
    chunk = tmp_path / "chunk.bin"
    chunk.write_bytes(b"chunk")
    assert script("create", "--levels", "data=2", str(depot)).returncode == 0
    assert script("put", str(depot), "data/8f3a0c2e", str(chunk)).returncode == 0
    assert (depot / "data" / "8f" / "3a" / "8f3a0c2e").read_bytes() == b"chunk"
    listed = script("ls", "-R", str(depot))
    assert (listed.returncode, listed.stdout, listed.stderr) == (0, b"data/8f3a0c2e\n", b"")
    assert script("cat", str(depot), "data/8f3a0c2e").stdout == b"chunk"
    assert json.loads(script("du", "--json", str(depot)).stdout)  # counts work; layout.hid is no item

    async def in_python() -> tuple[dict[str, list[int]], bytes, list[str], list[str]]:
        async with Store(str(depot)) as store:  # no config: the remembered one
            top = [info.name async for info in store.list("") if info.name != "8f3a0c2e"]
            return store.levels, await store.load("data/8f3a0c2e"), [i.name async for i in store.list("data")], top

    levels, value, items, top = asyncio.run(in_python())
    assert (levels, value, items, top) == ({"data/": [2], "": [0]}, b"chunk", ["8f3a0c2e"], [])
    # overridable per command, changed for good by config (a migration: both levels are searched)
    assert script("ls", "-R", "--levels", "data=0", str(depot)).stdout == b"data/8f/3a/8f3a0c2e\n"
    assert script("config", str(depot), "--levels", "data=2,3").returncode == 0
    assert json.loads(script("config", str(depot)).stdout)["data/"] == {"levels": [2, 3]}
    assert script("put", str(depot), "data/0123abcd", str(chunk)).returncode == 0
    assert (depot / "data" / "01" / "23" / "ab" / "0123abcd").exists()
    assert script("ls", "-R", str(depot)).stdout == b"data/0123abcd\ndata/8f3a0c2e\n"
    assert script("rm", str(depot), "data/8f3a0c2e").returncode == 0
    copied = script("cp", str(depot), str(tmp_path / "copy"))
    assert copied.returncode == 0, copied.stderr
    assert script("cat", str(tmp_path / "copy"), "data/0123abcd").stdout == b"chunk"


def test_a_store_without_a_layout_behaves_as_before(tmp_path: Path) -> None:
    depot = tmp_path / "depot"
    assert script("create", str(depot)).returncode == 0
    assert script("create", "--levels", "data=0", str(tmp_path / "flat")).returncode == 0
    assert os.listdir(depot) == os.listdir(tmp_path / "flat") == []  # flat levels: nothing to remember
    assert script("put", str(depot), "data/8f3a0c2e", input=b"v").returncode == 0
    assert (depot / "data" / "8f3a0c2e").exists()  # flat, as a borgstore store without config
    assert json.loads(script("config", str(depot)).stdout) == {"": {"levels": [0]}}


def test_a_damaged_layout_file_is_a_one_line_error(tmp_path: Path) -> None:
    depot = tmp_path / "depot"
    assert script("create", "--levels", "data=1", str(depot)).returncode == 0
    (depot / "layout.hid").write_text("{not json")
    one_line_error(script("ls", str(depot)), depot.as_uri(), "layout.hid", "damaged")


def test_cp_encode_names_round_trips_every_file_name(tmp_path: Path) -> None:
    real = tmp_path / "real"
    (real / "Sub").mkdir(parents=True)
    (real / "ok").mkdir()
    names = ("README.md", "my file.txt", "Sub/x.txt", "über.txt", "y.tmp", "good", "ok/fine", "50%.txt", "a%41")
    for name in names:
        (real / name).write_text(name)
    database = f"sqlite://{tmp_path / 'store.db'}"
    into = script("cp", "--encode-names", str(real), database)
    assert into.returncode == 0, into.stderr
    assert into.stdout.decode().startswith(f"copied {len(names)} items")
    listed = script("ls", "-R", database).stdout.decode().split()
    assert "%52%45%41%44%4d%45.md" in listed and "%53ub%2fx.txt" in listed and "50%25.txt" in listed
    assert "good" in listed and "ok/fine" in listed  # valid names stay as they are
    back = tmp_path / "back"
    out = script("cp", "--encode-names", database, str(back))
    assert out.returncode == 0, out.stderr
    restored = sorted(str(p.relative_to(back)) for p in back.rglob("*") if p.is_file())
    assert restored == sorted(names)
    assert all((back / name).read_text() == name for name in names)
    # a store may not name files outside the directory it is copied into
    assert script("put", database, "%2e%2e%2fevil", input=b"x").returncode == 0
    refused = script("cp", "--encode-names", database, str(tmp_path / "again"))
    assert refused.returncode != 0 and b"not a path inside the destination" in refused.stderr
    assert not (tmp_path / "evil").exists()


# point 5: a refused S3 endpoint fails at once; Ctrl-C while the command starts -----------------------------------

_SLOW_IMPORT = """
import importlib.abc, os, sys, time

class _Slow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == os.environ["SLOW_MODULE"]:
            open(os.environ["STARTED"], "w").close()
            time.sleep(30)
        return None

sys.meta_path.insert(0, _Slow())
"""


@pytest.mark.parametrize("module", ["aiodepot.store", "aiodepot.cli.transfer"])
def test_ctrl_c_while_the_command_imports_is_one_line(tmp_path: Path, module: str) -> None:
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_SLOW_IMPORT)  # holds the import of `module` until interrupted
    started = tmp_path / "started"
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIODEPOT_")}
    env["PYTHONPATH"] = os.pathsep.join([str(hook), *filter(None, [os.environ.get("PYTHONPATH")])])
    env.update(SLOW_MODULE=module, STARTED=str(started))
    process = subprocess.Popen(
        [sys.executable, "-m", "aiodepot", "ls", str(tmp_path / "depot")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started.exists(), "the import was never reached"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert (process.returncode, out, err) == (130, b"", b"aiodepot: interrupted\n")


def test_an_s3_endpoint_that_refuses_connections_fails_at_once(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"s3:KEY:SECRET@http://127.0.0.1:{port}/bucket/path"
    begin = time.monotonic()
    baseline = subprocess.run(
        [sys.executable, "-c", "import aiodepot.cli, aiodepot.backends.s3"], capture_output=True, check=True
    )
    startup = time.monotonic() - begin  # what importing costs on this (possibly busy) machine
    assert baseline.returncode == 0
    begin = time.monotonic()
    done = script("ls", url)
    elapsed = time.monotonic() - begin
    text = one_line_error(done, display_url(url), "KEY:***@", "Could not connect", code=done.returncode)
    assert done.returncode != 0 and "SECRET" not in text
    assert elapsed - startup < 3, f"{elapsed:.1f} s ({startup:.1f} s of it starting): botocore retried"
