"""A direct Avro reader for the one record replay reads by the million: auditRecord v1.

``EventCodec.decode`` is general: schema resolution, logical types, a
``datetime`` for ``ts``, an :class:`~schemas.events.Event`. Replay's workers
need only the body of an ``auditRecord``, so :class:`LinkDecoder` walks the
single-object encoded bytes of exactly that writer schema (checked field by
field against the catalog when it is built; any other schema turns it off)
and returns the body -- about half the cost (``bench/replay_audit.py``,
decision 0005).

It is a fast path, never a second opinion: it returns ``None`` for anything
it is not certain ``EventCodec.decode`` would read the same way (another
writer schema, a ``schemaVersion`` other than the writer's, bad UTF-8, JSON
orjson rejects, a truncated record or trailing bytes, anything the input
contract refuses -- checked by the contract's own ``json_field`` and
``check_event``, the codec's calls), and the caller then uses
``EventCodec.decode``, which names the fault.
``tests/unit/test_replay_pool.py`` checks with hypothesis that whenever it
returns a body, the codec returns the same one.
"""

from __future__ import annotations

from typing import Any

import orjson

from schemas.catalog import SchemaCatalog
from schemas.codec import SINGLE_OBJECT_MAGIC
from schemas.contract import InputContract, default_contract
from schemas.errors import KernelError
from schemas.events import Event

__all__ = ["LinkDecoder"]

_ENVELOPE = [
    ("eventId", {"type": "string", "logicalType": "uuid"}),
    ("eventType", "string"),
    ("ts", {"type": "long", "logicalType": "timestamp-millis"}),
    ("actor", "string"),
    ("subject", "string"),
    ("schemaVersion", "int"),
    ("metadata", {"type": "map", "values": "string"}),
]
_BODY = [
    ("chain", "string"),
    ("seq", "long"),
    ("prevHash", "string"),
    ("hash", "string"),
    ("signature", "string"),
    ("signerId", "string"),
    ("sourceTopic", "string"),
    ("sourcePartition", "int"),
    ("sourceOffset", "long"),
    ("payload", {"type": "string", "logicalType": "kernel-json"}),
]
_BODY_STRINGS = ("prevHash", "hash", "signature", "signerId", "sourceTopic")
_CHECKED = frozenset({"payload"})


class _UnsureError(Exception):
    pass


def _shape(fields: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    return [(f["name"], _bare(f["type"])) for f in fields]


def _bare(t: Any) -> Any:
    if isinstance(t, dict):
        return {k: v for k, v in t.items() if k in ("type", "logicalType", "values")}
    return t


class LinkDecoder:
    """``decode(data)``: the auditRecord body in ``data``, or None (use the codec)."""

    def __init__(self, schemas: SchemaCatalog, contract: InputContract | None = None) -> None:
        self._contract = contract or default_contract()
        self._prefix = b""
        schema = schemas.newest("auditRecord")
        fields = schema.raw["fields"]
        body = fields[-1]["type"]["fields"] if fields and fields[-1]["name"] == "body" else []
        if _shape(fields[:-1]) == _ENVELOPE and _shape(body) == _BODY:
            self._prefix = SINGLE_OBJECT_MAGIC + schema.fingerprint
            self._version = schema.version

    def decode(self, data: bytes, *, log_ts_ms: int | None = None) -> dict[str, Any] | None:
        if not self._prefix or data[:10] != self._prefix:
            return None
        try:
            return self._body(data, log_ts_ms)
        except (_UnsureError, IndexError, UnicodeDecodeError, orjson.JSONDecodeError, KernelError):
            return None

    def _body(self, data: bytes, log_ts_ms: int | None) -> dict[str, Any] | None:
        pos = 10
        event_id, pos = _string(data, pos)
        event_type, pos = _string(data, pos)
        ts, pos = _long(data, pos)
        actor, pos = _string(data, pos)
        subject, pos = _string(data, pos)
        version, pos = _long(data, pos)
        if event_type != "auditRecord" or version != self._version:
            return None
        metadata: dict[str, str] = {}
        while True:  # metadata: blocks of (key, value) until an empty one
            count, pos = _long(data, pos)
            if count == 0:
                break
            if count < 0:
                count = -count
                _, pos = _long(data, pos)  # the block's size in bytes
            for _ in range(count):
                key, pos = _string(data, pos)
                metadata[key], pos = _string(data, pos)
        body: dict[str, Any] = {}
        body["chain"], pos = _string(data, pos)
        body["seq"], pos = _long(data, pos)
        for name in _BODY_STRINGS:
            body[name], pos = _string(data, pos)
        body["sourcePartition"], pos = _long(data, pos)
        body["sourceOffset"], pos = _long(data, pos)
        payload, pos = _string(data, pos)
        if pos != len(data) or not -(2**31) <= body["sourcePartition"] < 2**31:
            return None
        contract = self._contract
        body["payload"] = contract.json_field(payload, "body.payload", depth=3, derived=True)
        event = Event(event_id, event_type, ts, actor, subject, body, version, metadata)
        contract.check_event(event, log_ts_ms=log_ts_ms, encoded_bytes=len(data), checked=_CHECKED)
        return body


def _long(data: bytes, pos: int) -> tuple[int, int]:
    """A zig-zag varint (Avro int and long)."""
    b = data[pos]
    pos += 1
    n = b & 0x7F
    shift = 7
    while b & 0x80:
        b = data[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
    if n >= 1 << 64:  # beyond a 64-bit long: leave it to the codec
        raise _UnsureError
    return (n >> 1) ^ -(n & 1), pos


def _string(data: bytes, pos: int) -> tuple[str, int]:
    n, pos = _long(data, pos)
    end = pos + n
    if n < 0 or end > len(data):
        raise _UnsureError
    return data[pos:end].decode(), end
