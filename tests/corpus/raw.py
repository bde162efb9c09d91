"""Avro records written by hand, so that the corpus can say what the codec would refuse.

:func:`encode_raw` writes the Avro binary of an event type's schema with every
logical type stripped (``uuid``, ``timestamp-millis``, ``kernel-json`` are all
plain strings and longs on the wire), framed with the *real* schema's
single-object header. The bytes are exactly what a careless or hostile
producer with write access to a topic can put there: a kernel-json field with
duplicate keys, a NUL, an ``eventId`` that is not a UUID, an ``eventType``
that disagrees with the schema. :func:`encode_valid` goes through the real
codec, for valid records and for ones to corrupt afterwards (trailing bytes).
"""

from __future__ import annotations

import copy
import io
import uuid
from typing import Any

import orjson
from fastavro import parse_schema, schemaless_writer

from schemas.catalog import EventSchema, catalog
from schemas.codec import SINGLE_OBJECT_MAGIC
from schemas.events import Event, new_event
from schemas.jsonlogical import dumps_canonical

__all__ = [
    "action_datum",
    "audit_record_datum",
    "chain_of",
    "checkpoint_datum",
    "decode_wire",
    "encode_raw",
    "encode_valid",
    "now_ms",
    "policy_change_datum",
    "policy_check_datum",
]

_LOGICAL = ("uuid", "timestamp-millis", "kernel-json")
_plain_cache: dict[str, Any] = {}


def now_ms() -> int:
    import time

    return time.time_ns() // 1_000_000


def _strip(node: Any) -> Any:
    if isinstance(node, dict):
        if node.get("logicalType") in _LOGICAL:
            return node["type"]
        return {k: _strip(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_strip(v) for v in node]
    return node


def _plain(schema: EventSchema) -> Any:
    if schema.key not in _plain_cache:
        raw = _strip(copy.deepcopy(schema.raw))
        _plain_cache[schema.key] = parse_schema(raw, named_schemas={})
    return _plain_cache[schema.key]


def encode_raw(
    event_type: str, datum: dict[str, Any], *, version: int | None = None, trailing: bytes = b""
) -> bytes:
    """The single-object encoding of ``datum`` under ``event_type``'s schema, unchecked.

    ``datum`` holds wire values: strings for uuid and kernel-json fields (the
    JSON *text*, so duplicate keys survive), an int for ``ts``.
    """
    schema = catalog().newest(event_type) if version is None else catalog().get(event_type, version)
    buf = io.BytesIO()
    buf.write(SINGLE_OBJECT_MAGIC + schema.fingerprint)
    schemaless_writer(buf, _plain(schema), datum)
    return buf.getvalue() + trailing


def chain_of(data: bytes | None) -> str | None:
    """The ``chain`` a hand-made chain link or checkpoint names, if it decodes at all."""
    from fastavro import schemaless_reader

    for event_type in ("auditRecord", "chainCheckpoint"):
        schema = catalog().newest(event_type)
        if data is None or data[:10] != SINGLE_OBJECT_MAGIC + schema.fingerprint:
            continue
        try:
            datum = schemaless_reader(io.BytesIO(data[10:]), _plain(schema), None)
        except Exception:
            return None
        return str(datum["body"]["chain"])
    return None


def encode_valid(event: Event) -> bytes:
    """The codec's encoding of ``event`` (a unit test proves them equal), without its checks.

    Written by hand so that a size or depth the contract refuses can still be
    put on a topic: the corpus must not depend on the codec it is testing.
    """
    schema = catalog().get(event.event_type, event.schema_version)
    datum = event.to_avro()
    body = dict(datum["body"])
    for name in schema.json_fields:
        if not isinstance(body.get(name), str):
            body[name] = dumps_canonical(body[name])
    return encode_raw(event.event_type, {**datum, "body": body}, version=event.schema_version)


def decode_wire(data: bytes) -> dict[str, Any]:
    """The wire datum of a single-object record under its writer schema, unchecked."""
    from fastavro import schemaless_reader

    schema = catalog().by_fingerprint(bytes(data[2:10]))
    return schemaless_reader(io.BytesIO(data[10:]), _plain(schema), None)  # type: ignore[no-any-return]


def _envelope(event_type: str, **over: Any) -> dict[str, Any]:
    schema = catalog().newest(event_type)
    env: dict[str, Any] = {
        "eventId": str(uuid.uuid4()),
        "eventType": event_type,
        "ts": now_ms(),
        "actor": "corpus",
        "subject": "corpus-subject",
        "schemaVersion": schema.version,
        "metadata": {},
    }
    env.update({k: v for k, v in over.items() if k in env})
    return env


def action_datum(**over: Any) -> dict[str, Any]:
    """A kernelAction wire datum; envelope and body fields can be overridden by name."""
    body = {"action": "corpus.act", "resource": None, "requestId": None, "context": "{}"}
    body.update({k: v for k, v in over.items() if k in body})
    return {**_envelope("kernelAction", **over), "body": body}


def policy_check_datum(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "policyCheckId": str(uuid.uuid4()),
        "requestId": None,
        "decision": "allow",
        "allowed": True,
        "policyId": None,
        "policyVersion": None,
        "rationale": "no policy matched",
        "evidence": "{}",
        "evaluations": "[]",
        "notMatched": "[]",
        "outranked": "[]",
        "simMode": False,
        "mode": "sync",
        "subjectEventId": None,
    }
    body.update({k: v for k, v in over.items() if k in body})
    return {**_envelope("policyCheck", **over), "body": body}


def policy_change_datum(**over: Any) -> dict[str, Any]:
    policy = {
        "policyId": "corpus-p",
        "version": 1,
        "name": "corpus",
        "severity": "LOW",
        "scope": {"eventTypes": ["kernelAction"]},
        "rule": "true",
        "effect": "allow",
        "rationale": "r",
    }
    body: dict[str, Any] = {
        "policyId": "corpus-p",
        "version": 1,
        "change": "created",
        "fromState": None,
        "toState": "draft",
        "policy": orjson.dumps(policy).decode(),
        "reason": None,
    }
    body.update({k: v for k, v in over.items() if k in body})
    return {**_envelope("policyChange", **over), "body": body}


def audit_record_datum(**over: Any) -> dict[str, Any]:
    """A chain link with a well-formed shape (its hash and signature are not real)."""
    payload = new_event("kernelAction", "corpus", "s", {"action": "x"}).to_json()
    body: dict[str, Any] = {
        "chain": f"corpus-{uuid.uuid4().hex[:8]}/0",  # unique: a projected forgery is findable
        "seq": 0,
        "prevHash": "",
        "hash": "00" * 32,
        "signature": "AA==",
        "signerId": "corpus",
        "sourceTopic": "corpus",
        "sourcePartition": 0,
        "sourceOffset": 0,
        "payload": orjson.dumps(payload).decode(),
    }
    body.update({k: v for k, v in over.items() if k in body})
    return {**_envelope("auditRecord", **over), "body": body}


def checkpoint_datum(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "chain": f"corpus-{uuid.uuid4().hex[:8]}/0",
        "size": 1,
        "rootHash": "AA==",
        "headHash": "00" * 32,
        "signerId": "corpus",
        "note": "corpus\n1\nAA==\n",
    }
    body.update({k: v for k, v in over.items() if k in body})
    return {**_envelope("chainCheckpoint", **over), "body": body}
