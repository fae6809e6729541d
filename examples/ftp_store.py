"""A store on an FTP server: store, list and load items, then many small values through a write-back layer.

``python examples/ftp_store.py`` starts pyftpdlib (``pip install pyftpdlib``) in a subprocess on a loopback
port, serving a temporary directory, and runs against it; ``--url ftp://user:password@host/path`` uses
your own server instead (the store is created if it does not exist yet). ``--count N`` sets how many small
values the second part writes (default 1,000; ``python -m benchmarks --only writeback`` writes 10,000).

The second part stores the values one ``store()`` call after another, once on a plain store (each call a
``STOR`` and a rename on the server before it returns) and once through a write-back layer
(``Store(url, writeback=True)``): there each ``store()`` returns when the value is in a memory backlog, and
one ``flush()`` writes the backlog over the pool's connections. It prints both times.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiodepot

CONFIG = {"config/": {"levels": [0]}, "data/": {"levels": [1]}}
SERVER = """
import logging, sys
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer

authorizer = DummyAuthorizer()
authorizer.add_user("demo", "demo", sys.argv[1], perm="elradfmwMT")
FTPHandler.authorizer = authorizer
logging.basicConfig(level=logging.WARNING)  # no line per command
server = FTPServer(("127.0.0.1", 0), FTPHandler)
print(server.socket.getsockname()[1], flush=True)  # the port, for the parent
server.serve_forever()
"""


async def basics(url: str) -> None:
    """Store, list, load and delete a few items."""
    store = aiodepot.Store(url, config=CONFIG)
    with contextlib.suppress(aiodepot.StoreExists):
        await store.create()
    async with store:
        values = {f"data/{i:064x}": os.urandom(4096) for i in range(20)}
        await store.store_many(values)  # 20 stores over the pool's 4 FTP connections
        await store.store("config/settings", b'{"compression": "zstd"}')
        names = [info.name async for info in store.list("data")]
        print(f"stored {len(values)} items; data/ lists {len(names)} of them, sorted: {names[0][:12]}…")
        assert await store.load_many(values) == list(values.values())
        first = next(iter(values))
        assert await store.load(first, offset=100, size=16) == values[first][100:116]  # REST 100 + RETR
        print(f"loaded them back, and 16 bytes of {first[:17]}… from offset 100")
        await store.delete_many(values)
        await store.delete("config/settings")


async def write_back(url: str, count: int) -> None:
    """``count`` small values stored one call after another: plain, then through write-back + one flush."""
    values = {f"data/{i:064x}": i.to_bytes(4, "big") * 128 for i in range(count)}  # 512 bytes each

    async with aiodepot.Store(url, config=CONFIG) as plain:
        started = time.perf_counter()
        for name, value in values.items():
            await plain.store(name, value)
        plain_seconds = time.perf_counter() - started
        await plain.delete_many(values)
    print(f"plain store() x {count:,}: {plain_seconds:.2f} s ({count / plain_seconds:,.0f} values/s)")

    async with aiodepot.Store(url, config=CONFIG, writeback=True) as store:
        started = time.perf_counter()
        for name, value in values.items():
            await store.store(name, value)  # into the memory backlog (a background flush starts at half full)
        acknowledged = time.perf_counter() - started
        await store.flush()  # from here on every value is on the server
        durable = time.perf_counter() - started
        stats = store.stats
    print(
        f"write-back store() x {count:,}: acknowledged in {acknowledged:.2f} s, durable after flush() in "
        f"{durable:.2f} s ({count / durable:,.0f} values/s, {plain_seconds / durable:.1f}x the plain loop)"
    )
    print(f"  {stats['writeback_flushes']} flushes wrote {stats['writeback_written']} changes")
    assert stats["writeback_pending"] == 0

    async with aiodepot.Store(url, config=CONFIG) as check:
        some = list(values)[:: max(1, count // 10)]
        assert await check.load_many(some) == [values[name] for name in some]  # on the server, not in a backlog
        await check.delete_many(values)


@contextlib.asynccontextmanager
async def local_ftp_server(root: Path) -> AsyncIterator[str]:
    """Serve ``root`` with pyftpdlib on a loopback port (in a subprocess); yield a store URL in it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SERVER, str(root), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        port = int(await asyncio.wait_for(process.stdout.readline(), 30))
        yield f"ftp://demo:demo@127.0.0.1:{port}/store"
    finally:
        process.terminate()
        await process.wait()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="an ftp:// or ftps:// store URL (default: a local pyftpdlib server)")
    parser.add_argument("--count", type=int, default=1000, help="small values for the write-back part")
    args = parser.parse_args()
    if args.url:
        await basics(args.url)
        await write_back(args.url, args.count)
        return
    with tempfile.TemporaryDirectory(prefix="aiodepot-ftp-") as root:
        async with local_ftp_server(Path(root)) as url:
            await basics(url)
            await write_back(url, args.count)
            await aiodepot.Store(url).destroy()
    print("done")


if __name__ == "__main__":
    asyncio.run(main())
