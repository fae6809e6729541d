"""A store on an SFTP server: store, list, load and hash items over SSH.

``python examples/sftp_store.py sftp://user@host/path/to/store`` uses your SSH setup as ``ssh`` would
(``~/.ssh/config``, keys, ssh-agent, ``known_hosts``) and creates the store if it does not exist yet.
Without a URL the script starts asyncssh's SFTP server inside this process, on a loopback port, serving a
temporary directory, and runs against that (it needs ``pip install 'aiodepot[sftp]'``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiodepot

CONFIG = {"config/": {"levels": [0]}, "data/": {"levels": [1]}}


async def demo(url: str, **backend_options: Any) -> None:
    store = aiodepot.Store(url, config=CONFIG, backend_options=backend_options)
    with contextlib.suppress(aiodepot.StoreExists):
        await store.create()
    async with store:
        values = {f"data/{hashlib.sha256(str(i).encode()).hexdigest()}": os.urandom(4096) for i in range(200)}
        await store.store_many(values)  # 200 stores, many requests in flight on one SSH connection
        await store.store("config/settings", b'{"compression": "zstd"}')
        names = [info.name async for info in store.list("data")]
        print(f"stored {len(values)} items; data/ lists {len(names)} of them, sorted: {names[0][:12]}…")
        loaded = await store.load_many(values)
        assert loaded == list(values.values())
        first = next(iter(values))
        print(f"loaded them back; sha256 of {first[:17]}…: {(await store.hash(first))[:16]}…")
        print("quota as the server reports it:", await store.quota())
        await store.delete_many(values)
        await store.delete("config/settings")
    print(f"done with {url}")


@contextlib.asynccontextmanager
async def local_sftp_server(workdir: Path) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """Serve ``workdir/root`` over SFTP on a loopback port; yield a store URL and the backend options
    that trust this server and log in with a throwaway key."""
    import asyncssh

    root = workdir / "root"
    root.mkdir()
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    user_key = asyncssh.generate_private_key("ssh-ed25519")
    user_key.write_private_key(str(workdir / "user_key"))
    server = await asyncssh.listen(
        "127.0.0.1",
        0,
        server_host_keys=[host_key],
        authorized_client_keys=asyncssh.import_authorized_keys(user_key.export_public_key().decode()),
        sftp_factory=lambda channel: asyncssh.SFTPServer(channel, chroot=os.fsencode(root)),
        allow_scp=False,
    )
    port = server.sockets[0].getsockname()[1]
    known_hosts = workdir / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_key.export_public_key().decode()}")
    options = {
        "known_hosts": str(known_hosts),
        "client_keys": [str(workdir / "user_key")],
        "ssh_options": {"config": [], "agent_path": None},  # ignore the local SSH setup
    }
    try:
        yield f"sftp://demo@127.0.0.1:{port}/store", options
    finally:
        server.close()
        await server.wait_closed()


async def main() -> None:
    if len(sys.argv) > 1:
        await demo(sys.argv[1])
        return
    with tempfile.TemporaryDirectory(prefix="aiodepot-sftp-") as workdir:
        async with local_sftp_server(Path(workdir)) as (url, options):
            await demo(url, **options)


if __name__ == "__main__":
    asyncio.run(main())
