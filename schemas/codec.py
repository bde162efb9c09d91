"""Avro encoding of events, framed so that every record names its schema.

Without a schema registry: Avro single-object encoding, ``C3 01`` followed by
the 8-byte little-endian CRC-64-AVRO fingerprint of the writer schema's
parsing canonical form, then the Avro binary body. With a registry
(KERNEL_SCHEMA_REGISTRY_URL): the Confluent framing, ``00`` + 4-byte
big-endian schema id. Decoding resolves the writer schema by fingerprint or id
and reads it with the newest schema of the event type (Avro resolution), so a
consumer always sees the newest shape.

Decoding enforces the input contract (:mod:`schemas.contract`) on every
record, so every worker's decoder refuses what a door would: trailing bytes
after the Avro body, an envelope ``eventType`` other than the writer
schema's, a non-UUID ``eventId``, duplicate keys inside ``kernel-json``
fields, a ``ts`` outside its window, and every size and depth limit. It reads
with the schemas stripped of their logical types (:func:`_wire`) and converts
itself: ``ts`` stays integer milliseconds and each ``kernel-json`` text is
parsed once, under the contract, knowing its field -- cheaper than fastavro's
per-value hooks and a ``datetime`` round trip (``python -m bench.codec``).
"""

from __future__ import annotations

import io
import struct
from typing import Any, Protocol, cast

from fastavro import parse_schema, schemaless_reader, schemaless_writer

from schemas.catalog import EventSchema, SchemaCatalog, catalog
from schemas.contract import DERIVED_TYPES, InputContract, default_contract
from schemas.errors import KernelError, SchemaError, ValidationError
from schemas.events import Event, now_ms

__all__ = ["SINGLE_OBJECT_MAGIC", "EventCodec", "SchemaRegistry"]

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
_CONFLUENT_MAGIC = 0


class SchemaRegistry(Protocol):
    """The two calls of a Confluent-compatible registry the codec needs."""

    def register(self, subject: str, schema: EventSchema) -> int: ...

    def schema_for(self, schema_id: int) -> str: ...  # canonical form


