"""Query and path parameters, checked before they reach Postgres.

The web framework hands a route any text the URL decodes to, and Postgres
refuses some of it with an error that says nothing about the request: text
with NUL (U+0000) cannot be a ``text`` parameter at all, and a number past
``bigint`` or a timestamp past year 9999 fails inside the query. Each check
here raises :class:`~schemas.errors.ValidationError` naming the parameter as
the caller spelled it (``eventType``, ``after``, ``cursor``), which the API
answers 422.
"""

from __future__ import annotations

import re

from schemas.errors import ValidationError
from schemas.events import parse_ts

__all__ = [
    "INT32_MAX",
    "INT64_MAX",
    "MAX_TS_MS",
    "MIN_TS_MS",
    "POSITION_PATTERN",
    "Position",
    "check_text",
    "optional_text",
    "parse_position",
    "parse_time",
]

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
# 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999Z: what RFC 3339 can write.
MIN_TS_MS = -62_135_596_800_000
MAX_TS_MS = 253_402_300_799_999

_POSITION = re.compile(r"(?P<topic>[^/@]+)/(?P<partition>[0-9]+)@(?P<offset>[0-9]+)")
POSITION_PATTERN = "^[^/@\\u0000]+/[0-9]+@[0-9]+$"
"""What the OpenAPI document says a position is (:func:`parse_position` also bounds it)."""

Position = tuple[str, int, int]


def check_text(field: str, value: str) -> str:
    """``value`` unless it holds NUL or a lone surrogate (neither is storable text)."""
    if "\x00" in value:
        raise ValidationError("NUL (U+0000) is not accepted in a parameter", field=field)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValidationError(
            f"holds a lone surrogate at character {exc.start}, not UTF-8 text", field=field
        ) from None
    return value


def optional_text(field: str, value: str | None) -> str | None:
    return None if value is None else check_text(field, value)


def parse_time(field: str, value: str | None) -> int | None:
    """An RFC 3339 timestamp as epoch milliseconds, within years 1..9999."""
    if value is None:
        return None
    try:
        ms = parse_ts(check_text(field, value))
    except ValidationError as exc:
        raise ValidationError(exc.reason, field=field) from exc
    if not MIN_TS_MS <= ms <= MAX_TS_MS:
        raise ValidationError("outside years 0001..9999 (UTC)", field=field)
    return ms


def parse_position(field: str, value: str) -> Position:
    """``<topic>/<partition>@<offset>`` with partition an int32 and offset an int64."""
    match = _POSITION.fullmatch(check_text(field, value))
    if match is None:
        raise ValidationError("expected <topic>/<partition>@<offset>", field=field)
    partition = _bounded(match["partition"], INT32_MAX)
    if partition is None:
        raise ValidationError("the partition is beyond 2^31-1", field=field)
    offset = _bounded(match["offset"], INT64_MAX)
    if offset is None:
        raise ValidationError("the offset is beyond 2^63-1", field=field)
    return match["topic"], partition, offset


def _bounded(digits: str, limit: int) -> int | None:
    # Length first: int() of thousands of digits is slow, and refused past 4300.
    significant = digits.lstrip("0") or "0"
    if len(significant) > len(str(limit)):
        return None
    value = int(significant)
    return value if value <= limit else None
