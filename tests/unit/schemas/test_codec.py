from __future__ import annotations

import pytest
from fastavro.schema import fingerprint
from hypothesis import given

from schemas.catalog import catalog
from schemas.codec import SINGLE_OBJECT_MAGIC, EventCodec
from schemas.contract import InputContract
from schemas.errors import SchemaError, ValidationError
from schemas.events import Event, new_event
from tests.strategies import events

codec = EventCodec()


@given(events())
def test_every_event_type_round_trips_through_avro(event: Event) -> None:
    assert codec.decode(codec.encode(event)) == event


@given(events())
def test_json_mapping_round_trips(event: Event) -> None:
    assert Event.from_json(event.to_json()).to_json() == event.to_json()


@given(events())
def test_every_record_names_its_schema(event: Event) -> None:
    data = codec.encode(event)
    schema = catalog().get(event.event_type, event.schema_version)
    assert data[:2] == SINGLE_OBJECT_MAGIC
    assert data[2:10] == schema.fingerprint


def test_fingerprint_is_crc64_avro_little_endian() -> None:
    # Avro spec test vector: the fingerprint of "null" is 7195948357588979594.
    assert bytes.fromhex(fingerprint('"null"', "CRC-64-AVRO")) == (7195948357588979594).to_bytes(
        8, "little"
    )


def test_all_required_event_types_exist() -> None:
    assert {
        "kernelAction",
        "policyCheck",
        "policyChange",
        "approval",
        "remediation",
        "keyRotation",
        "deadLetter",
    } <= set(catalog().event_types)


def _action() -> Event:
    return new_event("kernelAction", "svc", "acct-1", {"action": "pay", "context": {"n": 1}})


def test_unknown_fingerprint_is_a_schema_error() -> None:
    data = bytearray(codec.encode(_action()))
    data[2] ^= 0xFF
    with pytest.raises(SchemaError, match="fingerprint"):
        codec.decode(bytes(data))


def test_unframed_record_is_a_schema_error() -> None:
    with pytest.raises(SchemaError, match="single-object"):
        codec.decode(b'{"json": "not avro"}')


def test_truncated_record_is_a_schema_error() -> None:
    data = codec.encode(_action())
    with pytest.raises(SchemaError, match="corrupt"):
        codec.decode(data[:-5])


def test_an_encoded_record_over_max_record_bytes_is_refused_naming_the_variable() -> None:
    small = EventCodec(contract=InputContract(max_event_bytes=1000, max_record_bytes=20_000))
    # Event(...) skips the door's checks: encode is the last guard before Kafka.
    big = Event(**{**_fields(_action()), "body": {"action": "x", "context": {"b": "a" * 30_000}}})
    with pytest.raises(
        ValidationError, match=r"over the maximum of 20000 \(KERNEL_MAX_RECORD_BYTES"
    ):
        small.encode(big)


def _fields(event: Event) -> dict[str, object]:
    return {f: getattr(event, f) for f in Event.__dataclass_fields__}


def test_confluent_framing_with_a_registry() -> None:
    class Registry:
        def __init__(self) -> None:
            self.schemas: dict[int, str] = {}

        def register(self, subject: str, schema: object) -> int:
            sid = 100 + len(self.schemas)
            self.schemas[sid] = schema.canonical  # type: ignore[attr-defined]
            return sid

        def schema_for(self, schema_id: int) -> str:
            return self.schemas[schema_id]

    registry = Registry()
    writer = EventCodec(registry=registry)
    data = writer.encode(_action())
    assert data[0] == 0 and int.from_bytes(data[1:5], "big") == 100
    reader = EventCodec(registry=registry)  # a fresh codec resolves the id through the registry
    assert reader.decode(data).body["action"] == "pay"
    with pytest.raises(SchemaError, match="no registry"):
        EventCodec().decode(data)
