"""Where replay starts reading: a partition's first offset at or after a time.

Kafka keeps a time index per partition (``offsets_for_times``); an offset of
-1 means no record is that recent, i.e. start at the end.
"""

from __future__ import annotations

import uuid

from confluent_kafka import Consumer, KafkaException, TopicPartition

from schemas.errors import LogUnavailableError

__all__ = ["offsets_for_time"]


def offsets_for_time(
    bootstrap: str, topic: str, partitions: list[int], ts_ms: int, *, ends: dict[int, int],
    timeout_s: float = 10.0,
) -> dict[int, int]:  # fmt: skip
    """Per partition, the first offset whose timestamp is ``>= ts_ms`` (else its end)."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"kernel-replay-{uuid.uuid4()}"}
    )
    try:
        found = consumer.offsets_for_times(
            [TopicPartition(topic, p, ts_ms) for p in partitions], timeout=timeout_s
        )
    except KafkaException as exc:
        raise LogUnavailableError(f"Kafka at {bootstrap}: {exc}") from exc
    finally:
        consumer.close()
    return {tp.partition: tp.offset if tp.offset >= 0 else ends[tp.partition] for tp in found}
