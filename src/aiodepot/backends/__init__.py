"""Backends and the URL scheme registry.

A store URL's scheme picks the backend class; the module behind it is imported only when a URL with that
scheme is opened, so a missing optional dependency only matters to the users of that backend (they get a
[`MissingDependency`][aiodepot.errors.MissingDependency] naming the extra to install).

Third-party packages add schemes through the entry-point group ``aiodepot.backends``::

    [project.entry-points."aiodepot.backends"]
    myscheme = "mypackage.backend:MyBackend"

or at run time with [`register_backend`][aiodepot.backends.register_backend].
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import re
from pathlib import Path
from typing import Any

from ..errors import BackendURLInvalid, MissingDependency
from .base import Backend, Capabilities, FirstRange
from .options import Limits, RetryPolicy, Timeouts

__all__ = [
    "Backend",
    "Capabilities",
    "FirstRange",
    "Limits",
    "RetryPolicy",
    "Timeouts",
    "backend_from_url",
    "normalize_url",
    "register_backend",
    "registered_schemes",
    "without_secrets",
]

# scheme -> ("module:Class", extra that provides its dependencies, or None)
_BUILTIN: dict[str, tuple[str, str | None]] = {
    "file": ("aiodepot.backends.posixfs:PosixFSBackend", None),
    "memory": ("aiodepot.backends.memory:MemoryBackend", None),
    "sftp": ("aiodepot.backends.sftp:SftpBackend", "sftp"),
    "s3": ("aiodepot.backends.s3:S3Backend", "s3"),
    "b2": ("aiodepot.backends.s3:S3Backend", "s3"),
    "azure": ("aiodepot.backends.azure:AzureBackend", "azure"),
    "gs": ("aiodepot.backends.gcs:GcsBackend", "gcs"),
    "ftp": ("aiodepot.backends.ftp:FtpBackend", "ftp"),
    "ftps": ("aiodepot.backends.ftp:FtpBackend", "ftp"),
    "http": ("aiodepot.backends.rest:RestBackend", "rest"),
    "https": ("aiodepot.backends.rest:RestBackend", "rest"),
    "rest": ("aiodepot.backends.rest:RestBackend", "rest"),
    "sqlite": ("aiodepot.backends.sqlite:SQLiteBackend", "sqlite"),
    "redis": ("aiodepot.backends.redis:RedisBackend", "redis"),
    "rediss": ("aiodepot.backends.redis:RedisBackend", "redis"),
    "redis+cluster": ("aiodepot.backends.redis:RedisBackend", "redis"),
    "rediss+cluster": ("aiodepot.backends.redis:RedisBackend", "redis"),
    "rclone": ("aiodepot.backends.rclone:RcloneBackend", "rclone"),
    "zip": ("aiodepot.backends.zip:ZipBackend", None),
}
_NOT_URLS = frozenset({"rclone"})
"""Schemes whose locations are not URLs (``rclone:remote:path``): a '?' there is part of the path."""
_QUERY_URLS = frozenset({"azure", "gs"})
"""Schemes whose URLs take a query (``azure://…?endpoint=…``, ``gs://…?endpoint=…``): the backend parses it."""
_registry: dict[str, type[Backend] | tuple[str, str | None]] = dict(_BUILTIN)
_entry_points_loaded = False

ENTRY_POINT_GROUP = "aiodepot.backends"


def register_backend(scheme: str, backend: type[Backend] | str, *, extra: str | None = None) -> None:
    """Make ``scheme://…`` URLs open ``backend`` (a class, or ``"module:Class"`` imported on first use)."""
    if not scheme or not scheme.replace("+", "").replace("-", "").isalnum() or scheme != scheme.lower():
        raise ValueError(f"invalid URL scheme: {scheme!r}")
    _registry[scheme] = backend if isinstance(backend, type) else (backend, extra)


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        _registry.setdefault(entry_point.name, (entry_point.value, None))


def registered_schemes() -> list[str]:
    """All URL schemes that can be opened, sorted."""
    _load_entry_points()
    return sorted(_registry)


def _resolve(scheme: str) -> type[Backend]:
    entry = _registry.get(scheme)
    if entry is None:
        _load_entry_points()
        entry = _registry.get(scheme)
    if entry is None:
        known = ", ".join(f"{s}:" for s in registered_schemes())
        raise BackendURLInvalid(f"unknown store URL scheme {scheme!r} (known: {known})")
    if isinstance(entry, type):
        return entry
    target, extra = entry
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = f"pip install 'aiodepot[{extra}]'" if extra else "install the package that provides it"
        raise MissingDependency(f"the {scheme}: backend needs {exc.name or module_name}: {hint}") from exc
    backend_class = getattr(module, class_name)
    if not (isinstance(backend_class, type) and issubclass(backend_class, Backend)):
        raise BackendURLInvalid(f"{target} (for {scheme}:) is not an aiodepot Backend")
    _registry[scheme] = backend_class
    return backend_class


_USERINFO_SECRET = re.compile(r"(?P<head>(?<![\w+.-])[a-z][a-z0-9+.-]*:(?://)?[^:@/?#\s]*:)[^@\s]*@", re.IGNORECASE)
"""The secret of ``user:secret@`` at the start of a URL's authority (``http://u:p@``, ``s3:key:secret@``,
``azure://ACCOUNT:KEY@``, ``redis://:password@``), wherever the URL stands in a text; a base64 key may hold
``/``."""
_QUERY_SECRET = re.compile(
    r"(?P<head>[?&][\w.-]*(?:token|secret|password|passwd|pwd|sig|signature|key|sas)=)[^&#\s]*", re.IGNORECASE
)
"""The value of a query parameter that carries a secret (``?token=…``, ``&sig=…``, ``?access_key=…``)."""


def without_secrets(text: str) -> str:
    """``text`` with the secrets of the store URLs in it replaced by ``***``: the password or key of
    ``user:secret@`` and the values of query parameters that hold a token, signature, password or key.

    ``text`` may be a store URL or a message that names some.
    [`Backend.location`][aiodepot.backends.base.Backend.location], `Store.url`, `repr(store)`, the errors
    that name a store and the command line show URLs through it.
    """
    return _QUERY_SECRET.sub(r"\g<head>***", _USERINFO_SECRET.sub(r"\g<head>***@", text))


def normalize_url(url: str) -> str:
    """A store URL as given, or for a local path (``/srv/depot``, ``./depot``, ``~/depot``, ``depot``: no
    ``scheme:`` in front) the ``file://`` URL of its absolute path."""
    if not isinstance(url, str):
        raise BackendURLInvalid(f"a store URL must be a str, not {type(url).__name__}")
    if url.startswith(("/", "./", "../", "~")) or url in (".", "..") or (url and ":" not in url):
        return Path(os.path.abspath(os.path.expanduser(url))).as_uri()
    return url


def backend_from_url(url: str, **options: Any) -> Backend:
    """Create the backend for a store URL, e.g. ``file:///srv/depot`` or ``memory://scratch`` (a local
    path is taken as a ``file://`` URL, see [`normalize_url`][aiodepot.backends.normalize_url])."""
    url = normalize_url(url)
    scheme, sep, _ = url.partition(":")
    if not sep or not scheme:
        raise BackendURLInvalid(f"not a store URL (no scheme): {without_secrets(url)!r}")
    scheme = scheme.lower()
    if scheme in _BUILTIN and scheme not in _NOT_URLS | _QUERY_URLS and ("?" in url or "#" in url):
        raise BackendURLInvalid(
            f"{scheme}: URLs take no query (?…) or fragment (#…): {without_secrets(url)!r} "
            "(write a '?' or '#' in a path as %3F or %23)"
        )
    backend = _resolve(scheme).from_url(url, **options)
    backend.opened_from = without_secrets(url)
    return backend
