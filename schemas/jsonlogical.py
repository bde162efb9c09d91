"""The ``kernel-json`` Avro logical type: an I-JSON value carried in a string.

Avro has no "any JSON" type, and action context, evidence and policy
definitions are open-ended. They travel as a string of canonical JSON (sorted
keys, no whitespace); fastavro converts on write and read through the hooks
registered here, so in Python the field is the JSON value itself. Readers that
do not know the logical type still see valid Avro: a string. ``uuid`` fields
are read back as their canonical strings rather than ``uuid.UUID`` objects.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastavro.read import LOGICAL_READERS
from fastavro.write import LOGICAL_WRITERS

__all__ = ["dumps_canonical"]


def dumps_canonical(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _write(datum: Any, *_schema: Any) -> str:
    if isinstance(datum, str):
        return datum  # already JSON text (e.g. a field default)
    return dumps_canonical(datum)


def _read(data: str, *_schemas: Any) -> Any:
    return orjson.loads(data)


def _read_uuid(data: str, *_schemas: Any) -> str:
    # Kernel keeps ids as canonical strings end to end (JSON mapping, hashing,
    # Postgres text); the writer side has already checked the UUID syntax.
    return data


LOGICAL_WRITERS["string-kernel-json"] = _write
LOGICAL_READERS["string-kernel-json"] = _read
LOGICAL_READERS["string-uuid"] = _read_uuid
