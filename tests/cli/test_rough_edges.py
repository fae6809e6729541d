"""Issue 23: what a new user meets first — foreign and damaged stores, messages that name the store, hints.

Every check runs the real console script in a subprocess: one ``aiodepot:`` line, the store URL in it,
the documented exit code, no traceback.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

from aiodepot import Store, StoreCorrupt, StoreError, StoreExists
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
    ]
    for url in urls:
        for command in ("ls", "create"):
            started = time.monotonic()
            done = script(command, url)
            took = time.monotonic() - started
            text = one_line_error(done, display_url(url), "is the server running")
            assert took < 5, (url, took)  # no retries: RestBackend alone would wait 3 x 5 s
            assert "sekrit" not in text and "retry" not in text


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
