"""A trace started by a producer follows its event through the chain signer."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace

from confluent_kafka import Consumer, TopicPartition

from ops.bootstrap import Kernel
from streams import tracing
from tests.integration.core.test_producer import _actions


def _headers_by_event(kernel: Kernel, topic: str) -> dict[str, str | None]:
    consumer = Consumer(
        {
            "bootstrap.servers": kernel.settings.kafka_bootstrap,
            "group.id": f"t-{uuid.uuid4()}",
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in parts])
    out: dict[str, str | None] = {}
    eof: set[int] = set()
    deadline = time.monotonic() + 20
    while len(eof) < len(parts) and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            eof.add(msg.partition() or 0)
            continue
        event = kernel.codec.decode(msg.value() or b"")
        key = (
            event.body["payload"]["eventId"]
            if event.event_type == "auditRecord"
            else event.event_id
        )
        out[key] = tracing.trace_id(tracing.traceparent_of(msg.headers()))
    consumer.close()
    return out


def test_trace_ids_propagate_from_producer_to_chain_links(audit_kernel: Kernel) -> None:
    kernel = Kernel(replace(audit_kernel.settings, tracing=True))
    events = _actions(3, "x")
    kernel.producer().publish_batch(events)
    signer = kernel.chain_signer()
    try:
        signer.run_until_idle(idle_s=1.0)
    finally:
        signer.close()
    inputs = _headers_by_event(kernel, kernel.names.actions)
    links = _headers_by_event(kernel, kernel.names.chain)
    assert set(inputs) == {e.event_id for e in events}
    assert all(t is not None for t in inputs.values())
    assert links == inputs  # every link carries its event's trace id
