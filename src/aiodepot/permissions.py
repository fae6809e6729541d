"""Permission maps: which operations a store allows below which name prefix.

A map goes from a path prefix (``""`` is the whole store) to a string of letters:

- ``l`` list names, ``r`` read values, ``w`` write new items, ``W`` write or overwrite,
  ``D`` delete (and move away).

The most specific prefix present decides; there is no fall-through to shorter prefixes. Without a map,
everything is allowed. The operations need: create ``wW`` on ``""``; destroy ``D`` on ``""``;
mkdir ``w``; rmdir ``wD``; info ``lr``; load/hash/gather ``r``; store ``wW`` (new) or ``W``
(overwrite); delete ``D``; move ``D`` on the source and ``W``/``wW`` on the destination;
defrag ``W`` on the target; list ``l``. Any one of the listed letters is enough.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from .errors import PermissionDenied

__all__ = ["PERMISSION_SHORTCUTS", "Permissions", "resolve_permissions"]

_LETTERS = frozenset("lrwWD")

PERMISSION_SHORTCUTS: dict[str, dict[str, str] | None] = {
    "borgbackup-all": None,
    "borgbackup-no-delete": {
        "": "lr",
        "archives": "lrw",
        "cache": "lrwWD",
        "config": "lrW",
        "data": "lrw",
        "keys": "lr",
        "locks": "lrwD",
    },
    "borgbackup-write-only": {
        "": "l",
        "archives": "lw",
        "cache": "lrwWD",
        "config": "lrW",
        "data": "lw",
        "keys": "lr",
        "locks": "lrwD",
    },
    "borgbackup-read-only": {"": "lr", "locks": "lrwD"},
}
"""borgstore's named permission sets for Borg repositories."""


def resolve_permissions(spec: str | Mapping[str, str] | None) -> dict[str, str] | None:
    """Turn a shortcut name, a JSON object string or a mapping into a permission map (or None)."""
    if spec is None:
        return None
    if isinstance(spec, str):
        if spec in PERMISSION_SHORTCUTS:
            shortcut = PERMISSION_SHORTCUTS[spec]
            return None if shortcut is None else dict(shortcut)
        try:
            parsed = json.loads(spec)
        except json.JSONDecodeError:
            known = ", ".join(PERMISSION_SHORTCUTS)
            raise ValueError(f"permissions must be one of {known} or a JSON object, got {spec!r}") from None
        if not isinstance(parsed, dict):
            raise ValueError(f"permissions JSON must be an object, got {spec!r}")
        spec = parsed
    result: dict[str, str] = {}
    for prefix, letters in spec.items():
        if not isinstance(prefix, str) or not isinstance(letters, str):
            raise ValueError(f"permissions map str to str, got {prefix!r}: {letters!r}")
        unknown = set(letters) - _LETTERS
        if unknown:
            raise ValueError(f"unknown permission letters {''.join(sorted(unknown))!r} for {prefix!r}")
        result[prefix.strip("/")] = letters
    return result


class Permissions:
    """A resolved permission map with a fast ``check``."""

    __slots__ = ("_map", "restricted")

    def __init__(self, spec: str | Mapping[str, str] | None = None) -> None:
        self._map = resolve_permissions(spec)
        self.restricted = self._map is not None
        """False when there is no map (everything allowed): callers skip the checks cheaply."""

    def __bool__(self) -> bool:
        return self.restricted

    def __repr__(self) -> str:
        return f"Permissions({self._map!r})"

    @property
    def mapping(self) -> dict[str, str] | None:
        """The permission map (None: everything allowed)."""
        return None if self._map is None else dict(self._map)

    def allows(self, name: str, required: str) -> bool:
        """True if one of the ``required`` letters is granted for ``name``."""
        if self._map is None:
            return True
        parts = name.split("/") if name else []
        for i in range(len(parts), -1, -1):
            granted = self._map.get("/".join(parts[:i]))
            if granted is not None:
                return any(letter in granted for letter in required)
        return False

    def check(self, name: str, required: str) -> None:
        """Raise [`PermissionDenied`][aiodepot.errors.PermissionDenied] unless a ``required`` letter is granted."""
        if self._map is not None and not self.allows(name, required):
            raise PermissionDenied(f"one of the permissions {required!r} is required for {name!r}")
