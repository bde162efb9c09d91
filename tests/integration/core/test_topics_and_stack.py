from __future__ import annotations

import time

from confluent_kafka.admin import AdminClient, NewPartitions

from ops.bootstrap import Kernel
from ops.config import Settings
from ops.stack import LocalStack
from schemas.topics import TOPICS


def test_stack_is_healthy_and_up_is_idempotent(stack: LocalStack) -> None:
    status = stack.up()
    assert status.healthy
    assert status.kafka.detail == "reused" and status.postgres.detail == "reused"


def test_ensure_creates_every_declared_topic_then_reports_ok(settings: Settings) -> None:
    kernel = Kernel(settings)
    first = kernel.topic_admin().ensure()
    assert {r.action for r in first} == {"created"}
    assert len(first) == len(TOPICS)
    second = kernel.topic_admin().ensure()
    assert {r.action for r in second} == {"ok"}


def test_event_log_never_expires_and_drift_is_reported(kernel: Kernel) -> None:
    admin = AdminClient({"bootstrap.servers": kernel.settings.kafka_bootstrap})
    admin.create_partitions([NewPartitions(kernel.names.actions, 5)])[
        "" + kernel.names.actions
    ].result()
    deadline = time.monotonic() + 15
    while kernel.topic_admin().existing().get(kernel.names.actions) != 5:
        assert time.monotonic() < deadline, "partitions were not added"
        time.sleep(0.2)
    reports = {r.topic: r for r in kernel.topic_admin().ensure()}
    drift = reports[kernel.names.actions]
    assert drift.action == "drift"
    assert "partitions: declared 3, broker 5" in drift.drift
    assert reports[kernel.names.chain].action == "ok"  # retention.ms=-1, delete, as declared
