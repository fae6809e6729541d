"""Hashing an item of the sftp backend: by a command on the server where it can, else by reading it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex

import asyncssh

from ... import hashing
from ._connection import Link
from ._files import RemoteFiles

__all__ = ["HASH_COMMANDS", "REMOTE_HASH_SLOTS", "RemoteHasher"]

log = logging.getLogger("aiodepot.backends.sftp")

REMOTE_HASH_SLOTS = 4
"""Hash commands in flight at once (each takes one of the server's ``MaxSessions`` channels)."""

HASH_COMMANDS = {
    "md5": "md5sum",
    "sha1": "sha1sum",
    "sha224": "sha224sum",
    "sha256": "sha256sum",
    "sha384": "sha384sum",
    "sha512": "sha512sum",
    "blake2b": "b2sum",
    "blake3": "b3sum",
}
"""hashlib name → the command that prints the same hex digest (GNU coreutils, b3sum)."""


class RemoteHasher:
    """Runs hash commands over SSH (a few at a time) and remembers which ones the server lacks.

    Args:
        files: the file operations of the backend (its deadlines, reads and closes).
    """

    def __init__(self, files: RemoteFiles) -> None:
        self._files = files
        self.unsupported: set[str] = set()  # algorithms the server cannot hash ("*": none)
        self.slots = asyncio.Semaphore(REMOTE_HASH_SLOTS)

    def after_fork(self) -> None:
        """A forked child gets its own semaphore (the parent's belongs to the parent's loop)."""
        self.slots = asyncio.Semaphore(REMOTE_HASH_SLOTS)

    def can_run(self, algorithm: str) -> bool:
        """Whether the server may have a command for ``algorithm`` (as far as we know yet)."""
        return not {"*", algorithm} & self.unsupported and algorithm in HASH_COMMANDS

    async def run(self, link: Link, path: str, algorithm: str, size: int) -> str | None:
        """Run the hash command on the server; None (and don't ask again) where that does not work."""
        digits = len(hashing.new(algorithm).hexdigest())
        # stdin redirection: any path, no option parsing; wc -c confirms the shell saw the same file as SFTP
        quoted = shlex.quote(path)
        command = f"{HASH_COMMANDS[algorithm]} < {quoted} && wc -c < {quoted}"
        try:
            await self.slots.acquire()  # waiting for a slot is no part of the round's deadline
            try:
                async with self._files.round():
                    result = await link.conn.run(command, check=False, stdin=asyncssh.DEVNULL)
            finally:
                self.slots.release()
        except (asyncssh.ChannelOpenError, asyncssh.ProcessError) as exc:
            log.info("sftp %s: no hash commands on the server (%r): hashing by reading", self._files.host, exc)
            self.unsupported.add("*")
            return None
        output = result.stdout if isinstance(result.stdout, str) else ""
        words = output.split()
        if result.exit_status == 0 and len(words) == 3 and words[1] == "-" and words[2] == str(size):
            digest = words[0].lower()
            if len(digest) == digits and all(c in "0123456789abcdef" for c in digest):
                return digest
        if result.exit_status == 127:  # that command is missing; others may be there
            self.unsupported.add(algorithm)
        elif not (result.exit_status == 0 and len(words) == 3 and words[2].isdigit()):
            log.info("sftp %s: hash command failed (%r): hashing by reading", self._files.host, result.stderr)
            self.unsupported.add("*")
        return None  # the value changed between the stat and the command: read it

    async def stream(self, link: Link, path: str, algorithm: str, part: int) -> str:
        """Read the value a part at a time (the next one in flight while this one is hashed)."""
        hasher = hashing.new(algorithm)
        f = await self._files.open_file(link, path, asyncssh.FXF_READ)
        pending: asyncio.Future[bytes] | None = None

        async def read(offset: int) -> bytes:
            return await self._files.read(link, f, offset, part)

        try:
            offset = 0
            pending = asyncio.ensure_future(read(offset))
            while pending is not None:
                chunk = await pending
                offset += len(chunk)
                pending = asyncio.ensure_future(read(offset)) if len(chunk) == part else None
                if len(chunk) >= 256 * 1024:
                    await asyncio.to_thread(hasher.update, chunk)
                else:
                    hasher.update(chunk)
        finally:
            if pending is not None:
                pending.cancel()
                with contextlib.suppress(BaseException):
                    await pending
            self._files.close_later(f)
        return hasher.hexdigest()
