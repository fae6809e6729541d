"""The cache layer: a second backend that keeps copies of the items of selected namespaces.

[`Cache`][aiodepot.layers.cache.Cache] wraps the primary backend (the truth) and a cache backend (any
backend: a local directory, ``memory://``, …). It has borgstore's semantics, per namespace:

- ``off``: the namespace bypasses the cache.
- ``mirror``: loads always read the primary; every value loaded or stored is also put into the cache.
- ``writethrough``: loads read the cache first and go to the primary on a miss (then the value is put
  into the cache); stores go to both. Meant for content-addressed namespaces, whose values never change.

``max_age`` (seconds since last use) and ``size`` (bytes, least recently used evicted first) bound a
namespace in the cache. The cache keeps the primary's backend names (same nesting, ``.del`` suffix for
soft-deleted items); soft delete, undelete, moves and deletes are applied to both. A cache backend that
fails never fails an operation: the failure is logged as a warning once and the cache is off until the
layer is opened again (``stats["cache_disabled"]``).

The package by concern: `_policy` (modes and per-namespace settings), `_index` (the LRU index of a limited
namespace), `_layer` (the layer: fills, writes, eviction and scans).
"""

from __future__ import annotations

from ._index import CACHE_RESCAN_DIVISOR
from ._layer import Cache
from ._policy import CacheMode, CachePolicy

__all__ = ["CACHE_RESCAN_DIVISOR", "Cache", "CacheMode", "CachePolicy"]
