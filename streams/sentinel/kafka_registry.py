"""Adapter: rebuild the policy registry by reading the policies topic (Kafka).

A :class:`~streams.kafka.log_reader.KafkaLogReader` (``read_committed``: an
aborted publish is never seen; assigned, no consumer group coordination) reads
every partition from offset 0 to its end. Undecodable records are skipped: this
reader serves validation and display; the dead-letter path belongs to the
projector that owns the table.
"""

from __future__ import annotations

from confluent_kafka import KafkaException

from schemas.codec import EventCodec
from schemas.errors import LogUnavailableError
from schemas.events import Event
from streams.kafka.clients import KafkaClients
from streams.kafka.log_reader import KafkaLogReader
from streams.sentinel.lifecycle import ActivationApprovals
from streams.sentinel.registry import PolicyRegistry

__all__ = ["load_registry", "read_policy_changes"]


def read_policy_changes(
    kafka: KafkaClients | str, codec: EventCodec, topic: str, timeout_s: float = 10.0
) -> list[Event]:
    """Every committed policyChange event of ``topic``, partition by partition."""
    reader = KafkaLogReader(kafka, codec, timeout_s)
    try:
        parts = reader.partitions(topic)
        if not parts:
            raise LogUnavailableError(f"topic {topic} does not exist; run `kernel topics ensure`")
        return [
            record.event
            for p in parts
            for record in reader.iter(topic, p, 0)
            if record.event.event_type == "policyChange"
        ]
    except KafkaException as exc:
        raise LogUnavailableError(f"Kafka at {KafkaClients.of(kafka).bootstrap}: {exc}") from exc
    finally:
        reader.close()


def load_registry(
    kafka: KafkaClients | str,
    codec: EventCodec,
    topic: str,
    timeout_s: float = 10.0,
    approvals: ActivationApprovals | None = None,
) -> PolicyRegistry:
    """The registry as of the end of ``topic`` at call time (with the k-of-n rule, if given)."""
    registry = PolicyRegistry(approvals=approvals)
    registry.apply_events(read_policy_changes(kafka, codec, topic, timeout_s))
    return registry
