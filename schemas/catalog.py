"""The schema catalog: every event type, every version, and their fingerprints.

A schema is assembled from the shared envelope (``avro/_envelope.json``) and a
versioned body (``avro/<eventType>/v<N>.avsc``). The full record is named
``kernel.event.<EventType>`` in every version, so Avro schema resolution can
read an old version with the newest one. ``avro/schemas.lock.json`` pins the
CRC-64-AVRO fingerprint of every published version: a test fails when a
published schema changes, and ``kernel schemas lock`` records a new version.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any, cast

from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

from schemas import jsonlogical  # noqa: F401 - registers the kernel-json logical type
from schemas.errors import SchemaError

__all__ = ["EventSchema", "SchemaCatalog", "catalog"]

_VERSION = re.compile(r"^v(\d+)\.avsc$")


@dataclass(frozen=True)
class EventSchema:
    event_type: str
    version: int
    raw: dict[str, Any]  # the assembled full schema, as JSON
    parsed: dict[str, Any]  # fastavro's parsed form
    canonical: str  # Avro parsing canonical form
    fingerprint: bytes  # CRC-64-AVRO, little-endian, as single-object encoding wants
    json_fields: frozenset[str]  # body fields that hold I-JSON (logicalType kernel-json)
    body_fields: frozenset[str]
    required_body_fields: frozenset[str]

    @property
    def key(self) -> str:
        return f"{self.event_type}/v{self.version}"


def _record_name(event_type: str) -> str:
    return "kernel.event." + event_type[0].upper() + event_type[1:]


def _assemble(envelope: dict[str, Any], event_type: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "record",
        "name": _record_name(event_type),
        "doc": body.get("doc", ""),
        "fields": [*envelope["fields"], {"name": "body", "type": body}],
    }


def _build(event_type: str, version: int, raw: dict[str, Any]) -> EventSchema:
    try:
        parsed = cast(dict[str, Any], parse_schema(raw))
    except Exception as exc:
        raise SchemaError(f"{event_type}/v{version}: invalid Avro schema: {exc}") from exc
    canonical = to_parsing_canonical_form(parsed)
    body = raw["fields"][-1]["type"]
    fields = body["fields"]
    json_fields = frozenset(
        f["name"]
        for f in fields
        if isinstance(f["type"], dict) and f["type"].get("logicalType") == "kernel-json"
    )
    return EventSchema(
        event_type=event_type,
        version=version,
        raw=raw,
        parsed=parsed,
        canonical=canonical,
        fingerprint=bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO")),
        json_fields=json_fields,
        body_fields=frozenset(f["name"] for f in fields),
        required_body_fields=frozenset(f["name"] for f in fields if "default" not in f),
    )


class SchemaCatalog:
    """All known schemas, looked up by event type and version or by fingerprint."""

    def __init__(self, schemas: list[EventSchema]) -> None:
        self._by_key = {(s.event_type, s.version): s for s in schemas}
        self._by_fp = {s.fingerprint: s for s in schemas}
        self._newest: dict[str, EventSchema] = {}
        for s in sorted(schemas, key=lambda s: s.version):
            self._newest[s.event_type] = s

    @classmethod
    def load(cls, root: Traversable | None = None) -> SchemaCatalog:
        base = root or resources.files("schemas").joinpath("avro")
        envelope = json.loads(base.joinpath("_envelope.json").read_text())
        schemas = []
        for folder in sorted(base.iterdir(), key=lambda p: p.name):
            if not folder.is_dir() or folder.name.startswith(("_", ".")):
                continue
            for file in folder.iterdir():
                match = _VERSION.match(file.name)
                if match:
                    body = json.loads(file.read_text())
                    raw = _assemble(envelope, folder.name, body)
                    schemas.append(_build(folder.name, int(match.group(1)), raw))
        return cls(schemas)

    @property
    def event_types(self) -> list[str]:
        return sorted(self._newest)

    def all(self) -> list[EventSchema]:
        return sorted(self._by_key.values(), key=lambda s: (s.event_type, s.version))

    def newest(self, event_type: str) -> EventSchema:
        try:
            return self._newest[event_type]
        except KeyError:
            known = ", ".join(self.event_types)
            raise SchemaError(f"unknown event type {event_type!r}; known: {known}") from None

    def get(self, event_type: str, version: int) -> EventSchema:
        try:
            return self._by_key[(event_type, version)]
        except KeyError:
            raise SchemaError(f"no schema {event_type}/v{version}") from None

    def by_fingerprint(self, fp: bytes) -> EventSchema:
        try:
            return self._by_fp[fp]
        except KeyError:
            raise SchemaError(f"no known schema has fingerprint {fp.hex()}") from None

    def lock(self) -> dict[str, str]:
        return {s.key: s.fingerprint.hex() for s in self.all()}


@cache
def catalog() -> SchemaCatalog:
    """The catalog shipped with the package, loaded once per process."""
    return SchemaCatalog.load()
