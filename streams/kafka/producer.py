"""The producer SDK: publish events durably, get their position back.

Idempotent producer with ``acks=all``: a publish returns only once every
in-sync replica has the record, and librdkafka's retries cannot duplicate or
reorder it. The record key is the event's subject, because Kafka orders only
within a partition and the subject is the unit whose order matters.

``publish_atomic`` wraps a batch in a Kafka transaction: all of it becomes
visible to ``read_committed`` consumers, or none of it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message

from schemas.codec import EventCodec
from schemas.errors import KernelError, LogUnavailableError
from schemas.events import Event
from schemas.positions import LogPosition
from schemas.topics import TopicNames
from streams import tracing
from streams.kafka.clients import KafkaClients
from streams.processor import OutputRecord

__all__ = ["Producer", "producer_config"]

# (topic, key, value), or (topic, key, value, partition)
_Encoded = tuple[str, bytes, bytes] | tuple[str, bytes, bytes, int | None]


def producer_config(timeout_s: float, **extra: Any) -> dict[str, Any]:
    """A durable producer's settings (the connection's come from :class:`KafkaClients`)."""
    ms = int(timeout_s * 1000)
    config: dict[str, Any] = {
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
        "message.timeout.ms": ms,
        "socket.connection.setup.timeout.ms": min(ms, 10_000),
        "transaction.timeout.ms": max(ms, 60_000),
    }
    config.update(extra)
    return config


class Producer:
    def __init__(
        self,
        kafka: KafkaClients | str,
        *,
        codec: EventCodec | None = None,
        names: TopicNames | None = None,
        timeout_s: float = 10.0,
        transactional_id: str | None = None,
        config: dict[str, Any] | None = None,
        tracing: bool = False,
    ) -> None:
        self.codec = codec or EventCodec()
        self.names = names or TopicNames()
        self.timeout_s = timeout_s
        extra = dict(config or {})
        if transactional_id:
            extra["transactional.id"] = transactional_id
        clients = KafkaClients.of(kafka)
        self._producer = clients.producer(producer_config(timeout_s, **extra))
        self._bootstrap = clients.bootstrap
        self._tx_ready = False
        self._tracing = tracing
        self._lock = threading.Lock()

    # -- single and batch -------------------------------------------------
    def publish(self, event: Event, topic: str | None = None) -> LogPosition:
        return self.publish_batch([event], topic=topic)[0]

    def publish_batch(self, events: Sequence[Event], topic: str | None = None) -> list[LogPosition]:
        """Encode all (a bad event raises before anything is sent), then send and wait."""
        records = [self._record(e, topic) for e in events]
        return self._send(records)

    def publish_encoded(self, records: Sequence[tuple[str, bytes, bytes]]) -> list[LogPosition]:
        """Send already-encoded ``(topic, key, value)`` records and wait for all."""
        return self._send(list(records))

    def publish_atomic(
        self, events: Sequence[Event], topic: str | None = None
    ) -> list[LogPosition]:
        """All or nothing, in one Kafka transaction (needs a transactional id)."""
        return self.publish_encoded_atomic([self._record(e, topic) for e in events])

    def publish_encoded_atomic(self, records: Sequence[_Encoded]) -> list[LogPosition]:
        """``publish_encoded`` in one Kafka transaction: all visible, or none."""
        records = list(records)
        with self._lock:
            self._init_transactions()
            try:
                self._producer.begin_transaction()
                positions = self._send(records)
                self._producer.commit_transaction(self.timeout_s)
            except KafkaException as exc:
                self._abort()
                raise LogUnavailableError(f"transaction failed, nothing published: {exc}") from exc
            except KernelError:
                self._abort()
                raise
        return positions

    def publish_outputs_atomic(self, outputs: Sequence[OutputRecord]) -> list[LogPosition]:
        """Records a processor computed, each on the partition it names, in one transaction.

        Derived records (a chain link): encoded as the workers encode theirs, without the
        door's check relative to now.
        """
        records = [(o.topic, o.key, self.codec.encode(o.event), o.partition) for o in outputs]
        return self.publish_encoded_atomic(records)

    def _record(self, event: Event, topic: str | None) -> tuple[str, bytes, bytes]:
        # A door: the input contract (relative to now) before anything is sent.
        dest = topic or self.names.for_event_type(event.event_type)
        return dest, event.subject.encode(), self.codec.encode_checked(event)

    def _init_transactions(self) -> None:
        if self._tx_ready:
            return
        try:
            self._producer.init_transactions(self.timeout_s)
        except KafkaException as exc:
            raise LogUnavailableError(
                f"Kafka at {self._bootstrap} did not answer within {self.timeout_s:.0f}s: {exc}"
            ) from exc
        self._tx_ready = True

    def _abort(self) -> None:
        # On failure the broker fences or expires the transaction: nothing became visible.
        with contextlib.suppress(KafkaException):
            self._producer.abort_transaction(self.timeout_s)

    def _send(self, records: Sequence[_Encoded]) -> list[LogPosition]:
        results: list[LogPosition | KafkaError | None] = [None] * len(records)

        def done(index: int) -> Any:
            def callback(err: KafkaError | None, msg: Message) -> None:
                if err is not None:
                    results[index] = err
                else:
                    results[index] = _position(msg)

            return callback

        # A PRODUCER span per record when in a trace or starting them; else no header.
        traced = self._tracing or tracing.in_trace()
        spans = [tracing.producer_span(r[0], self._tracing) for r in records] if traced else []
        headers = None
        for i, record in enumerate(records):
            topic, key, value = record[0], record[1], record[2]
            if traced:
                headers = tracing.headers_of(spans[i])
            # A 4th element names the partition (a chain link's); else the key's partitioner.
            partition = record[3] if len(record) > 3 else None
            while True:
                try:
                    if partition is None:
                        self._producer.produce(
                            topic, value, key, on_delivery=done(i), headers=headers
                        )
                    else:
                        self._producer.produce(
                            topic, value, key, partition, on_delivery=done(i), headers=headers
                        )
                    break
                except BufferError:
                    self._producer.poll(0.05)  # local queue full: let deliveries drain
        remaining = self._producer.flush(self.timeout_s + 1)
        if spans:
            tracing.end_producer_spans(spans, [_failure(r) for r in results])
        errors = [r for r in results if isinstance(r, KafkaError)]
        refused = [e for e in errors if e.code() in _NOT_AUTHORIZED]
        if refused:
            raise LogUnavailableError(
                f"Kafka at {self._bootstrap} refused the publish: {refused[0].str()} "
                "(this process's principal has no ACL to write there)"
            )
        if remaining or errors or any(r is None for r in results):
            reason = errors[0].str() if errors else f"{remaining} records unacknowledged"
            raise LogUnavailableError(
                f"Kafka at {self._bootstrap} did not acknowledge the publish within "
                f"{self.timeout_s:.0f}s: {reason}"
            )
        return [r for r in results if isinstance(r, LogPosition)]

    def close(self) -> None:
        self._producer.flush(self.timeout_s)

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _failure(result: LogPosition | KafkaError | None) -> str | None:
    if isinstance(result, KafkaError):
        return result.str()
    return "unacknowledged" if result is None else None


_NOT_AUTHORIZED = frozenset(
    {
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    }
)


def _position(msg: Message) -> LogPosition:
    topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
    if topic is None or partition is None or offset is None:
        raise LogUnavailableError("Kafka acknowledged a record without its position")
    return LogPosition(topic, partition, offset)
