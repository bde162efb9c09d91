"""Read a partition's committed records as raw bytes, a consumer batch at a time.

Replay decodes and verifies chain links in worker processes
(:mod:`replay.verify_pool`), so the main process only moves bytes: the same
loop as ``KafkaLogReader.iter`` (:func:`~streams.kafka.log_reader.committed_batches`)
without the decode.
"""

from __future__ import annotations

from collections.abc import Iterator

from streams.kafka.clients import KafkaClients
from streams.kafka.log_reader import committed_batches, reader_consumer

__all__ = ["RawChunk", "RawLogReader"]

# (offsets, values) of consecutive records of one partition.
RawChunk = tuple[list[int], list[bytes]]


class RawLogReader:
    def __init__(self, kafka: KafkaClients | str, timeout_s: float = 10.0) -> None:
        self._timeout = timeout_s
        self._consumer = reader_consumer(kafka, "kernel-replay")

    def chunks(self, topic: str, partition: int, start: int, end: int) -> Iterator[RawChunk]:
        """Committed records with offsets in ``[start, end)``, in order."""
        batches = committed_batches(
            self._consumer, topic, partition, start, end, timeout_s=self._timeout, batch=5000
        )
        for msgs in batches:
            yield [int(m.offset() or 0) for m in msgs], [m.value() or b"" for m in msgs]

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> RawLogReader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
