"""sftp on loopback, many small values: aiodepot bulk calls vs borgstore's sftp backend (paramiko) used
sequentially, straight to the server and through a proxy that adds 5 ms in each direction; and one big
value straight to the server (aiodepot: stored in one stream, loaded as parallel 4 MiB ranges into one
buffer), with the client's CPU per MB.

The server is a real OpenSSH sshd on a loopback port, started as the tests start it; the proxy runs in a
child process, so it takes no CPU time from the client under test. Both contenders find the server
through the same ``~/.ssh/config`` and ``known_hosts`` (in a temporary HOME), as users would set them up.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.servers.sshd import Sshd, sshd

from aiodepot import Store

from .common import Meter, MiB, Row, Usage, bulk_store_load, names, sequential_store_load, usage_row

DELAY = 0.005
CONFIG = {"data/": {"levels": [1]}}


class DelayProxy:
    """A TCP proxy on loopback that delays every chunk by ``delay`` seconds in each direction.

    Chunks keep their order and do not wait for each other: the link gets latency, not less bandwidth.
    """

    def __init__(self, target_port: int, delay: float) -> None:
        self.target_port = target_port
        self.delay = delay
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> DelayProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_writer.close()
            return
        for reader, writer in ((client_reader, server_writer), (server_reader, client_writer)):
            task = asyncio.ensure_future(self._pipe(reader, writer))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    return
                await asyncio.sleep(max(0.0, due - loop.time()))
                writer.write(data)
                await writer.drain()

        sender = asyncio.ensure_future(deliver())
        try:
            while data := await reader.read(256 * 1024):
                queue.put_nowait((loop.time() + self.delay, data))
            queue.put_nowait((0.0, b""))
            await sender
        except OSError:
            pass
        finally:
            sender.cancel()
            with contextlib.suppress(BaseException):
                await sender
            writer.close()


def _serve_delay_proxy(target_port: int, delay: float, ports: Any) -> None:
    async def serve() -> None:
        async with DelayProxy(target_port, delay) as proxy:
            ports.put(proxy.port)
            await asyncio.Event().wait()

    asyncio.run(serve())


@contextlib.contextmanager
def delay_proxy_process(target_port: int, delay: float) -> Iterator[int]:
    """Run a ``DelayProxy`` in a child process; yield its port."""
    context = multiprocessing.get_context("spawn")
    ports = context.Queue()
    process = context.Process(target=_serve_delay_proxy, args=(target_port, delay, ports), daemon=True)
    process.start()
    try:
        yield ports.get(timeout=30)
    finally:
        process.terminate()
        process.join(10)
        ports.close()


@contextlib.contextmanager
def ssh_home(home: Path, server: Sshd, proxy_port: int) -> Iterator[None]:
    """A HOME whose ssh config names the server ``bench`` and the proxy in front of it ``bench-slow``."""
    ssh = home / ".ssh"
    ssh.mkdir(parents=True)
    entries = [("bench", server.port), ("bench-slow", proxy_port)]
    (ssh / "config").write_text(
        "".join(
            f"Host {alias}\n  HostName 127.0.0.1\n  Port {port}\n  User {server.user}\n"
            f"  IdentityFile {server.client_key}\n"
            for alias, port in entries
        )
    )
    (ssh / "known_hosts").write_text("".join(f"[127.0.0.1]:{port} {server.host_key_line}\n" for _, port in entries))
    saved = {name: os.environ.get(name) for name in ("HOME", "SSH_AUTH_SOCK")}
    os.environ["HOME"] = str(home)
    os.environ.pop("SSH_AUTH_SOCK", None)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def borgstore_sequential(url: str, count: int, value: bytes) -> dict[str, float] | None:
    try:
        import paramiko  # noqa: F401  (borgstore's sftp backend needs it)
        from borgstore.store import Store as BorgStore
    except ImportError:
        return None
    store = BorgStore(url=url, config=CONFIG)
    store.create()
    items = names(count)
    with store:
        return sequential_store_load(store, items, value)


def aiodepot_bulk(url: str, count: int, value: bytes) -> dict[str, float]:
    items = names(count)

    async def run() -> dict[str, float]:
        store = Store(url, config=CONFIG)
        await store.create()
        async with store:
            return await bulk_store_load(store, items, value)

    return asyncio.run(run())


def aiodepot_big(url: str, big: bytes) -> dict[str, Usage]:
    """One big value stored, then loaded, by aiodepot (the client's CPU; sshd's is not counted)."""

    async def run() -> dict[str, Usage]:
        store = Store(url, config=CONFIG)
        await store.create()
        async with store:
            with Meter() as stored:
                await store.store("data/big", big)
            with Meter() as loaded:
                assert len(await store.load("data/big")) == len(big)
        return {"store": stored, "load": loaded}

    return asyncio.run(run())


def run(count: int = 1000, size: int = 4096, big_mib: int = 256) -> list[Row]:
    """Run the scenario: one row per link, contender and operation."""
    value = os.urandom(size)
    rows = []
    with contextlib.ExitStack() as stack:
        root = stack.enter_context(tempfile.TemporaryDirectory(prefix="aiodepot-bench-"))
        server = stack.enter_context(sshd(Path(root) / "sshd"))
        proxy_port = stack.enter_context(delay_proxy_process(server.port, DELAY))
        stack.enter_context(ssh_home(Path(root) / "home", server, proxy_port))
        links = [("bench", "loopback"), ("bench-slow", f"loopback +{DELAY * 1000:.0f} ms each way")]
        for host, link in links:
            scenario = f"sftp {link}, {count} x {size // 1024} KiB"
            base = f"sftp://{host}/{root}/{host}"  # an absolute path: sftp://host//tmp/...
            results = {"aiodepot bulk": aiodepot_bulk(f"{base}-aiodepot", count, value)}
            borg = borgstore_sequential(f"{base}-borgstore", count, value)
            if borg is not None:
                results["borgstore seq"] = borg
            rows += [
                Row(scenario, op, contender, times[op], f"{count / times[op]:,.0f} items/s")
                for op in ("store", "load")
                for contender, times in results.items()
            ]
        big = aiodepot_big(f"sftp://bench/{root}/big", os.urandom(big_mib * MiB))
        megabytes = big_mib * MiB / 1e6
        rows += [
            usage_row(
                f"sftp loopback, 1 x {big_mib} MiB",
                op,
                "aiodepot",
                usage,
                megabytes,
                "MB",
                f"{megabytes / usage.seconds:,.0f} MB/s",
            )
            for op, usage in big.items()
        ]
    return rows
