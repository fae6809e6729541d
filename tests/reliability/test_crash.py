"""Crash consistency: a writer (or the REST server it writes to) is SIGKILLed in the middle of bulk stores.

After every kill: each acknowledged value is there, whole, at its acknowledged version or a later one; every
listed value is whole and correct (a store that was in flight may have landed, but only whole); no temp file
is listed; and the next ``open`` removes the temp files the dead writer left. The default run kills
`KILLS_BOUNDED` times per case with small values; ``-m slow`` kills `KILLS_FULL` times and adds values
over the REST server's 8 MiB streaming threshold.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from aiodepot import Store
from aiodepot.backends.posixfs import PosixFSBackend
from aiodepot.names import TMP_SUFFIX
from tests.reliability.crash_writer import CONFIG, check_value, read_acks
from tests.servers import free_port, start_process, stop_process, wait_for_port

KILLS_BOUNDED = 5
KILLS_FULL = 20
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Tally:
    """What the kills left behind, summed over a test (printed, so a run shows what it exercised)."""

    kills: int = 0
    acked: int = 0
    listed: int = 0
    unacked_but_whole: set[str] = field(default_factory=set)
    temp_files_removed: int = 0
    per_kill_temp_files: list[int] = field(default_factory=list)


def temp_files(base: Path) -> list[Path]:
    return [Path(root, name) for root, _, names in os.walk(base) for name in names if name.endswith(TMP_SUFFIX)]


async def verify(base: Path, acks_path: Path, tally: Tally) -> None:
    """Check the store after a kill, then open it normally and check that the leftovers are gone."""
    acks = read_acks(acks_path)
    leftovers = temp_files(base)
    # first look without the cleanup: what a reader sees right after the crash
    store = Store(backend=PosixFSBackend(base, cleanup=False), config=CONFIG)
    async with store:
        listed = [f"data/{info.name}" async for info in store.list("data")]
        assert not [name for name in listed if name.endswith(TMP_SUFFIX)], "a temp file is listed"
        assert len(listed) == len(set(listed))
        found: dict[str, tuple[int, str]] = {}
        for name in listed:
            value = await store.load(name)
            found[name] = (check_value(name, value), hashlib.sha256(value).hexdigest())
            if name not in acks:
                tally.unacked_but_whole.add(name)
        missing = sorted(set(acks) - set(found))
        assert not missing, f"{len(missing)} acknowledged values are gone, e.g. {missing[:3]}"
        for name, (version, digest) in acks.items():
            present, present_digest = found[name]
            assert present >= version, f"{name}: version {present} is older than the acknowledged {version}"
            if present == version:
                assert present_digest == digest, f"{name} v{version}: not the acknowledged bytes"
    # the next open removes what the dead writer left
    backend = PosixFSBackend(base)
    async with Store(backend=backend, config=CONFIG):
        assert backend.temp_files_removed == len(leftovers)
    assert temp_files(base) == []
    assert not [p for p in base.iterdir() if p.name.startswith("session.")]  # the dead sessions' too
    tally.kills += 1
    tally.acked = len(acks)
    tally.listed = len(listed)
    tally.temp_files_removed += len(leftovers)
    tally.per_kill_temp_files.append(len(leftovers))


def start_writer(url: str, acks: Path, seed: int, profile: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "tests.reliability.crash_writer", url, str(acks), "--seed", str(seed)]
    return start_process([*command, "--profile", profile], cwd=ROOT)


def wait_for_new_acks(acks: Path, before: int, writer: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """Wait until the writer acknowledged something new (so it is in the middle of its bulk stores)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if writer.poll() is not None:
            writer.log.seek(0)  # type: ignore[attr-defined]
            pytest.fail(f"the writer exited with {writer.returncode}: {writer.log.read()[-3000:]!r}")  # type: ignore[attr-defined]
        if acks.exists() and acks.stat().st_size > before:
            return
        time.sleep(0.02)
    pytest.fail(f"the writer acknowledged nothing in {timeout} s")


def kill(process: subprocess.Popen[bytes]) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait(10)  # reaped: a zombie's temp files count as a live writer's until then
    stop_process(process)


