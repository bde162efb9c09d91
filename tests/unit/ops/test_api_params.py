"""The API's parameter checks: any text in, a value the query can take or a ValidationError."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ops.http.params import (
    INT32_MAX,
    INT64_MAX,
    MAX_TS_MS,
    MIN_TS_MS,
    check_text,
    parse_position,
    parse_time,
)
from projections.audit_queries import decode_cursor, encode_cursor
from schemas.errors import ValidationError

T = TypeVar("T")
anything = st.text(st.characters(codec=None), max_size=80)  # NUL and lone surrogates too


def outcome(fn: Callable[..., T], *args: Any) -> tuple[T | None, ValidationError | None]:
    """(value, None) or (None, the ValidationError); any other exception propagates."""
    try:
        return fn(*args), None
    except ValidationError as exc:
        return None, exc


@given(anything)
def test_text_is_accepted_only_when_storable(value: str) -> None:
    got, error = outcome(check_text, "actor", value)
    storable = "\x00" not in value and not any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if error is not None:
        assert error.field == "actor" and not storable
    else:
        assert got == value and storable


@given(anything)
def test_any_text_is_a_position_or_a_validation_error_naming_after(value: str) -> None:
    got, error = outcome(parse_position, "after", value)
    if error is not None:
        assert error.field == "after"
    else:
        assert got is not None
        topic, partition, offset = got
        assert value.startswith(f"{topic}/")
        assert 0 <= partition <= INT32_MAX and 0 <= offset <= INT64_MAX


@given(
    st.text(st.characters(exclude_characters="/@\x00", codec="utf-8"), min_size=1, max_size=20),
    st.integers(0, 2**40),
    st.integers(0, 2**70),
)
def test_positions_round_trip_within_their_types(topic: str, partition: int, offset: int) -> None:
    text = f"{topic}/{partition}@{offset}"
    if partition > INT32_MAX or offset > INT64_MAX:
        with pytest.raises(ValidationError, match="beyond"):
            parse_position("after", text)
    else:
        assert parse_position("after", text) == (topic, partition, offset)


def test_a_huge_offset_is_refused_without_parsing_it() -> None:
    with pytest.raises(ValidationError, match="offset is beyond"):
        parse_position("after", "t/0@" + "9" * 100_000)


@given(anything)
def test_any_text_is_a_cursor_or_a_validation_error_naming_cursor(value: str) -> None:
    got, error = outcome(decode_cursor, value)
    if error is not None:
        assert error.field == "cursor"
    else:
        assert got is not None
        ts_ms, chain, seq = got
        assert MIN_TS_MS <= ts_ms <= MAX_TS_MS and 0 <= seq <= INT64_MAX
        assert "\x00" not in chain


@given(
    st.integers(MIN_TS_MS, MAX_TS_MS),
    st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=30),
    st.integers(0, INT64_MAX),
)
def test_cursors_this_api_returns_decode(ts_ms: int, chain: str, seq: int) -> None:
    assert decode_cursor(encode_cursor(ts_ms, chain, seq)) == (ts_ms, chain, seq)


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("2026-12-01T00:00:00Z", True),
        ("0001-01-01T00:00:00Z", True),
        ("9999-12-31T23:59:59-14:00", False),  # past year 9999 in UTC
        ("2026-12-01T00:00:00", False),  # no offset
        ("yesterday", False),
        ("2026\x00", False),
    ],
)
def test_times(value: str, ok: bool) -> None:
    if ok:
        assert parse_time("from", value) is not None
    else:
        with pytest.raises(ValidationError) as info:
            parse_time("from", value)
        assert info.value.field == "from"


@given(
    st.lists(
        st.integers(-(2**70), 2**70) | anything | st.booleans() | st.floats() | st.none(),
        max_size=4,
    )
)
def test_a_forged_cursor_is_in_range_or_refused(fields: list[Any]) -> None:
    raw = json.dumps(fields).encode()  # integers of any size, lone surrogates escaped
    got, error = outcome(decode_cursor, base64.urlsafe_b64encode(raw).decode().rstrip("="))
    if error is not None:
        assert error.field == "cursor"
    else:
        assert got is not None
        ts_ms, chain, seq = got
        assert MIN_TS_MS <= ts_ms <= MAX_TS_MS and 0 <= seq <= INT64_MAX
        assert "\x00" not in chain
        chain.encode("utf-8")  # raises on a lone surrogate
