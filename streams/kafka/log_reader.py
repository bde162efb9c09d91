"""Read committed records of a partition to its end (for state recovery and replay)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from schemas.codec import EventCodec
from schemas.errors import KernelError, LogUnavailableError
from streams.kafka.clients import KafkaClients
from streams.processor import InputRecord

__all__ = ["KafkaLogReader", "committed_batches", "reader_consumer"]


def reader_consumer(kafka: KafkaClients | str, group_prefix: str) -> Consumer:
    """A consumer for reading partitions by assignment: committed records only, no commits."""
    return KafkaClients.of(kafka).consumer(
        {
            "group.id": f"{group_prefix}-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            # A read that ends at the partition's end learns it from an empty fetch
            # (partition EOF): the broker holds an empty fetch this long. 500 ms by
            # default, paid once per partition per read: a signer's recover read 10.
            "fetch.wait.max.ms": 10,
        }
    )


def committed_batches(
    consumer: Consumer,
    topic: str,
    partition: int,
    start: int,
    end: int,
    *,
    timeout_s: float,
    batch: int = 1000,
) -> Iterator[list[Message]]:
    """The committed records of ``topic/partition`` in ``[start, end)``, a consume batch
    at a time, in order; stops at ``end`` or the partition's end.

    Raises :class:`LogUnavailableError` on a Kafka error, or when nothing arrives
    for ``timeout_s``.
    """
    if end <= start:
        return
    consumer.assign([TopicPartition(topic, partition, start)])
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            # consume() waits for the full count or the timeout: keep the wait short
            # and bound the silence separately, or every read ends in a timeout.
            msgs = consumer.consume(batch, 0.1)
            if not msgs:
                if time.monotonic() > deadline:
                    raise LogUnavailableError(
                        f"no data from {topic}/{partition} within {timeout_s:.0f}s"
                    )
                continue
            deadline = time.monotonic() + timeout_s
            good: list[Message] = []
            done = False
            for msg in msgs:
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        done = True
                        break
                    raise LogUnavailableError(f"reading {topic}/{partition}: {err.str()}")
                if int(msg.offset() or 0) >= end:
                    done = True
                    break
                good.append(msg)
            if good:
                # The range's last record seen: done, without a fetch to the end.
                done = done or int(good[-1].offset() or 0) >= end - 1
                yield good
            if done:
                return
    finally:
        consumer.unassign()


class KafkaLogReader:
    def __init__(
        self, kafka: KafkaClients | str, codec: EventCodec, timeout_s: float = 10.0
    ) -> None:
        self._bootstrap = KafkaClients.of(kafka).bootstrap
        self._codec = codec
        self._timeout = timeout_s
        self._committed: dict[tuple[str, int], int] = {}
        self._consumer = reader_consumer(kafka, "kernel-reader")

    def set_committed(self, committed: dict[tuple[str, int], int]) -> None:
        """The owning runner's committed input positions, for :meth:`committed`."""
        self._committed = dict(committed)

    def committed(self, topic: str, partition: int) -> int:
        return self._committed.get((topic, partition), 0)

    def partitions(self, topic: str) -> list[int]:
        try:
            md = self._consumer.list_topics(topic, timeout=self._timeout)
        except KafkaException as exc:
            raise LogUnavailableError(f"Kafka at {self._bootstrap}: {exc}") from exc
        meta = md.topics.get(topic)
        if meta is None or meta.error is not None:
            return []
        return sorted(meta.partitions)

    def end_offset(self, topic: str, partition: int) -> int:
        try:
            _low, high = self._consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=self._timeout
            )
        except KafkaException as exc:
            # A topic this principal may not DESCRIBE is reported as unknown (Kafka does
            # not tell who may not read it that it exists).
            raise LogUnavailableError(
                f"Kafka at {self._bootstrap}: no end offset of {topic}/{partition} "
                f"(missing, or not authorized): {exc.args[0].str() if exc.args else exc}"
            ) from exc
        return int(high)

    def read(
        self, topic: str, partition: int, start: int, end: int | None = None
    ) -> list[InputRecord]:
        return list(self.iter(topic, partition, start, end=end))

    def read_keyed(
        self, topic: str, partition: int, start: int, end: int, keys: frozenset[bytes]
    ) -> list[InputRecord]:
        return list(self.iter(topic, partition, start, end=end, keys=keys))

    def iter(
        self,
        topic: str,
        partition: int,
        start: int,
        *,
        end: int | None = None,
        skip_undecodable: bool = True,
        keys: frozenset[bytes] | None = None,
    ) -> Iterator[InputRecord]:
        """Committed records from ``start`` until ``end`` (exclusive) or the partition's end.

        ``keys``: only records with one of these Kafka keys (filtered before decoding).
        """
        stop = self.end_offset(topic, partition) if end is None else end
        batches = committed_batches(
            self._consumer, topic, partition, start, stop, timeout_s=self._timeout
        )
        for msgs in batches:
            for msg in msgs:
                if keys is not None and msg.key() not in keys:
                    continue
                try:
                    event = self._codec.decode(msg.value() or b"", log_ts_ms=msg.timestamp()[1])
                except KernelError:
                    if skip_undecodable:
                        continue
                    raise
                ts = msg.timestamp()[1]
                yield InputRecord(topic, partition, int(msg.offset() or 0), ts, msg.key(), event)

    def close(self) -> None:
        self._consumer.close()
