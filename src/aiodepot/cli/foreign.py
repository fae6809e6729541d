"""Files in a local directory that no store name reaches: what ``cp`` from a plain directory would skip.

A ``file://`` store lists only names that follow the [naming rules](../concepts.md#names), so a directory
that was not written as a store (``README.md``, ``my file.txt``, ``Sub/x.txt``, ``über.txt``, ``y.tmp``)
has files a copy would silently leave out. [`unreachable_files`][aiodepot.cli.foreign.unreachable_files]
finds them, with the reason, so that ``cp`` can say so before it copies anything.
"""

from __future__ import annotations

import dataclasses
import os

from ..errors import InvalidName
from ..names import DEL_SUFFIX, HID_SUFFIX, validate_name

__all__ = ["Unreachable", "unreachable_files"]


@dataclasses.dataclass(frozen=True, slots=True)
class Unreachable:
    """A file below a store's directory that no item name reaches."""

    path: str
    """The path relative to the store's directory, ``/``-separated."""
    reason: str
    """Why: the naming rule it breaks, or that it is a symbolic link."""


def _reason(relative: str) -> str | None:
    name = relative.removesuffix(DEL_SUFFIX)  # a soft-deleted item keeps its name with the suffix
    try:
        validate_name(name)
    except InvalidName as exc:
        return str(exc).rpartition(":")[0].removeprefix("name ").strip() or str(exc)
    return None


def unreachable_files(base: str, namespaces: list[str], *, limit: int = 100_000) -> list[Unreachable]:
    """The files below ``base`` (in ``namespaces``; ``""`` is all) whose paths are not item names.

    The store's own files (``*.hid`` at any level) are not counted. Blocking: run it in a thread.
    """
    found: list[Unreachable] = []
    for namespace in namespaces or [""]:
        top = os.path.join(base, namespace) if namespace else base
        if not os.path.isdir(top):
            continue
        for directory, dirs, files in os.walk(top):
            dirs.sort()
            for entry in sorted(files) + [d for d in dirs if os.path.islink(os.path.join(directory, d))]:
                if entry.endswith(HID_SUFFIX):
                    continue
                relative = os.path.relpath(os.path.join(directory, entry), base).replace(os.sep, "/")
                if os.path.islink(os.path.join(directory, entry)):
                    found.append(Unreachable(relative, "a symbolic link, which the store does not follow"))
                    continue
                reason = _reason(relative)
                if reason is not None:
                    found.append(Unreachable(relative, reason))
                if len(found) >= limit:
                    return found
            dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(directory, d))]
    return found
