"""What all store commands share: URLs, store options, errors and exit codes; the real console script."""

from __future__ import annotations

import array
import asyncio
import fcntl
import os
import signal
import subprocess
import sysconfig
import termios
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import click
import pytest

from aiodepot import BackendError, ObjectNotFound, PermissionDenied, Store, StoreNotFound
from aiodepot.backends import without_secrets
from aiodepot.cli import common, inspect
from aiodepot.cli.common import (
    ByteSize,
    CliError,
    StoreOptions,
    display_url,
    format_size,
    format_time,
    store_url,
    translate_error,
)

from .helpers import Run, fill

SCRIPT = Path(sysconfig.get_path("scripts")) / "aiodepot"


# units -----------------------------------------------------------------------------------------------------------


def test_store_url_turns_local_paths_into_file_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert store_url("./depot") == (tmp_path / "depot").as_uri()
    assert store_url(".") == tmp_path.as_uri()
    assert store_url("/srv/my depot") == "file:///srv/my%20depot"
    assert store_url("~/x") == (Path.home() / "x").as_uri()
    assert store_url("relative") == (tmp_path / "relative").as_uri()  # no scheme: a path, as in Store()
    for url in ("file:///srv", "memory://x", "s3:bucket/path", "rclone:remote:path"):
        assert store_url(url) == url


def test_display_url_masks_secrets() -> None:
    assert display_url("http://user:pw@host:8080/path") == "http://user:***@host:8080/path"
    assert display_url("s3:key:secret@https://host/bucket") == "s3:key:***@https://host/bucket"
    assert display_url("sftp://user@host/path") == "sftp://user@host/path"
    assert display_url("file:///srv/depot") == "file:///srv/depot"
    endpoint = "?endpoint=http://127.0.0.1:1/devstoreaccount1"
    azure = f"azure://devstoreaccount1:c2Vr/3JpdA==@container/store{endpoint}"  # a base64 key may hold "/"
    shown = f"azure://devstoreaccount1:***@container/store{endpoint}"
    assert display_url(f"cannot reach {azure}: refused") == f"cannot reach {shown}: refused"
    assert display_url("x://host/p?token=t0k&region=eu&sig=abc") == "x://host/p?token=***&region=eu&sig=***"


def test_display_url_is_the_hiding_that_store_urls_and_locations_use() -> None:
    url = "http://alice:s3cret@127.0.0.1:9/depot"
    assert display_url(url) == without_secrets(url) == Store(url).url == "http://alice:***@127.0.0.1:9/depot"


def test_byte_sizes() -> None:
    size = ByteSize()
    assert [size.convert(v, None, None) for v in ("0", "4096", "4k", "4KiB", "2M", "1g", " 3 kb ")] == [
        0,
        4096,
        4096,
        4096,
        2 * 1024**2,
        1024**3,
        3072,
    ]
    assert ByteSize(allow_negative=True).convert("-1k", None, None) == -1024
    for bad in ("-1", "x", "1.5k", "4 parsecs"):
        with pytest.raises(click.BadParameter):
            size.convert(bad, None, None)


def test_formatting() -> None:
    assert format_size(1023) == "1023"
    assert format_size(1536, human=True) == "1.5 KiB"
    assert format_size(5, human=True) == "5 B"
    assert format_size(3 * 1024**5, human=True) == "3.0 PiB"
    assert format_time(0).strip() == "-"
    assert len(format_time(1_700_000_000)) == 19


def test_translate_error() -> None:
    assert (translate_error(ObjectNotFound("data/x")).message, translate_error(ObjectNotFound("x")).exit_code) == (
        "data/x: no such item",
        1,
    )
    assert translate_error(StoreNotFound("gone")).exit_code == 1
    assert translate_error(FileNotFoundError(2, "No such file or directory", "/tmp/x")).message == (
        "/tmp/x: No such file or directory"
    )
    assert translate_error(OSError("plain")).message == "plain"
    assert translate_error(BackendError("boom")).message == "boom"


def test_store_options() -> None:
    options = StoreOptions.parse('{"data": {"levels": [2]}}', ("config=0", "idx=1,2"), 5)
    assert options.config == {
        "data/": {"levels": [2]},
        "config/": {"levels": [0]},
        "idx/": {"levels": [1, 2]},
        "": {"levels": [0]},
    }
    assert options.concurrency == 5
    assert StoreOptions.parse(None, ("=1",), None).config == {"": {"levels": [1]}}
    assert StoreOptions.parse(None, (), 3, base=options).config == options.config
    assert StoreOptions.parse(None, ("data=0",), 3, base=options).config == {
        "data/": {"levels": [0]},
        "": {"levels": [0]},
    }
    with pytest.raises(CliError) as failure:
        StoreOptions.parse(None, ("data=1",), None).store("nosuch://x")
    assert failure.value.exit_code == 2


# exit codes in-process -------------------------------------------------------------------------------------------


