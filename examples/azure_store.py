"""A store in Azure Blob Storage: store, list, load and sign a URL for items in a container.

``python examples/azure_store.py 'azure://ACCOUNT:KEY@CONTAINER/PATH'`` runs against that container
(created if missing). Without a URL the script starts Azurite, Microsoft's emulator, in memory on a
loopback port and runs against it: ``npm install azurite`` (or ``scripts/test``, which installs it into
``~/.cache/aiodepot-ci/azurite``; ``$AZURITE_BLOB`` may name another ``azurite-blob``). It needs
``pip install 'aiodepot[azure]'``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp

import aiodepot

CONFIG = {"config/": {"levels": [0]}, "data/": {"levels": [1]}}
ACCOUNT = "devstoreaccount1"  # the emulator's published development account and key
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


async def demo(url: str) -> None:
    store = aiodepot.Store(url, config=CONFIG, backend_options={"create_container": True})
    with contextlib.suppress(aiodepot.StoreExists):
        await store.create()
    async with store:
        values = {f"data/{hashlib.sha256(str(i).encode()).hexdigest()}": os.urandom(4096) for i in range(100)}
        await store.store_many(values)  # 100 Put Blobs, many in flight on one connection pool
        await store.store("config/settings", b'{"compression": "zstd"}')
        big = os.urandom(20 * 1024 * 1024)
        await store.store("data/" + "f" * 64, big)  # staged as parallel blocks, then one Put Block List
        names = [info.name async for info in store.list("data")]
        print(f"stored {len(values) + 1} items; data/ lists {len(names)} of them, sorted: {names[0][:12]}…")
        few = [info.name async for info in store.list("config", prefix="set")]
        print(f"config/ items starting with 'set' (the prefix is sent to the service): {few}")
        assert await store.load_many(values) == list(values.values())
        assert await store.load("data/" + "f" * 64) == big  # parallel ranged GETs, each MD5-checked
        print(f"loaded them back, and the {len(big) >> 20} MiB value")
        signed = await store.url_for("config/settings", expires=300)
        async with aiohttp.ClientSession() as http, http.get(signed) as reply:  # the SAS token is the key
            print(f"a SAS URL reads config/settings without the key: {(await reply.read()).decode()}")
        await store.delete_many([*values, "data/" + "f" * 64, "config/settings"])
    await store.destroy()
    print(f"done with {url.replace(KEY, '…')}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def local_azurite() -> Iterator[str]:
    """Run Azurite's blob service in memory on a loopback port; yield a store URL on it."""
    installed = Path.home() / ".cache" / "aiodepot-ci" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
    candidates = (os.environ.get("AZURITE_BLOB"), str(installed), shutil.which("azurite-blob"))
    program = next((c for c in candidates if c and os.access(c, os.X_OK)), None)
    if program is None:
        sys.exit("azurite-blob not found: npm install azurite, or give a store URL")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="aiodepot-azurite-") as workdir:  # it may write files in its cwd
        options = ["--blobHost", "127.0.0.1", "--blobPort", str(port), "--inMemoryPersistence", "--silent"]
        options += ["--skipApiVersionCheck", "--loose", "--disableTelemetry"]  # a newer SDK than Azurite knows
        quiet = subprocess.DEVNULL
        process = subprocess.Popen([program, *options], cwd=workdir, stdin=quiet, stdout=quiet, stderr=quiet)
        try:
            deadline = time.monotonic() + 60
            while True:  # wait until it listens
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
                if process.poll() is not None or time.monotonic() > deadline:
                    sys.exit("azurite did not start")
                time.sleep(0.2)
            yield f"azure://{ACCOUNT}:{KEY}@demo/depot?endpoint=http://127.0.0.1:{port}/{ACCOUNT}"
        finally:
            process.terminate()
            process.wait(timeout=10)


def main() -> None:
    if len(sys.argv) > 1:
        asyncio.run(demo(sys.argv[1]))
        return
    with local_azurite() as url:
        asyncio.run(demo(url))


if __name__ == "__main__":
    main()
