"""Durability ordering with ``fsync=True``, seen from the kernel's side: strace records what a child process
storing through every posixfs write path really asks for.

For each stored item the trace must show, between the child's ``calling`` and ``returned`` marks: the
temp file's data fsynced while it is open, then the rename of that temp file onto the item, then an fsync
of the item's directory (opened after the rename). Without the directory fsync a power loss may forget the
rename; without the file fsync before it, the rename may survive while the data does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from aiodepot import Store
from aiodepot.names import TMP_SUFFIX
from tests.reliability.fsync_writer import CONFIG, NAMES, VALUE
from tests.servers import free_port, require_program, start_process, stop_process, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
SYSCALLS = "openat,openat2,write,fsync,fdatasync,rename,renameat,renameat2,close,mkdir,mkdirat"
_LINE = re.compile(r"(?P<pid>\d+) +(?P<rest>.*)")
_RESULT = r" += (?P<result>-?\d+|\?)(?:<[^>]*>)?(?: (?P<error>\w+) .*)?$"  # -y adds <path> to a new fd
_CALL = re.compile(r"(?P<call>\w+)\((?P<args>.*)\)" + _RESULT)
_RESUMED = re.compile(r"<\.\.\. (?P<call>\w+) resumed>(?P<args>.*)\)" + _RESULT)
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')
_FD_PATH = re.compile(r"\d+<([^>]*)>")
_AT_PATH = re.compile(r'(?:\w+<([^>]*)>, )?"((?:[^"\\]|\\.)*)"')


@dataclass
class Event:
    """One finished system call."""

    index: int
    call: str
    args: str
    result: int

    def strings(self) -> list[str]:
        return _STRING.findall(self.args)

    def fd_path(self) -> str | None:
        """The path strace (``-y``) shows for the call's first argument, a descriptor."""
        match = _FD_PATH.match(self.args)
        return match[1].removesuffix(" (deleted)") if match else None

    def paths(self) -> list[str]:
        """The path arguments, absolute: a name relative to a directory descriptor is joined to its path."""
        paths = []
        for directory, name in _AT_PATH.findall(self.args):
            paths.append(name if name.startswith("/") or not directory else f"{directory}/{name}")
        return paths


def parse(trace: str) -> list[Event]:
    """Finished calls in the order they returned (a call strace split in two counts when it is resumed)."""
    pending: dict[str, str] = {}
    events: list[Event] = []
    for line in trace.splitlines():
        match = _LINE.fullmatch(line)
        if match is None:
            continue
        pid, rest = match["pid"], match["rest"]
        if rest.endswith("<unfinished ...>"):
            pending[pid] = rest.removesuffix("<unfinished ...>").rstrip()
            continue
        resumed = _RESUMED.match(rest)
        if resumed is not None:
            rest = f"{pending.pop(pid, resumed['call'] + '(')}{resumed['args']}) = {resumed['result']}"
        call = _CALL.match(rest)
        if call is None or call["result"] == "?":
            continue
        events.append(Event(len(events), call["call"], call["args"], int(call["result"])))
    return events


def marked_call(events: list[Event], name: str) -> list[Event]:
    """The events between the writer's ``calling NAME`` and ``returned NAME`` marks."""
    start = next(e.index for e in events if e.call == "write" and f"calling {name}" in e.args)
    end = next(e.index for e in events if e.call == "write" and f"returned {name}" in e.args)
    return events[start : end + 1]


def served_call(events: list[Event], base: Path, name: str) -> list[Event]:
    """The events from the server's first open of ``name``'s temp file to its answer (the first success
    status it sends after renaming the temp file onto the item)."""
    key = name.rpartition("/")[2]
    start = next(e.index for e in events if e.call in ("openat", "openat2") and f"{key}.w" in e.args)
    renamed = next(e.index for e in events[start:] if e.call.startswith("rename") and f"{key}.w" in e.args)
    answers = (e for e in events[renamed:] if e.call in ("sendto", "sendmsg", "write") and "HTTP/1.1 200" in e.args)
    return events[start : next(answers).index + 1]


