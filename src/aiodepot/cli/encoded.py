"""``cp --encode-names``: files whose paths no item name can hold travel under ``%xx``-escaped keys, and back.

Into a store, a file of a local directory whose path is not an item name (``README.md``, ``my file.txt``,
``Sub/x.txt``, ``über.txt``, ``y.tmp``), or holds a ``%``, is stored under one key made by
[`path_key`][aiodepot.integrations.paths.path_key] (the escaping of the data-tool integrations and of the
[`URLEncode`][aiodepot.layers.keys.URLEncode] layer: ``README.md`` → ``%52%45%41%44%4d%45.md``, ``/``
→ ``%2f``), in the root namespace. Out of a store into a local directory, an item whose name holds a
``%`` is written to the path [`key_path`][aiodepot.integrations.paths.key_path] gives back. Names that
are valid and hold no ``%`` are copied as they are, so a copy in and back out restores every file name.
A decoded path must stay inside the destination directory (no ``..``, no absolute path).
"""

from __future__ import annotations

import dataclasses
import os

from ..errors import InvalidName
from ..integrations.paths import key_path, path_key
from ..names import validate_name

__all__ = ["Encoded", "decoded_path", "is_encoded", "needs_encoding", "read_file", "write_file"]

ESCAPE = "%"


@dataclasses.dataclass(frozen=True, slots=True)
class Encoded:
    """A file of a local directory and the key it is stored under."""

    path: str
    """The path relative to the directory, ``/``-separated."""
    key: str
    """The item name: the path escaped with ``path_key``."""


def needs_encoding(relative: str) -> bool:
    """True for a relative path that is not an item name as it is, or holds the escape character."""
    if ESCAPE in relative:
        return True
    try:
        validate_name(relative)
    except InvalidName:
        return True
    return False


def encode(relative: str) -> Encoded:
    """The key of a relative path (``InvalidName`` if it would be longer than a name may be)."""
    return Encoded(relative, path_key(relative))


def is_encoded(name: str) -> bool:
    """True for an item name that stands for an escaped path."""
    return ESCAPE in name


def decoded_path(name: str) -> str:
    """The relative path an escaped item name stands for; ``InvalidName`` unless it stays inside the
    directory it is written to (a store is not trusted to name files outside it)."""
    try:
        path = key_path(name)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidName(f"{name!r} is not a valid escaped path: {exc}") from None
    parts = path.split("/")
    if path.startswith("/") or "\0" in path or any(part in ("", ".", "..") for part in parts):
        raise InvalidName(f"{name!r} stands for {path!r}, which is not a path inside the destination")
    return path


def read_file(base: str, relative: str) -> bytes:
    """The content of ``base/relative`` (blocking: run it in a thread)."""
    with open(os.path.join(base, *relative.split("/")), "rb") as f:
        return f.read()


def write_file(base: str, relative: str, data: bytes) -> None:
    """Write ``data`` to ``base/relative`` atomically, making its directories (blocking: run it in a thread)."""
    target = os.path.join(base, *relative.split("/"))
    os.makedirs(os.path.dirname(target), exist_ok=True)
    temp = f"{target}.{os.getpid()}.part"
    try:
        with open(temp, "wb") as f:
            f.write(data)
        os.replace(temp, target)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise
