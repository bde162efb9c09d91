"""The JSON mapping of ``timestamp-millis``: RFC 3339, UTC, three fractional digits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from schemas.events import format_ts, parse_ts

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# 0001-01-01 .. 9999-12-31, the range RFC 3339 (and strftime's %Y) can write.
_MS = st.integers(-62135596800000, 253402300799999)


@given(_MS)
def test_format_ts_matches_the_datetime_rendering(ms: int) -> None:
    dt = _EPOCH + timedelta(milliseconds=ms)
    assert format_ts(ms) == dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@given(_MS)
def test_format_then_parse_is_the_identity(ms: int) -> None:
    assert parse_ts(format_ts(ms)) == ms
