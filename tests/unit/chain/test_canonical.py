"""The fast canonicalizer is byte-identical to the rfc8785 reference."""

from __future__ import annotations

import sys
from typing import Any

import pytest
import rfc8785
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.chain.canonical import canonicalize, canonicalize_reference
from streams.chain.errors import CanonicalizationError

MAX = 2**53 - 1

# Keys and strings over all of Unicode except lone surrogates, with the
# characters that matter for JCS (controls, quotes, U+E000.., astral) weighted in.
_special = st.sampled_from(
    [
        "\x00",
        "\x1f",
        "\x7f",
        '"',
        "\\",
        "/",
        "\u2028",
        "\ue000",
        "\uffff",
        "\U0001f600",
        "\U00010000",
        "é",
    ]
)
_chars = st.one_of(st.characters(exclude_categories=("Cs",)), _special)
_text = st.text(_chars, max_size=12)
_ints = st.one_of(st.integers(-MAX, MAX), st.sampled_from([0, -1, MAX, -MAX, 2**31, 10**15]))
_floats = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 1.0, 1e21, 1e20, 1e-6, 1e-7, 5e-324, 1.7976931348623157e308, 0.1]),
)
_scalars = st.one_of(st.none(), st.booleans(), _ints, _floats, _text)
ijson = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=6), st.dictionaries(_text, inner, max_size=6)),
    max_leaves=40,
)


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(ijson)
def test_fast_equals_reference(value: Any) -> None:
    assert canonicalize(value) == rfc8785.dumps(value)


@given(st.dictionaries(_text, _ints, min_size=2, max_size=10))
def test_key_order_is_utf16_like_reference(value: dict[str, int]) -> None:
    assert canonicalize(value) == rfc8785.dumps(value)


def test_every_unicode_scalar_value_escapes_like_reference() -> None:
    every = "".join(chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF)
    assert canonicalize(every) == rfc8785.dumps(every)
    assert canonicalize({every: 1, "a": [every]}) == rfc8785.dumps({every: 1, "a": [every]})


def test_utf16_order_differs_from_code_point_order() -> None:
    # By code point U+E000 < U+1F600; in UTF-16 the pair D83D DE00 sorts before E000.
    value = {"\ue000": 1, "\U0001f600": 2}
    assert canonicalize(value) == b'{"\xf0\x9f\x98\x80":2,"\xee\x80\x80":1}'


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.0, b"1"),
        (-0.0, b"0"),
        (1e21, b"1e+21"),
        (1e20, b"100000000000000000000"),
        (1e-7, b"1e-7"),
        (0.000001, b"0.000001"),
        ({"b": [1.5, True], "a": None}, b'{"a":null,"b":[1.5,true]}'),
        ("\u2028\x7f\x1f", b'"\xe2\x80\xa8\x7f\\u001f"'),
    ],
)
def test_known_forms(value: Any, expected: bytes) -> None:
    assert canonicalize(value) == expected
    assert canonicalize_reference(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        2**53,
        -(2**53),
        float("nan"),
        float("inf"),
        "\ud800",
        {"k": "\udfff"},
        {1: "x"},
        {"s": {1, 2}},
    ],
)
def test_non_ijson_is_rejected_by_both(value: Any) -> None:
    with pytest.raises(CanonicalizationError):
        canonicalize(value)
    with pytest.raises(CanonicalizationError):
        canonicalize_reference(value)


def test_deep_nesting_beyond_orjson_limit_matches_reference() -> None:
    value: Any = 1
    for _ in range(300):
        value = [value]
    assert canonicalize(value) == rfc8785.dumps(value)


def test_subclasses_go_through_reference() -> None:
    class Tag(str):
        pass

    value = {"k": Tag("v"), "n": True}
    assert canonicalize(value) == rfc8785.dumps(value)


@pytest.mark.parametrize(
    "value", [{"\ud800": 1}, {"k": "\udfff"}, ["a\ud800"], 2**53, float("nan"), {"k": {1, 2}}]
)
def test_a_value_with_no_rfc8785_form_is_a_canonicalization_error(value: object) -> None:
    with pytest.raises(CanonicalizationError):
        canonicalize(value)
