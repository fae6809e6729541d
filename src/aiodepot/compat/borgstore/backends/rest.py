"""borgstore's ``REST`` client backend on aiodepot's [`aiodepot.backends.rest`][aiodepot.backends.rest]."""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

from ....backends.options import RetryPolicy, Timeouts
from .._portal import construct
from ._base import AiodepotBackend, BackendBase, ItemInfo, validate_name, validate_sources, validate_value
from ._lazy import backend_class
from ._utils import ignore_sigint, make_range_header, with_reconnect
from .errors import (
    BackendAlreadyExists,
    BackendConnectionError,
    BackendDoesNotExist,
    BackendError,
    BackendMustBeOpen,
    BackendMustNotBeOpen,
    ObjectNotFound,
    PermissionDenied,
    QuotaExceeded,
    ReadRangeError,
)

__all__ = [
    "DEFAULT_RECONNECT_TRIES",
    "DEFAULT_RECONNECT_WAIT",
    "REST",
    "SSH_ALIVE_COUNT_MAX",
    "SSH_ALIVE_INTERVAL",
    "BackendAlreadyExists",
    "BackendBase",
    "BackendConnectionError",
    "BackendDoesNotExist",
    "BackendError",
    "BackendMustBeOpen",
    "BackendMustNotBeOpen",
    "ItemInfo",
    "ObjectNotFound",
    "PermissionDenied",
    "QuotaExceeded",
    "ReadRangeError",
    "get_rest_backend",
    "ignore_sigint",
    "make_range_header",
    "ssh_cmd",
    "validate_name",
    "validate_sources",
    "validate_value",
    "with_reconnect",
]

SSH_ALIVE_INTERVAL = 30
"""Seconds between ssh keepalive probes (``ServerAliveInterval``) of the ``rest://`` ssh transport."""
SSH_ALIVE_COUNT_MAX = 3
"""Unanswered keepalive probes after which ssh gives up (``ServerAliveCountMax``)."""

DEFAULT_RECONNECT_TRIES = 3
"""How often a lost connection is re-established before an operation fails."""
DEFAULT_RECONNECT_WAIT = 5.0
"""Seconds between reconnection attempts."""

_HTTP_URL = re.compile(
    r"(?P<scheme>https?)://((?P<username>[^:]+):(?P<password>[^@]+)@)?(?P<host>[^:/]+)(:(?P<port>\d+))?(?P<path>/[^?#]*)?"
)


def ssh_cmd(user: str | None, host: str, port: int | str | None) -> list[str]:
    """The ssh command line (a list) to prefix to a remote command, as borgstore builds it.

    ``$BORGSTORE_RSH`` replaces ``ssh`` and its options verbatim; otherwise ssh gets keepalive options (a
    dead peer ends the session instead of hanging it) and ``-p port`` if a port is given.
    """
    rsh = os.environ.get("BORGSTORE_RSH")
    if rsh:
        args = shlex.split(rsh)
    else:
        args = ["ssh", "-o", f"ServerAliveInterval={SSH_ALIVE_INTERVAL}"]
        args += ["-o", f"ServerAliveCountMax={SSH_ALIVE_COUNT_MAX}"]
        if port:
            args += ["-p", str(port)]
    args.append(f"{user}@{host}" if user else host)
    return args


def get_rest_backend(base_url: str) -> REST | None:
    """``http[s]://[user:pass@]host[:port][/path]`` or ``rest://[user@]host[:port]/path`` → a REST; else None."""
    if not base_url.startswith(("http:", "https:", "rest:")):
        return None
    match = _HTTP_URL.match(base_url)
    if match is not None:
        url = f"{match['scheme']}://{match['host']}" + (f":{match['port']}" if match["port"] else "")
        url += match["path"] or ""
        username: str | None
        password: str | None
        if match["username"] and match["password"]:
            username, password = unquote(match["username"]), unquote(match["password"])
        else:
            username = os.environ.get("BORGSTORE_REST_USERNAME")
            password = os.environ.get("BORGSTORE_REST_PASSWORD")
        return REST(url, username=username, password=password)
    if base_url.startswith("rest:"):
        rest_type = backend_class("rest", "RestBackend", "rest")
        async_backend = construct(rest_type.from_url, base_url, server_command="borgstore-server-rest")
        return REST._wrap(async_backend, base_url="http://stdio-backend", command=async_backend.command)
    return None


class REST(AiodepotBackend):
    """A client of a borgstore REST v1 server (``borgstore-server-rest`` or ``aiodepot serve``).

    Args:
        base_url: the server URL (``http://stdio-backend`` together with ``command``).
        username: HTTP basic auth user.
        password: HTTP basic auth password.
        headers: extra request headers (not supported: must be empty).
        timeout: seconds per request (None: 60).
        command: run this server command and talk to it over stdin/stdout instead of HTTP.
        reconnect_tries: how often to retry after the connection was lost.
        reconnect_wait: seconds between attempts.
    """

    def __init__(
        self,
        base_url: str,
        username: str | None = None,
        password: str | None = None,
        headers: dict[str, str] | None = None,
        timeout: int | None = 30,
        command: Sequence[str] | None = None,
        reconnect_tries: int = DEFAULT_RECONNECT_TRIES,
        reconnect_wait: float = DEFAULT_RECONNECT_WAIT,
    ) -> None:
        if headers:
            raise NotImplementedError("aiodepot's REST backend does not send extra headers (headers=...)")
        rest_type = backend_class("rest", "RestBackend", "rest")
        options: dict[str, Any] = {
            "timeouts": Timeouts(read=float(timeout) if timeout is not None else 60.0),
            "retry": RetryPolicy(attempts=reconnect_tries + 1, backoff=reconnect_wait, multiplier=1.0, jitter=0.0),
        }
        if command is not None:
            async_backend = construct(rest_type, command=list(command), **options)
        else:
            async_backend = construct(rest_type, base_url, username=username, password=password, **options)
        self.base_url = base_url.rstrip("/")
        self.command = list(command) if command is not None else None
        self.auth = _basic_auth(username, password)
        super().__init__(async_backend)

    @classmethod
    def _wrap(cls, async_backend: Any, *, base_url: str, command: Any) -> REST:
        self = cls.__new__(cls)
        self.base_url, self.command, self.auth = base_url, command, None
        AiodepotBackend.__init__(self, async_backend)
        return self


def _basic_auth(username: str | None, password: str | None) -> Any:
    """The credentials as borgstore exposes them (``requests``' HTTPBasicAuth, for raw requests), or None."""
    if not (username and password):
        return None
    try:
        from requests.auth import HTTPBasicAuth
    except ImportError:  # requests is not needed by aiodepot; a tuple works with it too
        return (username, password)
    return HTTPBasicAuth(username, password)
