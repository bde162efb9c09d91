"""Adapter: rebuild the policy registry by reading the policies topic (Kafka).

A plain confluent-kafka consumer, ``read_committed`` (an aborted publish is
never seen), assigned -- no consumer group coordination -- from offset 0 of
every partition and polled one record at a time until each partition reports
EOF. (A batch ``consume(n, timeout)`` waits out its whole timeout when fewer
than ``n`` records exist, which made each CLI call take ten seconds.)
Undecodable records are skipped and counted: this reader serves validation and
display; the dead-letter path belongs to the projector that owns the table.
"""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from schemas.codec import EventCodec
from schemas.errors import KernelError, LogUnavailableError
from schemas.events import Event
from streams.sentinel.registry import PolicyRegistry

__all__ = ["load_registry", "read_policy_changes"]


def read_policy_changes(
    bootstrap: str, codec: EventCodec, topic: str, timeout_s: float = 10.0
) -> list[Event]:
    """Every committed policyChange event of ``topic``, partition by partition."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"kernel-policy-reader-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        meta = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if meta is None or meta.error is not None:
            raise LogUnavailableError(f"topic {topic} does not exist; run `kernel topics ensure`")
        parts = sorted(meta.partitions)
        pending = set()
        for p in parts:
            _low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
            if high > 0:
                pending.add(p)
        events: dict[int, list[Event]] = {p: [] for p in parts}
        if pending:
            consumer.assign([TopicPartition(topic, p, 0) for p in sorted(pending)])
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise LogUnavailableError(f"reading {topic} did not finish in {timeout_s:.0f}s")
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    pending.discard(msg.partition())
                    continue
                raise LogUnavailableError(f"reading {topic}: {err.str()}")
            try:
                event = codec.decode(msg.value() or b"")
            except KernelError:
                continue
            if event.event_type == "policyChange":
                events[int(msg.partition() or 0)].append(event)
        return [e for p in parts for e in events[p]]
    except KafkaException as exc:
        raise LogUnavailableError(f"Kafka at {bootstrap}: {exc}") from exc
    finally:
        consumer.close()


def load_registry(
    bootstrap: str, codec: EventCodec, topic: str, timeout_s: float = 10.0
) -> PolicyRegistry:
    """The registry as of the end of ``topic`` at call time."""
    registry = PolicyRegistry()
    registry.apply_events(read_policy_changes(bootstrap, codec, topic, timeout_s))
    return registry
