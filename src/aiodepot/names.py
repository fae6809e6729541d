"""Item names: the naming rules, and nesting of keys into directory levels.

Names are borgstore's: ASCII, lowercase, relative, ``/``-separated, at most 100 characters, without
blanks, backslashes or ``..``. The suffixes ``.tmp`` (upload in progress), ``.hid`` (internal file) and
``.del`` (soft-deleted item) are reserved: a backend may see ``.del`` names (the Store creates them), a
user may not use any of the three.

Nesting spreads the keys of a namespace over directory levels, so no directory gets too large:
``nest("data/0123abcd", 2) == "data/01/23/0123abcd"``. The last element stays the whole key, so a
directory listing yields keys directly and a sorted listing is in key order.
"""

from __future__ import annotations

import contextvars
import itertools
import os
import re
import secrets
from collections.abc import Callable

from .errors import InvalidName

__all__ = [
    "DEL_SUFFIX",
    "HID_SUFFIX",
    "INTERNAL_NAMES",
    "LAYOUT_NAME",
    "MAX_BACKEND_NAME_LENGTH",
    "MAX_NAME_LENGTH",
    "ROOTNS",
    "TMP_SUFFIX",
    "is_internal",
    "nest",
    "plain_name",
    "split_key",
    "temp_name",
    "unnest",
    "validate_backend_name",
    "validate_name",
    "validate_namespace",
]

ROOTNS = ""
"""The namespace that stands for the whole store."""
TMP_SUFFIX = ".tmp"
"""Suffix of a value that is still being written; never listed."""
DEL_SUFFIX = ".del"
"""Suffix of a soft-deleted item; listed only with ``deleted=True``."""
HID_SUFFIX = ".hid"
"""Suffix of the store's own internal files (e.g. ``quota.hid``)."""
MAX_NAME_LENGTH = 100
"""Longest name a user may give (suffixes added internally come on top)."""

MAX_BACKEND_NAME_LENGTH = 128
"""Longest name a backend accepts: a user's name plus nesting directories and the ``.del`` suffix."""

_RESERVED_FOR_USERS = (TMP_SUFFIX, HID_SUFFIX, DEL_SUFFIX)
_RESERVED_FOR_BACKENDS = (TMP_SUFFIX, HID_SUFFIX)


# Printable ASCII without blanks, uppercase letters and backslash, in ``/``-separated elements that are
# neither empty nor ``.``, with no ``..`` anywhere and none of the reserved suffixes at the end: one regex
# match says a name is fine (the hot path of every call); anything else takes the slow path, which says
# what is wrong.
# The quantifiers are possessive (no backtracking: an element cannot hold a ``/``, so none is ever needed).
_ELEMENT = r"(?!\.(?:/|$))[!-.0-@\[\]-~]++"
_PLAIN_NAME = rf"(?!.*\.\.){_ELEMENT}(?:/{_ELEMENT})*+"


def _plain(reserved: tuple[str, ...]) -> Callable[[str], re.Match[str] | None]:
    not_reserved = "|".join(re.escape(suffix) for suffix in reserved)
    assert len({len(suffix) for suffix in reserved}) == 1  # a look-behind has one width
    return re.compile(rf"{_PLAIN_NAME}(?<!{not_reserved})").fullmatch


_USER_NAME = _plain((TMP_SUFFIX, HID_SUFFIX, DEL_SUFFIX))
_BACKEND_NAME = _plain((TMP_SUFFIX, HID_SUFFIX))

plain_name = _USER_NAME
"""``plain_name(name)`` matches a str of at most `MAX_NAME_LENGTH` characters that `validate_name` accepts
(a hot path's inline check; on no match, `validate_name` says what is wrong)."""


def _check(name: object, reserved: tuple[str, ...], *, allow_empty: bool, max_length: int) -> str:
    plain = _USER_NAME if reserved == _RESERVED_FOR_USERS else _BACKEND_NAME
    if type(name) is str and len(name) <= max_length and plain(name):
        return name
    return _explain(name, reserved, allow_empty=allow_empty, max_length=max_length)


def _explain(name: object, reserved: tuple[str, ...], *, allow_empty: bool, max_length: int) -> str:
    """The slow path of :func:`_check`: find the rule a name breaks and raise saying so."""
    if not isinstance(name, str):
        raise InvalidName(f"name must be a str, not {type(name).__name__}: {name!r}")
    if not name:
        if allow_empty:
            return name
        raise InvalidName("name must not be empty")
    if len(name) > max_length:
        raise InvalidName(f"name is longer than {max_length} characters: {name!r}")
    if not name.isascii():
        raise InvalidName(f"name must be plain ASCII: {name!r}")
    if any(c <= " " or c == "\x7f" for c in name):
        raise InvalidName(f"name must not contain blanks or control characters: {name!r}")
    if "\\" in name:
        raise InvalidName(f"name must not contain a backslash: {name!r}")
    if name.startswith("/") or name.endswith("/"):
        raise InvalidName(f"name must be relative and must not end with '/': {name!r}")
    if ".." in name:
        raise InvalidName(f"name must not contain '..': {name!r}")
    if any(part in ("", ".") for part in name.split("/")):
        raise InvalidName(f"name must not contain empty or '.' path elements: {name!r}")
    if name != name.lower():
        raise InvalidName(f"name must be lowercase: {name!r}")
    for suffix in reserved:
        if name.endswith(suffix):
            raise InvalidName(f"name must not end with {suffix!r} (reserved): {name!r}")
    return name


