"""Can a reader schema read data written with a writer schema? (Avro resolution)

The subset of the Avro specification's resolution rules our schemas use:
records (matched by field name; a reader field absent from the writer needs a
default), primitives with the spec's promotions, unions, maps, arrays and
logical types (which must agree). Returns the list of problems, empty when
compatible, so ``kernel schemas check`` and the test suite can print them all.
"""

from __future__ import annotations

from typing import Any

from schemas.catalog import SchemaCatalog

__all__ = ["check_catalog", "incompatibilities"]

_PROMOTIONS = {
    "int": {"int", "long", "float", "double"},
    "long": {"long", "float", "double"},
    "float": {"float", "double"},
    "string": {"string", "bytes"},
    "bytes": {"bytes", "string"},
}


def _name(t: Any) -> str:
    if isinstance(t, list):
        return "union"
    return str(t["type"] if isinstance(t, dict) else t)


def incompatibilities(writer: Any, reader: Any, path: str = "") -> list[str]:
    w, r = _name(writer), _name(reader)
    if r == "union":
        if w == "union":
            return [p for branch in writer for p in _any_branch(branch, reader, path)]
        return _any_branch(writer, reader, path)
    if w == "union":
        # Every writer branch must be readable by the (non-union) reader.
        return [p for branch in writer for p in incompatibilities(branch, reader, path)]
    if w == "record" and r == "record":
        return _records(writer, reader, path)
    if w == "map" and r == "map":
        return incompatibilities(writer["values"], reader["values"], f"{path}{{}}")
    if w == "array" and r == "array":
        return incompatibilities(writer["items"], reader["items"], f"{path}[]")
    if r not in _PROMOTIONS.get(w, {w}):
        return [f"{path or '<root>'}: writer type {w} cannot be read as {r}"]
    wl = writer.get("logicalType") if isinstance(writer, dict) else None
    rl = reader.get("logicalType") if isinstance(reader, dict) else None
    if wl != rl:
        return [f"{path or '<root>'}: logical type changed from {wl} to {rl}"]
    return []


def _any_branch(writer: Any, reader_union: list[Any], path: str) -> list[str]:
    for branch in reader_union:
        if not incompatibilities(writer, branch, path):
            return []
    return [
        f"{path or '<root>'}: writer type {_name(writer)} matches no branch of the reader union"
    ]


def _records(writer: dict[str, Any], reader: dict[str, Any], path: str) -> list[str]:
    problems = []
    wfields = {f["name"]: f for f in writer["fields"]}
    for field in reader["fields"]:
        name = field["name"]
        sub = f"{path}.{name}" if path else name
        if name in wfields:
            problems += incompatibilities(wfields[name]["type"], field["type"], sub)
        elif "default" not in field:
            problems.append(f"{sub}: new field has no default, so older records cannot be read")
    return problems


def check_catalog(schemas: SchemaCatalog) -> list[str]:
    """Every event type's newest version must read every older version."""
    problems = []
    for event_type in schemas.event_types:
        newest = schemas.newest(event_type)
        for old in schemas.all():
            if old.event_type == event_type and old.version < newest.version:
                problems += [
                    f"{newest.key} cannot read {old.key}: {p}"
                    for p in incompatibilities(old.raw, newest.raw)
                ]
    return problems
