"""The Kafka admin/offsets adapter: topics, groups, committed offsets, log ends, heads.

The one reader of Kafka metadata and offsets for the lag monitor, health and
readiness, ``kernel doctor``, backup and replay. Everything goes through one
``AdminClient`` (broker and topic metadata, topic configs, group listing and
membership, committed offsets,
``ListOffsets`` for the high watermark and -- with ``READ_COMMITTED`` -- the
last stable offset) plus a short-lived probe ``Consumer`` that reads the first visible
record at a committed offset, for its timestamp. The probe consumer never
subscribes and never commits, so it joins no group and moves no offset; it is
``read_committed`` and reports partition EOF, which is how a position that has
only transaction markers left in front of it is recognised as "no lag".

Library errors become :class:`~schemas.errors.LogUnavailableError` here.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from confluent_kafka import (
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    IsolationLevel,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import ConfigResource, OffsetSpec  # type: ignore[attr-defined]

from schemas.errors import LogUnavailableError
from streams.kafka.clients import KafkaClients

__all__ = ["HeadProbe", "KafkaOffsets", "LogEnd", "Metadata"]

TP = tuple[str, int]


@dataclass(frozen=True)
class HeadProbe:
    """The first record a consumer at the committed offset would read.

    ``offset is None`` means the probe reached the readable end without a
    visible record (only transaction markers or aborted records were left).
    """

    offset: int | None
    timestamp_s: float | None = None  # the record's timestamp, epoch seconds


@dataclass(frozen=True)
class Metadata:
    brokers: int
    topics: dict[str, int]  # name -> partitions, of the topics without an error


@dataclass(frozen=True)
class LogEnd:
    high_watermark: int
    last_stable: int


class KafkaOffsets:
    def __init__(
        self,
        kafka: KafkaClients | str,
        timeout_s: float = 10.0,
        probe_timeout_s: float = 2.0,
        *,
        quiet: bool = False,
    ) -> None:
        """``quiet``: librdkafka logs nothing (a CLI reports an unreachable broker once)."""
        self._kafka = KafkaClients.of(kafka)
        self.bootstrap = self._bootstrap = self._kafka.bootstrap
        self._timeout = timeout_s
        self._probe_timeout = probe_timeout_s
        self._admin = self._kafka.admin({"log_level": 0} if quiet else None)

    # -- metadata ---------------------------------------------------------------
    def metadata(self) -> Metadata:
        """The brokers and every topic's partition count."""
        try:
            md = self._admin.list_topics(timeout=self._timeout)
        except KafkaException as exc:
            raise LogUnavailableError(f"Kafka at {self._bootstrap}: {exc}") from exc
        topics = {name: len(t.partitions) for name, t in md.topics.items() if t.error is None}
        return Metadata(len(md.brokers), topics)

    def topic_configs(self, topics: Iterable[str]) -> dict[str, dict[str, str]]:
        """Each topic's effective configuration."""
        wanted = sorted(set(topics))
        if not wanted:
            return {}
        futures = self._admin.describe_configs(
            [ConfigResource("topic", t) for t in wanted], request_timeout=self._timeout
        )
        return {
            r.name: {k: v.value for k, v in self._wait(fut).items()} for r, fut in futures.items()
        }

    # -- groups and offsets ---------------------------------------------------
    def groups(self) -> list[str]:
        result = self._wait(self._admin.list_consumer_groups(request_timeout=self._timeout))
        return sorted(g.group_id for g in result.valid)

    def committed(self, groups: Iterable[str]) -> dict[str, dict[TP, int]]:
        """Committed offsets per group; partitions never committed are left out."""
        # The API takes one group per request; the requests run concurrently.
        futures = {
            g: self._admin.list_consumer_group_offsets(
                [ConsumerGroupTopicPartitions(g)], request_timeout=self._timeout
            )[g]
            for g in groups
        }
        out: dict[str, dict[TP, int]] = {}
        for group, fut in futures.items():
            result = self._wait(fut)
            out[group] = {
                (tp.topic, tp.partition): tp.offset
                for tp in result.topic_partitions or []
                if tp.error is None and tp.offset >= 0
            }
        return out

    def ends(self, partitions: Iterable[TP]) -> dict[TP, LogEnd]:
        """High watermark and last stable offset of each partition (missing: gone)."""
        wanted = sorted(set(partitions))
        if not wanted:
            return {}
        high = self._list_offsets(wanted, IsolationLevel.READ_UNCOMMITTED)
        stable = self._list_offsets(wanted, IsolationLevel.READ_COMMITTED)
        return {tp: LogEnd(high[tp], stable[tp]) for tp in wanted if tp in high and tp in stable}

    def _list_offsets(self, wanted: list[TP], isolation: IsolationLevel) -> dict[TP, int]:
        # A leader election (a new topic, a broker restart) answers NOT_LEADER for a
        # moment; a few short retries keep one sample from failing on it.
        for attempt in range(3):
            try:
                return self._list_offsets_once(wanted, isolation)
            except LogUnavailableError as exc:
                cause = exc.__cause__
                err = cause.args[0] if isinstance(cause, KafkaException) and cause.args else None
                if attempt == 2 or not _leader_moving(err):
                    raise
                time.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")

    def starts(self, partitions: Iterable[TP]) -> dict[TP, int]:
        """The first offset still in each partition (retention moves it; missing: gone)."""
        wanted = sorted(set(partitions))
        earliest = OffsetSpec.earliest()  # type: ignore[no-untyped-call]
        return self._list_offsets_once(wanted, IsolationLevel.READ_UNCOMMITTED, earliest)

    def offsets_for_time(
        self, topic: str, partitions: Iterable[int], ts_ms: int, *, ends: Mapping[int, int]
    ) -> dict[int, int]:
        """Per partition, the first offset whose timestamp is ``>= ts_ms`` (else its end).

        Kafka keeps a time index per partition; -1 means no record is that recent.
        """
        consumer = self._kafka.consumer({"group.id": "kernel-replay-offsets"})  # never joined
        try:
            found = consumer.offsets_for_times(
                [TopicPartition(topic, p, ts_ms) for p in partitions], timeout=self._timeout
            )
        except KafkaException as exc:
            raise LogUnavailableError(f"Kafka at {self._bootstrap}: {exc}") from exc
        finally:
            consumer.close()
        return {tp.partition: tp.offset if tp.offset >= 0 else ends[tp.partition] for tp in found}

    def _list_offsets_once(
        self, wanted: list[TP], isolation: IsolationLevel, spec: OffsetSpec | None = None
    ) -> dict[TP, int]:
        spec = spec or OffsetSpec.latest()  # type: ignore[no-untyped-call]
        request = {TopicPartition(t, p): spec for t, p in wanted}
        futures = self._admin.list_offsets(
            request, isolation_level=isolation, request_timeout=self._timeout
        )
        out: dict[TP, int] = {}
        for tp, fut in futures.items():
            try:
                out[(tp.topic, tp.partition)] = fut.result().offset
            except KafkaException as exc:
                if _unknown_partition(exc):
                    continue  # the topic was deleted since the group committed to it
                raise LogUnavailableError(f"Kafka at {self._bootstrap}: {exc}") from exc
        return out

    def partitions(self, topics: Iterable[str]) -> dict[str, int]:
        """Partition count of each topic that exists (missing: no such topic)."""
        wanted = set(topics)
        if not wanted:
            return {}
        try:
            md = self._admin.list_topics(timeout=self._timeout)
        except KafkaException as exc:
            raise LogUnavailableError(f"Kafka at {self._bootstrap}: {exc}") from exc
        return {
            name: len(t.partitions)
            for name, t in md.topics.items()
            if name in wanted and t.error is None
        }

    def members(self, groups: Iterable[str]) -> dict[str, int]:
        """Live members of each group that exists (an empty group: 0; absent: no such group)."""
        wanted = sorted(set(groups))
        if not wanted:
            return {}
        futures = self._admin.describe_consumer_groups(wanted, request_timeout=self._timeout)
        out: dict[str, int] = {}
        for group, fut in futures.items():
            try:
                found = self._wait(fut)
            except LogUnavailableError as exc:
                err = exc.__cause__.args[0] if isinstance(exc.__cause__, KafkaException) else None
                if isinstance(err, KafkaError) and err.code() == KafkaError.GROUP_ID_NOT_FOUND:
                    continue
                raise
            if found.state != ConsumerGroupState.DEAD:  # DEAD: the broker knows no such group
                out[group] = len(found.members or [])
        return out

    # -- head records -----------------------------------------------------------
    def probe(self, positions: Mapping[TP, int]) -> dict[TP, HeadProbe]:
        """The first visible record at or after each position, within the probe timeout.

        A partition missing from the answer could not be read in time; the
        caller falls back to interpolation for it.
        """
        if not positions:
            return {}
        # A fresh consumer per probe: re-assigning a reused one stalled ~1 s per
        # call (measured), a new one answers in ~3 ms on a local broker.
        consumer = self._probe_consumer()
        try:
            consumer.assign([TopicPartition(t, p, o) for (t, p), o in positions.items()])
            found: dict[TP, HeadProbe] = {}
            deadline = time.monotonic() + self._probe_timeout
            while len(found) < len(positions) and time.monotonic() < deadline:
                for msg in consumer.consume(len(positions), 0.1):
                    tp = (msg.topic() or "", msg.partition() or 0)
                    if tp not in positions or tp in found:
                        continue
                    err = msg.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            found[tp] = HeadProbe(None)
                        continue
                    offset = msg.offset()
                    if offset is None or offset < positions[tp]:
                        continue  # a fetch from before the assignment: stale
                    kind, ms = msg.timestamp()
                    ts = None if kind == TIMESTAMP_NOT_AVAILABLE else ms / 1000.0
                    found[tp] = HeadProbe(offset, ts)
            return found
        except KafkaException as exc:
            raise LogUnavailableError(f"Kafka at {self._bootstrap}: {exc}") from exc
        finally:
            consumer.close()

    def _probe_consumer(self) -> Consumer:
        return self._kafka.consumer(
            {
                "group.id": "kernel-lag-probe",  # required by librdkafka; never joined
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
                # one small fetch per partition is all a probe needs
                "max.partition.fetch.bytes": 65536,
                "queued.max.messages.kbytes": 4096,
                "fetch.wait.max.ms": 50,
            }
        )

    # -- plumbing ---------------------------------------------------------------
    def _wait(self, fut: Future[Any]) -> Any:
        try:
            return fut.result(timeout=self._timeout + 1)
        except KafkaException as exc:
            raise LogUnavailableError(f"Kafka at {self._bootstrap}: {exc}") from exc
        except TimeoutError as exc:
            raise LogUnavailableError(
                f"Kafka at {self._bootstrap} did not answer within {self._timeout:.0f}s"
            ) from exc

    def close(self) -> None:
        """Nothing to release: the admin client needs no close, probes close themselves."""


def _leader_moving(err: object) -> bool:
    return isinstance(err, KafkaError) and (
        err.retriable()
        or err.code() in (KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE)
    )


def _unknown_partition(exc: KafkaException) -> bool:
    err = exc.args[0] if exc.args else None
    return isinstance(err, KafkaError) and err.code() in (
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_PARTITION,
        KafkaError._UNKNOWN_TOPIC,
    )