def validate_name(name: object) -> str:
    """Check a user-given item name and return it.

    Raises [`InvalidName`][aiodepot.errors.InvalidName], naming the problem, if the name breaks a rule.
    """
    if type(name) is str and len(name) <= MAX_NAME_LENGTH and _USER_NAME(name):
        return name
    return _explain(name, _RESERVED_FOR_USERS, allow_empty=False, max_length=MAX_NAME_LENGTH)


def validate_namespace(name: object) -> str:
    """Check a namespace (as given to ``list``); the empty string is the root namespace."""
    return _check(name, _RESERVED_FOR_USERS, allow_empty=True, max_length=MAX_NAME_LENGTH)


def validate_backend_name(name: object, *, allow_root: bool = False) -> str:
    """Check a name as a backend sees it: nested, possibly with the ``.del`` suffix.

    The store's own layout file ([`aiodepot.layout`][aiodepot.layout]) passes only while that module
    reads or writes it; a listing never shows it.
    """
    if type(name) is str and (
        (len(name) <= MAX_BACKEND_NAME_LENGTH and _BACKEND_NAME(name)) or name in INTERNAL_NAMES.get()
    ):
        return name
    return _explain(name, _RESERVED_FOR_BACKENDS, allow_empty=allow_root, max_length=MAX_BACKEND_NAME_LENGTH)


LAYOUT_NAME = "layout" + HID_SUFFIX
"""The store's remembered nesting levels (see [`aiodepot.layout`][aiodepot.layout]), at the top of the store."""


def is_internal(name: str) -> bool:
    """True for a top-level name of the store's own (``layout.hid``): backends accept it only inside
    [`aiodepot.layout`][aiodepot.layout], and leave it out of listings, counts and quota usage."""
    return name == LAYOUT_NAME


INTERNAL_NAMES: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar("INTERNAL_NAMES", default=frozenset())
"""Internal ``.hid`` names a backend accepts in the current context (set by [`aiodepot.layout`][aiodepot.layout])."""


def split_key(name: str) -> tuple[str | None, str]:
    """Split ``"ns/sub/key"`` into ``("ns/sub", "key")``; a name without ``/`` has no namespace."""
    namespace, sep, key = name.rpartition("/")
    return (namespace if sep else None), key


def nest(name: str, levels: int, *, add_suffix: str | None = None) -> str:
    """Spread the key of ``name`` over ``levels`` directory levels of two hex digits each.

    ``nest("data/0123abcd", 2) == "data/01/23/0123abcd"``. ``add_suffix`` is appended to the result.
    A key shorter than ``2 * levels`` characters cannot be nested and raises
    [`InvalidName`][aiodepot.errors.InvalidName].
    """
    if levels < 0:
        raise ValueError(f"levels must be >= 0, got {levels}")
    if levels and name:
        namespace, key = split_key(name)
        if len(key) < 2 * levels:
            raise InvalidName(f"key {key!r} is too short for {levels} nesting level(s)")
        parts = [key[2 * i : 2 * i + 2] for i in range(levels)]
        parts.append(key)
        if namespace is not None:
            parts.insert(0, namespace)
        name = "/".join(parts)
    return name + add_suffix if add_suffix else name


def unnest(name: str, namespace: str, *, remove_suffix: str | None = None) -> str:
    """Undo [`nest`][aiodepot.names.nest]: ``unnest("data/01/23/0123abcd", "data") == "data/0123abcd"``."""
    if namespace:
        if not namespace.endswith("/"):
            namespace += "/"
        if not name.startswith(namespace):
            raise ValueError(f"name {name!r} is not in namespace {namespace!r}")
        name = name[len(namespace) :]
    key = name.rpartition("/")[2]
    if remove_suffix:
        key = key.removesuffix(remove_suffix)
    return namespace + key


# Temp names only need to be unique among concurrent writers (an exclusive create catches the rest): a random
# tag per process plus a counter, instead of a getrandom() call per stored value.
_temp_tag = secrets.token_hex(4)
_temp_counter = itertools.count()


def _new_temp_names_after_fork() -> None:
    global _temp_tag, _temp_counter
    _temp_tag, _temp_counter = secrets.token_hex(4), itertools.count()


os.register_at_fork(after_in_child=_new_temp_names_after_fork)


def temp_name(path: str) -> str:
    """A fresh name beside ``path`` for a value being written: ``<path>.<tag>-<n>.tmp``, never listed."""
    return f"{path}.{_temp_tag}-{next(_temp_counter):x}{TMP_SUFFIX}"
