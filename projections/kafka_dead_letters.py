"""Kafka adapter of :class:`~projections.rejections.DeadLetters`: the dead-letter topic.

Each rejection becomes a ``deadLetter`` event (:func:`streams.dead_letter.dead_letter`)
published with the idempotent producer and waited for (``acks=all``, bounded by
the producer's timeout): :meth:`KafkaDeadLetters.__call__` returns only once
every dead letter is on the log, and raises ``LogUnavailableError`` otherwise,
which rolls back the Postgres transaction that would have skipped the records.

A dead letter must itself always encode, or it would stop the projector it is
meant to keep going: should the full one fail to encode (a value too large to
copy, a reason the codec refuses), it is sent without the key and with the
value referenced by size and SHA-256 only -- its source position still names
the record -- and an ASCII-escaped reason.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from projections.rejections import Rejection
from schemas.errors import KernelError
from schemas.events import Event
from streams.dead_letter import MAX_COPY_BYTES, dead_letter
from streams.kafka.producer import Producer

__all__ = ["KafkaDeadLetters"]

log = logging.getLogger(__name__)


class KafkaDeadLetters:
    def __init__(self, producer: Producer, processor: str) -> None:
        self.producer = producer
        self.processor = processor

    def __call__(self, rejections: Sequence[Rejection]) -> None:
        records = [self._record(r) for r in rejections]
        if records:
            self.producer.publish_encoded(records)

    def _record(self, r: Rejection) -> tuple[str, bytes, bytes]:
        topic = self.producer.names.dlq
        try:
            event = self._event(r, r.reason, key=r.key)
            value = self.producer.codec.encode(event)
        except KernelError as exc:
            log.warning("%s: dead letter sent without the record: %s", self.processor, exc)
            why = ascii(r.reason)[1:-1] + f" (record not copied: {exc})"
            event = self._event(r, ascii(why)[1:-1], key=None, max_copy_bytes=0)
            value = self.producer.codec.encode(event)
        return topic, event.subject.encode(), value

    def _event(
        self, r: Rejection, reason: str, *, key: bytes | None, max_copy_bytes: int = MAX_COPY_BYTES
    ) -> Event:
        # dead_letter decides copy or reference (size + SHA-256) from the value itself.
        return dead_letter(
            processor=self.processor, reason=reason, error_type=r.error_type, topic=r.topic,
            partition=r.partition, offset=r.offset, key=key, value=r.value,
            max_copy_bytes=max_copy_bytes,
        )  # fmt: skip
