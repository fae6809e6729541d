"""borgstore's namespace config: levels plus a cache policy per namespace (``CacheMode``, ``CachePolicy``).

The policies are handed to aiodepot's [`Cache`][aiodepot.layers.cache.Cache] layer as they are parsed here;
this module only keeps borgstore's names (``CacheMode.C_WRITETHROUGH``) and its validation errors.
"""

from __future__ import annotations

import builtins
import enum
from typing import Any, NamedTuple

from ...layers.cache import CacheMode as CoreCacheMode
from ...layers.cache import CachePolicy as CoreCachePolicy

__all__ = ["NO_CACHE", "CacheMode", "CachePolicy", "core_policy", "parse_namespace_config"]

_CONFIG_KEYS = frozenset({"levels", "cache", "max_age", "size"})


class CacheMode(enum.Enum):
    """How a namespace uses the cache backend."""

    C_OFF = "off"
    C_MIRROR = "mirror"
    C_WRITETHROUGH = "writethrough"

    @classmethod
    def from_str(cls, value: Any) -> CacheMode:
        """Accept a CacheMode or its name in any case (``"mirror"``); anything else raises ``ValueError``."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            try:
                return cls(value.lower())
            except ValueError:
                pass
        raise ValueError(f"unknown CacheMode: {value!r}")


class CachePolicy(NamedTuple):
    """The cache settings of one namespace."""

    mode: CacheMode
    max_age: float | None
    size: int | None


NO_CACHE = CachePolicy(CacheMode.C_OFF, None, None)
"""The policy of a namespace that does not use the cache."""


def core_policy(policy: CachePolicy) -> CoreCachePolicy:
    """The same policy for aiodepot's cache layer (an ``off`` namespace keeps no limits there)."""
    if policy.mode is CacheMode.C_OFF:
        return CoreCachePolicy()
    return CoreCachePolicy(CoreCacheMode(policy.mode.value), policy.max_age, policy.size)


def parse_namespace_config(ns_config: Any) -> tuple[builtins.list[int], CachePolicy]:
    """``{"levels": [...], "cache": …, "max_age": s, "size": bytes}`` → (levels, policy), as borgstore checks it."""
    if not isinstance(ns_config, dict):
        raise ValueError(f"Invalid namespace config: expected a dict, got {type(ns_config).__name__!r}.")
    unknown = set(ns_config) - _CONFIG_KEYS
    if unknown:
        raise ValueError(f"Invalid namespace config keys: {sorted(unknown)!r}")
    levels = ns_config.get("levels")
    if not levels or not isinstance(levels, list):
        raise ValueError("'levels' is required and must be a non-empty list of ints.")
    if ns_config.get("cache") is None:
        return levels, NO_CACHE
    mode = CacheMode.from_str(ns_config["cache"])
    max_age = ns_config.get("max_age")
    if max_age is not None:
        if isinstance(max_age, bool) or not isinstance(max_age, int | float) or max_age < 0:
            raise ValueError(f"Invalid cache max_age value: {max_age!r}")
        max_age = float(max_age)
    size = ns_config.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise ValueError(f"Invalid cache size value: {size!r}")
    return levels, CachePolicy(mode, max_age, size)
