"""The exceptions aiodepot raises: one tree, rooted at [`StoreError`][aiodepot.errors.StoreError].

```
StoreError
├── ObjectNotFound            (also KeyError)
├── ObjectExists              (also FileExistsError)
├── StoreExists               (also FileExistsError)
├── StoreNotFound             (also FileNotFoundError)
├── StoreStateError
│   ├── StoreNotOpen
│   └── StoreAlreadyOpen
├── PermissionDenied          (also PermissionError)
├── QuotaExceeded
├── ReadRangeError
├── ValueChanged              (a value was replaced while it was read in ranges)
├── InvalidName               (also ValueError)
├── IntegrityError
├── ConnectionLost            (also ConnectionError)
├── BackendURLInvalid         (also ValueError)
├── MissingDependency         (also ImportError)
├── NotSupported              (the backend cannot do this operation)
├── BackendError              (any other failure of a backend)
│   └── StoreCorrupt          (the location holds something that is not a usable store)
└── WriteBackError            (a write-back backlog could not be written; says how much is pending)
```

Backends translate the errors of the library or system they talk to at their boundary into the most
specific class above and keep the original as ``__cause__``. The secondary builtin bases mean that code
written against plain Python (``except KeyError``, ``except PermissionError``, ``except OSError``)
keeps working.
"""

from __future__ import annotations

import re

__all__ = [
    "BackendError",
    "BackendURLInvalid",
    "ConnectionLost",
    "IntegrityError",
    "InvalidName",
    "MissingDependency",
    "NotSupported",
    "ObjectExists",
    "ObjectNotFound",
    "PermissionDenied",
    "QuotaExceeded",
    "ReadRangeError",
    "StoreAlreadyOpen",
    "StoreCorrupt",
    "StoreError",
    "StoreExists",
    "StoreNotFound",
    "StoreNotOpen",
    "StoreStateError",
    "ValueChanged",
    "WriteBackError",
]


_USERINFO = re.compile(r"(?P<user>[^:/@\s]+):(?P<secret>[^:/@\s]+)@")


class StoreError(Exception):
    """Root of every error aiodepot raises on purpose."""

    store: str | None = None
    """The URL of the store the error came from, where known (set as it passes the
    [`Store`][aiodepot.Store]; it may hold a password: mask it before showing it)."""

    def __str__(self) -> str:
        # KeyError and OSError format their message differently; keep one readable form for the tree.
        return " ".join(str(arg) for arg in self.args) if self.args else self.__class__.__name__


class ObjectNotFound(StoreError, KeyError):
    """The named item does not exist (or a directory/namespace to list does not exist).

    ``ObjectNotFound("data/0123")`` reads ``no item 'data/0123'``, and ``… in <store URL>`` once the
    [`Store`][aiodepot.Store] it came through has set ``store`` (a password in the URL is masked).
    """

    @property
    def name(self) -> str:
        """The missing item's name (or the message the error was raised with)."""
        return str(self.args[0]) if self.args else ""

    def __str__(self) -> str:
        text = super().__str__()
        if len(self.args) != 1 or not isinstance(self.args[0], str) or any(c.isspace() for c in text):
            return text  # a message, not a bare name
        if not self.store:
            return f"no item {text!r}"
        masked = _USERINFO.sub(r"\g<user>:***@", self.store)
        return f"no item {text!r} in {masked}"


class ObjectExists(StoreError, FileExistsError):
    """The named item exists and the write asked for a new one (``store(name, value, if_absent=True)``).

    Raised by the backend's own atomic check, so of several writers racing to create one name exactly one
    succeeds and the others get this error.
    """


class StoreExists(StoreError, FileExistsError):
    """``create()`` found an existing, non-empty store."""


class StoreNotFound(StoreError, FileNotFoundError):
    """The store to open or destroy does not exist."""


class StoreStateError(StoreError):
    """The store is in the wrong state for the requested operation."""


class StoreNotOpen(StoreStateError):
    """The operation needs an open store: call ``open()`` or use ``async with store``."""


class StoreAlreadyOpen(StoreStateError):
    """The operation needs a closed store (``create``/``destroy``/``open`` of an open store)."""


class PermissionDenied(StoreError, PermissionError):
    """The store's permission map (or the storage itself) does not allow the operation."""


class QuotaExceeded(StoreError):
    """The operation would exceed the store's quota (or the storage is full)."""


class ReadRangeError(StoreError):
    """A ranged read returned fewer bytes than were asked for where an exact size is required."""


class ValueChanged(StoreError):
    """A range of a value was asked for on the condition that the value is still the version an earlier
    range came from (``Backend.load_into(..., version=...)``), and it has been replaced since. A
    ``Store.load`` in ranges catches it and loads the value again; nothing was written."""


class InvalidName(StoreError, ValueError):
    """An item or namespace name breaks the naming rules; nothing was touched."""


class IntegrityError(StoreError):
    """Data failed a hash, checksum or signature check."""


class ConnectionLost(StoreError, ConnectionError):
    """The connection to a remote backend was lost and could not be re-established in time."""


class BackendURLInvalid(StoreError, ValueError):
    """A store URL could not be parsed or names an unknown scheme."""


class MissingDependency(StoreError, ImportError):
    """A backend needs an optional dependency that is not installed (the message says which extra)."""


class NotSupported(StoreError):
    """The backend cannot do the asked operation (e.g. an atomic ``store(..., if_absent=True)`` or a signed
    ``url_for``); the message names the backend and the operation. Nothing was touched."""


class BackendError(StoreError):
    """Any other failure inside a backend; the native error is the ``__cause__``."""


class StoreCorrupt(BackendError):
    """The location holds something that is not a usable store: a file of another program, or a store
    that is damaged (a truncated database, a broken archive). The message names the file or location."""


class WriteBackError(StoreError):
    """A [`WriteBack`][aiodepot.layers.WriteBack] layer could not write (all of) its backlog to the backend
    below it, or its backlog is full while that fails. Nothing acknowledged is dropped: the unwritten
    changes stay in the backlog and the next ``flush()`` retries them. The cause is the first failure.

    Args:
        message: what failed.
        pending: the changes still in the backlog.
    """

    def __init__(self, message: str, *, pending: int) -> None:
        super().__init__(message)
        self.pending = pending
        """How many changes (stores and deletes of distinct names) are still waiting to be written."""
