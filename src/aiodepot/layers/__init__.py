"""Layers: backends that wrap other backends and change one thing about them.

See [`Layer`][aiodepot.layers.base.Layer]; layers compose, e.g.
``Store(backend=ReadOnly(Prefix(MemoryBackend("x"), "tenant1")))``.
"""

from __future__ import annotations

from .base import Layer, RenamingLayer
from .cache import Cache, CacheMode, CachePolicy
from .crypto import Encrypt
from .emulate import Emulate
from .keys import HashedNames, URLEncode
from .meter import Meter
from .mirror import Mirror, MirrorError
from .transforms import Compress, Hmac
from .views import Prefix, ReadOnly, WriteOnly
from .writeback import WriteBack

__all__ = [
    "Cache",
    "CacheMode",
    "CachePolicy",
    "Compress",
    "Emulate",
    "Encrypt",
    "HashedNames",
    "Hmac",
    "Layer",
    "Meter",
    "Mirror",
    "MirrorError",
    "Prefix",
    "ReadOnly",
    "RenamingLayer",
    "URLEncode",
    "WriteBack",
    "WriteOnly",
]
