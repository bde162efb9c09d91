"""The lag monitor against the real broker: STALL/STOP/OK/REWIND, lag seconds, markers.

Consumers are simulated by committing offsets for a group directly (a simple
consumer: assign-style commits, no group membership), which is exactly what
the monitor observes of a real consumer and lets the test control timing.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from ops.bootstrap import Kernel
from ops.lag.monitor import LagConfig, LagMonitor
from ops.lag.status import LagPolicy, Status
from streams.kafka.offsets import KafkaOffsets

WINDOW_S = 4.0
INTERVAL_S = 0.25
POLICY = LagPolicy(window_s=WINDOW_S, stall_after_s=1.5, min_samples=3)


@pytest.fixture
def offsets(kernel: Kernel) -> Iterator[KafkaOffsets]:
    source = KafkaOffsets(kernel.settings.kafka_bootstrap, probe_timeout_s=3.0)
    yield source
    source.close()


class RecordingClock:
    """The monitor's clock, remembered: assertions use the time the monitor itself
    sampled at, not a stopwatch around its calls (which a loaded machine stretches)."""

    def __init__(self) -> None:
        self.readings: list[float] = []

    def __call__(self) -> float:
        self.readings.append(time.time())
        return self.readings[-1]

    @property
    def last(self) -> float:
        return self.readings[-1]

    def max_gap(self) -> float:
        return max((b - a for a, b in itertools.pairwise(self.readings)), default=0.0)


def monitor_for(
    kernel: Kernel,
    offsets: KafkaOffsets,
    *,
    probe: bool = True,
    clock: RecordingClock | None = None,
) -> LagMonitor:
    config = LagConfig(interval_s=INTERVAL_S, policy=POLICY)
    # members=False: these consumers are simulated by bare commits, with no membership.
    return LagMonitor(
        offsets,
        prefix=kernel.settings.topic_prefix,
        config=config,
        probe=probe,
        members=False,
        clock=clock or RecordingClock(),
    )


def producer(kernel: Kernel, **extra: object) -> Producer:
    return Producer({"bootstrap.servers": kernel.settings.kafka_bootstrap, **extra})


def produce(p: Producer, topic: str, n: int, *, timestamp_ms: int | None = None) -> None:
    for i in range(n):
        if timestamp_ms is None:
            p.produce(topic, f"v{i}".encode(), partition=0)
        else:
            p.produce(topic, f"v{i}".encode(), partition=0, timestamp=timestamp_ms)
    assert p.flush(10) == 0


def committer(kernel: Kernel, group: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": kernel.settings.kafka_bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
        }
    )


def commit(c: Consumer, topic: str, offset: int) -> None:
    c.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)


def end_of(offsets: KafkaOffsets, topic: str) -> int:
    return offsets.ends([(topic, 0)])[(topic, 0)].last_stable


def status_of(monitor: LagMonitor, group: str) -> tuple[Status, float, int]:
    snap = monitor.sample([group])
    g = snap.group(group)
    assert g is not None, f"{group} not reported"
    p = g.partitions[0]
    return g.status, p.lag_seconds, p.lag


def test_stall_then_stop_then_ok_then_rewind(kernel: Kernel, offsets: KafkaOffsets) -> None:
    topic, group = kernel.names.actions, f"{kernel.settings.topic_prefix}consumer"
    p, c = producer(kernel), committer(kernel, group)
    clock = RecordingClock()
    monitor = monitor_for(kernel, offsets, clock=clock)
    try:
        produce(p, topic, 5)
        commit(c, topic, 5)
        for _ in range(4):  # a healthy consumer: keeps up with the producer
            produce(p, topic, 2)
            commit(c, topic, end_of(offsets, topic))
            assert status_of(monitor, group)[0] is Status.OK
            time.sleep(INTERVAL_S)

        # the consumer stops committing, the producer goes on; times are the
        # monitor's own sample times, so a slow sample shifts nothing
        stalled_at = clock.last  # the last sample that saw it commit
        seen: list[tuple[float, Status]] = []
        deadline = time.monotonic() + 10 * WINDOW_S  # generous: only a hang ends here
        while Status.STOP not in {s for _, s in seen} and time.monotonic() < deadline:
            produce(p, topic, 1)
            status = status_of(monitor, group)[0]
            seen.append((clock.last - stalled_at, status))
            time.sleep(INTERVAL_S)
        first = {status: at for at, status in reversed(seen)}
        assert Status.STALL in first, seen
        assert Status.STOP in first, seen
        assert first[Status.STALL] < first[Status.STOP]
        assert first[Status.STOP] > WINDOW_S  # not before the whole window without a commit
        # ...and at the first sample past it: the sample before was within the window
        # (give or take the one sample in which the stall began)
        before_stop = max(at for at, _ in seen if at < first[Status.STOP])
        assert before_stop <= WINDOW_S + clock.max_gap(), seen

        # it catches up: OK again at the next evaluation
        commit(c, topic, end_of(offsets, topic))
        assert status_of(monitor, group)[0] is Status.OK

        # an operator resets it to an earlier offset
        time.sleep(INTERVAL_S)
        commit(c, topic, 2)
        status, _, lag = status_of(monitor, group)
        assert status is Status.REWIND
        assert lag == end_of(offsets, topic) - 2
    finally:
        c.close()


def test_lag_seconds_from_the_head_record_timestamp(kernel: Kernel, offsets: KafkaOffsets) -> None:
    topic, group = kernel.names.actions, f"{kernel.settings.topic_prefix}slow"
    p, c = producer(kernel), committer(kernel, group)
    try:
        produced_at = time.time()
        produce(p, topic, 3, timestamp_ms=int(produced_at * 1000))
        commit(c, topic, 0)
        time.sleep(2.0)
        clock = RecordingClock()
        monitor = monitor_for(kernel, offsets, clock=clock)
        _, seconds, lag = status_of(monitor, group)
        truth = clock.last - produced_at  # the age at the monitor's own sample time
        assert lag == 3
        assert abs(seconds - truth) <= max(0.1 * truth, INTERVAL_S), (seconds, truth)
    finally:
        c.close()


def test_lag_seconds_interpolated_without_reading_records(
    kernel: Kernel, offsets: KafkaOffsets
) -> None:
    topic, group = kernel.names.actions, f"{kernel.settings.topic_prefix}blind"
    p, c = producer(kernel), committer(kernel, group)
    clock = RecordingClock()
    monitor = monitor_for(kernel, offsets, probe=False, clock=clock)  # timestamps unknown
    try:
        commit(c, topic, 0)
        status_of(monitor, group)  # first sample: end 0
        produced: list[float] = []
        for _ in range(12):  # one record per evaluation interval
            produced.append(time.time())
            produce(p, topic, 1)
            status_of(monitor, group)
            time.sleep(INTERVAL_S)
        commit(c, topic, 4)  # the oldest unconsumed record is the 5th
        _, seconds, lag = status_of(monitor, group)
        truth = clock.last - produced[4]  # the age at the monitor's own sample time
        assert lag == 8
        # Interpolated from the samples around the record's arrival: off by at most
        # the gap between two samples, however far a loaded machine stretched it.
        slack = max(0.1 * truth, INTERVAL_S, clock.max_gap())
        assert abs(seconds - truth) <= slack, (seconds, truth, slack)
    finally:
        c.close()


def test_read_committed_consumer_at_end_of_transactional_topic_has_no_lag(
    kernel: Kernel, offsets: KafkaOffsets
) -> None:
    topic, group = kernel.names.actions, f"{kernel.settings.topic_prefix}txreader"
    tx = producer(kernel, **{"transactional.id": f"lag-test-{uuid.uuid4()}"})
    tx.init_transactions(10)
    for _ in range(2):
        tx.begin_transaction()
        produce(tx, topic, 5)
        tx.commit_transaction(10)
    reader = Consumer(
        {
            "bootstrap.servers": kernel.settings.kafka_bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    try:
        reader.assign([TopicPartition(topic, 0, 0)])
        values, deadline = 0, time.monotonic() + 15
        while time.monotonic() < deadline:
            msg = reader.poll(0.5)
            if msg is None:
                continue
            err = msg.error()
            if err is not None and err.code() == KafkaError._PARTITION_EOF:
                break
            assert err is None
            values += 1
        assert values == 10
        reader.commit(asynchronous=False)  # the consumer's own position, as a processor does
    finally:
        reader.close()

    ends = offsets.ends([(topic, 0)])[(topic, 0)]
    assert ends.last_stable == ends.high_watermark == 12  # 10 records + 2 commit markers
    committed = offsets.committed([group])[group][(topic, 0)]
    print(f"librdkafka committed {committed} with the log end at {ends.last_stable}")
    # A client that commits "last record + 1" sits in front of the commit marker
    # (offset 11): raw end - committed would be 1 forever. Pin that case too.
    pinned = f"{kernel.settings.topic_prefix}marker"
    c = committer(kernel, pinned)
    commit(c, topic, 11)
    c.close()
    monitor = monitor_for(kernel, offsets)
    for _ in range(3):
        for g in (group, pinned):
            status, seconds, lag = status_of(monitor, g)
            assert (lag, seconds, status) == (0, 0.0, Status.OK), g
        time.sleep(INTERVAL_S)
