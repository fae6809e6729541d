"""Fuzzing the REST v1 ``Range`` helpers: the parser raises only ``ValueError``, what it accepts is what
the header says (checked against an independent reading of the grammar), and the formatter's headers
parse back to what they were made from. Bounded by default; ``-m slow`` runs the full count."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiodepot.protocol import make_range_header, parse_range_header

BOUNDED = 1000
FULL = 30_000
COUNTS = [
    pytest.param(BOUNDED, id="bounded"),
    pytest.param(FULL, id="full", marks=[pytest.mark.slow, pytest.mark.timeout(1800)]),
]
MAX_POSITION = 2**63 - 1
"""The largest offset a file or object can have (off_t); bigger numbers are refused, not passed on."""


def expected(value: str) -> tuple[int, int | None] | None:
    """An independent reading of the three accepted forms; None where the header must be refused."""
    text = value.strip(" \t")
    if not text.startswith("bytes="):
        return None
    spec = text[len("bytes=") :]
    first, dash, last = spec.partition("-")
    if not dash or not all(part == "" or (part.isascii() and part.isdigit()) for part in (first, last)):
        return None
    if max(len(first), len(last)) > len(str(MAX_POSITION)):  # even with leading zeros: refused unread
        return None
    if first == "":
        if last == "" or int(last) > MAX_POSITION:
            return None
        return (-int(last), None) if int(last) else (0, 0)
    start = int(first)
    if start > MAX_POSITION:
        return None
    if last == "":
        return start, None
    end = int(last)
    if end < start or end > MAX_POSITION:
        return None
    return start, end - start + 1


def parsed(value: str) -> tuple[int, int | None] | None:
    try:
        return parse_range_header(value)
    except ValueError as exc:
        message = str(exc)
    assert "Range" in message, message
    return None


digits = st.one_of(
    st.integers(0, 2**64).map(str),
    st.text("0123456789", max_size=25),
    st.sampled_from(
        [
            "",
            "0",
            "00",
            "-1",
            "+1",
            "1_0",
            " 1",
            "1 ",
            "\u0661",
            "\u0661\u0662",
            "\u00b2",
            "\U0001d7d9",
            "0x10",
            "1e3",
            "½",
        ]
    ),
)
headers = st.one_of(
    st.text(max_size=40),
    st.builds(
        lambda unit, first, sep, last, tail: f"{unit}{first}{sep}{last}{tail}",
        st.sampled_from(["bytes=", "Bytes=", "bytes =", "items=", "", " bytes=", "bytes=\t"]),
        digits,
        st.sampled_from(["-", "", "--", "\u2013", ",", " - "]),
        digits,
        st.sampled_from(["", ",0-1", ", 5-", " ", "\t", "\x00", "\n", ";", "\x85", "\xa0"]),
    ),
)


@pytest.mark.parametrize("count", COUNTS)
def test_parser_accepts_exactly_the_grammar(count: int) -> None:
    @settings(max_examples=count, deadline=None, database=None, derandomize=count == BOUNDED)
    @given(value=headers)
    def check(value: str) -> None:
        result = parsed(value)
        assert result == expected(value), value
        if result is not None:
            offset, size = result
            assert -MAX_POSITION <= offset <= MAX_POSITION
            assert size is None or 0 <= size <= MAX_POSITION + 1
            assert offset >= 0 or size is None  # a suffix range has no size of its own

    check()


@pytest.mark.parametrize("count", COUNTS)
def test_formatter_roundtrips(count: int) -> None:
    @settings(max_examples=count // 2, deadline=None, database=None, derandomize=count == BOUNDED)
    @given(offset=st.integers(-MAX_POSITION, MAX_POSITION // 2), size=st.none() | st.integers(0, MAX_POSITION // 2))
    def check(offset: int, size: int | None) -> None:
        if size == 0 and offset >= 0:
            with pytest.raises(ValueError, match="empty range"):
                make_range_header(offset, size)
            return
        header = make_range_header(offset, size)
        if header is None:
            assert (offset, size) == (0, None)
            return
        assert header.isascii() and header.startswith("bytes=")
        if offset < 0:  # a suffix: the size is applied by the caller
            assert parse_range_header(header) == (offset, None)
        else:
            assert parse_range_header(header) == (offset, size)

    check()


def test_refusals_say_what_is_wrong() -> None:
    for value in ("bytes=5-1", "bytes=0-1,3-4", "items=0-1", "bytes=\u0661-\u0662", f"bytes={2**64}-", "bytes=-"):
        with pytest.raises(ValueError, match="Range"):
            parse_range_header(value)
