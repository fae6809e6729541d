"""aiodepot: an asyncio-native key/value store.

One async [`Store`][aiodepot.Store] API over many storage backends (local files, memory, and more), with real
concurrency for bulk and big transfers, and [`SyncStore`][aiodepot.SyncStore], a blocking facade for legacy code.
"""

from __future__ import annotations

try:
    from . import errors
    from .backends import register_backend, registered_schemes
    from .backends.base import Backend, Capabilities
    from .backends.options import Limits, RetryPolicy, Timeouts
    from .errors import (
        BackendError,
        BackendURLInvalid,
        ConnectionLost,
        IntegrityError,
        InvalidName,
        MissingDependency,
        NotSupported,
        ObjectExists,
        ObjectNotFound,
        PermissionDenied,
        QuotaExceeded,
        ReadRangeError,
        StoreAlreadyOpen,
        StoreCorrupt,
        StoreError,
        StoreExists,
        StoreNotFound,
        StoreNotOpen,
        StoreStateError,
        ValueChanged,
        WriteBackError,
    )
    from .items import ItemInfo, StoreValue
    from .replicate import copy_store, sync_stores
    from .store import Store
    from .sync import Portal, SyncStore
    from .transfer import Progress, ProgressCallback
except KeyboardInterrupt:  # Ctrl-C while the aiodepot command starts: one line, no traceback
    from ._startup import interrupted_while_starting

    interrupted_while_starting()
    raise

__version__ = "0.1.0"

__all__ = [
    "Backend",
    "BackendError",
    "BackendURLInvalid",
    "Capabilities",
    "ConnectionLost",
    "IntegrityError",
    "InvalidName",
    "ItemInfo",
    "Limits",
    "MissingDependency",
    "NotSupported",
    "ObjectExists",
    "ObjectNotFound",
    "PermissionDenied",
    "Portal",
    "Progress",
    "ProgressCallback",
    "QuotaExceeded",
    "ReadRangeError",
    "RetryPolicy",
    "Store",
    "StoreAlreadyOpen",
    "StoreCorrupt",
    "StoreError",
    "StoreExists",
    "StoreNotFound",
    "StoreNotOpen",
    "StoreStateError",
    "StoreValue",
    "SyncStore",
    "Timeouts",
    "ValueChanged",
    "WriteBackError",
    "__version__",
    "copy_store",
    "errors",
    "register_backend",
    "registered_schemes",
    "sync_stores",
]
