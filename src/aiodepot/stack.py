"""How a [`Store`][aiodepot.Store] composes its layers from its arguments and config.

```
 calls ──► Meter ──► [Cache] ──► [Emulate] ──► primary backend
           counts     optional     optional
```

- [`Meter`][aiodepot.layers.meter.Meter] counts the backend calls into the Store's statistics.
- [`Cache`][aiodepot.layers.cache.Cache] is there when the config sets cache policies (with ``cache_url`` or
  ``cache_backend``), or when the given backend is a layer stack that holds one already.
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
from .layers.cache import Cache, CachePolicy
from .layers.emulate import Emulate
from .layers.meter import Meter
from .names import ROOTNS
from .stats import Stats

__all__ = ["CACHE_CONFIG_KEYS", "Stack", "build_stack", "cache_policies"]

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
) -> Stack:
    """Compose the layers of a Store over ``backend`` (see the module docs).

    ``latency``/``bandwidth`` not given come from the environment
    ([`Emulator.from_environment`][aiodepot.emulation.Emulator.from_environment]).
    """
    policies = cache_policies(config)
    if cache_url is not None and cache_backend is not None:
        raise ValueError("give either cache_url or cache_backend, not both")
    emulator = Emulator.from_environment(latency, bandwidth)
    existing = find_cache(backend)
    if existing is not None:
        if policies or cache_url is not None or cache_backend is not None:
            raise ValueError("the backend has a Cache layer already: set its policies there, not in config")
        if isinstance(existing.inner, Emulate):  # the layer served another Store before
            existing.inner = existing.inner.inner
        if emulator:
            # the emulation stands for the primary: it goes below the user's cache layer
            existing.inner = Emulate(existing.inner, emulator)
        return Stack(backend, Meter(backend, stats), existing, emulator)
    if cache_url is not None:
        cache_backend = backend_from_url(cache_url)
    if cache_backend is None:
        caching = sorted(prefix for prefix, policy in policies.items() if policy.caching)
        if caching:
            raise ValueError(f"namespaces {caching} use the cache: give cache_url= or cache_backend=")
        return Stack(backend, Meter(_emulated(backend, emulator), stats), None, emulator)
    cache = Cache(_emulated(backend, emulator), cache_backend, policies)
    return Stack(cache, Meter(cache, stats), cache, emulator)
