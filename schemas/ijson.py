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
import re
from typing import Any

import orjson

from schemas.contract import LimitError
from schemas.errors import ValidationError

__all__ = [
    "MAX_SAFE_INTEGER",
    "MalformedJSONError",
    "check_ijson",
    "loads_ijson",
    "strict_loads",
]

MAX_SAFE_INTEGER = 2**53 - 1
# Python's json parser recurses per level: deeper than this is a RecursionError.
DEFAULT_MAX_DEPTH = 512
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{},:]')


class MalformedJSONError(ValidationError):
    """The text is not I-JSON at all: not UTF-8, not JSON, or what I-JSON forbids."""


def _reject_constant(name: str) -> Any:
    raise ValidationError(f"{name} is not an I-JSON number")


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValidationError(f"duplicate object key {key!r}", field=key)
        out[key] = value
    return out


def loads_ijson(text: str | bytes, *, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """Parse JSON text, rejecting what I-JSON forbids, with the offending path.

    Raises :class:`MalformedJSONError` for text that is not I-JSON and
    :class:`~schemas.contract.LimitError` for nesting deeper than
    ``max_depth`` (the text's top-level value is at depth 1). The depth is
    bounded before the recursive parse, so no nesting is a RecursionError.
    """
    if not isinstance(text, str):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedJSONError(f"not valid UTF-8 at byte {exc.start}") from None
    _bound_depth(text, max_depth)
    try:
        value = strict_loads(text)
        check_ijson(value)
    except MalformedJSONError:
        raise
    except ValidationError as exc:
        raise MalformedJSONError(exc.reason, field=exc.field) from None
    return value


def strict_loads(text: str) -> Any:
    """``json.loads`` that refuses duplicate keys and non-finite constants.

    The caller bounds the nesting first (Python's parser recurses per level).
    """
    try:
        return json.loads(text, object_pairs_hook=_pairs, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise MalformedJSONError(f"malformed JSON: {exc.msg} at column {exc.colno}") from None
    except (ValueError, RecursionError) as exc:  # e.g. an integer of over 4300 digits
        raise MalformedJSONError(f"malformed JSON: {exc}") from None


def _bound_depth(text: str, max_depth: int) -> None:
    if text.count("[") + text.count("{") <= max_depth:
        return  # not even that many brackets, in strings or not
    path = _deep_path(text, max_depth)
    if path is not None:
        raise LimitError(f"too deep: nested over {max_depth} levels", field=path or None)


def _deep_path(text: str, max_depth: int) -> str | None:
    """The path of the first container nested deeper than ``max_depth``, or None.

    A tokenizer, not a parser: strings are skipped whole, so brackets inside
    them do not count. Malformed text is left to the parser's message.
    """
    if not _looks_deep(text, max_depth):
        return None
    stack: list[list[Any]] = []  # [kind, key or index, awaiting key]
    key: str | None = None
    for match in _TOKENS.finditer(text):
        tok = match.group()
        if tok in ("[", "{"):
            if stack:
                top = stack[-1]
                top[1] = key if top[0] == "{" else top[1]
            if len(stack) >= max_depth:
                return _format_path(stack)
            stack.append([tok, 0 if tok == "[" else None, tok == "{"])
            key = None
        elif tok in ("]", "}"):
            if stack:
                stack.pop()
        elif tok == ",":
            if stack:
                top = stack[-1]
                if top[0] == "[":
                    top[1] += 1
                else:
                    top[2] = True
        elif tok == ":":
            if stack:
                stack[-1][2] = False
        elif stack and stack[-1][0] == "{" and stack[-1][2]:
            try:
                key = json.loads(tok)
            except ValueError:
                key = tok[1:-1]
    return None


def _looks_deep(text: str, max_depth: int) -> bool:
    # orjson refuses more than 1024 levels itself; otherwise measure its value.
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return "depth" in str(exc) or text.count("[") + text.count("{") > max_depth
    return _depth(value) > max_depth


def _depth(value: Any) -> int:
    deepest = 0
    todo = [(value, 1)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, dict):
            deepest = max(deepest, depth)
            todo.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            deepest = max(deepest, depth)
            todo.extend((v, depth + 1) for v in item)
    return deepest


def _format_path(stack: list[list[Any]]) -> str:
    path = ""
    for kind, at, _ in stack:
        if kind == "[":
            path += f"[{at}]"
        elif at is not None:
            path = f"{path}.{at}" if path else str(at)
    return path


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
        if abs(value) > MAX_SAFE_INTEGER:  # jsonb would store an integer with no RFC 8785 form
            raise ValidationError(
                f"number {value!r} is outside the I-JSON range +/-(2^53-1); send it as a string",
                field=path or None,
            )
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
