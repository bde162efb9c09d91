"""Exactly-once Kafka-to-Kafka runner around a pure :class:`Processor`.

Per poll batch, one Kafka transaction holds the outputs of every record, the
dead letters of records that could not be processed, and the input offsets
(``send_offsets_to_transaction``). Consumers downstream read
``read_committed``, so a crash at any point either shows the whole batch or
none of it, and the restarted runner resumes from the committed offsets with
the state ``recover`` rebuilds from committed output.

No record can stop the runner. A record that fails to decode, that ``step``
refuses or raises on (any ``Exception`` but one below), whose outputs do not encode or would
exceed ``max_record_bytes``, or that the producer refuses, goes to the
dead-letter topic with the reason, in the same transaction, and the batch goes
on. A record's outputs are all or nothing: all are encoded before any is
produced, and should the producer refuse one after another was queued, the
transaction is aborted and replayed with that record dead-lettered. A step
that raises :class:`~streams.processor.BackendUnavailableError` (the HSM or KMS
that signs did not answer) is not the record's fault: the batch is aborted and
run again after a pause, and only a backend still away after
``recovery_budget_s`` ends the runner.

No broker can freeze it either. Transactional calls run under a
:class:`~streams.kafka.deadline.CallDeadline` (librdkafka does not honour
their timeouts after a broker restart). A late call abandons the producer: a
new one with the same ``transactional.id`` is built (``init_transactions``
fences the old one and aborts its open transaction), the consumer is rewound
to the committed offsets and the state to before the batch. Only a fatal
producer error (fenced by another instance, or a rebuild that cannot succeed
within ``recovery_budget_s``) ends the runner, with a
:class:`LogUnavailableError` naming the worker, instance and partitions.

Scale-out: the transactional id and the consumer's ``group.instance.id``
(static membership) are both ``{group}-{instance_id}``; a restarted instance
gets its partitions back without a rebalance, and a dead one's are moved after
``session_timeout_ms``. See docs/decisions/0009-bounded-transactions.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, NoReturn, TypeVar, cast

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from schemas.codec import EventCodec
from schemas.errors import LogUnavailableError
from schemas.topics import TopicNames
from streams import tracing
from streams.dead_letter import MAX_COPY_BYTES, dead_letter
from streams.kafka.broadcast import BroadcastInput
from streams.kafka.clients import KafkaClients
from streams.kafka.deadline import CallCancelled, CallDeadline, CallTimedOut
from streams.kafka.log_reader import KafkaLogReader
from streams.kafka.producer import producer_config
from streams.processor import BackendUnavailableError, InputRecord, OutputRecord, Processor

__all__ = ["DEAD_LETTER_REASONS", "EndTracker", "RunnerStats", "TransactionalRunner", "is_eof"]

S = TypeVar("S")
log = logging.getLogger(__name__)

#: Categories of ``RunnerStats.dead_by_reason`` (metric labels, never the message).
DEAD_LETTER_REASONS = ("decode", "step", "encode", "too_large", "produce")

# A producer in one of these states cannot go on, and another can only fence it back.
_FENCED = {
    KafkaError._FENCED,
    KafkaError.PRODUCER_FENCED,
    KafkaError.INVALID_PRODUCER_EPOCH,
    KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    KafkaError._FATAL,
}
# The broker or the producer refused a record itself (size, partition, format): a
# failure that repeats identically, unlike a broker that is away.
_RECORD_LEVEL = {
    KafkaError._INCONSISTENT,  # "message(s) failed delivery": the first cause is per record
    KafkaError.MSG_SIZE_TOO_LARGE,
    KafkaError.RECORD_LIST_TOO_LARGE,
    KafkaError.INVALID_RECORD,
    KafkaError.INVALID_MSG,
    KafkaError.INVALID_MSG_SIZE,
    KafkaError._UNKNOWN_PARTITION,
    KafkaError._UNKNOWN_TOPIC,
    KafkaError._INVALID_ARG,
}
_HEADROOM = 64 * 1024  # a dead letter's envelope, reason and names, well under this
# A client in a fatal state is rebuilt at most _FATAL_REBUILDS times per _FATAL_WINDOW_S:
# a broker restart costs one; a real duplicate instance fences us every few seconds.
_FATAL_REBUILDS = 3
_FATAL_WINDOW_S = 60.0


def is_eof(msg: Message) -> bool:
    err = msg.error()
    return err is not None and err.code() == KafkaError._PARTITION_EOF


class EndTracker:
    """Which assigned partitions the consumer has read to their end.

    Quiet alone is not "caught up": a fresh group can be silent for seconds
    while its coordinator loads. Nor is ``position >= high watermark``: on a
    transactional topic the last offset is a commit marker a read_committed
    consumer never sees. librdkafka's partition-EOF events (``enable.partition.eof``)
    know both, so the runners track them.
    """

    def __init__(self) -> None:
        self._at_end: set[tuple[str, int]] = set()

    def observe(self, msgs: Sequence[Message]) -> None:
        for msg in msgs:
            key = (str(msg.topic()), int(msg.partition() or 0))
            if is_eof(msg):
                self._at_end.add(key)
            elif msg.error() is None:
                self._at_end.discard(key)

    def caught_up(self, consumer: Consumer) -> bool:
        assignment = consumer.assignment()
        return bool(assignment) and all(
            (tp.topic, tp.partition) in self._at_end for tp in assignment
        )

    def reset(self) -> None:
        self._at_end.clear()


@dataclass
class RunnerStats:
    processed: int = 0
    outputs: int = 0
    dead_letters: int = 0
    commits: int = 0
    aborts: int = 0
    last_batch: int = 0
    rewinds: int = 0  # consumer and state put back to the last commit
    rebuilds: int = 0  # producer abandoned (a late call) and built anew
    dead_by_reason: dict[str, int] = field(default_factory=dict)
    errors_by_type: dict[str, int] = field(default_factory=dict)


class _Redo(Exception):  # noqa: N818 - control flow, never leaves the runner
    """Abort this batch and run it again (a record was marked to dead-letter)."""


Problem = tuple[str, str, BaseException]  # (reason class, reason, exception)


class TransactionalRunner(Generic[S]):
    def __init__(
        self,
        processor: Processor[S],
        *,
        kafka: KafkaClients | str,
        codec: EventCodec,
        names: TopicNames,
        instance_id: str = "0",
        batch_size: int = 2000,
        poll_timeout_s: float = 0.2,
        timeout_s: float = 30.0,
        call_timeout_s: float = 5.0,
        max_record_bytes: int = 1_000_000,
        session_timeout_ms: int = 6000,
        transaction_timeout_ms: int = 8_000,
        recovery_budget_s: float = 120.0,
        on_batch: Callable[[RunnerStats], None] | None = None,
        on_tick: Callable[[], None] | None = None,
    ) -> None:
        self.processor = processor
        self.codec = codec
        self.names = names
        self.group = f"{names.prefix}{processor.name}"
        self.instance_id = instance_id
        self.member = f"{self.group}-{instance_id}"
        self.batch_size = batch_size
        self.poll_timeout_s = poll_timeout_s
        self.timeout_s = timeout_s
        self.call_timeout_s = call_timeout_s
        self.max_record_bytes = max_record_bytes
        self.max_copy_bytes = max(0, min(MAX_COPY_BYTES, max_record_bytes - _HEADROOM))
        self.recovery_budget_s = recovery_budget_s
        self.stats = RunnerStats()
        self._on_batch = on_batch
        self._on_tick = on_tick
        self._kafka = KafkaClients.of(kafka)
        self._bootstrap = self._kafka.bootstrap
        self._consumer_conf: dict[str, object] = {
            "group.id": self.group,
            "group.instance.id": self.member,
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "range",
            "session.timeout.ms": session_timeout_ms,
            "heartbeat.interval.ms": max(500, session_timeout_ms // 4),
            "max.poll.interval.ms": 300_000,
            "enable.partition.eof": True,
            "reconnect.backoff.max.ms": 1000,
            # Bound the read-ahead: a backlog must not grow the process (RSS flat
            # from 100k to 1M events); 16 MiB still keeps the fetcher ahead.
            "queued.max.messages.kbytes": 16384,
        }
        self._consumer = self._kafka.consumer(self._consumer_conf)
        # The dead instance's open transaction holds back read_committed readers of
        # its outputs until it times out: keep that short (see ADR 0009).
        self._producer_conf = producer_config(
            call_timeout_s,
            **{
                "transactional.id": self.member,
                "linger.ms": 2,
                "transaction.timeout.ms": transaction_timeout_ms,
                "message.timeout.ms": transaction_timeout_ms,
                "message.max.bytes": max_record_bytes + 16_384,
                "reconnect.backoff.max.ms": 1000,
            },
        )
        self._producer = self._kafka.producer(self._producer_conf)
        self._calls = CallDeadline(self.member)
        self._reader = KafkaLogReader(kafka, codec, timeout_s)
        topics = list(getattr(processor, "broadcast_topics", ()) or ())
        self._broadcast = (
            BroadcastInput(kafka, codec, topics, timeout_s=timeout_s) if topics else None
        )
        self._state: S | None = None
        self._recovered = False  # a processor's state may legitimately be None
        self._assigned_at = 0.0
        self._produced = 0
        self._next_poll = 512
        self._assigned: list[tuple[str, int]] = []
        self._needs_recover = False
        self._needs_rewind = False
        self._recover_failing_since = 0.0
        self._backend_failing_since = 0.0
        self._rewind_failing_since = 0.0
        self._fatal_rebuilds: dict[str, list[float]] = {"producer": [], "consumer": []}
        self._poison: dict[tuple[str, int, int], Problem] = {}
        # After a batch failed twice on a record-level error: one record per
        # transaction up to these offsets, to find the record and dead-letter it.
        self._isolate: dict[tuple[str, int], int] = {}
        self._record_failures = 0
        self._started = False
        self._failed = False
        self._closed = False
        self._stopping: Callable[[], bool] = lambda: False
        self._ends = EndTracker()

    # -- lifecycle ----------------------------------------------------------
    def start(self) -> None:
        if self._started:
            return
        self._init_producer(time.monotonic() + self.recovery_budget_s)
        self._consumer.subscribe(
            list(self.processor.input_topics), on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        self._started = True

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._ends.reset()
        self._assigned = sorted((p.topic, p.partition) for p in partitions)
        self._assigned_at = time.monotonic()
        log.info("%s: assigned %s", self.member, _partitions(self._assigned))
        self._needs_recover = True
        self._needs_rewind = False  # a fresh assignment starts at the committed offsets
        self._isolate.clear()

    def _on_revoke(self, _consumer: Consumer, _partitions: list[TopicPartition]) -> None:
        self._assigned = []
        self._state = None
        self._recovered = False

    def close(self, timeout_s: float = 5.0) -> None:
        """Release the clients within about ``timeout_s``; never raises (errors are logged).

        After a failure the producer is not flushed: its transaction is aborted by
        the broker or fenced by the next instance, and a fatal producer's flush
        would only raise again over the real cause.
        """
        if self._closed:
            return
        self._closed = True
        steps: list[tuple[str, Callable[[], object]]] = [
            ("consumer", self._consumer.close),
            ("reader", self._reader.close),
        ]
        if self._broadcast is not None:
            steps.append(("broadcast reader", self._broadcast.close))
        if not self._failed:
            producer = self._producer
            steps.append(("producer", lambda: producer.flush(timeout_s)))
        end = time.monotonic() + timeout_s  # one budget for all: SIGTERM must be quick
        for what, fn in steps:
            try:
                self._calls.call(fn, max(0.5, end - time.monotonic()))
            except Exception as exc:  # closing must not hide why we stopped
                log.warning(
                    "%s: closing the %s: %s: %s", self.member, what, type(exc).__name__, exc
                )
        self._calls.close()

    # -- loops ---------------------------------------------------------------
    def run(self, should_stop: Callable[[], bool]) -> None:
        self._stopping = should_stop
        self.start()
        while not should_stop():
            self.poll_once()

    def run_until_idle(self, idle_s: float = 2.0, max_s: float = 120.0) -> int:
        """Process until nothing arrives for ``idle_s`` (tests, replay, benchmarks)."""
        self.start()
        before = self.stats.processed + self.stats.dead_letters
        deadline = time.monotonic() + max_s
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            if self.poll_once():
                quiet_since = time.monotonic()
            elif (
                time.monotonic() - quiet_since >= idle_s
                and self._recovered
                and self._ends.caught_up(self._consumer)
            ):
                break
        return self.stats.processed + self.stats.dead_letters - before

    def poll_once(self) -> int:
        if self._on_tick is not None:
            self._on_tick()
        if self._needs_rewind and not self._rewind():
            # A consumer whose group session was lost rejoins only inside a poll (the
            # rebalance callbacks run there), so a rewind that waits without polling can
            # wait forever (seen in the fault suite: "Failed to get committed offsets"
            # every 5 s for minutes after a broker restart). What this poll returns is
            # not processed: the consumer is seeked back to the committed offsets first.
            if self._consumer.consume(self.batch_size, 0.5):
                self._needs_rewind = True  # even if a new assignment came in meanwhile
            return 0
        size = 1 if self._isolate else self.batch_size
        msgs = self._consumer.consume(size, self.poll_timeout_s)
        self._ends.observe(msgs)
        if (self._needs_recover or (msgs and not self._recovered)) and not self._recover():
            return 0
        good = []
        consumer = self._consumer
        for msg in msgs:
            err = msg.error()
            if err is None:
                good.append(msg)
            elif err.code() != KafkaError._PARTITION_EOF:
                self._consumer_error(err)
                if self._consumer is not consumer:  # rebuilt: its batch is void
                    return 0
        if self._broadcast is not None and self._recovered:
            self._state = self._broadcast.drain(cast(S, self._state), self._absorb)
        if not good:
            return 0
        return self._transact(good)

    def _consumer_error(self, err: KafkaError) -> None:
        if err.fatal() or err.code() in (KafkaError._FATAL, KafkaError.FENCED_INSTANCE_ID):
            self._rebuild_consumer(err)
            return
        # Transport errors (a broker restart) are reported here and retried inside.
        log.warning("%s: consumer: %s", self.member, err.str())

    def _rebuild_consumer(self, err: KafkaError) -> None:
        """A consumer in a fatal state: a new one (see :meth:`_may_rebuild`).

        Seen after a broker restart: librdkafka's static member is "fenced by
        another consumer with the same group.instance.id" -- itself, rejoining
        with a new member id. A real duplicate instance fences us again within
        seconds, and more than ``_FATAL_REBUILDS`` in ``_FATAL_WINDOW_S`` end the runner.
        """
        message = f"fatal consumer error: {err.name()}: {err.str()}"
        if not self._may_rebuild("consumer"):
            self._fatal(f"{message} (again, after rebuilding the consumer)", KafkaException(err))
        log.error("%s: %s; building a new consumer", self.member, message)
        old = self._consumer
        try:
            self._calls.call(old.close, self.call_timeout_s, self._stopping)
        except Exception as exc:  # a dead consumer may not close cleanly; it is dropped
            log.warning("%s: closing the fenced consumer: %s", self.member, _describe(exc))
        self.stats.rebuilds += 1
        self._on_revoke(old, [])
        self._needs_recover = False
        self._needs_rewind = False
        self._isolate.clear()
        self._ends.reset()
        self._consumer = self._kafka.consumer(self._consumer_conf)
        self._consumer.subscribe(
            list(self.processor.input_topics), on_assign=self._on_assign, on_revoke=self._on_revoke
        )

    def _recover(self) -> bool:
        """Rebuild the state for the assignment; False (retry later) while Kafka is away."""
        started = time.monotonic()
        try:
            state = self.processor.recover(self._assigned, self._recovery_reader())
            if self._broadcast is not None:
                state = self._broadcast.fold(state, self._absorb)
        except (LogUnavailableError, KafkaException) as exc:
            now = time.monotonic()
            self._recover_failing_since = self._recover_failing_since or now
            if now - self._recover_failing_since > self.recovery_budget_s:
                self._fatal(f"cannot recover the state: {_describe(exc)}", exc)
            log.warning("%s: recover: %s; retrying", self.member, _describe(exc))
            self._needs_recover = True
            self._recovered = False
            time.sleep(1.0)
            return False
        self._recover_failing_since = 0.0
        self._state = state
        self._needs_recover = False
        self._recovered = True
        log.info(
            "%s: state recovered for %d partitions in %.2fs (%.2fs after the assignment)",
            self.member, len(self._assigned), time.monotonic() - started,
            time.monotonic() - self._assigned_at,
        )  # fmt: skip
        return True

    def _absorb(self, state: S, record: InputRecord) -> S:
        return cast(S, self.processor.absorb(state, record))  # type: ignore[attr-defined]

    def _recovery_reader(self) -> KafkaLogReader:
        tps = [TopicPartition(t, p) for t, p in self._assigned]
        committed = self._consumer.committed(tps, self.call_timeout_s) if tps else []
        self._reader.set_committed(
            {(tp.topic, tp.partition): max(tp.offset, 0) for tp in committed}
        )
        return self._reader

    # -- one transaction -----------------------------------------------------
    def _transact(self, msgs: list[Message]) -> int:
        before = cast(S, self._state)  # recovered: poll_once guarantees it
        state = before
        processed = outputs = 0
        dead: list[tuple[str, str]] = []  # (reason class, error type), counted on commit
        name = self.processor.name
        try:
            self._producer.begin_transaction()
            for msg in msgs:
                problem = self._poison.pop(_where(msg), None) if self._poison else None
                record = None
                if problem is None:
                    record, problem = self._decode(msg)
                if record is not None:
                    # the input's trace, continued (never a new one started)
                    with tracing.consuming(
                        msg.headers(), name, record.topic, record.partition, record.offset
                    ) as span:
                        try:
                            new_state, outs = self.processor.step(state, record)
                        except BackendUnavailableError:
                            raise  # not the record's fault: the batch runs again
                        except Exception as exc:  # no record may stop the worker
                            problem = ("step", f"{self.processor.name} rejected the record", exc)
                        else:
                            problem = self._produce(msg, outs, tracing.headers_of(span))
                            if problem is None:
                                state = new_state
                                outputs += len(outs)
                                processed += 1
                        if problem is not None and span is not None:
                            tracing.failed(span, problem[1])
                if problem is not None:
                    self._dead_letter(msg, problem)
                    dead.append((problem[0], type(problem[2]).__name__))
            self._transaction_call(
                "send_offsets_to_transaction",
                self._producer.send_offsets_to_transaction,
                self._consumer.position(self._consumer.assignment()),
                self._consumer.consumer_group_metadata(),
                self.call_timeout_s,
            )
            self._transaction_call(
                "commit_transaction", self._producer.commit_transaction, self.call_timeout_s
            )
        except _Redo:
            self._abort(before, "a record's output was refused after another was queued")
            return 0
        except BackendUnavailableError as exc:
            self._backend_away(before, exc)
            return 0
        except CallTimedOut as exc:
            if self._stopping():  # SIGTERM while a call hangs: leave it to the broker
                self._failed = True
                log.warning("%s: stopping with a transaction open: %s", self.member, exc)
                return 0
            self._rebuild(before, exc)
            return 0
        except KafkaException as exc:
            self._recover_from(exc, before, msgs)
            return 0
        self._state = state
        self._backend_failing_since = 0.0
        stats = self.stats
        stats.processed += processed
        stats.outputs += outputs
        stats.dead_letters += len(dead)
        for reason, error_type in dead:
            stats.dead_by_reason[reason] = stats.dead_by_reason.get(reason, 0) + 1
            stats.errors_by_type[error_type] = stats.errors_by_type.get(error_type, 0) + 1
        stats.commits += 1
        stats.last_batch = len(msgs)
        self._record_failures = 0
        if self._isolate:
            self._isolated(msgs)
        if self._on_batch is not None:
            self._on_batch(stats)
        return len(msgs)

    def _decode(self, msg: Message) -> tuple[InputRecord | None, Problem | None]:
        ts = msg.timestamp()[1]
        try:
            event = self.codec.decode(msg.value() or b"", log_ts_ms=ts)
        except Exception as exc:  # any decoder failure is the record's, not ours
            return None, ("decode", "undecodable record", exc)
        record = InputRecord(
            str(msg.topic()), int(msg.partition() or 0), int(msg.offset() or 0),
            ts, msg.key(), event,
        )  # fmt: skip
        return record, None

    def _produce(self, msg: Message, outs: Sequence[OutputRecord], headers: Any) -> Problem | None:
        """Queue all of a record's outputs, or none of them (returns why not)."""
        encode, limit = self.codec.encode, self.max_record_bytes
        values = []
        for out in outs:
            try:
                value = encode(out.event)
            except Exception as exc:
                return ("encode", f"derived record does not encode ({out.event.event_type})", exc)
            if len(value) + len(out.key) > limit:
                size = f"{out.event.event_type} of {len(value)} bytes for {out.topic}"
                over = f"over KERNEL_MAX_RECORD_BYTES={limit}"
                return ("too_large", "derived record too large", ValueError(f"{size}, {over}"))
            values.append(value)
        produce = self._producer.produce
        for i, out in enumerate(outs):
            try:
                if out.partition is None:
                    produce(out.topic, values[i], out.key, headers=headers)
                else:
                    produce(out.topic, values[i], out.key, partition=out.partition, headers=headers)
            except BufferError:  # the local queue is full: the slow path waits for room
                self._queue(out.topic, values[i], out.key, out.partition, headers)
            except KafkaException as exc:
                if _is_fatal(exc):
                    raise
                problem: Problem = (
                    "produce",
                    f"the producer refused an output for {out.topic}",
                    exc,
                )
                if i == 0:
                    return problem  # nothing of this record was queued
                self._poison[_where(msg)] = problem
                raise _Redo from exc
        self._produced += len(values)
        if self._produced >= self._next_poll:
            self._next_poll = self._produced + 512
            self._producer.poll(0)  # serve librdkafka's queue now and then, not per record
        return None

    def _queue(
        self, topic: str, value: bytes, key: bytes | None, partition: int | None, headers: Any
    ) -> None:
        deadline = 0.0
        while True:
            try:
                if partition is None:
                    self._producer.produce(topic, value, key, headers=headers)
                else:
                    self._producer.produce(topic, value, key, partition=partition, headers=headers)
                return
            except BufferError:  # the local queue is full: let deliveries drain
                now = time.monotonic()
                deadline = deadline or now + self.call_timeout_s
                if now > deadline:
                    raise CallTimedOut(f"{self.member}: producer queue full") from None
                self._producer.poll(0.05)

    def _dead_letter(self, msg: Message, problem: Problem) -> None:
        kind, reason, exc = problem
        error_type = type(exc).__name__
        text = f"{reason}: {error_type}: {exc}"
        value = msg.value()
        encoded = b""
        for copy_limit in (self.max_copy_bytes, 0):  # a copy that does not fit: a reference
            event = dead_letter(
                processor=self.processor.name, reason=text, error_type=error_type,
                topic=str(msg.topic()), partition=int(msg.partition() or 0),
                offset=int(msg.offset() or 0), key=msg.key(), value=value,
                max_copy_bytes=copy_limit,
            )  # fmt: skip
            try:
                encoded = self.codec.encode(event)
            except Exception:
                if copy_limit == 0:
                    raise
                continue
            if len(encoded) <= self.max_record_bytes:
                break
        self._queue(self.names.dlq, encoded, event.subject.encode(), None, None)
        log.warning(
            "%s: dead-lettered %s/%s@%s (%s, %s): %s",
            self.member, msg.topic(), msg.partition(), msg.offset(), kind, error_type, text[:500],
        )  # fmt: skip

    # -- bounded transaction calls and recovery --------------------------------
    def _transaction_call(self, what: str, fn: Callable[..., object], *args: object) -> None:
        deadline = self.call_timeout_s + 2
        try:
            self._calls.call(lambda: fn(*args), deadline, self._stopping)
        except CallCancelled:
            raise
        except CallTimedOut as exc:
            raise CallTimedOut(f"{what} did not return within {deadline:.0f}s") from exc

    def _init_producer(self, give_up_at: float) -> None:
        while True:
            producer = self._producer
            try:
                self._transaction_call(
                    "init_transactions", producer.init_transactions, self.call_timeout_s
                )
                return
            except (KafkaException, CallTimedOut) as exc:
                if isinstance(exc, KafkaException) and _is_fatal(exc):
                    self._fatal(f"cannot init transactions: {_describe(exc)}", exc)
                if self._stopping():  # SIGTERM: no producer needed any more
                    self._failed = True
                    return
                if time.monotonic() > give_up_at:
                    self._fatal(
                        f"cannot init transactions within {self.recovery_budget_s:.0f}s: "
                        f"{_describe(exc)}",
                        exc,
                    )
                log.warning("%s: init_transactions: %s; retrying", self.member, _describe(exc))
                if self._on_tick is not None:
                    self._on_tick()  # alive and retrying
                if isinstance(exc, CallTimedOut):
                    self._producer = self._kafka.producer(self._producer_conf)
                time.sleep(1.0)

    def _recover_from(self, exc: KafkaException, before: S, msgs: list[Message]) -> None:
        if _is_fatal(exc):
            self._after_fatal(before, f"fatal producer error: {_describe(exc)}", exc)
            return
        error = _error_of(exc)
        record_level = error is not None and error.code() in _RECORD_LEVEL
        if record_level and self._record_failures >= 1:  # the same again: not the network
            if len(msgs) == 1:
                reason = "the broker refused an output of this record"
                self._poison[_where(msgs[0])] = ("produce", reason, exc)
            else:
                for msg in msgs:
                    key = (str(msg.topic()), int(msg.partition() or 0))
                    self._isolate[key] = max(self._isolate.get(key, -1), int(msg.offset() or 0))
                log.warning(
                    "%s: a record of this batch is refused (%s); one record per transaction "
                    "to find it", self.member, _describe(exc),
                )  # fmt: skip
        self._record_failures = self._record_failures + 1 if record_level else 0
        self._abort(before, _describe(exc))
        if not record_level:
            time.sleep(0.5)  # the broker or the network: give it a moment

    def _isolated(self, msgs: list[Message]) -> None:
        for msg in msgs:
            key = (str(msg.topic()), int(msg.partition() or 0))
            if int(msg.offset() or 0) >= self._isolate.get(key, -1):
                self._isolate.pop(key, None)

    def _backend_away(self, before: S, exc: BackendUnavailableError) -> None:
        """The step's backend failed: abort, pause, run the batch again (never dead-letter)."""
        now = time.monotonic()
        self._backend_failing_since = self._backend_failing_since or now
        if now - self._backend_failing_since > self.recovery_budget_s:
            self._fatal(f"{self.processor.name}: backend unavailable: {_describe(exc)}", exc)
        self._abort(before, f"{self.processor.name}: {_describe(exc)}; retrying the batch")
        time.sleep(1.0)

    def _abort(self, before: S, why: str) -> None:
        log.warning("%s: aborting transaction: %s", self.member, why)
        try:
            self._transaction_call(
                "abort_transaction", self._producer.abort_transaction, self.call_timeout_s
            )
        except (KafkaException, CallTimedOut) as exc:
            if isinstance(exc, KafkaException) and _is_fatal(exc):
                self._after_fatal(before, f"abort failed: {_describe(exc)}", exc)
            else:
                self._rebuild(before, exc)
            return
        self.stats.aborts += 1
        self._state = before
        self._needs_rewind = True

    def _after_fatal(self, before: S, message: str, exc: KafkaException) -> None:
        """A producer in a fatal state: build a new one (see :meth:`_may_rebuild`).

        After a broker restart the coordinator may have expired our transaction
        and bumped the epoch, so the old producer is "fenced" by its own past.
        A live duplicate instance (same id) fences us again within seconds, and
        its consumer and ours fence each other (same ``group.instance.id``): more
        than ``_FATAL_REBUILDS`` fatal errors in ``_FATAL_WINDOW_S`` end the runner.
        The fatal error is never aborted on: its producer can do nothing more.
        """
        if not self._may_rebuild("producer"):
            self._fatal(f"{message} (again, after rebuilding the producer)", exc)
        log.error("%s: %s; building a new producer", self.member, message)
        self._rebuild(before, exc)

    def _may_rebuild(self, client: str) -> bool:
        """At most ``_FATAL_REBUILDS`` fatal rebuilds of ``client`` per ``_FATAL_WINDOW_S``."""
        now = time.monotonic()
        recent = [t for t in self._fatal_rebuilds[client] if now - t < _FATAL_WINDOW_S]
        self._fatal_rebuilds[client] = [*recent, now]
        return len(recent) < _FATAL_REBUILDS

    def _rebuild(self, before: S, cause: BaseException) -> None:
        """Abandon the producer (a call stuck in it, or it cannot abort) and build anew."""
        log.warning(
            "%s: %s; abandoning the producer, building a new one with the same "
            "transactional id (fences the old one, aborts its transaction)",
            self.member, _describe(cause),
        )  # fmt: skip
        self.stats.rebuilds += 1
        self.stats.aborts += 1
        self._producer = self._kafka.producer(self._producer_conf)
        self._init_producer(time.monotonic() + self.recovery_budget_s)
        self._state = before
        self._needs_rewind = True

    def _rewind(self) -> bool:
        """Seek the consumer back to the committed offsets; False to try again later.

        Failing for longer than ``recovery_budget_s`` ends the runner, as every other
        recovery path does: its supervisor restarts it with a new consumer.
        """
        assignment = self._consumer.assignment()
        try:
            committed = (
                self._consumer.committed(assignment, self.call_timeout_s) if assignment else []
            )
            for tp in committed:
                tp.offset = max(tp.offset, 0)  # nothing committed yet: from the beginning
                self._consumer.seek(tp)
        except KafkaException as exc:
            if _is_fatal(exc):
                self._fatal(f"fatal consumer error on rewind: {_describe(exc)}", exc)
            now = time.monotonic()
            self._rewind_failing_since = self._rewind_failing_since or now
            if now - self._rewind_failing_since > self.recovery_budget_s:
                self._fatal(f"cannot rewind to the committed offsets: {_describe(exc)}", exc)
            log.warning("%s: rewind to the committed offsets: %s; retrying", self.member, exc)
            return False
        self._rewind_failing_since = 0.0
        self._needs_rewind = False
        self._ends.reset()
        self.stats.rewinds += 1
        return True

    def _fatal(self, message: str, exc: BaseException) -> NoReturn:
        self._failed = True
        partitions = ", ".join(f"{t}/{p}" for t, p in self._assigned) or "none assigned"
        text = f"{self.group} (instance {self.instance_id}, partitions {partitions}): {message}"
        # Not logged here: the one who stops on it (``kernel run``) tells it, once.
        raise LogUnavailableError(text) from exc


def _partitions(assigned: Sequence[tuple[str, int]]) -> str:
    """``topic[0,2] other[1]``: an assignment in one short log field."""
    by: dict[str, list[int]] = {}
    for topic, partition in assigned:
        by.setdefault(topic, []).append(partition)
    return " ".join(f"{t}[{','.join(map(str, ps))}]" for t, ps in by.items()) or "nothing"


def _where(msg: Message) -> tuple[str, int, int]:
    return (str(msg.topic()), int(msg.partition() or 0), int(msg.offset() or 0))


def _error_of(exc: BaseException) -> KafkaError | None:
    arg = exc.args[0] if exc.args else None
    return arg if isinstance(arg, KafkaError) else None


def _is_fatal(exc: KafkaException) -> bool:
    error = _error_of(exc)
    return error is not None and (error.fatal() or error.code() in _FENCED)


def _describe(exc: BaseException) -> str:
    error = _error_of(exc)
    if error is not None:
        return f"{error.name()}: {error.str()}"
    return f"{type(exc).__name__}: {exc}"
