from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import replace

import pytest
from confluent_kafka import Consumer, TopicPartition

from ops.bootstrap import Kernel
from schemas.errors import LogUnavailableError, ValidationError
from schemas.events import Event, new_event
from streams.kafka.async_producer import AsyncProducer
from streams.kafka.producer import Producer


def _actions(n: int, subject: str = "acct-1") -> list[Event]:
    return [
        new_event("kernelAction", "svc", subject, {"action": f"a{i}", "context": {"i": i}})
        for i in range(n)
    ]


def read_all(kernel: Kernel, topic: str, committed: bool = True) -> list[tuple[bytes, Event, int]]:
    consumer = Consumer(
        {
            "bootstrap.servers": kernel.settings.kafka_bootstrap,
            "group.id": f"test-{uuid.uuid4()}",
            "isolation.level": "read_committed" if committed else "read_uncommitted",
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        }
    )
    parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in parts])
    out, eof = [], set()
    deadline = time.monotonic() + 20
    while len(eof) < len(parts) and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            eof.add(msg.partition())
            continue
        out.append((msg.key(), kernel.codec.decode(msg.value()), msg.partition()))
    consumer.close()
    return out


def test_publish_returns_the_durable_position_and_keys_by_subject(kernel: Kernel) -> None:
    producer = kernel.producer()
    events = _actions(5)
    positions = producer.publish_batch(events)
    assert [p.topic for p in positions] == [kernel.names.actions] * 5
    assert len({p.partition for p in positions}) == 1  # one subject, one partition
    offsets = [p.offset for p in positions]
    assert offsets == sorted(offsets) and len(set(offsets)) == 5
    records = read_all(kernel, kernel.names.actions)
    assert [e for _, e, _ in records] == events
    assert {k for k, _, _ in records} == {b"acct-1"}


def test_single_publish(kernel: Kernel) -> None:
    event = _actions(1)[0]
    pos = kernel.producer().publish(event)
    assert pos.offset >= 0
    assert read_all(kernel, kernel.names.actions)[0][1] == event


def test_atomic_publish_is_all_or_nothing(kernel: Kernel) -> None:
    producer = kernel.producer(transactional_id=f"t-{uuid.uuid4()}")
    events = _actions(3, "s1") + _actions(3, "s2")
    positions = producer.publish_atomic(events)
    assert len(positions) == 6
    assert sorted(e.event_id for _, e, _ in read_all(kernel, kernel.names.actions)) == sorted(
        e.event_id for e in events
    )


def test_async_producer(kernel: Kernel) -> None:
    events = _actions(4, "async")

    async def go() -> list[object]:
        async with AsyncProducer(
            kernel.settings.kafka_bootstrap, codec=kernel.codec, names=kernel.names
        ) as producer:
            first = await producer.publish(events[0])
            rest = await producer.publish_batch(events[1:])
            return [first, *rest]

    positions = asyncio.run(go())
    assert len(positions) == 4
    assert [e for _, e, _ in read_all(kernel, kernel.names.actions)] == events


# Without the producer's bound a publish to a dead broker waits for librdkafka's
# delivery timeout (300 s): a bound of 10x the configured 2 s tells the two apart
# without failing when a loaded machine stretches the 2 s (the old bound was 8 s).
TIMEOUT_S = 2
UNBOUNDED_S = 10 * TIMEOUT_S


def test_unreachable_kafka_fails_within_the_bound() -> None:
    producer = Producer("127.0.0.1:1", timeout_s=TIMEOUT_S)
    started = time.monotonic()
    with pytest.raises(LogUnavailableError, match="did not acknowledge"):
        producer.publish(_actions(1)[0])
    assert time.monotonic() - started < UNBOUNDED_S


def test_unreachable_kafka_async_fails_within_the_bound() -> None:
    async def go() -> None:
        async with AsyncProducer("127.0.0.1:1", timeout_s=TIMEOUT_S) as producer:
            await producer.publish(_actions(1)[0])

    started = time.monotonic()
    with pytest.raises(LogUnavailableError):
        asyncio.run(go())
    assert time.monotonic() - started < UNBOUNDED_S


def _refused_by_the_contract(good: Event) -> list[tuple[Event, str | None]]:
    """Events a foreign program could build directly (``Event(...)``, no door check)."""
    return [
        (replace(good, subject="acct\x00"), "subject"),
        (replace(good, body={**good.body, "context": {"x": _nested(250)}}), "body.context.x"),
        (replace(good, event_id="not-a-uuid"), "eventId"),
        (replace(good, ts_ms=253_402_300_799_999), "ts"),
        (replace(good, body={**good.body, "context": {f"k{i}": "x" * 40_000 for i in range(10)}}),
         None),
    ]  # fmt: skip


def _nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


def test_the_sdk_checks_the_input_contract_before_anything_is_sent(kernel: Kernel) -> None:
    good = _actions(1, "contract")[0]
    producer = kernel.producer(transactional_id=f"t-{uuid.uuid4()}")
    for bad, field in _refused_by_the_contract(good):
        for publish in (producer.publish_batch, producer.publish_atomic):
            with pytest.raises(ValidationError) as exc:
                publish([good, bad])  # the good one first: still nothing is sent
            if field is None:  # the size: no one field is to blame
                assert exc.value.field is None and "KERNEL_MAX_EVENT_BYTES" in exc.value.reason
            else:
                assert (exc.value.field or "").startswith(field), exc.value

        async def go(bad: Event = bad) -> None:
            async with AsyncProducer(
                kernel.settings.kafka_bootstrap, codec=kernel.codec, names=kernel.names
            ) as p:
                await p.publish_batch([good, bad])

        with pytest.raises(ValidationError):
            asyncio.run(go())
    assert read_all(kernel, kernel.names.actions) == []
