"""The layout a store remembers: its namespaces' nesting levels, in the internal file ``layout.hid``.

A store created with a config writes it at ``create``; a [`Store`][aiodepot.Store] opened without a config
reads it, so ``Store(url)`` (and every ``aiodepot`` command without ``--levels``) finds items where they
were written. A config given to ``Store`` overrides it for that store object;
[`Store.save_layout`][aiodepot.Store.save_layout] (``aiodepot config URL --levels …``) changes it, e.g. to
start a migration to other levels. Stores without the file (borgstore's, or ones created without a
config) behave as before: flat unless configured. borgstore ignores ``.hid`` files, and so do listings.

The file is JSON: ``{"format": 1, "config": {"data/": {"levels": [2]}, "": {"levels": [0]}}}``. Only
nesting levels are kept; cache policies belong to the process that opens the store.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

from .backends.base import Backend
from .errors import BackendError, InvalidName, ObjectNotFound, StoreCorrupt
from .names import HID_SUFFIX, INTERNAL_NAMES

__all__ = [
    "LAYOUT_FORMAT",
    "LAYOUT_NAME",
    "internal_names",
    "is_internal",
    "levels_only",
    "read_layout",
    "write_layout",
]

LAYOUT_NAME = "layout" + HID_SUFFIX
"""The layout file, at the top of the store."""
LAYOUT_FORMAT = 1


def is_internal(name: str) -> bool:
    """True for the store's own files, which listings leave out (the layout file at the top)."""
    return name == LAYOUT_NAME


@contextlib.contextmanager
def internal_names() -> Iterator[None]:
    """Let backends accept the layout file's name in this context (opening a store indexes it, too)."""
    with _internal():
        yield


@contextlib.contextmanager
def _internal() -> Iterator[None]:
    token = INTERNAL_NAMES.set(INTERNAL_NAMES.get() | {LAYOUT_NAME})
    try:
        yield
    finally:
        INTERNAL_NAMES.reset(token)


def levels_only(config: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, list[int]]]:
    """The nesting levels of a namespace config (cache keys left out)."""
    return {namespace: {"levels": list(spec["levels"])} for namespace, spec in config.items() if "levels" in spec}


async def read_layout(backend: Backend) -> dict[str, dict[str, list[int]]] | None:
    """The layout the open ``backend`` remembers, or None if it has none (or cannot hold one)."""
    with _internal():
        try:
            data = await backend.load(LAYOUT_NAME)
        except (ObjectNotFound, InvalidName):  # no file; or a backend (a REST server) that refuses the name
            return None
    try:
        document = json.loads(data)
        if document.get("format") != LAYOUT_FORMAT:
            raise ValueError(f"unknown format {document.get('format')!r}")
        return levels_only(document["config"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StoreCorrupt(f"{LAYOUT_NAME}: the store's layout file is damaged ({exc})") from exc


async def write_layout(backend: Backend, config: Mapping[str, Mapping[str, Any]]) -> bool:
    """Remember the nesting levels of ``config`` in the open ``backend``; False where it cannot hold the
    file (a REST server refuses internal names)."""
    document = {"format": LAYOUT_FORMAT, "config": levels_only(config)}
    with _internal():
        try:
            await backend.store(LAYOUT_NAME, json.dumps(document, indent=1).encode())
        except InvalidName:
            return False
        except BackendError:
            raise
    return True
