"""borgstore's ``nest``/``unnest``, backed by [`aiodepot.names`][aiodepot.names].

Unlike aiodepot's strict version, ``nest`` does not refuse a key that is too short for its levels
(borgstore does not either: the nesting directories are then shorter).
"""

from __future__ import annotations

from ....names import nest as _strict_nest
from ....names import split_key, unnest

__all__ = ["nest", "split_key", "unnest"]


def nest(name: str, levels: int, *, add_suffix: str | None = None) -> str:
    """Spread the key of ``name`` over ``levels`` directories: ``nest("ns/12345678", 2) == "ns/12/34/12345678"``."""
    if levels > 0 and name:
        namespace, key = split_key(name)
        if len(key) < 2 * levels:  # borgstore tolerates short keys; aiodepot's nest() would refuse them
            parts = [key[2 * i : 2 * i + 2] for i in range(levels)] + [key]
            name = "/".join(parts if namespace is None else [namespace, *parts])
            return name + add_suffix if add_suffix else name
    return _strict_nest(name, max(levels, 0), add_suffix=add_suffix)