class EventCodec:
    def __init__(
        self,
        schemas: SchemaCatalog | None = None,
        *,
        registry: SchemaRegistry | None = None,
        contract: InputContract | None = None,
    ) -> None:
        self.schemas = schemas or catalog()
        self.registry = registry
        self.contract = contract or default_contract()
        self.max_bytes = self.contract.max_record_bytes
        self._wire_schemas: dict[tuple[str, int], dict[str, Any]] = {}
        self._ids: dict[tuple[str, int], int] = {}
        self._by_id: dict[int, EventSchema] = {}
        self._by_canonical = {s.canonical: s for s in self.schemas.all()}

    # -- encode -----------------------------------------------------------
    def encode(self, event: Event) -> bytes:
        schema = self.schemas.get(event.event_type, event.schema_version)
        buf = io.BytesIO()
        buf.write(self._header(schema))
        try:
            schemaless_writer(buf, schema.parsed, event.to_avro())
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ValidationError(f"does not match {schema.key}: {exc}") from exc
        data = buf.getvalue()
        if len(data) > self.max_bytes:
            raise ValidationError(
                f"encoded event is {len(data)} bytes, over the maximum of {self.max_bytes} "
                "(KERNEL_MAX_RECORD_BYTES)"
            )
        return data

    def encode_checked(self, event: Event, *, now: int | None = None) -> bytes:
        """``encode`` at a door: the input contract first, relative to now."""
        data = self.encode(event)
        self.contract.check_event(
            event, now_ms=now_ms() if now is None else now, encoded_bytes=len(data)
        )
        return data

    def _header(self, schema: EventSchema) -> bytes:
        if self.registry is None:
            return SINGLE_OBJECT_MAGIC + schema.fingerprint
        key = (schema.event_type, schema.version)
        if key not in self._ids:
            schema_id = self.registry.register(f"kernel.event.{schema.event_type}", schema)
            self._ids[key] = schema_id
            self._by_id[schema_id] = schema
        return struct.pack(">bI", _CONFLUENT_MAGIC, self._ids[key])

    # -- decode -----------------------------------------------------------
    def writer_schema(self, data: bytes) -> tuple[EventSchema, int]:
        """The schema that wrote ``data`` and the offset of its Avro body."""
        if data[:2] == SINGLE_OBJECT_MAGIC and len(data) >= 10:
            return self.schemas.by_fingerprint(bytes(data[2:10])), 10
        if data[:1] == b"\x00" and len(data) >= 5:
            (schema_id,) = struct.unpack(">I", data[1:5])
            return self._schema_by_id(schema_id), 5
        raise SchemaError(
            "record is neither Avro single-object encoded (C3 01) nor Confluent framed (00)"
        )

    def _schema_by_id(self, schema_id: int) -> EventSchema:
        if schema_id in self._by_id:
            return self._by_id[schema_id]
        if self.registry is None:
            raise SchemaError(
                f"Confluent-framed record (schema id {schema_id}) but no registry "
                "is configured; set KERNEL_SCHEMA_REGISTRY_URL"
            )
        canonical = self.registry.schema_for(schema_id)
        schema = self._by_canonical.get(canonical)
        if schema is None:
            raise SchemaError(f"registry schema id {schema_id} is not a schema this build knows")
        self._by_id[schema_id] = schema
        return schema

    def decode(self, data: bytes, *, log_ts_ms: int | None = None) -> Event:
        """The event in ``data``; SchemaError or ValidationError, never another error.

        ``log_ts_ms``, the record's Kafka timestamp, bounds ``ts`` from above
        (plus the contract's skew); without it only the fixed bounds apply.
        """
        try:
            return self._decode(data, log_ts_ms)
        except KernelError:
            raise
        except Exception as exc:  # a bug here must not stop a worker: it is this record's fault
            raise SchemaError(f"undecodable record: {type(exc).__name__}: {exc}") from exc

    def _decode(self, data: bytes, log_ts_ms: int | None) -> Event:
        writer, start = self.writer_schema(data)
        reader = self.schemas.newest(writer.event_type)
        wire_writer = self._wire(writer)
        wire_reader = wire_writer if writer is reader else self._wire(reader)
        buf = io.BytesIO(data)
        buf.seek(start)
        try:
            datum: Any = schemaless_reader(buf, wire_writer, wire_reader)
        except Exception as exc:  # fastavro raises many types on corrupt input
            raise SchemaError(f"corrupt {writer.key} record: {type(exc).__name__}: {exc}") from exc
        end = buf.tell()
        if end != len(data):
            raise SchemaError(
                f"{len(data) - end} bytes after the end of the {writer.key} record at byte {end}"
            )
        if datum["eventType"] != writer.event_type:
            raise ValidationError(
                f"{datum['eventType']!r} in a record written with {writer.key}", field="eventType"
            )
        if datum["schemaVersion"] != writer.version:
            # The producer's claim must match the schema it wrote with.
            raise SchemaError(
                f"record claims schemaVersion {datum['schemaVersion']} "
                f"but was written with {writer.key}"
            )
        body = datum["body"]
        derived = writer.event_type in DERIVED_TYPES
        json_field = self.contract.json_field
        for name in reader.json_fields:
            body[name] = json_field(body[name], f"body.{name}", depth=3, derived=derived)
        event = Event(
            event_id=datum["eventId"],
            event_type=datum["eventType"],
            ts_ms=datum["ts"],
            actor=datum["actor"],
            subject=datum["subject"],
            body=body,
            schema_version=datum["schemaVersion"],
            metadata=datum["metadata"],
        )
        self.contract.check_event(
            event, log_ts_ms=log_ts_ms, encoded_bytes=len(data), checked=reader.json_fields
        )
        return event

    def _wire(self, schema: EventSchema) -> dict[str, Any]:
        key = (schema.event_type, schema.version)
        wire = self._wire_schemas.get(key)
        if wire is None:
            wire = cast(dict[str, Any], parse_schema(_strip_logical(schema.raw)))
            self._wire_schemas[key] = wire
        return wire


_STRIPPED = frozenset({"uuid", "timestamp-millis", "kernel-json"})


def _strip_logical(schema: Any) -> Any:
    """``schema`` without the logical types the codec converts itself."""
    if isinstance(schema, list):
        return [_strip_logical(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strip_logical(v) for k, v in schema.items() if k != "default"}
    if "default" in schema:
        out["default"] = schema["default"]
    if out.get("logicalType") in _STRIPPED:
        del out["logicalType"]
    return out
