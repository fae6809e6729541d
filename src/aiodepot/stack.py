"""How a [`Store`][aiodepot.Store] composes its layers from its arguments and config.

```
 calls ──► Meter ──► [Cache] ──► [WriteBack] ──► [Emulate] ──► primary backend
           counts     optional     optional        optional
```

- [`Meter`][aiodepot.layers.meter.Meter] counts the backend calls into the Store's statistics.
- [`Cache`][aiodepot.layers.cache.Cache] is there when the config sets cache policies (with ``cache_url`` or
  ``cache_backend``), or when the given backend is a layer stack that holds one already.
- [`WriteBack`][aiodepot.layers.WriteBack] is there when the Store is given ``writeback=`` or a namespace
  config sets ``"cache": "writeback"`` (then only those namespaces are buffered, ``size`` and ``max_age``
  bound the backlog), or when the given backend is a layer stack that holds one already.
- [`Emulate`][aiodepot.layers.emulate.Emulate] is there when a latency or bandwidth is emulated; it goes
  right above the primary, below the cache (a cache hit does not cross the emulated link).

The Store imports no concrete layer itself: it asks `build_stack` for them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from .backends import backend_from_url
from .backends.base import Backend
from .emulation import Emulator
from .layers.base import Layer
from .layers.cache import Cache, CacheMode, CachePolicy
from .layers.emulate import Emulate
from .layers.meter import Meter
from .layers.writeback import WriteBack
from .names import ROOTNS
from .stats import Stats

__all__ = ["CACHE_CONFIG_KEYS", "Stack", "WriteBackOption", "build_stack", "cache_policies"]

CACHE_CONFIG_KEYS = ("cache", "max_age", "size")
"""The keys of a namespace config that set its cache policy."""


@dataclasses.dataclass(frozen=True, slots=True)
class Stack:
    """The layers of one Store."""

    backend: Backend
    """What the user sees as ``store.backend``: the given backend, or the cache layer the Store made over it."""
    calls: Backend
    """The top of the stack: the Store's calls go here."""
    cache: Cache | None
    """The cache layer in the stack, if there is one."""
    emulator: Emulator
    """The latency/bandwidth emulation in force (an inactive one without emulation)."""
    writeback: WriteBack | None = None
    """The write-back layer in the stack, if there is one."""
    plain: Backend | None = None
    """The given backend, below the layers the Store made (meter, cache, write-back, emulation): where the
    store's own files (its remembered layout) are read and written, uncounted and unbuffered; None:
    ``backend``."""


WriteBackOption = bool | str | Backend | None
"""What ``Store(writeback=…)`` takes: True (a memory backlog), a store URL or a backend (a local store that
keeps the backlog on disk), or None/False (none, unless a namespace config asks for one)."""


def cache_policies(config: Mapping[str, Mapping[str, Any]]) -> dict[str, CachePolicy]:
    """The cache policies of a (checked) namespace config: prefix -> policy (``off`` where a namespace sets
    none, so the longest configured namespace decides); empty if no namespace sets any cache key."""
    if not any(key in ns_config for ns_config in config.values() for key in CACHE_CONFIG_KEYS):
        return {}
    policies: dict[str, CachePolicy] = {}
    for namespace, ns_config in config.items():
        bare = namespace.rstrip("/")
        policies[bare + "/" if bare else ROOTNS] = CachePolicy.from_config(namespace, ns_config)
    return policies


def find_cache(backend: Backend) -> Cache | None:
    """The cache layer in a stack of layers, if there is one."""
    while isinstance(backend, Layer):
        if isinstance(backend, Cache):
            return backend
        backend = backend.inner
    return None


def find_writeback(backend: Backend) -> WriteBack | None:
    """The write-back layer in a stack of layers, if there is one."""
    while isinstance(backend, Layer):
        if isinstance(backend, WriteBack):
            return backend
        backend = backend.inner
    return None


