"""The sftp backend's connections: one SSH connection with its SFTP session, and a pool of them.

Connections are opened on demand (callers waiting for the same new connection share its outcome), each
call takes the least busy one, a lost one is dropped, and a forked child leaves the parent's alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable

import asyncssh

__all__ = [
    "DEFAULT_WINDOW",
    "ENCRYPTION_ALGS",
    "FALLBACK_BLOCK",
    "MAX_PACKET",
    "SFTP_VERSION",
    "HostKeyClient",
    "Link",
    "Pool",
]

log = logging.getLogger("aiodepot.backends.sftp")

MiB = 1024 * 1024

SFTP_VERSION = 6
"""The highest SFTP protocol version asked for (OpenSSH speaks 3; newer versions give finer error codes)."""
DEFAULT_WINDOW = 8 * MiB
"""SSH channel window: how much data the server may send ahead; bounds throughput to window / round trip."""
ENCRYPTION_ALGS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-ctr",
)
"""asyncssh's ciphers, AES-GCM first: it costs asyncssh far less CPU per packet than ChaCha20-Poly1305."""
MAX_PACKET = 256 * 1024
"""Largest SSH channel packet we accept: one maximum-size SFTP read reply fits in one packet."""
FALLBACK_BLOCK = 16 * 1024
"""SFTP read/write size when the server does not state its limits (every server takes 16 KiB)."""


class Link:
    """One SSH connection with its SFTP session."""

    __slots__ = ("busy", "conn", "read_len", "sftp", "write_len")

    def __init__(self, conn: asyncssh.SSHClientConnection, sftp: asyncssh.SFTPClient) -> None:
        self.conn = conn
        self.sftp = sftp
        self.busy = 0
        self.read_len = sftp.limits.max_read_len or FALLBACK_BLOCK
        self.write_len = sftp.limits.max_write_len or FALLBACK_BLOCK


class HostKeyClient(asyncssh.SSHClient):
    """Asks the backend about host keys that known_hosts does not vouch for."""

    def __init__(self, verify: Callable[[str, str, int, asyncssh.SSHKey], bool]) -> None:
        self._verify = verify

    def validate_host_public_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        return self._verify(host, addr, port, key)


class Pool:
    """Up to ``size`` connections, opened on demand; each call takes the least busy one."""

    def __init__(self, connect: Callable[[], Awaitable[Link]], size: int) -> None:
        self._connect = connect
        self.size = size
        self.links: list[Link] = []
        self._connecting: asyncio.Task[Link] | None = None
        self._pid = os.getpid()

    def _forget_after_fork(self) -> None:
        """In a forked child, leave the parent's connections to the parent (never close them here)."""
        if self._pid != os.getpid():
            self.links, self._connecting, self._pid = [], None, os.getpid()

    async def acquire(self) -> Link:
        """A connection to send requests on (call ``release`` when done)."""
        self._forget_after_fork()
        while True:
            for closed in [link for link in self.links if link.conn.is_closed()]:
                self.discard(closed)  # closed while idle (by the server, or a keepalive timeout)
            if len(self.links) >= self.size or (self.links and self._connecting is not None):
                link = min(self.links, key=lambda candidate: candidate.busy)
                link.busy += 1
                return link
            if self._connecting is None:
                self._connecting = asyncio.ensure_future(self._connect())
                self._connecting.add_done_callback(self._connected)
            if self.links:
                continue  # use what is there while the next connection is being made
            # every caller waiting for this connection shares its outcome: one failure, one error each
            await asyncio.shield(self._connecting)

    async def fill(self) -> None:
        """Make the missing connections, all at once; those that fail are tried again when needed."""
        missing = self.size - len(self.links) - (self._connecting is not None)
        results = await asyncio.gather(*(self._connect() for _ in range(missing)), return_exceptions=True)
        for result in results:
            if isinstance(result, Link):
                self.links.append(result)
            else:
                log.info("sftp: an extra connection failed (%r); trying again when needed", result)

    def _connected(self, task: asyncio.Task[Link]) -> None:
        if self._connecting is task:
            self._connecting = None
        if not task.cancelled() and task.exception() is None:
            self.links.append(task.result())

    def release(self, link: Link) -> None:
        """Give back a connection taken with ``acquire``."""
        link.busy -= 1

    def discard(self, link: Link) -> None:
        """Drop a connection that failed; requests still waiting on it fail at once."""
        if link in self.links:
            self.links.remove(link)
            link.conn.abort()
            log.warning("sftp: dropped a lost connection to %s", link.conn.get_extra_info("peername"))

    async def close(self) -> None:
        """Close every connection (and stop one being made)."""
        self._forget_after_fork()
        connecting, self._connecting = self._connecting, None
        if connecting is not None:
            connecting.cancel()
            with contextlib.suppress(BaseException):
                link = await connecting
                link.conn.abort()
        links, self.links = self.links, []
        for link in links:
            link.conn.close()
        for link in links:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await link.conn.wait_closed()
