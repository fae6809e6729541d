"""The mirror layer: one backend made of several copies.

[`Mirror`][aiodepot.layers.mirror.Mirror] writes every change to all of its children concurrently and
succeeds when a quorum of them did; it reads from the first child that has the item (in order, or the
fastest to answer) and copies an item that a child lacks back to that child ("read repair").

The package by concern: `_writes` (fan-out, write quorum, per-name locks, the stream tee), `_reads` (first
good answer, batch resolution, listing merge), `_repair` (read repair in the background), `_layer` (the
class that puts them together).
"""

from __future__ import annotations

from ._layer import Mirror
from ._writes import MirrorError

__all__ = ["Mirror", "MirrorError"]
