"""borgstore's ``Sftp`` backend on aiodepot's asyncssh-based [`aiodepot.backends.sftp`][aiodepot.backends.sftp]."""

from __future__ import annotations

import re
from urllib.parse import unquote

from ....backends.options import RetryPolicy, Timeouts
from .._portal import construct
from ..constants import TMP_SUFFIX
from ..utils import hashing
from ._base import AiodepotBackend, BackendBase, ItemInfo, to_bytes, validate_name, validate_value
from ._lazy import backend_class
from ._utils import with_reconnect
from .errors import (
    BackendAlreadyExists,
    BackendDoesNotExist,
    BackendError,
    BackendMustBeOpen,
    BackendMustNotBeOpen,
    ObjectNotFound,
)

__all__ = [
    "TMP_SUFFIX",
    "BackendAlreadyExists",
    "BackendBase",
    "BackendDoesNotExist",
    "BackendError",
    "BackendMustBeOpen",
    "BackendMustNotBeOpen",
    "ItemInfo",
    "ObjectNotFound",
    "Sftp",
    "get_sftp_backend",
    "hashing",
    "to_bytes",
    "validate_name",
    "validate_value",
    "with_reconnect",
]

DEFAULT_CONNECT_TIMEOUT = 30.0
DEFAULT_KEEPALIVE_INTERVAL = 30.0
DEFAULT_SOCKET_TIMEOUT = 120.0
DEFAULT_RECONNECT_TRIES = 3
DEFAULT_RECONNECT_WAIT = 5.0

_SFTP_URL = re.compile(r"sftp://((?P<username>[^@]+)@)?(?P<hostname>[^:/]+)(?::(?P<port>\d+))?/(?P<path>.+)")


def get_sftp_backend(url: str) -> Sftp | None:
    """``sftp://[user@]host[:port]/relative/path`` (or ``//absolute/path``) → an Sftp; other URLs → None."""
    if not url.startswith("sftp:"):
        return None
    match = _SFTP_URL.match(url)
    if match is None:
        return None
    return Sftp(
        hostname=match["hostname"],
        path=unquote(match["path"]),
        port=int(match["port"] or "0"),
        username=unquote(match["username"]) if match["username"] else None,
    )


class Sftp(AiodepotBackend):
    """Items as files on an SFTP server (one asyncssh connection pool, not paramiko).

    Args:
        hostname: the server (``~/.ssh/config`` host aliases work).
        path: the store directory, relative to the login directory unless it starts with ``/``.
        port: the SSH port (0: the default or what ssh_config says).
        username: the login (None: the default).
        connect_timeout: seconds to connect.
        keepalive_interval: seconds between SSH keepalives.
        socket_timeout: seconds an operation may wait for the server.
        reconnect_tries: how often to reconnect and retry after the connection was lost.
        reconnect_wait: seconds between reconnect attempts.
    """

    precreate_dirs: bool = False

    def __init__(
        self,
        hostname: str,
        path: str,
        port: int = 0,
        username: str | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        keepalive_interval: float = DEFAULT_KEEPALIVE_INTERVAL,
        socket_timeout: float = DEFAULT_SOCKET_TIMEOUT,
        reconnect_tries: int = DEFAULT_RECONNECT_TRIES,
        reconnect_wait: float = DEFAULT_RECONNECT_WAIT,
    ) -> None:
        self.hostname, self.port, self.username, self.base_path = hostname, port, username, path
        backend_type = backend_class("sftp", "SftpBackend", "sftp")
        super().__init__(
            construct(
                backend_type,
                hostname,
                path,
                port=port or None,
                username=username,
                timeouts=Timeouts(connect=connect_timeout, read=socket_timeout),
                keepalive_interval=keepalive_interval,
                retry=RetryPolicy(attempts=reconnect_tries + 1, backoff=reconnect_wait, multiplier=2.0, cap=30.0),
            )
        )
