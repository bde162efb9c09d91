"""Broadcast inputs: topics every instance of a worker reads whole.

A processor's ``input_topics`` are split across its instances by the consumer
group. A processor that also declares ``broadcast_topics`` (and a pure
``absorb(state, record) -> state``) needs every record of those on every
instance -- the sentinel must see every policy change whichever actions it is
given. :class:`BroadcastInput` reads all partitions of the broadcast topics by
assignment, outside the group, and never commits: after each (re)assignment
the runner folds them from the beginning to their current end
(:meth:`BroadcastInput.fold`), and before each transaction it folds in
whatever arrived since (:meth:`BroadcastInput.drain`), in partition order.

A broadcast record belongs to another processor's input, so one that cannot be
decoded or absorbed is logged and skipped here, not dead-lettered (every
instance would dead-letter it again).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, Message, TopicPartition

from schemas.codec import EventCodec
from schemas.errors import LogUnavailableError
from streams.kafka.clients import KafkaClients
from streams.kafka.log_reader import reader_consumer
from streams.processor import InputRecord

__all__ = ["BroadcastInput"]

S = TypeVar("S")
log = logging.getLogger(__name__)


class BroadcastInput:
    def __init__(
        self,
        kafka: KafkaClients | str,
        codec: EventCodec,
        topics: Sequence[str],
        *,
        timeout_s: float,
    ) -> None:
        self.topics = list(topics)
        self.skipped = 0
        self._codec = codec
        self._timeout = timeout_s
        self._consumer = reader_consumer(kafka, "kernel-broadcast")

    def fold(self, state: S, absorb: Callable[[S, InputRecord], S]) -> S:
        """``state`` with every committed broadcast record absorbed, from the beginning."""
        tps = self._partitions()
        self._consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in tps])
        pending = set(tps)
        deadline = time.monotonic() + self._timeout
        while pending:
            msgs = self._consumer.consume(1000, 0.1)
            if msgs:
                deadline = time.monotonic() + self._timeout
            elif time.monotonic() > deadline:
                raise LogUnavailableError(
                    f"broadcast topics {', '.join(self.topics)}: no data within "
                    f"{self._timeout:.0f}s while folding them"
                )
            for msg in msgs:
                if _is_eof(msg):
                    pending.discard((str(msg.topic()), int(msg.partition() or 0)))
            state = self._absorb_all(state, absorb, msgs)
        return state

    def drain(self, state: S, absorb: Callable[[S, InputRecord], S]) -> S:
        """``state`` with the broadcast records that arrived since the last call."""
        while msgs := self._consumer.consume(1000, 0):
            state = self._absorb_all(state, absorb, msgs)
        return state

    def close(self) -> None:
        self._consumer.close()

    def _partitions(self) -> list[tuple[str, int]]:
        try:
            md = self._consumer.list_topics(timeout=self._timeout)
        except KafkaException as exc:
            raise LogUnavailableError(f"broadcast topics: {exc}") from exc
        out: list[tuple[str, int]] = []
        for topic in self.topics:
            meta = md.topics.get(topic)
            if meta is None or meta.error is not None:
                raise LogUnavailableError(f"broadcast topic {topic} does not exist")
            out.extend((topic, p) for p in sorted(meta.partitions))
        return out

    def _absorb_all(
        self, state: S, absorb: Callable[[S, InputRecord], S], msgs: list[Message]
    ) -> S:
        for msg in msgs:
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("broadcast input: %s", err.str())
                continue
            where = f"{msg.topic()}/{msg.partition()}@{msg.offset()}"
            try:
                event = self._codec.decode(msg.value() or b"", log_ts_ms=msg.timestamp()[1])
                record = InputRecord(
                    str(msg.topic()), int(msg.partition() or 0), int(msg.offset() or 0),
                    msg.timestamp()[1], msg.key(), event,
                )  # fmt: skip
                state = absorb(state, record)
            except Exception as exc:  # a broadcast record must not stop the worker
                self.skipped += 1
                log.warning("broadcast record %s skipped: %s: %s", where, type(exc).__name__, exc)
        return state


def _is_eof(msg: Message) -> bool:
    err = msg.error()
    return err is not None and err.code() == KafkaError._PARTITION_EOF
