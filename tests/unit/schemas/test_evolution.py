"""Schema evolution: the newest version of each type reads every older one."""

from __future__ import annotations

import io
import json
from pathlib import Path

from fastavro import schemaless_reader, schemaless_writer
from hypothesis import given, settings
from hypothesis import strategies as st

from ops.commands.schemas_cmd import _problems
from schemas.catalog import SchemaCatalog, catalog
from schemas.codec import EventCodec
from schemas.compat import check_catalog, incompatibilities
from schemas.events import Event
from tests.strategies import bodies

ROOT = Path(__file__).resolve().parents[3] / "schemas" / "avro"


def test_published_schemas_are_locked_and_unchanged() -> None:
    assert _problems() == []


def test_newest_reads_every_older_version() -> None:
    assert check_catalog(catalog()) == []


def _catalog_with(tmp_path: Path, event_type: str, body: dict[str, object]) -> SchemaCatalog:
    (tmp_path / "_envelope.json").write_text((ROOT / "_envelope.json").read_text())
    folder = tmp_path / event_type
    folder.mkdir()
    (folder / "v1.avsc").write_text((ROOT / event_type / "v1.avsc").read_text())
    (folder / "v2.avsc").write_text(json.dumps(body))
    return SchemaCatalog.load(tmp_path)  # type: ignore[arg-type]


def _v1_body() -> dict[str, object]:
    return json.loads((ROOT / "kernelAction" / "v1.avsc").read_text())  # type: ignore[no-any-return]


def test_adding_a_field_with_a_default_is_compatible(tmp_path: Path) -> None:
    body = _v1_body()
    body["fields"].append({"name": "tenant", "type": ["null", "string"], "default": None})  # type: ignore[attr-defined]
    assert check_catalog(_catalog_with(tmp_path, "kernelAction", body)) == []


def test_adding_a_field_without_default_is_detected(tmp_path: Path) -> None:
    body = _v1_body()
    body["fields"].append({"name": "tenant", "type": "string"})  # type: ignore[attr-defined]
    problems = check_catalog(_catalog_with(tmp_path, "kernelAction", body))
    assert any("body.tenant" in p and "no default" in p for p in problems)


def test_changing_a_field_type_is_detected(tmp_path: Path) -> None:
    body = _v1_body()
    body["fields"][0] = {"name": "action", "type": "int"}  # type: ignore[index]
    problems = check_catalog(_catalog_with(tmp_path, "kernelAction", body))
    assert any("body.action" in p for p in problems)


def test_checker_agrees_with_fastavro_on_promotion() -> None:
    assert incompatibilities("int", "long") == []
    assert incompatibilities("long", "int") != []
    assert incompatibilities("string", ["null", "string"]) == []
    assert incompatibilities(["null", "string"], "string") != []


@settings(max_examples=30)
@given(st.data())
def test_newer_version_reads_data_of_older_version(
    tmp_path_factory: object, data: st.DataObject
) -> None:
    body = _v1_body()
    body["fields"].append({"name": "tenant", "type": ["null", "string"], "default": None})  # type: ignore[attr-defined]
    tmp = tmp_path_factory.mktemp("evo")  # type: ignore[attr-defined]
    cat = _catalog_with(tmp, "kernelAction", body)
    v1, v2 = cat.get("kernelAction", 1), cat.get("kernelAction", 2)
    datum = {
        "eventId": "00000000-0000-4000-8000-000000000000",
        "eventType": "kernelAction",
        "ts": 0,
        "actor": "a",
        "subject": "s",
        "schemaVersion": 1,
        "metadata": {},
        "body": data.draw(bodies(v1)),
    }
    buf = io.BytesIO()
    schemaless_writer(buf, v1.parsed, datum)
    buf.seek(0)
    read = schemaless_reader(buf, v1.parsed, v2.parsed)
    assert read["body"]["tenant"] is None
    assert read["body"]["action"] == datum["body"]["action"]


@settings(max_examples=20, deadline=None)
@given(st.data())
def test_a_json_field_added_later_reads_as_its_json_default(
    tmp_path_factory: object, data: st.DataObject
) -> None:
    # Avro resolution fills the missing field with the default *text* ("[]"); the
    # codec gives it the JSON value, as if the writer had carried the default.
    body = _v1_body()
    body["fields"].append(  # type: ignore[attr-defined]
        {
            "name": "labels",
            "type": {"type": "string", "logicalType": "kernel-json"},
            "default": "[]",
        }
    )
    tmp = tmp_path_factory.mktemp("evojson")  # type: ignore[attr-defined]
    cat = _catalog_with(tmp, "kernelAction", body)
    codec = EventCodec(cat)
    v1 = cat.get("kernelAction", 1)
    old = Event(
        event_id="00000000-0000-4000-8000-000000000000",
        event_type="kernelAction",
        ts_ms=1_700_000_000_000,
        actor="a",
        subject="s",
        body=data.draw(bodies(v1)),
        schema_version=1,
    )
    read = codec.decode(codec.encode(old))
    assert read.body["labels"] == []
    assert read.body["action"] == old.body["action"]
    new = Event(**{**_fields(old), "schema_version": 2, "body": {**read.body, "labels": ["x"]}})
    assert codec.decode(codec.encode(new)).body["labels"] == ["x"]


def _fields(event: Event) -> dict[str, object]:
    return {
        "event_id": event.event_id,
        "event_type": event.event_type,
        "ts_ms": event.ts_ms,
        "actor": event.actor,
        "subject": event.subject,
        "body": event.body,
        "schema_version": event.schema_version,
        "metadata": event.metadata,
    }
