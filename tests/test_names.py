"""Name rules and nesting."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiodepot import names as names_module
from aiodepot.errors import InvalidName
from aiodepot.names import (
    MAX_NAME_LENGTH,
    nest,
    split_key,
    unnest,
    validate_backend_name,
    validate_name,
    validate_namespace,
)

GOOD = ["a", "config/main", "data/0123abcd", "a-b_c.d/e+f", "x" * MAX_NAME_LENGTH, "locks/exclusive.lock"]
BAD: list[tuple[Any, str]] = [
    ("", "empty"),
    (None, "str"),
    (b"bytes", "str"),
    ("..", "'..'"),
    ("a/../b", "'..'"),
    ("a..b", "'..'"),
    ("/abs", "relative"),
    ("trailing/", "relative"),
    ("Upper", "lowercase"),
    ("caf\u00e9", "ASCII"),
    ("with blank", "blanks"),
    ("tab\tx", "blanks"),
    ("nl\nx", "blanks"),
    ("nul\x00", "blanks"),
    ("del\x7f", "blanks"),
    ("back\\slash", "backslash"),
    ("x" * (MAX_NAME_LENGTH + 1), "longer"),
    ("a.tmp", "reserved"),
    ("a.hid", "reserved"),
    ("a.del", "reserved"),
    ("a//b", "empty or '.'"),
    ("a/./b", "empty or '.'"),
]


@pytest.mark.parametrize("name", GOOD)
def test_good_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize(("name", "reason"), BAD, ids=[repr(b[0])[:30] for b in BAD])
def test_bad_names_say_why(name: Any, reason: str) -> None:
    with pytest.raises(InvalidName, match=reason):
        validate_name(name)


def test_backend_names_allow_del_and_nesting_room() -> None:
    assert validate_backend_name("data/01/23/x.del") == "data/01/23/x.del"
    assert validate_backend_name("", allow_root=True) == ""
    long_nested = "data/" + "/".join(["ab"] * 3) + "/" + "a" * 95 + ".del"
    assert validate_backend_name(long_nested) == long_nested
    for bad in ("x.tmp", "x.hid", "../x", ""):
        with pytest.raises(InvalidName):
            validate_backend_name(bad)


def test_namespace_may_be_root() -> None:
    assert validate_namespace("") == ""
    assert validate_namespace("data") == "data"
    with pytest.raises(InvalidName):
        validate_namespace("data/")


def test_nest_examples() -> None:
    assert nest("data/0123abcd", 0) == "data/0123abcd"
    assert nest("data/0123abcd", 1) == "data/01/0123abcd"
    assert nest("data/0123abcd", 2) == "data/01/23/0123abcd"
    assert nest("0123abcd", 2) == "01/23/0123abcd"
    assert nest("data/0123abcd", 2, add_suffix=".del") == "data/01/23/0123abcd.del"
    assert unnest("data/01/23/0123abcd", "data") == "data/0123abcd"
    assert unnest("data/01/23/0123abcd.del", "data/", remove_suffix=".del") == "data/0123abcd"
    assert split_key("a/b/c") == ("a/b", "c") and split_key("c") == (None, "c")
    with pytest.raises(InvalidName, match="too short"):
        nest("data/abc", 2)
    with pytest.raises(ValueError):
        unnest("other/01/0123", "data")


@given(
    namespace=st.sampled_from(["", "data", "a/b"]),
    key=st.text("0123456789abcdef", min_size=8, max_size=64),
    levels=st.integers(0, 4),
)
def test_nest_unnest_roundtrip(namespace: str, key: str, levels: int) -> None:
    name = f"{namespace}/{key}" if namespace else key
    nested = nest(name, levels)
    assert nested.count("/") == name.count("/") + levels
    assert nested.endswith(key)
    assert unnest(nested, namespace) == name


@given(st.text(max_size=120))
def test_validator_never_crashes(name: str) -> None:
    try:
        assert validate_name(name) == name
    except InvalidName:
        pass


@given(
    st.one_of(
        st.text(max_size=40),
        st.text(alphabet="ab./-_09XZ\\ \x00", max_size=20),
        st.lists(st.sampled_from(["a", "..", ".", "", "b.del", "c.tmp", "x.hid", "d"]), max_size=5).map("/".join),
    )
)
def test_fast_path_agrees_with_the_rules(name: str) -> None:
    for reserved, allow_empty in (
        (names_module._RESERVED_FOR_USERS, False),
        (names_module._RESERVED_FOR_BACKENDS, True),
    ):
        try:
            fast: object = names_module._check(name, reserved, allow_empty=allow_empty, max_length=20)
        except InvalidName:
            fast = InvalidName
        try:
            slow: object = names_module._explain(name, reserved, allow_empty=allow_empty, max_length=20)
        except InvalidName:
            slow = InvalidName
        assert fast == slow, (name, reserved)
