"""Read a partition's committed records as raw bytes, a consumer batch at a time.

Replay decodes and verifies chain links in worker processes
(:mod:`replay.verify_pool`), so the main process only moves bytes: this is
``KafkaLogReader.iter`` without the decode and without one Python object per
record (``read_committed``, the same short waits and silence deadline).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

from confluent_kafka import Consumer, KafkaError, TopicPartition

from schemas.errors import LogUnavailableError

__all__ = ["RawChunk", "RawLogReader"]

# (offsets, values) of consecutive records of one partition.
RawChunk = tuple[list[int], list[bytes]]


class RawLogReader:
    def __init__(self, bootstrap: str, timeout_s: float = 10.0) -> None:
        self._timeout = timeout_s
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"kernel-replay-{uuid.uuid4()}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
                "auto.offset.reset": "earliest",
            }
        )

    def chunks(self, topic: str, partition: int, start: int, end: int) -> Iterator[RawChunk]:
        """Committed records with offsets in ``[start, end)``, in order."""
        if end <= start:
            return
        self._consumer.assign([TopicPartition(topic, partition, start)])
        deadline = time.monotonic() + self._timeout
        try:
            while True:
                msgs = self._consumer.consume(5000, 0.1)
                if not msgs:
                    if time.monotonic() > deadline:
                        raise LogUnavailableError(
                            f"no data from {topic}/{partition} within {self._timeout:.0f}s"
                        )
                    continue
                deadline = time.monotonic() + self._timeout
                offsets: list[int] = []
                values: list[bytes] = []
                done = False
                for msg in msgs:
                    err = msg.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            done = True
                            break
                        raise LogUnavailableError(f"reading {topic}/{partition}: {err.str()}")
                    offset = int(msg.offset() or 0)
                    if offset >= end:
                        done = True
                        break
                    offsets.append(offset)
                    values.append(msg.value() or b"")
                if offsets:
                    yield offsets, values
                if done:
                    return
        finally:
            self._consumer.unassign()

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> RawLogReader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
