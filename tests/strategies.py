"""hypothesis strategies for events, built from the Avro schemas themselves."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from schemas.catalog import EventSchema, catalog
from schemas.contract import OLDEST_TS_MS
from schemas.events import Event
from schemas.ijson import MAX_SAFE_INTEGER

# Kafka headers and Postgres text reject NUL; everything else in Unicode is fair game.
text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=40)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
    | st.floats(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER, allow_nan=False, width=64)
    | text
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)
json_objects = st.dictionaries(text, json_values, max_size=5)


def _for_type(avro_type: Any, is_json: bool) -> st.SearchStrategy[Any]:
    if is_json:
        return json_objects
    if isinstance(avro_type, list):
        return st.one_of([_for_type(t, False) for t in avro_type])
    name = avro_type["type"] if isinstance(avro_type, dict) else avro_type
    if isinstance(avro_type, dict) and avro_type.get("logicalType") == "uuid":
        return st.uuids().map(str)
    return {
        "null": st.none(),
        "string": text,
        "boolean": st.booleans(),
        "int": st.integers(-(2**31), 2**31 - 1),
        "long": st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER),
        "bytes": st.binary(max_size=32),
    }[name]


def bodies(schema: EventSchema) -> st.SearchStrategy[dict[str, Any]]:
    fields = schema.raw["fields"][-1]["type"]["fields"]
    shapes = {f["name"]: _for_type(f["type"], f["name"] in schema.json_fields) for f in fields}
    if schema.event_type == "auditRecord":  # a link's payload is the audited event's JSON
        shapes["payload"] = _events_of(catalog().newest("kernelAction")).map(Event.to_json)
    return st.fixed_dictionaries(shapes)


def events(event_type: str | None = None) -> st.SearchStrategy[Event]:
    types = [event_type] if event_type else catalog().event_types
    return st.sampled_from(types).flatmap(lambda t: _events_of(catalog().newest(t)))


def _events_of(schema: EventSchema) -> st.SearchStrategy[Event]:
    return st.builds(
        Event,
        event_id=st.uuids().map(str),
        event_type=st.just(schema.event_type),
        # The input contract's window: not before 2000, not in the future (2026-01-01).
        ts_ms=st.integers(OLDEST_TS_MS, 1_767_225_600_000),
        actor=text.filter(bool),
        subject=text.filter(bool),
        body=bodies(schema),
        schema_version=st.just(schema.version),
        metadata=st.dictionaries(text, text, max_size=3),
    )