def _raising(exc: BaseException) -> Any:
    async def walk(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        raise exc
        yield  # pragma: no cover

    return walk


@pytest.mark.parametrize(
    ("exc", "code", "message"),
    [
        (KeyboardInterrupt(), 130, ""),
        (PermissionDenied("data: not allowed"), 1, "aiodepot: {url}: data: not allowed\n"),  # the store's URL
        (OSError(5, "Input/output error"), 1, "aiodepot: {url}: Input/output error\n"),
        (BrokenPipeError(32, "Broken pipe"), 141, ""),
    ],
)
def test_errors_become_exit_codes(
    run: Run, depot: str, monkeypatch: pytest.MonkeyPatch, exc: BaseException, code: int, message: str
) -> None:
    monkeypatch.setattr(inspect, "walk", _raising(exc))
    monkeypatch.setattr(common, "silence_stdout", lambda: None)
    result = run("ls", depot)
    assert result.exit_code == code
    assert result.stderr == message.format(url=depot)


def test_usage_errors_exit_2(run: Run, depot: str) -> None:
    for args in (["ls"], ["cat", depot], ["nosuchcommand"], ["ls", depot, "-c", "0"], ["ls", "--bogus", depot]):
        result = run(*args)
        assert result.exit_code == 2, args
        assert "Traceback" not in result.output


# the real console script ---------------------------------------------------------------------------------------


def _script(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIODEPOT_")}
    return subprocess.run([str(SCRIPT), *args], capture_output=True, timeout=120, env=env, check=False, **kwargs)


def test_console_script_pipes_and_exit_codes(tmp_path: Path) -> None:
    assert SCRIPT.exists(), f"the console script is not installed at {SCRIPT} (pip install -e .)"
    depot = tmp_path / "depot"
    assert _script("create", str(depot)).returncode == 0
    value = os.urandom(100_000)
    stored = _script("put", str(depot), "data/0123abcd", "--levels", "data=2", input=value)
    assert stored.returncode == 0, stored.stderr
    assert (depot / "data" / "01" / "23" / "0123abcd").read_bytes() == value
    assert _script("cat", depot.as_uri(), "data/0123abcd", "--levels", "data=2").stdout == value

    missing = _script("cat", str(depot), "data/xyz")
    assert (missing.returncode, missing.stdout, missing.stderr) == (1, b"", b"aiodepot: data/xyz: no such item\n")
    bad = _script("ls", "nosuch://x")
    assert bad.returncode == 2
    assert bad.stderr.startswith(b"aiodepot: nosuch://x: unknown store URL scheme 'nosuch'")
    assert b"Traceback" not in bad.stderr
    nowhere = _script("ls", str(tmp_path / "absent"))
    assert nowhere.returncode == 1
    assert nowhere.stderr.count(b"\n") == 1 and b"no such store" in nowhere.stderr


def _bytes_in_pipe(fd: int) -> int:
    """How many bytes written to the pipe ``fd`` (either end) are still unread (Linux's FIONREAD)."""
    pending = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, pending)
    return pending[0]


def test_ctrl_c_exits_130_quietly(tmp_path: Path) -> None:
    depot = tmp_path / "depot"
    assert _script("create", str(depot)).returncode == 0
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIODEPOT_")}
    # put waits for stdin, which stays open: only Ctrl-C ends it
    process = subprocess.Popen(
        [str(SCRIPT), "put", str(depot), "waiting"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        assert process.stdin is not None
        process.stdin.write(b"some input")
        process.stdin.flush()
        # Ctrl-C once put is under way (it has read the input from the pipe), not while Python still starts
        deadline = time.monotonic() + 60
        while _bytes_in_pipe(process.stdin.fileno()):
            assert process.poll() is None and time.monotonic() < deadline, "put never read its input"
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert (process.returncode, out, err) == (
        130,
        b"",
        b"aiodepot: interrupted: waiting was not stored (nothing changed)\n",
    )
    assert not (depot / "waiting").exists()


def test_a_closed_pipe_exits_141_quietly(tmp_path: Path) -> None:
    depot = tmp_path / "depot"
    fill(depot.as_uri(), {"big": os.urandom(4 * 1024 * 1024)}, create=True)
    reader, writer = os.pipe()
    os.close(reader)  # nobody will read
    try:
        done = subprocess.run(
            [str(SCRIPT), "cat", str(depot), "big"], stdout=writer, stderr=subprocess.PIPE, timeout=120, check=False
        )
    finally:
        os.close(writer)
    assert (done.returncode, done.stderr) == (141, b"")


def test_no_traceback_for_store_errors(tmp_path: Path) -> None:
    depot = tmp_path / "depot"
    fill(depot.as_uri(), {"data": b"an item where a namespace would go"}, create=True)
    failed = _script("put", str(depot), "data/x", input=b"1")
    assert failed.returncode == 1
    assert failed.stderr.startswith(b"aiodepot: ") and failed.stderr.count(b"\n") == 1
    assert b"Traceback" not in failed.stderr


def test_asyncio_is_not_left_running(run: Run, depot: str) -> None:
    run("ls", depot)
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()
