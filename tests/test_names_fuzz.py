"""Fuzzing the name validators against an independent statement of the naming rules.

The oracle below writes the rules of ``aiodepot.names`` down again, the plain way (character classes
and path elements, no regular expression, no shared code), so a fast path that drifts from the rules
shows up as a disagreement. Bounded by default; ``-m slow`` runs the full count.
"""

from __future__ import annotations

import string
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiodepot.errors import InvalidName
from aiodepot.names import (
    MAX_BACKEND_NAME_LENGTH,
    MAX_NAME_LENGTH,
    nest,
    split_key,
    unnest,
    validate_backend_name,
    validate_name,
    validate_namespace,
)

BOUNDED = 1500
FULL = 30_000
COUNTS = [
    pytest.param(BOUNDED, id="bounded"),
    pytest.param(FULL, id="full", marks=[pytest.mark.slow, pytest.mark.timeout(1800)]),
]

ALLOWED_CHARS = frozenset(chr(c) for c in range(0x21, 0x7F)) - set(string.ascii_uppercase) - {"\\"}
"""Printable ASCII without the blank, uppercase letters and the backslash."""


def oracle(name: Any, *, reserved: tuple[str, ...], allow_empty: bool, max_length: int) -> bool:
    """The documented rules: True if ``name`` is acceptable."""
    if not isinstance(name, str):
        return False
    if name == "":
        return allow_empty
    if len(name) > max_length:
        return False
    if any(c not in ALLOWED_CHARS for c in name):
        return False
    if ".." in name:
        return False
    elements = name.split("/")
    if any(element in ("", ".") for element in elements):  # also rules out a leading or trailing '/'
        return False
    return not any(name.endswith(suffix) for suffix in reserved)


def user_rules(name: Any) -> bool:
    return oracle(name, reserved=(".tmp", ".hid", ".del"), allow_empty=False, max_length=MAX_NAME_LENGTH)


def namespace_rules(name: Any) -> bool:
    return oracle(name, reserved=(".tmp", ".hid", ".del"), allow_empty=True, max_length=MAX_NAME_LENGTH)


def backend_rules(name: Any, allow_root: bool) -> bool:
    return oracle(name, reserved=(".tmp", ".hid"), allow_empty=allow_root, max_length=MAX_BACKEND_NAME_LENGTH)


# What a hostile or careless caller might pass: anything text, text built from the interesting characters
# and path elements, and values of the wrong type.
TRICKY = "ab09-_.~/\\ \t\n\x00\x7fAZ%:é\u2028\uff0e\u2215"
ELEMENTS = ["a", "ab", "..", ".", "", "...", "x.del", "x.tmp", "x.hid", ".del", "A", "é", "%2e", "a b", "\\"]
names = st.one_of(
    st.text(max_size=140),
    st.text(alphabet=TRICKY, max_size=30),
    st.text(alphabet=sorted(ALLOWED_CHARS), min_size=90, max_size=135),
    st.lists(st.sampled_from(ELEMENTS), max_size=6).map("/".join),
    st.builds(lambda a, b: a + "/" + b, st.text(alphabet="abc./", max_size=8), st.sampled_from(ELEMENTS)),
    st.one_of(st.none(), st.integers(), st.binary(max_size=10), st.lists(st.text(max_size=3), max_size=2)),
)


def outcome(validator: Any, name: Any, **kwargs: Any) -> bool:
    """True if ``validator`` accepts ``name`` (and returns it unchanged); False if it raises InvalidName.

    Anything else it raises fails the test: that is the point.
    """
    try:
        result = validator(name, **kwargs)
    except InvalidName as exc:
        message = str(exc)
    else:
        assert result == name and type(result) is str
        return True
    assert message.startswith(("name", "key")), f"an InvalidName must say what is wrong: {message!r}"
    return False


@pytest.mark.parametrize("count", COUNTS)
def test_validators_agree_with_the_rules(count: int) -> None:
    @settings(max_examples=count, deadline=None, database=None, derandomize=count == BOUNDED)
    @given(name=names)
    def check(name: Any) -> None:
        assert outcome(validate_name, name) == user_rules(name), name
        assert outcome(validate_namespace, name) == namespace_rules(name), name
        for allow_root in (False, True):
            accepted = outcome(validate_backend_name, name, allow_root=allow_root)
            assert accepted == backend_rules(name, allow_root), (name, allow_root)

    check()


KEY_CHARS = "0123456789abcdef"
namespaces = st.lists(st.text(alphabet="abcz-_", min_size=1, max_size=6), max_size=3).map("/".join)


@pytest.mark.parametrize("count", COUNTS)
def test_nest_unnest_roundtrip_of_valid_names(count: int) -> None:
    @settings(
        max_examples=count // 3,
        deadline=None,
        database=None,
        derandomize=count == BOUNDED,
        suppress_health_check=[HealthCheck.filter_too_much],  # reason: long namespaces + keys overflow 100
    )
    @given(
        namespace=namespaces,
        key=st.text(alphabet=KEY_CHARS + "xyz_-", min_size=1, max_size=70),
        levels=st.integers(0, 4),
        deleted=st.booleans(),
    )
    def check(namespace: str, key: str, levels: int, deleted: bool) -> None:
        name = f"{namespace}/{key}" if namespace else key
        if not user_rules(name):
            return
        assert validate_name(name) == name
        suffix = ".del" if deleted else None
        if len(key) < 2 * levels:
            with pytest.raises(InvalidName, match="too short"):
                nest(name, levels, add_suffix=suffix)
            return
        nested = nest(name, levels, add_suffix=suffix)
        # a nested user name is a valid backend name: nesting adds at most 4 * 3 characters, .del 4 more
        assert validate_backend_name(nested) == nested
        parent, last = split_key(nested)
        assert last == key + (suffix or "")
        assert (parent or "").count("/") + (parent is not None) == namespace.count("/") + bool(namespace) + levels
        assert unnest(nested, namespace, remove_suffix=suffix) == name
        assert unnest(nested, namespace + "/" if namespace else "", remove_suffix=suffix) == name

    check()