def _writeback(
    backend: Backend, policies: Mapping[str, CachePolicy], option: WriteBackOption, max_concurrency: int | None
) -> Backend:
    """``backend`` under a write-back layer if ``option`` or a namespace's ``"cache": "writeback"`` asks for one."""
    buffered = {prefix: policy for prefix, policy in policies.items() if policy.mode is CacheMode.WRITEBACK}
    if not buffered and (option is None or option is False):
        return backend
    if option is None or option is True or option is False:
        buffer = None
    elif isinstance(option, str):
        buffer = backend_from_url(option)
    elif isinstance(option, Backend):
        buffer = option
    else:
        raise TypeError(f"writeback must be True, a store URL or a Backend, not {type(option).__name__}")
    sizes = [policy.size for policy in buffered.values()]
    ages = [policy.max_age for policy in buffered.values() if policy.max_age is not None]
    limits: dict[str, Any] = {}
    if sizes and all(size is not None for size in sizes):
        limits["max_bytes"] = max(1, sum(size or 0 for size in sizes))
    if ages:
        limits["max_age"] = min(ages) or None
    if max_concurrency is not None and max_concurrency >= 1:
        limits["max_concurrency"] = max_concurrency
    return WriteBack(backend, buffer, namespaces=list(buffered) or None, **limits)


def _emulated(backend: Backend, emulator: Emulator) -> Backend:
    return Emulate(backend, emulator) if emulator else backend


def build_stack(
    backend: Backend,
    stats: Stats,
    *,
    config: Mapping[str, Mapping[str, Any]],
    cache_url: str | None = None,
    cache_backend: Backend | None = None,
    latency: float | None = None,
    bandwidth: float | None = None,
    writeback: WriteBackOption = None,
    max_concurrency: int | None = None,
) -> Stack:
    """Compose the layers of a Store over ``backend`` (see the module docs).

    A write-back layer made here flushes with ``max_concurrency`` writes in flight (default: what the
    backend prefers). ``latency``/``bandwidth`` not given come from the environment
    ([`Emulator.from_environment`][aiodepot.emulation.Emulator.from_environment]).
    """
    policies = cache_policies(config)
    if cache_url is not None and cache_backend is not None:
        raise ValueError("give either cache_url or cache_backend, not both")
    emulator = Emulator.from_environment(latency, bandwidth)
    existing = find_cache(backend)
    wants_writeback = writeback not in (None, False) or any(p.mode is CacheMode.WRITEBACK for p in policies.values())
    if wants_writeback and find_writeback(backend) is not None:
        raise ValueError("the backend has a WriteBack layer already: set its limits there, not in the Store")
    if existing is not None:
        if policies or cache_url is not None or cache_backend is not None or wants_writeback:
            raise ValueError("the backend has a Cache layer already: set its policies there, not in config")
        if isinstance(existing.inner, Emulate):  # the layer served another Store before
            existing.inner = existing.inner.inner
        if emulator:
            # the emulation stands for the primary: it goes below the user's cache layer
            existing.inner = Emulate(existing.inner, emulator)
        return Stack(backend, Meter(backend, stats), existing, emulator, find_writeback(backend), backend)
    if cache_url is not None:
        cache_backend = backend_from_url(cache_url)
    if cache_backend is None:
        caching = sorted(prefix for prefix, policy in policies.items() if policy.caching)
        if caching:
            raise ValueError(f"namespaces {caching} use the cache: give cache_url= or cache_backend=")
        below = _writeback(_emulated(backend, emulator), policies, writeback, max_concurrency)
        top = below if isinstance(below, WriteBack) else backend
        return Stack(top, Meter(below, stats), None, emulator, find_writeback(below), backend)
    below = _writeback(_emulated(backend, emulator), policies, writeback, max_concurrency)
    cache = Cache(below, cache_backend, policies)
    return Stack(cache, Meter(cache, stats), cache, emulator, find_writeback(below), backend)
