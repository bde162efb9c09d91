"""I-JSON (RFC 7493): JSON that every implementation reads back identically.

Kernel hashes and signs JSON, so a value that two parsers could read
differently is a forgery vector, not a detail: integers beyond +/-(2^53-1),
non-finite numbers, duplicate object keys and lone surrogates are rejected.
So is NUL (U+0000): valid JSON, but Postgres text and jsonb cannot store it,
and an event that can be chained but never projected would stall the audit
projector; refusing it at validation keeps it off the chain altogether.
"""

from __future__ import annotations

import json
import math
from typing import Any

from schemas.errors import ValidationError

__all__ = ["MAX_SAFE_INTEGER", "check_ijson", "loads_ijson"]

MAX_SAFE_INTEGER = 2**53 - 1


def _reject_constant(name: str) -> Any:
    raise ValidationError(f"{name} is not an I-JSON number")


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValidationError(f"duplicate object key {key!r}", field=key)
        out[key] = value
    return out


def loads_ijson(text: str | bytes) -> Any:
    """Parse JSON text, rejecting what I-JSON forbids, with the offending path."""
    try:
        value = json.loads(text, object_pairs_hook=_pairs, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"malformed JSON: {exc.msg} at column {exc.colno}") from exc
    check_ijson(value)
    return value


def check_ijson(value: Any, path: str = "") -> None:
    """Raise ValidationError naming the path of the first non-I-JSON value."""
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise ValidationError(
                f"integer {value} is outside the I-JSON range +/-(2^53-1); send it as a string",
                field=path or None,
            )
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError(f"{value} is not an I-JSON number", field=path or None)
        return
    if isinstance(value, str):
        _check_string(value, path)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValidationError("object keys must be strings", field=path or None)
            _check_string(key, path)
            check_ijson(item, f"{path}.{key}" if path else key)
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            check_ijson(item, f"{path}[{i}]")
        return
    raise ValidationError(f"{type(value).__name__} is not a JSON value", field=path or None)


def _check_string(s: str, path: str) -> None:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValidationError("string holds a lone surrogate", field=path or None) from exc
    if "\x00" in s:
        raise ValidationError(
            "NUL (U+0000) is not accepted: Postgres text cannot store it; remove or escape it",
            field=path or None,
        )
