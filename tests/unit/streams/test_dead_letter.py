"""Dead letter v2: whatever the source and the reason, the dead letter encodes and fits."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.codec import EventCodec
from schemas.events import Event
from streams.dead_letter import MAX_REASON_CHARS, dead_letter

CODEC = EventCodec()


def _letter(value: bytes | None, reason: str = "bad", key: bytes | None = b"k", **kw: int) -> Event:
    return dead_letter(
        processor="p", reason=reason, error_type="ValueError", topic="t", partition=3,
        offset=7, key=key, value=value, **kw,
    )  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    value=st.none() | st.binary(max_size=4096),
    reason=st.text(max_size=6000),
    key=st.none() | st.binary(max_size=64),
)
def test_any_source_and_reason_encode_and_round_trip(
    value: bytes | None, reason: str, key: bytes | None
) -> None:
    event = _letter(value, reason, key)
    back = CODEC.decode(CODEC.encode(event))
    body = back.body
    assert body["sourceValue"] == value and body["copied"] is (value is not None)
    assert body["sourceBytes"] == (len(value) if value is not None else 0)
    assert body["sourceKey"] == key
    assert len(body["reason"]) <= MAX_REASON_CHARS
    assert "\x00" not in body["reason"]
    body["reason"].encode("utf-8")  # no lone surrogate survives


@settings(max_examples=25, deadline=None)
@given(extra=st.integers(min_value=1, max_value=3000))
def test_a_value_over_the_copy_limit_is_referenced_not_copied(extra: int) -> None:
    value = b"\xc3" * (1000 + extra)
    body = CODEC.decode(CODEC.encode(_letter(value, max_copy_bytes=1000))).body
    assert body["copied"] is False and body["sourceValue"] is None
    assert body["sourceBytes"] == len(value)
    assert body["sourceSha256"] == hashlib.sha256(value).hexdigest()


def test_a_huge_source_still_makes_a_small_dead_letter() -> None:
    value = bytes(range(256)) * 8192  # 2 MiB, over any record limit
    encoded = CODEC.encode(_letter(value, "x" * 100_000, key=b"k" * 100_000))
    assert len(encoded) < 32 * 1024
    body = CODEC.decode(encoded).body
    assert body["sourceKey"] is None and body["sourceValue"] is None


def test_a_value_at_the_limit_is_copied() -> None:
    value = b"v" * 1000
    body = _letter(value, max_copy_bytes=1000).body
    assert body["copied"] is True and body["sourceValue"] == value
