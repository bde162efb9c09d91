"""The Kernel event: a shared envelope and a typed body, and its JSON mapping.

The JSON mapping is the one users publish (``kernel publish``), the API
returns, and the audit chain hashes (through RFC 8785)::

    {"eventId": "<uuid, lowercase>", "eventType": "kernelAction",
     "ts": "2026-01-31T12:00:00.123Z", "actor": "...", "subject": "...",
     "schemaVersion": 1, "metadata": {"k": "v"}, "body": {...}}

Avro to JSON: ``uuid`` -> canonical lowercase string; ``timestamp-millis`` ->
RFC 3339 UTC with exactly three fractional digits and ``Z``; ``kernel-json``
strings -> the JSON value they hold; ``bytes`` -> standard base64; unions ->
the bare value (no Avro JSON-encoding type wrapper); ``null`` -> ``null``.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, cast

from schemas.catalog import EventSchema, catalog
from schemas.contract import InputContract, default_contract
from schemas.errors import ValidationError
from schemas.ijson import check_ijson

__all__ = ["Event", "format_ts", "new_event", "now_ms", "parse_ts"]

_ENVELOPE = ("eventId", "eventType", "ts", "actor", "subject", "schemaVersion", "metadata", "body")
_REQUIRED = ("eventType", "actor", "subject", "body")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def format_ts(ms: int) -> str:
    return _second(ms // 1000) + f"{ms % 1000:03d}Z"


@lru_cache(maxsize=4096)
def _second(seconds: int) -> str:
    # Events arrive in bursts within the same second: format once per second.
    # (Not strftime: glibc's %Y does not pad years before 1000 to four digits.)
    return (_EPOCH + timedelta(seconds=seconds)).isoformat()[:19] + "."


def parse_ts(text: str) -> int:
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, AttributeError) as exc:
        raise ValidationError(f"{text!r} is not an RFC 3339 timestamp", field="ts") from exc
    if dt.tzinfo is None:
        raise ValidationError("timestamp needs a UTC offset or Z", field="ts")
    # Integer arithmetic: float seconds * 1000 is off by one for many values.
    return (dt - _EPOCH) // _MS


def now_ms() -> int:
    """The wall clock, in UTC milliseconds."""
    return (datetime.now(tz=UTC) - _EPOCH) // _MS


_now_ms = now_ms


@dataclass(frozen=True, slots=True)
class Event:
    event_id: str
    event_type: str
    ts_ms: int
    actor: str
    subject: str
    body: dict[str, Any]
    schema_version: int = 1
    metadata: dict[str, str] = field(default_factory=dict)

    # -- JSON mapping ----------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "eventId": self.event_id,
            "eventType": self.event_type,
            "ts": format_ts(self.ts_ms),
            "actor": self.actor,
            "subject": self.subject,
            "schemaVersion": self.schema_version,
            "metadata": dict(self.metadata),
            "body": {k: _json_value(v) for k, v in self.body.items()},
        }

    @classmethod
    def from_json(cls, data: Any, *, contract: InputContract | None = None) -> Event:
        """Validate a JSON mapping against the newest schema of its event type.

        And against the input contract (its defaults unless ``contract`` is
        given), with ``ts`` relative to now: this is every door's check.
        """
        if not isinstance(data, dict):
            raise ValidationError("an event must be a JSON object")
        unknown = sorted(set(data) - set(_ENVELOPE))
        if unknown:
            raise ValidationError("unknown envelope field", field=unknown[0])
        for name in _REQUIRED:
            if name not in data:
                raise ValidationError("required field is missing", field=name)
        event_type = _str(data, "eventType")
        schema = catalog().newest(event_type) if _known(event_type) else None
        if schema is None:
            known = ", ".join(catalog().event_types)
            raise ValidationError(
                f"unknown event type {event_type!r}; known: {known}", field="eventType"
            )
        event_id = data.get("eventId") or str(uuid.uuid4())
        try:
            event_id = str(uuid.UUID(str(event_id)))
        except ValueError as exc:
            raise ValidationError(f"{event_id!r} is not a UUID", field="eventId") from exc
        version = data.get("schemaVersion", schema.version)
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ValidationError("must be a positive integer", field="schemaVersion")
        if version > schema.version:
            raise ValidationError(
                f"newest known version is {schema.version}", field="schemaVersion"
            )
        metadata = data.get("metadata", {})
        if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
        ):
            raise ValidationError("must be an object of string values", field="metadata")
        for name in ("actor", "subject"):
            check_ijson(data[name], name)
        check_ijson(metadata, "metadata")
        ts_raw = data.get("ts")
        ts_ms = _now_ms() if ts_raw is None else _ts(ts_raw)
        body = _body(schema, data["body"])
        event = cls(
            event_id=event_id,
            event_type=event_type,
            ts_ms=ts_ms,
            actor=_str(data, "actor"),
            subject=_str(data, "subject"),
            body=body,
            schema_version=version,
            metadata=dict(metadata),
        )
        (contract or default_contract()).check_event(event, now_ms=_now_ms())
        return event

    # -- Avro datum ------------------------------------------------------
    def to_avro(self) -> dict[str, Any]:
        return {
            "eventId": self.event_id,
            "eventType": self.event_type,
            "ts": self.ts_ms,
            "actor": self.actor,
            "subject": self.subject,
            "schemaVersion": self.schema_version,
            "metadata": self.metadata,
            "body": self.body,
        }

    @classmethod
    def from_avro(cls, datum: dict[str, Any]) -> Event:
        ts = datum["ts"]
        ts_ms = ts if isinstance(ts, int) else (ts - _EPOCH) // _MS
        return cls(
            event_id=str(datum["eventId"]),
            event_type=datum["eventType"],
            ts_ms=ts_ms,
            actor=datum["actor"],
            subject=datum["subject"],
            body=datum["body"],
            schema_version=datum["schemaVersion"],
            metadata=datum["metadata"],
        )


def new_event(
    event_type: str,
    actor: str,
    subject: str,
    body: dict[str, Any],
    *,
    ts_ms: int | None = None,
    metadata: dict[str, str] | None = None,
    contract: InputContract | None = None,
) -> Event:
    """An event of the newest schema version, with a fresh id; validated (see from_json)."""
    schema = catalog().newest(event_type)
    return Event.from_json(
        {
            "eventId": str(uuid.uuid4()),
            "eventType": event_type,
            "ts": format_ts(ts_ms if ts_ms is not None else _now_ms()),
            "actor": actor,
            "subject": subject,
            "schemaVersion": schema.version,
            "metadata": metadata or {},
            "body": body,
        },
        contract=contract,
    )


def _known(event_type: str) -> bool:
    return event_type in catalog().event_types


def _str(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise ValidationError("must be a non-empty string", field=name)
    return value


def _ts(raw: Any) -> int:
    if isinstance(raw, str):
        return parse_ts(raw)
    raise ValidationError("must be an RFC 3339 timestamp string", field="ts")


def _json_value(v: Any) -> Any:
    if isinstance(v, bytes):
        return base64.b64encode(v).decode()
    return v


def _body(schema: EventSchema, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValidationError("must be an object", field="body")
    unknown = sorted(set(body) - schema.body_fields)
    if unknown:
        raise ValidationError(f"unknown field for {schema.event_type}", field=f"body.{unknown[0]}")
    missing = sorted(schema.required_body_fields - set(body))
    if missing:
        raise ValidationError("required field is missing", field=f"body.{missing[0]}")
    out: dict[str, Any] = {}
    fields = schema.raw["fields"][-1]["type"]["fields"]
    for f in fields:
        name = f["name"]
        if name not in body:
            default = f["default"]
            out[name] = {} if name in schema.json_fields and default == "{}" else default
            continue
        out[name] = _field_value(f["type"], body[name], f"body.{name}", name in schema.json_fields)
    return out


_PRIMITIVE_CHECKS: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "boolean": (bool,),
    "int": (int,),
    "long": (int,),
    "double": (int, float),
    "float": (int, float),
    "bytes": (str, bytes),
}


def _field_value(avro_type: Any, value: Any, path: str, is_json: bool) -> Any:
    if is_json:
        check_ijson(value, path)
        return value
    if isinstance(avro_type, list):  # union
        if value is None:
            if "null" in avro_type:
                return None
            raise ValidationError("must not be null", field=path)
        branches = [t for t in avro_type if t != "null"]
        for branch in branches:
            try:
                return _field_value(branch, value, path, is_json=False)
            except ValidationError:
                continue
        raise ValidationError(f"expected one of {branches}, got {type(value).__name__}", field=path)
    name = avro_type["type"] if isinstance(avro_type, dict) else avro_type
    if name == "string" and isinstance(avro_type, dict) and avro_type.get("logicalType") == "uuid":
        try:
            return str(uuid.UUID(str(value)))
        except ValueError as exc:
            raise ValidationError(f"{value!r} is not a UUID", field=path) from exc
    expected = _PRIMITIVE_CHECKS.get(name)
    if expected is None:
        raise ValidationError(f"unsupported schema type {name}", field=path)
    if isinstance(value, bool) and name != "boolean":
        raise ValidationError(f"expected {name}, got boolean", field=path)
    if not isinstance(value, expected):
        raise ValidationError(f"expected {name}, got {type(value).__name__}", field=path)
    if name == "int" and not -(2**31) <= cast(int, value) < 2**31:
        raise ValidationError("out of range for a 32-bit int", field=path)
    if name == "long":
        check_ijson(value, path)
    if name == "string":
        check_ijson(value, path)
    if name == "bytes" and isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except ValueError as exc:
            raise ValidationError("bytes must be standard base64", field=path) from exc
    return value
