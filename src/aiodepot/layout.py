"""The layout a store remembers: its namespaces' nesting levels, in the internal file ``layout.hid``.

A store created with a config that nests a namespace writes it at ``create``; a
[`Store`][aiodepot.Store] opened without a config reads it, so ``Store(url)`` (and every ``aiodepot``
command without ``--levels``) finds items where they were written. A config given to ``Store`` overrides
it for that store object; [`Store.set_levels`][aiodepot.Store.set_levels] followed by
[`Store.save_layout`][aiodepot.Store.save_layout] (``aiodepot config URL --levels …``) changes it, e.g. to
start a migration to other levels.

``layout.hid`` is an internal file like borgstore's ``quota.hid``: borgstore ignores ``.hid`` files, and
so does aiodepot everywhere a user could count it: listings, ``count``, quota usage and the Store's
statistics leave it out. Stores without the file (borgstore's, or ones created without a config or with
a flat one) are byte for byte what they were, and behave as before: flat unless configured.

The file is JSON: ``{"format": 1, "config": {"data/": {"levels": [2]}, "": {"levels": [0]}}}``. Only
nesting levels are kept; cache policies belong to the process that opens the store.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

from .backends.base import Backend
from .errors import ObjectNotFound, StoreCorrupt
from .names import INTERNAL_NAMES, LAYOUT_NAME

__all__ = ["LAYOUT_FORMAT", "internal_names", "levels_only", "nests", "read_layout", "write_layout"]

LAYOUT_FORMAT = 1
"""The version of the layout file's JSON document."""


@contextlib.contextmanager
def internal_names() -> Iterator[None]:
    """Let backends accept the layout file's name in this context (a backend that indexes what it holds
    when it opens, e.g. zip, sees it then)."""
    token = INTERNAL_NAMES.set(INTERNAL_NAMES.get() | {LAYOUT_NAME})
    try:
        yield
    finally:
        INTERNAL_NAMES.reset(token)


def levels_only(config: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, list[int]]]:
    """The nesting levels of a namespace config (cache keys left out)."""
    return {namespace: {"levels": list(spec["levels"])} for namespace, spec in config.items() if "levels" in spec}


def nests(config: Mapping[str, Mapping[str, Any]]) -> bool:
    """True if some namespace of ``config`` is nested: only then is there a layout worth remembering
    (a flat store reads the same without the file)."""
    return any(level for spec in config.values() for level in spec.get("levels", ()))


async def read_layout(backend: Backend) -> dict[str, dict[str, list[int]]] | None:
    """The layout the open ``backend`` remembers, or None if it has none (or cannot hold one).

    Raises [`StoreCorrupt`][aiodepot.errors.StoreCorrupt] if the file is there but unreadable.
    """
    with internal_names():
        try:
            data = await backend.load(LAYOUT_NAME)
        except (ObjectNotFound, ValueError):  # no file; or a backend that refuses .hid names (a REST server:
            return None  # BadRequest; a borgstore backend: ValueError; InvalidName is one too)
    try:
        document = json.loads(data)
        if document.get("format") != LAYOUT_FORMAT:
            raise ValueError(f"unknown format {document.get('format')!r}")
        return levels_only(document["config"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StoreCorrupt(f"{LAYOUT_NAME}: the store's layout file is damaged ({exc})") from exc


async def write_layout(backend: Backend, config: Mapping[str, Mapping[str, Any]]) -> bool:
    """Remember the nesting levels of ``config`` in the open ``backend``; False where it cannot hold the
    file (a REST server keeps ``.hid`` names to itself)."""
    document = {"format": LAYOUT_FORMAT, "config": levels_only(config)}
    with internal_names():
        try:
            await backend.store(LAYOUT_NAME, json.dumps(document, indent=1).encode())
        except ValueError:  # InvalidName, BadRequest: the backend keeps .hid names to itself
            return False
    return True
