"""The generic runners against real Kafka and Postgres."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace

import psycopg

from ops.bootstrap import Kernel
from projections.migrate import migrate
from projections.projector import ProjectorRunner, read_checkpoints
from streams.kafka.transactional_runner import TransactionalRunner
from streams.processor import InputRecord, LogReader, OutputRecord
from tests.integration.core.test_producer import _actions, read_all


@dataclass
class CopyProcessor:
    """Copies each action to the remediations topic; state counts per partition."""

    out_topic: str
    input_topics: Sequence[str]
    name: str = "copier"
    fail_on: str | None = None

    def recover(self, assigned: Sequence[tuple[str, int]], reader: LogReader) -> dict[int, int]:
        return {}

    def step(
        self, state: dict[int, int], record: InputRecord
    ) -> tuple[dict[int, int], list[OutputRecord]]:
        if self.fail_on and record.event.body["action"] == self.fail_on:
            from schemas.errors import ValidationError

            raise ValidationError("this action is refused", field="body.action")
        new = dict(state)
        new[record.partition] = new.get(record.partition, 0) + 1
        return new, [OutputRecord(self.out_topic, record.key or b"", record.event)]


def _runner(kernel: Kernel, proc: CopyProcessor) -> TransactionalRunner[dict[int, int]]:
    return TransactionalRunner(proc, kafka=kernel.kafka, codec=kernel.codec, names=kernel.names)


def test_exactly_once_copy_with_dead_letters_and_resume(kernel: Kernel) -> None:
    producer = kernel.producer()
    events = _actions(20, "a") + _actions(20, "b")
    producer.publish_batch(events)
    # A record that is not Avro at all, and one the processor refuses.
    producer.publish_encoded([(kernel.names.actions, b"a", b"garbage")])
    refused = _actions(1, "a")[0]
    producer.publish(replace(refused, body={**refused.body, "action": "refuse"}))

    out = kernel.names.name("remediations")
    proc = CopyProcessor(out, [kernel.names.actions], fail_on="refuse")
    runner = _runner(kernel, proc)
    assert runner.run_until_idle(idle_s=1.5) == 42
    runner.close()
    copied = read_all(kernel, out)
    assert sorted(e.event_id for _, e, _ in copied) == sorted(e.event_id for e in events)
    # per-subject order is preserved
    assert [e.event_id for _, e, _ in copied if e.subject == "a"] == [
        e.event_id for e in events if e.subject == "a"
    ]
    dead = [e for _, e, _ in read_all(kernel, kernel.names.dlq)]
    assert len(dead) == 2
    reasons = sorted(d.body["reason"] for d in dead)
    assert "undecodable" in reasons[1] and "refused" in reasons[0]
    assert all(d.body["sourceTopic"] == kernel.names.actions for d in dead)
    assert {d.body["sourceValue"] for d in dead} >= {b"garbage"}

    # A second runner of the same group resumes after the committed offsets.
    again = _runner(kernel, CopyProcessor(out, [kernel.names.actions]))
    assert again.run_until_idle(idle_s=1.5) == 0
    producer.publish_batch(_actions(3, "c"))
    assert again.run_until_idle(idle_s=1.5) == 3
    again.close()
    assert len(read_all(kernel, out)) == 43


@dataclass
class ActionsTable:
    topics: Sequence[str]
    name: str = "actions_test"

    def write(self, cur: psycopg.Cursor[tuple[object, ...]], batch: Sequence[InputRecord]) -> None:
        with cur.copy("COPY test_actions (event_id, subject, off) FROM STDIN") as copy:
            for r in batch:
                copy.write_row((r.event.event_id, r.event.subject, r.offset))


def test_projector_writes_rows_and_checkpoint_together_and_survives_db_loss(
    db_kernel: Kernel,
) -> None:
    url = db_kernel.settings.database_url
    migrate(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE test_actions (event_id uuid PRIMARY KEY, subject text, off bigint)"
        )
    producer = db_kernel.producer()
    producer.publish_batch(_actions(50, "x") + _actions(50, "y"))
    projection = ActionsTable([db_kernel.names.actions])
    runner = ProjectorRunner(
        projection,
        kafka=db_kernel.kafka,
        database_url=url,
        codec=db_kernel.codec,
    )
    assert runner.run_until_idle() == 100

    # Postgres drops every connection mid-stream: the runner pauses, reconnects, resumes.
    producer.publish_batch(_actions(30, "z"))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    assert runner.run_until_idle(idle_s=2) == 30
    runner.close()

    # A fresh runner resumes from the stored checkpoint: nothing twice.
    fresh = ProjectorRunner(
        projection,
        kafka=db_kernel.kafka,
        database_url=url,
        codec=db_kernel.codec,
    )
    assert fresh.run_until_idle() == 0
    fresh.close()
    with psycopg.connect(url) as conn:
        count = conn.execute("SELECT count(*) FROM test_actions").fetchone()
        checkpoints = read_checkpoints(conn, "actions_test")
    assert count == (130,)
    assert sum(checkpoints.values()) == 130


def test_runner_stops_when_asked(kernel: Kernel) -> None:
    out = kernel.names.name("remediations")
    runner = _runner(kernel, CopyProcessor(out, [kernel.names.actions], name="stopper"))
    stop = threading.Event()
    thread = threading.Thread(target=runner.run, args=(stop.is_set,))
    thread.start()
    kernel.producer().publish_batch(_actions(5))
    stop.set()
    thread.join(timeout=30)
    assert not thread.is_alive()
    runner.close()
