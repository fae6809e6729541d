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
import tempfile
from pathlib import Path
from typing import Any

from aiodepot import Store

from .common import MiB, Row, Usage, ameasured, measured, names, transfer_rows

CONFIG = {"data/": {"levels": [0]}}


def aiodepot_run(server: Any, count: int, size: int, big: bytes) -> dict[str, Usage]:
    value = os.urandom(size)
    items = names(count)

    async def run() -> dict[str, Usage]:
        store = Store(server.url("aiodepot"), config=CONFIG)
        await store.create()
        results: dict[str, Usage] = {}
        async with store:
            results["store"] = await ameasured(lambda: store.store_many((name, value) for name in items))
            results["load"] = await ameasured(lambda: store.load_many(items))
            results["store big"] = await ameasured(lambda: store.store("data/big", big))

            async def load_big() -> None:
                assert len(await store.load("data/big")) == len(big)

            results["load big"] = await ameasured(load_big)
        await store.destroy()
        return results

    return asyncio.run(run())


def ftplib_sequential(server: Any, count: int, size: int, big: bytes) -> dict[str, Usage]:
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
        "store": measured(lambda: [ftp.storbinary("STOR " + name, io.BytesIO(value)) for name in items]),
        "load": measured(lambda: [read(name) for name in items]),
        "store big": measured(lambda: ftp.storbinary("STOR big", io.BytesIO(big), blocksize=256 * 1024)),
        "load big": measured(lambda: read("big")),
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
    small, large = f"ftp loopback {count} x {size // 1024} KiB", f"ftp loopback 1 x {big_mib} MiB"
    return transfer_rows(small, large, results, count=count, big_mib=big_mib)
