"""Path names of the data tools ↔ item names of a store.

fsspec paths and zarr keys may hold any character, upper case, blanks and ``/``; item names may not
(lowercase ASCII, no blanks, at most 100 characters). A path becomes one key: every character outside
``a-z 0-9 - _ .`` becomes ``%`` and two lowercase hex digits per UTF-8 byte (``/`` → ``%2f``,
``A`` → ``%41``, ``%`` → ``%25``), the same escaping as the [`URLEncode`][aiodepot.layers.keys.URLEncode]
layer. A few characters more are escaped so the key keeps the naming rules: a leading dot, the second of
two dots, and
the last letter of ``.tmp``, ``.hid`` and ``.del``.

Each character's escaping depends only on the characters before it, so the key of a path prefix is a
prefix of the keys of all paths that start with it: ``store.list(namespace, prefix=path_key(prefix))``
finds everything under a directory. [`key_path`][aiodepot.integrations.paths.key_path] reverses the
mapping. A path whose key is too long for the store raises
[`InvalidName`][aiodepot.errors.InvalidName] (a ``ValueError``).
"""

from __future__ import annotations

import re
import string

from ..errors import InvalidName
from ..names import MAX_NAME_LENGTH

__all__ = ["key_path", "path_key", "path_prefix_key"]

_KEEP = frozenset(string.ascii_lowercase + string.digits + "-_.")
_RESERVED_ENDINGS = {".tm": "p", ".hi": "d", ".de": "l"}
_ESCAPES = re.compile(r"(?:%[0-9a-f]{2})+")


def _escape(char: str) -> str:
    return "".join(f"%{byte:02x}" for byte in char.encode("utf-8"))


def path_prefix_key(path: str) -> str:
    """The key prefix of ``path``: the start of the key of every path that starts with ``path``."""
    if not isinstance(path, str):
        raise TypeError(f"a path must be a str, not {type(path).__name__}")
    out: list[str] = []
    tail = ""  # the last three characters of the key so far
    for char in path:
        if char not in _KEEP:
            piece = _escape(char)
        elif char == "." and (not out or tail.endswith(".")):
            piece = "%2e"  # no name is '.' or holds '..'
        elif _RESERVED_ENDINGS.get(tail) == char:
            piece = _escape(char)  # no name ends with .tmp, .hid or .del
        else:
            piece = char
        out.append(piece)
        tail = (tail + piece)[-3:]
    return "".join(out)


def path_key(path: str, *, room: int = MAX_NAME_LENGTH) -> str:
    """The key of ``path``; ``room`` is how many characters the key may have (the namespace takes some)."""
    if not path:
        raise InvalidName("an empty path names no item")
    key = path_prefix_key(path)
    if len(key) > room:
        raise InvalidName(f"{path!r} becomes a key of {len(key)} characters ({key!r}); the store takes {room}")
    return key


def key_path(key: str) -> str:
    """The path whose key is ``key`` (the reverse of [`path_key`][aiodepot.integrations.paths.path_key])."""
    return _ESCAPES.sub(lambda match: bytes.fromhex(match.group(0).replace("%", "")).decode("utf-8"), key)