def check_item(window: list[Event], base: Path, name: str) -> list[str]:
    """The durability steps of one store call (``window``: its events, up to the point where it returned or
    answered), as they happened; AssertionError where one is missing."""
    key = name.rpartition("/")[2]
    final = str(base / "data" / key[:2] / key)
    directory = str(base / "data" / key[:2])
    renames = [e for e in window if e.call.startswith("rename") and e.result == 0 and e.paths()[-1:] == [final]]
    assert len(renames) == 1, f"{name}: expected one rename onto {final}, saw {[e.args for e in renames]}"
    rename = renames[0]
    temp = rename.paths()[0]
    assert temp.startswith(final + ".") and temp.endswith(TMP_SUFFIX), f"{name}: renamed from {temp}"

    file_synced_at = dir_synced_at = None
    made: dict[str, int] = {}  # directories this call created → when
    parents_synced: set[str] = set()
    for event in window:
        if event.call in ("mkdir", "mkdirat") and event.result == 0:
            made[event.paths()[0]] = event.index
        elif event.call in ("fsync", "fdatasync") and event.result == 0:
            path = event.fd_path()  # what the descriptor stood for when it was synced
            if path == temp and event.index < rename.index and file_synced_at is None:
                file_synced_at = event.index
            if path == directory and event.index > rename.index and dir_synced_at is None:
                dir_synced_at = event.index
            parents_synced.update(d for d, at in made.items() if at < event.index and str(Path(d).parent) == path)
    assert file_synced_at is not None, f"{name}: no fsync of {temp} before it was renamed"
    assert dir_synced_at is not None, f"{name}: no fsync of {directory} after the rename"
    assert set(made) == parents_synced, f"{name}: created {sorted(made)}, but did not fsync the parent of each"
    order = sorted([(file_synced_at, "fsync file"), (rename.index, "rename"), (dir_synced_at, "fsync dir")])
    return [step for _, step in order] + ["returned"]


async def test_fsync_orders_file_rename_directory_before_returning(tmp_path: Path) -> None:
    strace = require_program("strace", apt="strace")
    base = tmp_path / "store"
    await Store(f"file://{base}", config=CONFIG).create()
    log = tmp_path / "trace"
    command = [strace, "-f", "-qq", "-y", "-s", "512", "-e", f"trace={SYSCALLS}", "-o", str(log)]
    command += [sys.executable, "-m", "tests.reliability.fsync_writer", str(base)]
    done = await asyncio.to_thread(subprocess.run, command, cwd=ROOT, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    assert done.stdout.decode().count("returned") == len(NAMES)
    events = parse(log.read_text(errors="replace"))
    made = [e.strings()[0] for e in events if e.call in ("mkdir", "mkdirat") and e.result == 0]
    assert len(made) == len(NAMES) + 1  # data/ and a new directory per item: check_item sees their parents synced
    for name in NAMES.values():
        assert check_item(marked_call(events, name), base, name) == ["fsync file", "rename", "fsync dir", "returned"]
        key = name.rpartition("/")[2]
        assert (base / "data" / key[:2] / key).read_bytes() == VALUE


def test_parse_joins_calls_strace_split_between_threads() -> None:
    trace = "\n".join(
        [
            '101 openat(AT_FDCWD</s>, "/s/x.tmp", O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC, 0666) = 7</s/x.tmp>',
            "101 fsync(7</s/x.tmp> <unfinished ...>",
            '102 write(1<pipe:[9]>, "other", 5) = 5',
            "101 <... fsync resumed>) = 0",
            '101 renameat2(5</s/d>, "y.tmp", 5</s/d>, "y", 0) = 0',
            '101 mkdirat(AT_FDCWD</s>, "e", 0777) = 0',
            "101 fsync(8) = -1 EBADF (Bad file descriptor)",
            "101 +++ exited with 0 +++",
        ]
    )
    events = parse(trace)
    assert [(e.call, e.result) for e in events] == [
        ("openat", 7),
        ("write", 5),
        ("fsync", 0),
        ("renameat2", 0),
        ("mkdirat", 0),
        ("fsync", -1),
    ]
    assert events[0].paths() == ["/s/x.tmp"]
    assert events[2].fd_path() == "/s/x.tmp"
    assert events[3].paths() == ["/s/d/y.tmp", "/s/d/y"]
    assert events[4].paths() == ["/s/e"]
    assert events[5].fd_path() is None


async def test_rest_server_with_fsync_syncs_before_it_answers(tmp_path: Path) -> None:
    strace = require_program("strace", apt="strace")
    base = tmp_path / "store"
    await Store(f"file://{base}", config=CONFIG).create()
    log = tmp_path / "trace"
    port = free_port()
    command = [strace, "-f", "-qq", "-y", "-s", "512", "-e", f"trace={SYSCALLS},sendto,sendmsg", "-o", str(log)]
    command += [sys.executable, "-m", "aiodepot.server", "--backend", f"file://{base}", "--fsync"]
    command += ["--no-auth", "--port", str(port), "--log-level", "WARNING"]
    server = start_process(command, start_new_session=True)
    try:
        await asyncio.to_thread(wait_for_port, port, process=server)
        async with Store(f"http://127.0.0.1:{port}", config=CONFIG) as client:
            await client.store("data/ee05", VALUE)
            await client.store("data/ff06", VALUE * 40)  # 1.3 MB
            await client.store("data/0a07", VALUE * 300)  # 9.4 MiB: over the server's 8 MiB limit, it streams in
    finally:
        with contextlib.suppress(ProcessLookupError):  # strace stopped alone detaches: the server would live on
            os.killpg(server.pid, signal.SIGTERM)
        stop_process(server)
    events = parse(log.read_text(errors="replace"))
    for name in ("data/ee05", "data/ff06", "data/0a07"):
        assert check_item(served_call(events, base, name), base, name) == [
            "fsync file",
            "rename",
            "fsync dir",
            "returned",
        ], name