def size_of(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


async def make_store(base: Path) -> None:
    await Store(f"file://{base}", config=CONFIG).create()


async def crash_posixfs(tmp_path: Path, kills: int, profile: str) -> Tally:
    base, acks = tmp_path / "store", tmp_path / "acks"
    await make_store(base)
    seed = random.randrange(1 << 32)
    print(f"seed {seed}")
    rng = random.Random(seed)
    tally = Tally()
    for round_ in range(kills):
        before = size_of(acks)
        writer = start_writer(f"file://{base}", acks, seed + round_, profile)
        try:
            await asyncio.to_thread(wait_for_new_acks, acks, before, writer)
            await asyncio.sleep(rng.uniform(0.0, 0.5))
        finally:
            kill(writer)
        await verify(base, acks, tally)
    return tally


async def crash_rest_server(tmp_path: Path, kills: int, profile: str) -> Tally:
    base, acks = tmp_path / "store", tmp_path / "acks"
    await make_store(base)
    seed = random.randrange(1 << 32)
    print(f"seed {seed}")
    rng = random.Random(seed)
    tally = Tally()
    port = free_port()
    command = [sys.executable, "-m", "aiodepot.server", "--backend", f"file://{base}", "--no-auth"]
    command += ["--port", str(port), "--log-level", "WARNING"]
    url = f"http://127.0.0.1:{port}"
    for round_ in range(kills):
        server = start_process(command)
        writer = None
        try:
            await asyncio.to_thread(wait_for_port, port, process=server)
            before = size_of(acks)
            writer = start_writer(url, acks, seed + round_, profile)
            await asyncio.to_thread(wait_for_new_acks, acks, before, writer)
            await asyncio.sleep(rng.uniform(0.0, 0.5))
        finally:
            kill(server)
            if writer is not None:
                await asyncio.sleep(0.2)  # the client records what was acknowledged before the server died
                kill(writer)
        await verify(base, acks, tally)
    # what a client of the restarted server sees is what is on disk
    server = start_process(command)
    try:
        await asyncio.to_thread(wait_for_port, port, process=server)
        async with Store(url, config=CONFIG) as remote, Store(f"file://{base}", config=CONFIG) as local:
            remote_names = [info.name async for info in remote.list("data")]
            assert remote_names == [info.name async for info in local.list("data")]
            for key in rng.sample(remote_names, min(20, len(remote_names))):
                check_value(f"data/{key}", await remote.load(f"data/{key}"))
    finally:
        stop_process(server)
    return tally


def report(case: str, tally: Tally) -> None:
    print(
        f"{case}: {tally.kills} kills, {tally.acked} acknowledged values, {tally.listed} listed, "
        f"{len(tally.unacked_but_whole)} landed unacknowledged but whole, "
        f"{tally.temp_files_removed} temp files removed (per kill {tally.per_kill_temp_files})"
    )


async def test_posixfs_writer_killed(tmp_path: Path) -> None:
    tally = await crash_posixfs(tmp_path, KILLS_BOUNDED, "small")
    report("posixfs", tally)
    assert tally.kills == KILLS_BOUNDED and tally.acked > 0


async def test_rest_server_killed(tmp_path: Path) -> None:
    tally = await crash_rest_server(tmp_path, KILLS_BOUNDED, "small")
    report("rest", tally)
    assert tally.kills == KILLS_BOUNDED and tally.acked > 0


@pytest.mark.slow
async def test_posixfs_writer_killed_full(tmp_path: Path) -> None:
    tally = await crash_posixfs(tmp_path, KILLS_FULL, "big")
    report("posixfs", tally)
    assert tally.kills == KILLS_FULL and tally.acked > 0


@pytest.mark.slow
async def test_rest_server_killed_full(tmp_path: Path) -> None:
    tally = await crash_rest_server(tmp_path, KILLS_FULL, "big")
    report("rest", tally)
    assert tally.kills == KILLS_FULL and tally.acked > 0


# the cleanup rules, one by one -----------------------------------------------------------------------------


def start_inflight_writer(base: Path, name: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.inflight_writer", str(base), name],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline() == "inflight\n"
    return process


async def open_and_count(base: Path) -> int:
    backend = PosixFSBackend(base)
    await backend.open()
    await backend.close()
    return backend.temp_files_removed


async def test_open_keeps_a_live_writers_temp_file(tmp_path: Path) -> None:
    from tests.reliability.inflight_writer import VALUE

    await make_store(tmp_path)
    writer = start_inflight_writer(tmp_path, "sub/item")
    try:
        [temp] = temp_files(tmp_path)
        assert temp.stat().st_size == len(VALUE) // 2
        assert await open_and_count(tmp_path) == 0  # another process opens the store meanwhile
        assert temp_files(tmp_path) == [temp]
        stdout, _ = writer.communicate("go\n", timeout=30)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    assert (stdout, writer.returncode) == ("stored\n", 0)
    assert (tmp_path / "sub" / "item").read_bytes() == VALUE
    assert temp_files(tmp_path) == []


async def test_open_removes_a_killed_writers_temp_file(tmp_path: Path) -> None:
    await make_store(tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "item").write_bytes(b"the old value")
    writer = start_inflight_writer(tmp_path, "sub/item")
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(10)
    assert writer.stdout is not None
    writer.stdout.close()
    writer.stdin.close()  # type: ignore[union-attr]
    assert len(temp_files(tmp_path)) == 1
    async with Store(f"file://{tmp_path}") as store:
        assert [info.name async for info in store.list("sub")] == ["item"]  # the temp file is never listed
        assert await store.load("sub/item") == b"the old value"
    assert temp_files(tmp_path) == []  # Store's open removed it


async def test_cleanup_rules_for_other_writers(tmp_path: Path) -> None:
    from aiodepot.backends import posixfs

    await make_store(tmp_path)
    (tmp_path / "d").mkdir()
    me = posixfs._temp_path(str(tmp_path / "d" / "mine"))  # this process: alive
    start = posixfs._start_time(os.getpid())
    reused = str(tmp_path / "d" / f"x.w{posixfs._MACHINE}-{os.getpid()}-{(start or 0) + 1}-0.tmp")  # pid reused
    other_machine = str(tmp_path / "d" / f"x.w{'0' * 8}-{os.getpid()}-1-0.tmp")
    borgstore_fresh = str(tmp_path / "tmpabc123.tmp")
    borgstore_old = str(tmp_path / "d" / "tmpold456.tmp")
    other_machine_old = str(tmp_path / "d" / f"y.w{'0' * 8}-1-1-0.tmp")
    for path in (me, reused, other_machine, borgstore_fresh, borgstore_old, other_machine_old):
        Path(path).write_bytes(b"half")
    stale = time.time() - posixfs.STALE_TEMP_AGE - 60
    for path in (borgstore_old, other_machine_old):
        os.utime(path, (stale, stale))
    assert await open_and_count(tmp_path) == 0  # no session crashed: open walks nothing
    assert len(temp_files(tmp_path)) == 6
    backend = PosixFSBackend(tmp_path)
    async with Store(backend=backend):
        assert await backend.remove_temp_files() == 3  # the walk on demand applies the rules
    assert sorted(map(str, temp_files(tmp_path))) == sorted([me, other_machine, borgstore_fresh])


def sessions(base: Path) -> list[str]:
    return sorted(p.name for p in base.iterdir() if p.name.startswith("session."))


async def test_a_crashed_session_makes_the_next_open_walk(tmp_path: Path) -> None:
    from aiodepot.backends import posixfs

    await make_store(tmp_path)
    (tmp_path / "d").mkdir()
    command = [sys.executable, "-c", "import os; print(os.getpid())"]
    child = await asyncio.to_thread(subprocess.run, command, capture_output=True, check=True)
    dead_pid = int(child.stdout)  # reaped: no process has this pid (or a later start time if it is reused)
    dead = f"w{posixfs._MACHINE}-{dead_pid}-1-0"
    (tmp_path / "d" / f"x.{dead}.tmp").write_bytes(b"half")
    # a live session of this process, and one on another machine that wrote a minute ago: both kept
    live = PosixFSBackend(tmp_path)
    await live.open()
    foreign = tmp_path / f"session.w{'0' * 8}-1-1-0.hid"
    foreign.touch()
    try:
        assert len(sessions(tmp_path)) == 2
        assert await open_and_count(tmp_path) == 0
        (tmp_path / f"session.{dead}.hid").touch()  # the dead writer's session
        assert await open_and_count(tmp_path) == 1
        assert temp_files(tmp_path) == []
        assert sessions(tmp_path) == sorted([foreign.name, Path(live._session or "").name])
        stale = time.time() - posixfs.STALE_TEMP_AGE - 60
        os.utime(foreign, (stale, stale))  # silent for longer than STALE_TEMP_AGE: counts as crashed
        assert await open_and_count(tmp_path) == 0
        assert sessions(tmp_path) == [Path(live._session or "").name]
    finally:
        await live.close()
    assert sessions(tmp_path) == []  # close removes the registration


async def test_commit_after_the_temp_file_was_removed_is_a_clear_error(tmp_path: Path) -> None:
    from aiodepot.errors import BackendError

    backend = PosixFSBackend(tmp_path)
    await backend.open()
    try:

        async def chunks() -> AsyncIterator[bytes]:
            yield b"first"
            for temp in temp_files(tmp_path):
                temp.unlink()  # as a cleanup by mistake would
            yield b"second"

        with pytest.raises(BackendError, match="temp file vanished"):
            await backend.store_chunks("item", chunks())
        assert not (tmp_path / "item").exists()
    finally:
        await backend.close()
