"""Cache policies: the modes and the per-namespace settings, parsed from a Store config."""

from __future__ import annotations

import contextlib
import dataclasses
import enum
from collections.abc import Mapping

__all__ = ["NO_CACHE", "CacheMode", "CachePolicy", "prefix_of"]


class CacheMode(enum.Enum):
    """How a namespace uses the cache (borgstore's modes)."""

    OFF = "off"
    """The namespace bypasses the cache."""
    MIRROR = "mirror"
    """Read the primary; put every value loaded or stored into the cache, too."""
    WRITETHROUGH = "writethrough"
    """Read the cache first (the primary on a miss); store to both."""
    WRITEBACK = "writeback"
    """Not a cache mode of the [`Cache`][aiodepot.layers.cache.Cache] layer (which bypasses such a
    namespace): the Store buffers the namespace's changes in a [`WriteBack`][aiodepot.layers.WriteBack]
    layer until ``flush()``; ``size`` and ``max_age`` bound that backlog."""

    @classmethod
    def parse(cls, value: object, *, namespace: str = "") -> CacheMode:
        """A mode from a `CacheMode` or its name in any case; anything else raises ``ValueError``."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                return cls(value.lower())
        choices = ", ".join(repr(mode.value) for mode in cls)
        raise ValueError(f"'cache' of namespace {namespace!r} must be one of {choices}, got {value!r}")


@dataclasses.dataclass(frozen=True, slots=True)
class CachePolicy:
    """The cache settings of one namespace.

    Args:
        mode: off, mirror, writethrough (or writeback: see [`CacheMode`][aiodepot.layers.cache.CacheMode]).
        max_age: evict items not used for this many seconds (at open, close and before each insertion).
        size: keep the namespace's cached items within this many bytes, least recently used evicted first;
            a bigger value is not cached.
    """

    mode: CacheMode = CacheMode.OFF
    max_age: float | None = None
    size: int | None = None

    @property
    def caching(self) -> bool:
        """True if the cache layer keeps copies of the namespace (mirror or writethrough)."""
        return self.mode in (CacheMode.MIRROR, CacheMode.WRITETHROUGH)

    @property
    def limited(self) -> bool:
        """True if ``max_age`` or ``size`` bounds the namespace in the cache (the layer then keeps an index)."""
        return self.caching and (self.max_age is not None or self.size is not None)

    @classmethod
    def from_config(cls, namespace: str, config: object) -> CachePolicy:
        """Parse ``{"cache": mode, "max_age": seconds, "size": bytes}`` (other keys are ignored) or a mode.

        Errors name the namespace and the bad value.
        """
        if isinstance(config, CachePolicy):
            return config
        if isinstance(config, str | CacheMode):
            return cls(CacheMode.parse(config, namespace=namespace))
        if not isinstance(config, Mapping):
            raise ValueError(f"cache policy of namespace {namespace!r} must be a mapping or a mode, got {config!r}")
        mode = CacheMode.parse(config.get("cache", "off"), namespace=namespace)
        max_age = config.get("max_age")
        if max_age is not None and (isinstance(max_age, bool) or not isinstance(max_age, int | float) or max_age < 0):
            raise ValueError(f"'max_age' of namespace {namespace!r} must be seconds >= 0 or None, got {max_age!r}")
        size = config.get("size")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            raise ValueError(f"'size' of namespace {namespace!r} must be bytes (an int >= 0) or None, got {size!r}")
        if mode is CacheMode.OFF and (max_age is not None or size is not None):
            raise ValueError(f"namespace {namespace!r} sets 'max_age' or 'size' but its cache mode is 'off'")
        return cls(mode, None if max_age is None else float(max_age), size)


NO_CACHE = CachePolicy()
"""The policy of a name no configured prefix matches: the cache is bypassed."""


def prefix_of(namespace: object) -> str:
    """``"data"``/``"data/"`` → ``"data/"``; ``""`` (everything) stays ``""``."""
    if not isinstance(namespace, str):
        raise TypeError(f"a cache namespace is a str, got {namespace!r}")
    bare = namespace.strip("/")
    return bare + "/" if bare else ""
