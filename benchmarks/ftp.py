"""FTP on loopback: many small values and one big one, aiodepot vs the standard library's ``ftplib`` used
sequentially.

Both contenders talk to the same pyftpdlib server (a subprocess on loopback, as the tests start it), each in
a directory of its own:

- aiodepot: ``store_many``/``load_many`` over its pool of 4 control connections (each store a ``STOR`` to a
  temp name and a rename); the big value as one ``STOR`` stream and a load of parallel 8 MiB ranges
  (``REST`` + ``RETR``);
- ftplib seq: one ``FTP`` connection, ``storbinary`` then ``retrbinary`` one item after the other, straight
  to the item's name (no temp name, no rename: less work, and not atomic).

Client CPU per operation is the process's user + system time (``getrusage``) over the operations; the
server is another process. pyftpdlib is a single-threaded Python server on the same two cores, so the
figures compare clients under that bound.
"""

from __future__ import annotations

import asyncio
import ftplib
import io
import os
import resource
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiodepot import Store

from .common import Row, names

MiB = 1024 * 1024
CONFIG = {"data/": {"levels": [0]}}

Measure = tuple[float, float]
"""Wall seconds and client CPU seconds."""


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _measure(func: Callable[[], object]) -> Measure:
    cpu, started = _cpu(), time.perf_counter()
    func()
    return time.perf_counter() - started, _cpu() - cpu


async def _ameasure(make: Callable[[], Awaitable[object]]) -> Measure:
    cpu, started = _cpu(), time.perf_counter()
    await make()
    return time.perf_counter() - started, _cpu() - cpu


def aiodepot_run(server: Any, count: int, size: int, big: bytes) -> dict[str, Measure]:
    value = os.urandom(size)
    items = names(count)

    async def run() -> dict[str, Measure]:
        store = Store(server.url("aiodepot"), config=CONFIG)
        await store.create()
        results: dict[str, Measure] = {}
        async with store:
            results["store"] = await _ameasure(lambda: store.store_many((name, value) for name in items))
            results["load"] = await _ameasure(lambda: store.load_many(items))
            results["store big"] = await _ameasure(lambda: store.store("data/big", big))

            async def load_big() -> None:
                assert len(await store.load("data/big")) == len(big)

            results["load big"] = await _ameasure(load_big)
        await store.destroy()
        return results

    return asyncio.run(run())


def ftplib_sequential(server: Any, count: int, size: int, big: bytes) -> dict[str, Measure]:
    from tests.servers.ftp import PASSWORD, USER

    value = os.urandom(size)
    items = [name.replace("/", "-") for name in names(count)]
    ftp = ftplib.FTP()
    ftp.connect("127.0.0.1", server.port)
    ftp.login(USER, PASSWORD)
    ftp.mkd("ftplib")
    ftp.cwd("ftplib")

    def read(name: str) -> bytes:
        out = io.BytesIO()
        ftp.retrbinary("RETR " + name, out.write, blocksize=256 * 1024)
        return out.getvalue()

    results = {
        "store": _measure(lambda: [ftp.storbinary("STOR " + name, io.BytesIO(value)) for name in items]),
        "load": _measure(lambda: [read(name) for name in items]),
        "store big": _measure(lambda: ftp.storbinary("STOR big", io.BytesIO(big), blocksize=256 * 1024)),
        "load big": _measure(lambda: read("big")),
    }
    ftp.quit()
    return results


def run(count: int = 1000, size: int = 4096, big_mib: int = 64) -> list[Row]:
    """Run the scenario: one row per contender and operation."""
    from tests.servers.ftp import ftp_server

    big = os.urandom(big_mib * MiB)
    with tempfile.TemporaryDirectory(prefix="aiodepot-bench-") as root, ftp_server(Path(root)) as server:
        results = {
            "aiodepot": aiodepot_run(server, count, size, big),
            "ftplib seq": ftplib_sequential(server, count, size, big),
        }
    small = f"ftp loopback {count} x {size // 1024} KiB"
    large = f"ftp loopback 1 x {big_mib} MiB"
    rows = [
        Row(
            small,
            op,
            contender,
            times[op][0],
            f"{count / times[op][0]:,.0f} items/s, {count * size / times[op][0] / 1e6:,.1f} MB/s, "
            f"{times[op][1] / count * 1e3:.2f} ms CPU/op",
        )
        for op in ("store", "load")
        for contender, times in results.items()
    ]
    rows += [
        Row(
            large,
            op.removesuffix(" big"),
            contender,
            times[op][0],
            f"{big_mib * MiB / times[op][0] / 1e6:,.0f} MB/s, {times[op][1]:.2f} s CPU",
        )
        for op in ("store big", "load big")
        for contender, times in results.items()
    ]
    return rows
