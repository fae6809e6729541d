"""Storage faults: ENOSPC and EIO injected with libfiu (Debian's fiu-utils) into real system calls.

posixfs directly (a child process under ``fiu-run -x``, see ``fault_writer.py``) and the REST server (a
server process under ``fiu-run -x``, its faults switched on and off with ``fiu-ctrl``): a full disk is
`QuotaExceeded` (HTTP 507 through the server), an I/O error a `BackendError` naming it (HTTP 500), nothing
partial is acknowledged or visible, no temp file stays behind, and what was stored before is intact.
"""

from __future__ import annotations

import asyncio
import errno
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import pytest

from aiodepot import ObjectNotFound, QuotaExceeded, RetryPolicy, Store
from aiodepot.backends.rest import RestBackend
from aiodepot.errors import BackendError
from aiodepot.names import TMP_SUFFIX
from aiodepot.protocol import ACCEPT
from tests.reliability.fault_writer import SMALL
from tests.servers import free_port, require_program, start_process, stop_process, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024
NO_SPACE = "No space left on device"
IO_ERROR = "Input/output error"


def temp_files(base: Path) -> list[str]:
    return [name for _, _, names in os.walk(base) for name in names if name.endswith(TMP_SUFFIX)]


def files(base: Path) -> dict[str, bytes]:
    return {
        str(Path(root, name).relative_to(base)): Path(root, name).read_bytes()
        for root, _, names in os.walk(base)
        for name in names
    }


# posixfs, directly ------------------------------------------------------------------------------------------


async def test_posixfs_under_enospc_and_eio(tmp_path: Path) -> None:
    fiu_run = require_program("fiu-run", apt="fiu-utils")
    (tmp_path / "kept").write_bytes(b"stored before the faults")
    command = [fiu_run, "-x", "-f", "", sys.executable, "-m", "tests.reliability.fault_writer", str(tmp_path)]
    done = await asyncio.to_thread(subprocess.run, command, cwd=ROOT, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    results = json.loads(done.stdout)

    def raised(case: str, error: type[Exception], text: str) -> None:
        result = results[case]
        assert error.__name__ in result["mro"], f"{case}: {result}"
        assert text in result["message"], f"{case}: {result['message']!r} does not say {text!r}"

    raised("store_enospc", QuotaExceeded, f"s/enospc: {NO_SPACE}")
    raised("overwrite_enospc", QuotaExceeded, f"kept: {NO_SPACE}")
    raised("stream_enospc", QuotaExceeded, f"s/stream_enospc: {NO_SPACE}")
    for result in results["store_batch_enospc"]["errors"]:
        assert "QuotaExceeded" in result["mro"] and NO_SPACE in result["message"], result
    raised("store_eio", BackendError, f"s/eio: {IO_ERROR}")
    raised("stream_eio", BackendError, f"s/stream_eio: {IO_ERROR}")
    raised("fsync_eio", BackendError, f"s/fsync: {IO_ERROR}")
    raised("load_eio", BackendError, f"kept: {IO_ERROR}")
    for case in ("store_eio", "stream_eio", "fsync_eio", "load_eio"):
        assert "QuotaExceeded" not in results[case]["mro"], f"{case}: an I/O error is no full disk"
    assert results["after"] == {"error": None}
    # nothing that failed is there, nothing half-written either; the old value survived the failed overwrite
    assert files(tmp_path) == {"kept": b"stored before the faults", "s/after": SMALL}
    assert temp_files(tmp_path) == []


# the REST server --------------------------------------------------------------------------------------------


class FaultyServer:
    """``python -m aiodepot.server`` under ``fiu-run``; ``fail(...)`` switches a failure point on."""

    def __init__(self, base: Path, control: Path) -> None:
        self.fiu_run = require_program("fiu-run", apt="fiu-utils")
        self.fiu_ctrl = require_program("fiu-ctrl", apt="fiu-utils")
        self.base = base
        self.control = str(control)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    @contextmanager
    def running(self) -> Iterator[FaultyServer]:
        command = [self.fiu_run, "-x", "-f", self.control, sys.executable, "-m", "aiodepot.server"]
        command += ["--backend", f"file://{self.base}", "--no-auth", "--port", str(self.port)]
        self.process = start_process(command)
        try:
            wait_for_port(self.port, process=self.process)
            yield self
        finally:
            stop_process(self.process)

    def control_command(self, text: str) -> None:
        command = [self.fiu_ctrl, "-f", self.control, "-c", text, str(self.process.pid)]
        subprocess.run(command, check=True, timeout=30, capture_output=True)

    @contextmanager
    def fail(self, point: str, code: int) -> Iterator[None]:
        self.control_command(f"enable name={point},failinfo={code}")
        try:
            yield
        finally:
            self.control_command(f"disable name={point}")


async def post(url: str, body: bytes) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession(headers={"Accept": ACCEPT}) as session,
        session.post(url, data=io.BytesIO(body)) as response,
    ):
        return response.status, await response.text()


async def test_rest_server_under_enospc_and_eio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # libfiu fails pread(), not the preadv2() of posixfs's inline page-cache reads: the server reads in threads
    monkeypatch.setenv("AIODEPOT_INLINE_READS", "0")
    base = tmp_path / "store"
    server = FaultyServer(base, tmp_path / "fiu")
    big = bytes(range(256)) * (40 * 4096)  # 10 MiB: over the server's 8 MiB limit, so the body streams in
    with server.running():
        client = Store(backend=RestBackend(server.url, retry=RetryPolicy(attempts=1)))
        await client.create()
        async with client:
            await client.store("kept", b"stored before the faults")
            await client.store("kept_big", big)
            with server.fail("posix/io/rw/write", errno.ENOSPC):
                # the wire: 507 Insufficient Storage, with a message that says why
                status, text = await post(f"{server.url}/raw_small", SMALL)
                assert (status, NO_SPACE in text) == (507, True), (status, text)
                status, text = await post(f"{server.url}/raw_big", big)
                assert (status, NO_SPACE in text) == (507, True), (status, text)
                # the client: QuotaExceeded, for small and streamed bodies and for an overwrite
                for name, value in (("small", SMALL), ("big", big), ("kept", b"new value"), ("kept_big", big[1:])):
                    with pytest.raises(QuotaExceeded, match=NO_SPACE):
                        await client.store(name, value)
            with server.fail("posix/io/rw/write", errno.EIO):
                status, text = await post(f"{server.url}/raw_eio", SMALL)
                assert (status, IO_ERROR in text) == (500, True), (status, text)
                for name, value in (("eio_small", SMALL), ("eio_big", big)):
                    with pytest.raises(BackendError, match=IO_ERROR):
                        await client.store(name, value)
            with server.fail("posix/io/rw/pread", errno.EIO), pytest.raises(BackendError, match=IO_ERROR):
                await client.load("kept")
            # the faults are gone: nothing failed is there, the old values are intact, storing works
            for name in ("raw_small", "raw_big", "raw_eio", "small", "big", "eio_small", "eio_big"):
                with pytest.raises(ObjectNotFound):
                    await client.load(name)
            assert await client.load("kept") == b"stored before the faults"
            assert await client.load("kept_big") == big
            await client.store("after", SMALL)
            assert [info.name async for info in client.list()] == ["after", "kept", "kept_big"]
    assert temp_files(base) == []
    assert sorted(files(base)) == ["after", "kept", "kept_big"]
