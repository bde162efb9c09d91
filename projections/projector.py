"""Exactly-once Kafka-to-Postgres projection runner, one consumer-group member.

Each poll batch writes the projection's rows **and** the new
``projection_checkpoints`` rows in one Postgres transaction; on every partition
assignment, and after any failure, the runner seeks to the stored checkpoints
(never to the consumer group's commit). A crash between the two is harmless:
the rows and the checkpoint commit together or not at all.

Scale-out: instances of one projector share the consumer group
``<prefix>projector-<name>`` (static membership: ``group.instance.id`` is the
instance id, so a restarted instance gets its partitions back without a
rebalance, and a dead one's move after ``session.timeout.ms``). The checkpoint
advances by compare-and-set (:mod:`projections.checkpoints`), so an instance
that lost a partition without noticing cannot commit a stale batch: its
transaction rolls back and it re-seeks to what the database holds. After each
commit the offsets are also committed to the group, asynchronously and only
for the lag monitor's sake; the runner never reads them.

Bad records never stop the runner. A record that cannot be decoded, that the
projection raises on, or whose row Postgres refuses (found by bisection, see
:mod:`projections.rejections`) is published to the dead-letter topic with the
reason, and the rest of the batch is written. The dead letters are on Kafka
(acknowledged) *before* the transaction that skips their records commits; a
crash between the two re-projects the batch and publishes those dead letters
again -- a duplicate dead letter, never a lost one. Infrastructure failures
(Postgres unreachable or timing out, Kafka not acknowledging a dead letter)
roll back, back off exponentially and resume from the stored checkpoint.

A :class:`Projection` is the Postgres adapter of one read model: it turns a
batch of decoded records into writes on the given cursor (COPY or pipelined
``executemany``; one statement per event caps near 2,000 events/s here).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import psycopg
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from projections.checkpoints import advance_checkpoints, read_checkpoints
from projections.postgres import PostgresTimeouts, connect
from projections.rejections import DeadLetters, Projection, Rejection, write_isolating
from schemas.codec import EventCodec
from schemas.errors import LogUnavailableError, StoreUnavailableError
from streams import tracing
from streams.kafka.clients import KafkaClients
from streams.kafka.transactional_runner import is_eof
from streams.processor import InputRecord

__all__ = ["Projection", "ProjectorRunner", "Rejection", "read_checkpoints"]

log = logging.getLogger(__name__)
Position = tuple[str, int]
Connection = psycopg.Connection[tuple[object, ...]]


class _CheckpointMovedError(Exception):
    """Another instance moved a checkpoint this batch started from."""

    def __init__(self, partitions: set[Position]) -> None:
        super().__init__(f"a checkpoint of {sorted(partitions)} moved since it was read")
        self.partitions = partitions


class ProjectorRunner:
    def __init__(
        self,
        projection: Projection,
        *,
        kafka: KafkaClients | str,
        database_url: str,
        codec: EventCodec,
        group: str | None = None,
        instance_id: str = "0",
        dead_letters: DeadLetters | None = None,
        timeouts: PostgresTimeouts | None = None,
        batch_size: int = 5000,
        poll_timeout_s: float = 0.2,
        timeout_s: float = 10.0,
        session_timeout_ms: int = 6_000,  # the broker minimum: a dead member's partitions move
        on_poll: Callable[[ProjectorRunner, int], None] | None = None,
    ) -> None:
        self.projection = projection
        self.codec = codec
        self.database_url = database_url
        # The composition root names it <prefix>projector-<name>; the fallback is
        # unique per topic set so stray test runners never share a group.
        self.group = group or f"projector-{projection.name}.{'+'.join(projection.topics)}"
        self.instance_id = instance_id
        self.batch_size = batch_size
        self.poll_timeout_s = poll_timeout_s
        self.timeout_s = timeout_s
        self.timeouts = timeouts or PostgresTimeouts(connect_s=int(timeout_s))
        self.projected = 0
        self.rejected = 0
        self.conflicts = 0
        self._dead_letters = dead_letters
        self._on_poll = on_poll
        clients = KafkaClients.of(kafka)
        self._bootstrap = clients.bootstrap
        self._consumer = clients.consumer(
            {
                "group.id": self.group,
                "group.instance.id": f"{self.group}-{instance_id}",
                "session.timeout.ms": session_timeout_ms,
                "heartbeat.interval.ms": max(500, session_timeout_ms // 4),
                "partition.assignment.strategy": "range",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
                "enable.partition.eof": True,
                "queued.max.messages.kbytes": 16384,  # bound the read-ahead (as the runners)
            }
        )
        # Partitions read to their end (partition-EOF seen, no record since): a
        # quiet consumer is not a caught-up one (see EndTracker).
        self._at_end: set[Position] = set()
        self._conn: Connection | None = None
        self._started = False
        self._joined = False  # a first assignment (possibly empty) arrived
        # The stored next_offset of each positioned partition (None: no row yet);
        # a batch commits only from these. Partitions in _pending are paused until
        # they are sought to their stored checkpoint.
        self._next: dict[Position, int | None] = {}
        self._pending: set[Position] = set()
        self._backoff = 0.2

    # -- group membership and positioning -------------------------------------
    def start(self) -> None:
        if self._started:
            return
        for topic in self.projection.topics:
            try:
                md = self._consumer.list_topics(topic, timeout=self.timeout_s)
            except KafkaException as exc:
                raise LogUnavailableError(f"Kafka at {self._bootstrap}: {exc}") from exc
            meta = md.topics.get(topic)
            if meta is None or meta.error is not None:
                raise LogUnavailableError(
                    f"topic {topic} does not exist; run `kernel topics ensure`"
                )
        self._consumer.subscribe(
            list(self.projection.topics), on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        self._started = True

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._joined = True
        self._at_end.clear()
        keys = [(tp.topic, tp.partition) for tp in partitions]
        try:
            stored = self._stored()
        except Exception as exc:  # Postgres down: hold the partitions until it answers
            log.warning("%s: checkpoints unreadable at assignment: %s", self.group, exc)
            consumer.assign(partitions)
            consumer.pause(partitions)
            self._next.clear()
            self._pending = set(keys)
            return
        consumer.assign(
            [TopicPartition(t, p, stored.get((t, p), OFFSET_BEGINNING)) for t, p in keys]
        )
        self._next = {k: stored.get(k) for k in keys}
        self._pending = set()
        log.info("%s: assigned %s", self.group, sorted(keys))

    def _on_revoke(self, _consumer: Consumer, _partitions: list[TopicPartition]) -> None:
        self._next.clear()
        self._pending.clear()
        self._at_end.clear()

    def _stored(self) -> dict[Position, int]:
        conn = self._connection()
        try:
            return read_checkpoints(conn, self.projection.name)
        finally:
            conn.rollback()

    def _hold(self, keys: set[Position]) -> None:
        """Stop reading ``keys`` until :meth:`_reposition` seeks them to their checkpoint."""
        assigned = {(tp.topic, tp.partition) for tp in self._consumer.assignment()}
        keys &= assigned
        if not keys:
            return
        self._consumer.pause([TopicPartition(t, p) for t, p in sorted(keys)])
        for k in keys:
            self._next.pop(k, None)
        self._pending |= keys

    def _reposition(self) -> None:
        stored = self._stored()
        assigned = {(tp.topic, tp.partition) for tp in self._consumer.assignment()}
        self._pending &= assigned
        done: list[Position] = []
        for t, p in sorted(self._pending):
            offset = stored.get((t, p))
            try:
                self._consumer.seek(
                    TopicPartition(t, p, OFFSET_BEGINNING if offset is None else offset)
                )
            except KafkaException as exc:
                err = exc.args[0] if exc.args else None
                if isinstance(err, KafkaError) and err.code() == KafkaError._STATE:
                    continue  # not fetching yet right after an assignment: next poll
                raise LogUnavailableError(f"{self.group}: seek {t}/{p}: {exc}") from exc
            self._next[(t, p)] = offset
            done.append((t, p))
        if done:
            self._consumer.resume([TopicPartition(t, p) for t, p in done])
            self._pending -= set(done)
            self._at_end -= set(done)  # a seek brings a new partition-EOF at the end

    # -- loops ---------------------------------------------------------------
    def run(self, should_stop: Callable[[], bool]) -> None:
        while not should_stop():
            self.poll_once()

    def run_until_idle(self, idle_s: float = 1.0, max_s: float = 120.0) -> int:
        before = self.projected
        deadline = time.monotonic() + max_s
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            if self.poll_once():
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= idle_s and self.caught_up():
                break
        return self.projected - before

    def caught_up(self) -> bool:
        """Joined, positioned, and at the end of every assigned partition (if any)."""
        if not self._joined or self._pending:
            return False
        return all((tp.topic, tp.partition) in self._at_end for tp in self._consumer.assignment())

    def poll_once(self) -> int:
        polled = self._poll()
        if self._on_poll is not None:
            self._on_poll(self, polled)
        return polled

    def _poll(self) -> int:
        try:
            self.start()
            self._connection()  # Postgres first: no reading while it cannot be written
            if self._pending:
                self._reposition()
            msgs = self._current(self._consumer.consume(self.batch_size, self.poll_timeout_s))
            if not msgs:
                return 0
            # (the assignment callback inside consume may have reconnected)
            written = self._write(self._connection(), msgs)
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            self._pause(f"Postgres unavailable: {exc}")
            return 0
        except psycopg.Error as exc:  # not a record's fault (see rejections.is_record_error)
            self._pause(f"Postgres refused the batch: {exc}")
            return 0
        except StoreUnavailableError as exc:
            self._pause(f"Postgres unavailable: {exc}")
            return 0
        except _FatalConsumerError:
            raise
        except LogUnavailableError as exc:
            self._pause(f"Kafka unavailable: {exc}")
            return 0
        except _CheckpointMovedError as exc:  # another instance owns them now, or will shortly
            self.conflicts += 1
            log.warning("%s: %s; re-reading the checkpoints", self.group, exc)
            self._hold(exc.partitions)
            return 0
        self._backoff = 0.2
        return written

    def _current(self, msgs: list[Message]) -> list[Message]:
        """The records to project: positioned partitions, at or past their checkpoint."""
        out = []
        for msg in msgs:
            key = (str(msg.topic()), int(msg.partition() or 0))
            err = msg.error()
            if err is not None:
                if is_eof(msg):
                    self._at_end.add(key)
                    continue
                if err.fatal():
                    raise _FatalConsumerError(f"{self.group}: fatal Kafka error: {err.str()}")
                log.warning("%s: %s", self.group, err.str())  # librdkafka retries itself
                continue
            self._at_end.discard(key)
            if key not in self._next:
                continue  # revoked, or held until sought to its checkpoint
            stored = self._next[key]
            if stored is not None and int(msg.offset() or 0) < stored:
                continue  # read ahead of a re-seek: already projected
            out.append(msg)
        return out

    def _connection(self) -> Connection:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.database_url, self.timeouts)
        return self._conn

    def _pause(self, why: str) -> None:
        log.warning("%s: %s; retrying in %.1fs", self.group, why, self._backoff)
        if self._conn is not None:
            self._conn.close()
        self._conn = None
        # Resume from the stored checkpoint, not the consumer position.
        self._hold({(tp.topic, tp.partition) for tp in self._consumer.assignment()})
        time.sleep(self._backoff)
        self._backoff = min(self._backoff * 2, 10.0)

    # -- one transaction -----------------------------------------------------
    def _write(self, conn: Connection, msgs: Sequence[Message]) -> int:
        started_ns = time.time_ns()
        batch: list[InputRecord] = []
        rejections: list[Rejection] = []
        raw: dict[tuple[str, int, int], Message] = {}
        nexts: dict[Position, int] = {}
        for msg in msgs:
            topic, part, off = str(msg.topic()), int(msg.partition() or 0), int(msg.offset() or 0)
            nexts[(topic, part)] = off + 1
            raw[(topic, part, off)] = msg
            try:
                event = self.codec.decode(msg.value() or b"", log_ts_ms=msg.timestamp()[1])
            except Exception as exc:  # any decoder failure is this record's
                rejections.append(_rejection(msg, f"undecodable record: {exc}", exc))
                continue
            batch.append(InputRecord(topic, part, off, msg.timestamp()[1], msg.key(), event))
        expected = {k: self._next[k] for k in nexts}
        with conn.transaction(), conn.cursor() as cur:
            # Checkpoints first: a stale batch stops here, before any row work,
            # and the row locks taken order any peer writing the same partitions.
            if not advance_checkpoints(cur, self.projection.name, expected, nexts):
                raise _CheckpointMovedError(set(nexts))
            refused = write_isolating(conn, cur, self.projection, batch)
            for record, error in refused:
                why = f"{self.projection.name} could not project the record: {error}"
                rejections.append(
                    _rejection(raw[(record.topic, record.partition, record.offset)], why, error)
                )
            if rejections:
                self._dead_letter(sorted(rejections, key=_position))
        if tracing.recording():
            self._trace(msgs, rejections, started_ns)
        written = len(batch) - len(refused)
        self._next.update(nexts)
        self.projected += written
        self.rejected += len(rejections)
        self._commit_to_group(nexts)
        return len(msgs)

    def _trace(self, msgs: Sequence[Message], rejections: list[Rejection], started_ns: int) -> None:
        """A span per record of the committed batch that carries a trace."""
        failed = {_position(r): r.reason for r in rejections}
        for msg in msgs:
            where = (str(msg.topic()), int(msg.partition() or 0), int(msg.offset() or 0))
            tracing.processed(
                msg.headers(), self.projection.name, *where,
                start_ns=started_ns, error=failed.get(where),
            )  # fmt: skip

    def _dead_letter(self, rejections: Sequence[Rejection]) -> None:
        for r in rejections:
            log.warning(
                "%s: dead-lettered %s/%s@%s: %s",
                self.group, r.topic, r.partition, r.offset, r.reason,
            )  # fmt: skip
        if self._dead_letters is not None:
            self._dead_letters(rejections)

    def _commit_to_group(self, nexts: dict[Position, int]) -> None:
        try:
            self._consumer.commit(
                offsets=[TopicPartition(t, p, n) for (t, p), n in sorted(nexts.items())],
                asynchronous=True,
            )
        except KafkaException as exc:  # informational only: Postgres holds the truth
            log.debug("%s: offset commit to the group skipped: %s", self.group, exc)

    def close(self) -> None:
        self._consumer.close()
        if self._conn is not None:
            self._conn.close()


class _FatalConsumerError(LogUnavailableError):
    """The consumer cannot go on (fenced static member, ...): the worker must exit."""


def _rejection(msg: Message, reason: str, exc: Exception) -> Rejection:
    return Rejection(
        str(msg.topic()), int(msg.partition() or 0), int(msg.offset() or 0),
        msg.key(), msg.value(), reason, type(exc).__name__,
    )  # fmt: skip


def _position(r: Rejection) -> tuple[str, int, int]:
    return r.topic, r.partition, r.offset
