"""The store walker the commands use: [`aiodepot.walk`][aiodepot.walk], re-exported where the commands import it."""

from __future__ import annotations

from ..walk import Entry, top_namespaces, walk

__all__ = ["Entry", "top_namespaces", "walk"]
