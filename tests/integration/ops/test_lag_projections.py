"""Projector lag: stored checkpoints in Postgres against the log end on Kafka."""

from __future__ import annotations

import uuid
from dataclasses import replace

import psycopg
from confluent_kafka import Consumer, Producer, TopicPartition

from ops.bootstrap import Kernel
from ops.lag.monitor import LagMonitor
from ops.lag.postgres_checkpoints import PostgresCheckpoints
from ops.lag.status import Status
from streams.kafka.offsets import KafkaOffsets

DDL = """
CREATE TABLE projection_checkpoints (
    projection text, topic text, partition int, next_offset bigint,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, topic, partition))
"""


def test_projection_lag_from_checkpoints(kernel: Kernel, database_url: str) -> None:
    k = Kernel(replace(kernel.settings, postgres_url=database_url))
    checkpoints = PostgresCheckpoints(k.database())
    assert checkpoints.checkpoints() == {}  # no table yet: nothing to report, no error

    topic = k.names.actions
    name = f"audit_{uuid.uuid4().hex[:8]}"  # its projector group is this test's alone
    p = Producer({"bootstrap.servers": k.settings.kafka_bootstrap})
    for i in range(7):
        p.produce(topic, f"v{i}".encode(), partition=1)
    assert p.flush(10) == 0
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(DDL)
        conn.execute(
            "INSERT INTO projection_checkpoints (projection, topic, partition, next_offset) "
            "VALUES (%s, %s, 1, 4)",
            (name, topic),
        )
    offsets = KafkaOffsets(k.settings.kafka_bootstrap)
    try:
        monitor = LagMonitor(offsets, prefix=k.settings.topic_prefix, checkpoints=checkpoints)
        group = monitor.sample().group(f"projection:{name}")
        assert group is not None
        (part,) = group.partitions
        assert (part.topic, part.partition, part.committed, part.lag) == (topic, 1, 4, 3)
        assert part.lag_seconds_source == "timestamp"
        # No projector group exists: membership unknown, the window judges.
        assert (group.members, group.status) == (None, Status.OK)

        # Its projector group exists but nobody is in it: flagged at once.
        projector = f"{k.settings.topic_prefix}projector-{name}"
        c = Consumer({"bootstrap.servers": k.settings.kafka_bootstrap, "group.id": projector})
        c.commit(offsets=[TopicPartition(topic, 1, 4)], asynchronous=False)
        c.close()
        group = monitor.sample().group(f"projection:{name}")
        assert group is not None
        assert (group.members, group.status) == (0, Status.NO_MEMBER)
    finally:
        offsets.close()
        checkpoints.close()
