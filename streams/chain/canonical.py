"""RFC 8785 (JCS) canonical JSON of the audit payload: the bytes the chain hashes.

The payload is the whole event as JSON, exactly :meth:`schemas.events.Event.to_json`.
The Avro -> JSON mapping (kept in step with ``schemas/events.py``)::

    record (envelope, body)   -> object, one member per field, every field present
    string, enum              -> string
    uuid (logical)            -> canonical lowercase string "8-4-4-4-12"
    timestamp-millis          -> "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC, exactly 3 digits)
    int, long                 -> number (I-JSON: |n| <= 2^53-1, else rejected)
    float, double             -> number (finite only; ECMAScript shortest form)
    boolean                   -> true / false
    null, union null branch   -> null
    union                     -> the bare value of the branch (no {"type": v} wrapper)
    map<string>               -> object
    array                     -> array
    bytes                     -> standard base64 string (with padding)
    kernel-json (logical)     -> the JSON value the string holds, not the string

JCS then fixes everything else: object members sorted by their UTF-16 code
units, no whitespace, strings with only the mandatory escapes, numbers in the
ECMAScript ``Number.prototype.toString`` form.

:func:`canonicalize_reference` is the ``rfc8785`` package, the reference.
:func:`canonicalize` is faster (about 5x on a 460-byte event, see
``bench/chain_core.py``) and byte-identical to it, which
``tests/unit/chain/test_canonical.py`` proves with hypothesis over arbitrary
I-JSON values and exhaustively over every Unicode scalar value. It serializes
with orjson (``OPT_SORT_KEYS``) after one pass over the value establishes that
orjson's output *is* JCS there. The two differ in exactly three places, and
the pass handles each (decision record: ``docs/decisions/0002-fast-jcs.md``):

* floats: orjson writes ``1.0``, ``-0.0``; JCS writes ``1``, ``0``. Each float
  is replaced by an ``orjson.Fragment`` holding the reference's own bytes.
* key order: orjson sorts by code point, JCS by UTF-16 code unit. They
  disagree only between a supplementary character (>= U+10000, a surrogate pair
  in UTF-16) and one in U+E000..U+FFFF; any key with a character >= U+E000
  sends the value to the reference.
* integers beyond +/-(2^53-1): the reference rejects them, orjson does not;
  they go to the reference, which raises.

Anything that is not exactly a dict, list, tuple, str, int, bool, float or
None (subclasses included) also goes to the reference, so the fast path never
has to guess what orjson would do with it.
"""

from __future__ import annotations

from typing import Any

import orjson
import rfc8785

from streams.chain.errors import CanonicalizationError

__all__ = ["canonicalize", "canonicalize_reference"]

_MAX_INT = 2**53 - 1
_FIRST_DIVERGENT = "\ue000"  # keys with characters from here on may sort differently


def canonicalize_reference(value: Any) -> bytes:
    """JCS bytes through the ``rfc8785`` package."""
    try:
        return bytes(rfc8785.dumps(value))
    # a lone surrogate in a key escapes rfc8785 as UnicodeEncodeError, not its own error
    except (rfc8785.CanonicalizationError, RecursionError, TypeError, UnicodeError) as exc:
        raise CanonicalizationError(f"value has no RFC 8785 form: {exc}") from exc


def canonicalize(value: Any) -> bytes:
    """JCS bytes, byte-identical to :func:`canonicalize_reference`, faster."""
    verdict = _scan(value)
    if verdict is _REFERENCE:
        return canonicalize_reference(value)
    try:
        fast = _fragment_floats(value) if verdict is _FLOATS else value
        return orjson.dumps(fast, option=orjson.OPT_SORT_KEYS)
    except (orjson.JSONEncodeError, RecursionError):
        # A lone surrogate, or nesting deeper than orjson's limit: the
        # reference decides, so that error cases agree as well.
        return canonicalize_reference(value)


_PLAIN = object()  # orjson's output is JCS as is
_FLOATS = object()  # ... once floats are pre-rendered
_REFERENCE = object()  # only the reference knows


def _scan(value: Any) -> object:
    # Iterative, exact-type dispatch: this pass is most of the fast path's cost.
    verdict = _PLAIN
    stack = [value]
    pop, extend = stack.pop, stack.extend
    while stack:
        item = pop()
        kind = type(item)
        if kind is str or kind is bool or item is None:
            continue
        if kind is dict:
            for key in item:
                if type(key) is not str or (not key.isascii() and max(key) >= _FIRST_DIVERGENT):
                    return _REFERENCE
            extend(item.values())
        elif kind is int:
            if not -_MAX_INT <= item <= _MAX_INT:
                return _REFERENCE
        elif kind is list or kind is tuple:
            extend(item)
        elif kind is float:
            verdict = _FLOATS
        else:
            return _REFERENCE
    return verdict


def _fragment_floats(value: Any) -> Any:
    kind = type(value)
    if kind is float:
        return orjson.Fragment(canonicalize_reference(value))
    if kind is dict:
        return {k: _fragment_floats(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [_fragment_floats(v) for v in value]
    return value
