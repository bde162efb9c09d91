"""Avro encoding of events, framed so that every record names its schema.

Without a schema registry: Avro single-object encoding, ``C3 01`` followed by
the 8-byte little-endian CRC-64-AVRO fingerprint of the writer schema's
parsing canonical form, then the Avro binary body. With a registry
(KERNEL_SCHEMA_REGISTRY_URL): the Confluent framing, ``00`` + 4-byte
big-endian schema id. Decoding resolves the writer schema by fingerprint or id
and reads it with the newest schema of the event type (Avro resolution), so a
consumer always sees the newest shape.
"""

from __future__ import annotations

import io
import struct
from typing import Any, Protocol

import orjson
from fastavro import schemaless_reader, schemaless_writer

from schemas.catalog import EventSchema, SchemaCatalog, catalog
from schemas.errors import SchemaError, ValidationError
from schemas.events import Event

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
        max_bytes: int = 1_048_576,
    ) -> None:
        self.schemas = schemas or catalog()
        self.registry = registry
        self.max_bytes = max_bytes
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
                "(KERNEL_MAX_EVENT_BYTES)"
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

    def decode(self, data: bytes) -> Event:
        writer, start = self.writer_schema(data)
        reader = self.schemas.newest(writer.event_type)
        try:
            datum: Any = schemaless_reader(
                io.BytesIO(memoryview(data)[start:]), writer.parsed, reader.parsed
            )
        except Exception as exc:  # fastavro raises many types on corrupt input
            raise SchemaError(f"corrupt {writer.key} record: {type(exc).__name__}: {exc}") from exc
        if writer is not reader:
            _parse_json_defaults(datum["body"], writer, reader)
        event = Event.from_avro(datum)
        if event.schema_version != writer.version:
            # The producer's claim must match the schema it wrote with.
            raise SchemaError(
                f"record claims schemaVersion {event.schema_version} "
                f"but was written with {writer.key}"
            )
        return event


def _parse_json_defaults(body: dict[str, Any], writer: EventSchema, reader: EventSchema) -> None:
    """Give ``kernel-json`` fields the writer did not have their JSON value.

    Avro resolution fills a field the writer lacks with the reader's default as
    written in the schema -- for a ``kernel-json`` field, its JSON *text*
    (``"{}"``, ``"[]"``): fastavro applies logical types to what it decodes,
    not to defaults. Parsed here, a v1 record read as v2 shows the same value
    as a v2 record that carried the default.
    """
    for name in reader.json_fields - writer.body_fields:
        value = body.get(name)
        if isinstance(value, str):
            body[name] = orjson.loads(value)
