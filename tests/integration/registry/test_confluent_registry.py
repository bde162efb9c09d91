"""The registry path end to end: the real Producer, a real registry, the codec.

With KERNEL_SCHEMA_REGISTRY_URL set, records on the log carry the Confluent
framing (``00`` + the 4-byte id the registry gave), the schema is registered
under ``kernel.event.<eventType>``, and a reader that has never seen the id
resolves it through the registry. Failures are SchemaErrors that name the
registry, not hangs.
"""

from __future__ import annotations

import struct
import time
import uuid
from dataclasses import replace

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition

from ops.bootstrap import Kernel
from ops.config import Settings
from schemas.catalog import catalog
from schemas.codec import EventCodec
from schemas.confluent_registry import ConfluentRegistry
from schemas.errors import SchemaError
from schemas.events import Event, new_event
from tests.integration.registry.apicurio import free_port

SUBJECT = "kernel.event.kernelAction"


def _actions(n: int) -> list[Event]:
    return [
        new_event("kernelAction", "svc", f"acct-{i % 2}", {"action": f"a{i}", "context": {"i": i}})
        for i in range(n)
    ]


def _raw_records(kernel: Kernel, topic: str, expected: int) -> list[tuple[bytes, int]]:
    """(value, Kafka timestamp) of every record on ``topic``."""
    consumer = Consumer(
        {
            "bootstrap.servers": kernel.settings.kafka_bootstrap,
            "group.id": f"test-{uuid.uuid4()}",
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
        }
    )
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in parts])
        out: list[tuple[bytes, int]] = []
        deadline = time.monotonic() + 20
        while len(out) < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            out.append((msg.value(), msg.timestamp()[1]))
        return out
    finally:
        consumer.close()


def test_records_carry_the_registry_id_and_decode_through_the_registry(
    registry_kernel: Kernel, registry_url: str
) -> None:
    events = _actions(4)
    registry_kernel.producer().publish_batch(events)

    latest = httpx.get(f"{registry_url}/subjects/{SUBJECT}/versions/latest", timeout=10)
    latest.raise_for_status()
    registry_id = latest.json()["id"]
    assert SUBJECT in httpx.get(f"{registry_url}/subjects", timeout=10).json()

    records = _raw_records(registry_kernel, registry_kernel.names.actions, len(events))
    assert len(records) == len(events)
    for value, _ in records:
        assert value[0] == 0  # Confluent magic byte, not single-object C3 01
        assert struct.unpack(">I", value[1:5])[0] == registry_id

    # A reader that never registered anything resolves the id through the registry.
    reader = Kernel(registry_kernel.settings).codec
    decoded = [reader.decode(value, log_ts_ms=ts) for value, ts in records]
    assert sorted(decoded, key=lambda e: e.event_id) == sorted(events, key=lambda e: e.event_id)


def test_the_body_is_the_single_object_body_and_only_the_header_differs(registry_url: str) -> None:
    event = _actions(1)[0]
    framed = EventCodec(registry=ConfluentRegistry(registry_url)).encode(event)
    single_object = EventCodec().encode(event)  # the default: no registry
    assert single_object[:2] == b"\xc3\x01"
    assert framed[5:] == single_object[10:]


def test_registering_the_same_schema_again_returns_the_same_id(registry_url: str) -> None:
    schema = catalog().newest("kernelAction")
    first = ConfluentRegistry(registry_url).register(SUBJECT, schema)
    # A new client has no cache: the registry itself answers the existing id.
    assert ConfluentRegistry(registry_url).register(SUBJECT, schema) == first
    assert ConfluentRegistry(registry_url).schema_for(first) == schema.canonical


def test_an_id_the_registry_does_not_know_is_a_schema_error(registry_url: str) -> None:
    body = EventCodec().encode(_actions(1)[0])[10:]
    record = struct.pack(">bI", 0, 987_654) + body
    codec = EventCodec(registry=ConfluentRegistry(registry_url))
    with pytest.raises(SchemaError, match=rf"{registry_url} has no usable schema id 987654"):
        codec.decode(record)


def test_a_registry_that_is_down_is_a_clear_error_not_a_hang(settings: Settings) -> None:
    down = f"http://127.0.0.1:{free_port()}/apis/ccompat/v7"  # nothing listens there
    kernel = Kernel(replace(settings, schema_registry_url=down))
    kernel.topic_admin().ensure()
    started = time.monotonic()
    with pytest.raises(SchemaError, match=rf"schema registry {down} did not register"):
        kernel.producer().publish(_actions(1)[0])
    record = struct.pack(">bI", 0, 1) + EventCodec().encode(_actions(1)[0])[10:]
    with pytest.raises(SchemaError, match=rf"schema registry {down} has no usable schema id 1"):
        kernel.codec.decode(record)
    assert time.monotonic() - started < 10
