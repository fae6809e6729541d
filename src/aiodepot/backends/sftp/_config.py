"""The sftp backend's configuration: its URL, path lists and the known_hosts files."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Sequence
from urllib.parse import unquote

import asyncssh

from ...errors import BackendURLInvalid

__all__ = ["SftpURL", "parse_url", "paths", "read_known_hosts"]

_URL = re.compile(
    r"""sftp://
    (?:(?P<user>[^@/]+)@)?
    (?P<host>\[[^\]/]+\]|[^:/\[\]@]+)
    (?::(?P<port>\d+))?
    /(?P<path>.+)   # the slash after the host separates; the path may start with another (absolute)
    """,
    re.VERBOSE | re.DOTALL,
)


class SftpURL:
    """The parts of an ``sftp://`` URL, decoded."""

    __slots__ = ("host", "path", "port", "username")

    def __init__(self, host: str, path: str, port: int | None, username: str | None) -> None:
        self.host = host
        self.path = path
        self.port = port
        self.username = username


def parse_url(url: str) -> SftpURL:
    """Split ``sftp://[user@]host[:port]/relative/path`` or ``sftp://[user@]host[:port]//absolute/path``.

    The user and the path may be percent-encoded; an IPv6 address goes in brackets.

    Raises:
        BackendURLInvalid: not such a URL, or a port out of range.
    """
    match = _URL.fullmatch(url)
    if match is None:
        raise BackendURLInvalid(
            f"not an sftp URL (sftp://[user@]host[:port]/relative/path or sftp://host//absolute/path): {url!r}"
        )
    host = match["host"].removeprefix("[").removesuffix("]")
    port = int(match["port"]) if match["port"] else None
    if port is not None and not 0 < port < 65536:
        raise BackendURLInvalid(f"invalid port in {url!r}")
    user = unquote(match["user"]) if match["user"] else None
    return SftpURL(host, unquote(match["path"]), port, user)


def paths(value: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[str]:
    """One path or several, as a list of strings."""
    if isinstance(value, str | os.PathLike):
        return [os.fspath(value)]
    return [os.fspath(item) for item in value]


def read_known_hosts(files: Sequence[str]) -> asyncssh.SSHKnownHosts:
    """All entries of the known_hosts files that exist (blocking: run it in a thread)."""
    text = []
    for file in files:
        with contextlib.suppress(FileNotFoundError), open(os.path.expanduser(file), encoding="utf-8") as f:
            text.append(f.read())
    return asyncssh.import_known_hosts("\n".join(text))
