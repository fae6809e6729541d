"""Serve a store over HTTP and use it from a client, all in one process.

What an operator runs as ``aiodepot serve --backend file:///srv/depot --htpasswd users --admin-port 9618``,
here embedded: a file:// store behind the REST server with one user from an htpasswd file, a client
that stores and loads through it, and the server's Prometheus metrics at the end.
"""

from __future__ import annotations

import asyncio
import socket
import tempfile
from pathlib import Path

import aiohttp
import bcrypt
from aiohttp import web

import aiodepot
from aiodepot.backends import backend_from_url
from aiodepot.server import StoreServer
from aiodepot.server.auth import HtpasswdAuth


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def main(workdir: Path) -> None:
    users = workdir / "htpasswd"
    users.write_text(f"backup:{bcrypt.hashpw(b'secret', bcrypt.gensalt(rounds=4)).decode()}\n")
    server = StoreServer(backend_from_url((workdir / "depot").as_uri()), authenticator=HtpasswdAuth(users))
    port, admin_port = free_port(), free_port()
    runner = web.AppRunner(server.make_app(), access_log=None)
    admin = web.AppRunner(server.make_admin_app(), access_log=None)
    await runner.setup()
    await admin.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await web.TCPSite(admin, "127.0.0.1", admin_port).start()
    print(f"serving {workdir / 'depot'} on http://127.0.0.1:{port} (metrics on port {admin_port})")
    try:
        store = aiodepot.Store(f"http://backup:secret@127.0.0.1:{port}", config={"data/": {"levels": [1]}})
        await store.create()
        async with store:
            values = {f"data/{i:064x}": f"chunk {i}".encode() for i in range(200)}
            await store.store_many(values)
            assert await store.load_many(values) == list(values.values())
            names = [info.name async for info in store.list("data")]
            print(f"stored and loaded {len(names)} items through the server")
        try:
            await aiodepot.Store(f"http://backup:wrong@127.0.0.1:{port}").create()
        except aiodepot.PermissionDenied as exc:
            print(f"a wrong password is refused: {exc}")
        else:
            raise AssertionError("a wrong password was accepted")
        async with aiohttp.ClientSession(auth=None) as session:
            headers = {"Authorization": "Basic " + __import__("base64").b64encode(b"backup:secret").decode()}
            async with session.get(f"http://127.0.0.1:{admin_port}/metrics", headers=headers) as response:
                metrics = await response.text()
        requests = [line for line in metrics.splitlines() if line.startswith("aiodepot_requests_total")]
        print("metrics:", *requests, sep="\n  ")
        assert requests
    finally:
        await admin.cleanup()
        await runner.cleanup()
    assert (workdir / "depot" / "data").is_dir()  # borgstore's layout on disk


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="aiodepot-server-example-") as tmp:
        asyncio.run(main(Path(tmp)))
