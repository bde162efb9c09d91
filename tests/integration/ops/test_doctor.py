"""``kernel doctor`` against the real stack: healthy, and broken in known ways."""

from __future__ import annotations

import json
from dataclasses import replace

from confluent_kafka import Producer

from ops.bootstrap import Kernel
from ops.commands.doctor import facts
from ops.config import Settings
from ops.doctor import diagnose, healthy
from projections.migrate import migrate
from schemas.codec import EventCodec
from streams.dead_letter import dead_letter
from tests.e2e.conftest import make_cli


def _findings(kernel: Kernel) -> dict[str, tuple[str, str, str]]:
    return {f.check: (f.status, f.detail, f.fix) for f in diagnose(facts(kernel))}


def test_healthy_stack_exits_0(db_kernel: Kernel) -> None:
    migrate(db_kernel.settings.database_url)
    done = make_cli(db_kernel.settings)("doctor", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["healthy"] is True
    statuses = {f["check"]: f["status"] for f in report["findings"]}
    assert statuses == dict.fromkeys(
        ("kafka", "postgres", "replication", "migrations", "topics", "lag", "dead-letters"), "ok"
    )


def test_pending_migrations_exit_1_and_say_migrate(db_kernel: Kernel) -> None:
    done = make_cli(db_kernel.settings)("doctor")
    assert done.returncode == 1
    line = next(x for x in done.stdout.splitlines() if "migrations" in x)
    assert line.startswith("FAIL") and "pending" in line
    assert "-> kernel db migrate" in done.stdout
    assert "kernel doctor: UNHEALTHY" in done.stdout


def test_missing_topics_are_reported_without_creating_them(
    settings: Settings, database_url: str
) -> None:
    migrate(database_url)
    kernel = Kernel(replace(settings, postgres_url=database_url))
    by = _findings(kernel)
    status, detail, fix = by["topics"]
    assert status == "fail" and kernel.names.actions in detail
    assert fix == "kernel topics ensure"
    assert by["migrations"][0] == "ok"
    assert kernel.names.actions not in kernel.topic_admin().existing()  # read-only


def test_dead_letters_are_counted(db_kernel: Kernel) -> None:
    migrate(db_kernel.settings.database_url)
    codec = EventCodec()
    producer = Producer({"bootstrap.servers": db_kernel.settings.kafka_bootstrap})
    for offset in range(3):
        event = dead_letter(
            processor="p", reason="bad", error_type="SchemaError", topic="t",
            partition=0, offset=offset, key=None, value=b"x",
        )  # fmt: skip
        producer.produce(db_kernel.names.dlq, codec.encode(event))
    assert producer.flush(10) == 0
    found = facts(db_kernel)
    assert found.dead_letters == 3
    by = {f.check: f for f in diagnose(found)}
    assert by["dead-letters"].status == "warn"
    assert healthy(list(by.values()))
