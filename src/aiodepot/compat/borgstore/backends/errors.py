"""borgstore's exception classes, joined to aiodepot's error tree.

```
aiodepot.errors.StoreError
└── BackendError
    ├── BackendConnectionError   (also aiodepot ConnectionLost)
    ├── BackendURLInvalid        (also aiodepot BackendURLInvalid)
    ├── NoBackendGiven
    ├── BackendAlreadyExists     (also aiodepot StoreExists)
    ├── BackendDoesNotExist      (also aiodepot StoreNotFound)
    ├── BackendMustNotBeOpen     (also aiodepot StoreAlreadyOpen)
    ├── BackendMustBeOpen        (also aiodepot StoreNotOpen)
    ├── ObjectNotFound           (also aiodepot ObjectNotFound)
    ├── PermissionDenied         (also aiodepot PermissionDenied)
    ├── QuotaExceeded            (also aiodepot QuotaExceeded)
    └── ReadRangeError           (also aiodepot ReadRangeError)
```

So ``except borgstore.backends.errors.ObjectNotFound`` and ``except aiodepot.ObjectNotFound`` both catch
what the compat layer raises. [`translate`][aiodepot.compat.borgstore.backends.errors.translate] turns an
aiodepot error (or one of the real borgstore package's) into the class here.
"""

from __future__ import annotations

import re

from .... import errors as _errors

__all__ = [
    "BackendAlreadyExists",
    "BackendConnectionError",
    "BackendDoesNotExist",
    "BackendError",
    "BackendMustBeOpen",
    "BackendMustNotBeOpen",
    "BackendURLInvalid",
    "NoBackendGiven",
    "ObjectNotFound",
    "PermissionDenied",
    "QuotaExceeded",
    "ReadRangeError",
    "translate",
]


class BackendError(_errors.StoreError):
    """Root of borgstore's backend errors (and an aiodepot ``StoreError``)."""


class BackendConnectionError(BackendError, _errors.ConnectionLost):
    """The connection to the backend was lost."""


class BackendURLInvalid(BackendError, _errors.BackendURLInvalid):
    """The store URL is invalid or names an unsupported backend."""


class NoBackendGiven(BackendError):
    """A store was made with neither a backend nor a URL."""


class BackendAlreadyExists(BackendError, _errors.StoreExists):
    """``create()`` found existing storage."""


class BackendDoesNotExist(BackendError, _errors.StoreNotFound):
    """The storage does not exist (or the backend's dependencies are missing)."""


class BackendMustNotBeOpen(BackendError, _errors.StoreAlreadyOpen):
    """The operation needs a closed backend."""


class BackendMustBeOpen(BackendError, _errors.StoreNotOpen):
    """The operation needs an open backend."""


class ObjectNotFound(BackendError, _errors.ObjectNotFound):
    """The item does not exist."""


class PermissionDenied(BackendError, _errors.PermissionDenied):
    """The permissions do not allow the operation."""


class QuotaExceeded(BackendError, _errors.QuotaExceeded):
    """The operation would exceed the quota."""


class ReadRangeError(BackendError, _errors.ReadRangeError):
    """A range read came back short."""


# most specific first: the first class an error is an instance of decides
_FROM_AIODEPOT: tuple[tuple[type[Exception], type[BackendError]], ...] = (
    (_errors.ObjectNotFound, ObjectNotFound),
    (_errors.StoreExists, BackendAlreadyExists),
    (_errors.StoreNotFound, BackendDoesNotExist),
    (_errors.StoreNotOpen, BackendMustBeOpen),
    (_errors.StoreAlreadyOpen, BackendMustNotBeOpen),
    (_errors.PermissionDenied, PermissionDenied),
    (_errors.QuotaExceeded, QuotaExceeded),
    (_errors.ReadRangeError, ReadRangeError),
    (_errors.ConnectionLost, BackendConnectionError),
    (_errors.BackendURLInvalid, BackendURLInvalid),
    (_errors.MissingDependency, BackendDoesNotExist),  # as borgstore reports a missing extra
    (_errors.BackendError, BackendError),
    (_errors.IntegrityError, BackendError),
)
_BY_NAME: dict[str, type[BackendError]] = {
    cls.__name__: cls
    for cls in (
        BackendError,
        BackendConnectionError,
        BackendURLInvalid,
        NoBackendGiven,
        BackendAlreadyExists,
        BackendDoesNotExist,
        BackendMustNotBeOpen,
        BackendMustBeOpen,
        ObjectNotFound,
        PermissionDenied,
        QuotaExceeded,
        ReadRangeError,
    )
}
_SHORT_READ = re.compile(r"(?P<name>\S+): wanted (?P<size>\d+) bytes at offset (?P<offset>-?\d+), got (?P<got>\d+)")


def _message(exc: BaseException, target: type[BackendError]) -> str:
    text = str(exc)
    if target is ReadRangeError:  # borgstore's wording, which callers match on
        match = _SHORT_READ.search(text)
        if match:
            return (
                f"Read range error from {match['name']} (requested {match['size']} bytes "
                f"at offset {match['offset']}, got {match['got']})"
            )
        return f"Read range error: {text}"
    return text


def translate(exc: BaseException) -> BaseException:
    """Return the borgstore-compatible error for ``exc`` (``exc`` itself if there is none or it is one).

    The result keeps ``exc`` as its ``__cause__``.
    """
    if isinstance(exc, BackendError) or not isinstance(exc, Exception):
        return exc
    target: type[BackendError] | None = None
    module = type(exc).__module__
    if module == "borgstore.backends.errors" or module.startswith("borgstore."):  # the real package's errors
        target = _BY_NAME.get(type(exc).__name__)
    elif isinstance(exc, _errors.StoreError):
        target = next((cls for base, cls in _FROM_AIODEPOT if isinstance(exc, base)), None)
    if target is None:
        return exc
    translated = target(_message(exc, target))
    translated.__cause__ = exc
    return translated
