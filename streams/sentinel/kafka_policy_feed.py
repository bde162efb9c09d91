"""Adapter: keep an in-memory :class:`PolicyRegistry` current from the policies topic (Kafka).

The synchronous check evaluates against memory, never against Kafka or
Postgres on the request path. A daemon thread owns a ``read_committed``
consumer assigned (no group coordination: every API process needs every
change) to the policies topic from offset 0, folds each ``policyChange`` into
the registry -- the same :func:`~streams.sentinel.lifecycle.apply_change` that
validated it before it was published -- and records how far it has read.

``ready`` turns true when the consumer first reaches the end of the topic:
until then the live set is incomplete and the check service denies rather
than deciding against a partial set. :meth:`wait_for_offset` lets a caller
that has just published a change read its own write.
"""

from __future__ import annotations

import logging
import threading
import time

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from schemas.codec import EventCodec
from schemas.errors import KernelError
from streams.kafka.clients import KafkaClients
from streams.kafka.log_reader import reader_consumer
from streams.sentinel.registry import PolicyRegistry

__all__ = ["KafkaPolicyFeed"]

log = logging.getLogger(__name__)


class KafkaPolicyFeed:
    def __init__(
        self,
        kafka: KafkaClients | str,
        codec: EventCodec,
        topic: str,
        registry: PolicyRegistry | None = None,
        *,
        poll_s: float = 0.05,
    ) -> None:
        self.registry = registry or PolicyRegistry()
        self.topic = topic
        self._codec = codec
        self._poll_s = poll_s
        self._consumer = reader_consumer(kafka, "kernel-policy-feed")
        self._next: dict[int, int] = {}
        self._eof: set[int] = set()
        self._partitions: list[int] = []
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="policy-feed", daemon=True)
        self.error: str | None = None

    @property
    def ready(self) -> bool:
        """The whole topic, as it was when the feed started, has been folded."""
        return bool(self._partitions) and self._eof >= set(self._partitions)

    def start(self) -> None:
        self._thread.start()

    def wait_ready(self, timeout_s: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self.ready, timeout_s)

    def wait_for_offset(self, offset: int, partition: int = 0, timeout_s: float = 10.0) -> bool:
        """True once the record at ``offset`` has been folded (read your own change)."""
        with self._changed:
            return self._changed.wait_for(lambda: self._next.get(partition, 0) > offset, timeout_s)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._consumer.close()

    def _assign(self) -> bool:
        try:
            meta = self._consumer.list_topics(self.topic, timeout=2).topics.get(self.topic)
        except KafkaException as exc:
            self.error = f"policies topic unreachable: {exc}"
            return False
        if meta is None or meta.error is not None:
            self.error = f"topic {self.topic} does not exist; run `kernel topics ensure`"
            return False
        self._partitions = sorted(meta.partitions)
        self._consumer.assign([TopicPartition(self.topic, p, 0) for p in self._partitions])
        return True

    def _loop(self) -> None:
        while not self._stop.is_set() and not self._assign():
            time.sleep(1.0)
        while not self._stop.is_set():
            msg = self._consumer.poll(self._poll_s)
            if msg is None:
                continue
            err = msg.error()
            partition = int(msg.partition() or 0)
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    with self._changed:
                        self._eof.add(partition)
                        self._changed.notify_all()
                else:
                    self.error = err.str()
                    log.warning("policy feed: %s", err.str())
                continue
            try:
                event = self._codec.decode(msg.value() or b"")
            except KernelError as exc:
                log.warning("policy feed: skipping undecodable record: %s", exc)
                event = None
            changed = event is not None and event.event_type == "policyChange"
            if changed and event is not None and not self.registry.apply_event(event):
                log.warning("policy feed: skipped %s", self.registry.rejected[-1][1])
            with self._changed:
                self._next[partition] = int(msg.offset() or 0) + 1
                self._changed.notify_all()
