"""Projectors on real Kafka and Postgres: bad records are dead-lettered, the rest projected.

The records are written straight to the topics (raw Avro, none of the codec's
checks), as a careless producer would. Whatever refuses a record first -- the
decoder's input contract or Postgres -- it must end in the dead-letter topic
with a reason, every other record must be projected exactly once, and the
projector must go on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import psycopg
import pytest

from ops.bootstrap import Kernel
from projections.audit import AuditProjection
from projections.migrate import migrate
from projections.projector import ProjectorRunner, Rejection, read_checkpoints
from schemas.errors import LogUnavailableError
from schemas.events import Event
from tests.integration.core.test_producer import read_all
from tests.integration.projections.records import DUPLICATE_CHAIN, link, policy_check, raw_encode

# Postgres's reason, or the input contract's when the decoder refuses first.
REASONS = {
    "uuid": r"uuid|UUID",
    "check": r"violates check constraint",
    "nul_text": r"NUL|0x00|\\u0000|\\x00",
    "duplicate": r"duplicate key value violates unique constraint",
    "garbage": r"undecodable record",
}


def _publish(kernel: Kernel, topic: str, events: Sequence[Event | bytes]) -> None:
    """All under one key (one partition, in this order)."""
    kernel.producer().publish_encoded(
        [(topic, b"k", e if isinstance(e, bytes) else raw_encode(kernel.codec, e)) for e in events]
    )


def _dead(kernel: Kernel) -> dict[tuple[str, int, int], dict[str, object]]:
    return {
        (str(b["sourceTopic"]), int(b["sourcePartition"]), int(b["sourceOffset"])): b
        for b in (d.body for _, d, _ in read_all(kernel, kernel.names.dlq))
    }


def _rows(url: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def test_the_audit_projector_dead_letters_what_postgres_refuses_and_goes_on(
    db_kernel: Kernel,
) -> None:
    kernel, url = db_kernel, db_kernel.settings.database_url
    migrate(url)
    topic = kernel.names.chain
    kinds: list[str | None] = [None] * 12
    for i, kind in [(2, "uuid"), (5, "check"), (6, "nul_text"), (9, "duplicate"), (10, "garbage")]:
        kinds[i] = kind
    events: list[Event | bytes] = [link(DUPLICATE_CHAIN, 0)]  # what the duplicate collides with
    for i, kind in enumerate(kinds):
        events.append(b"garbage" if kind == "garbage" else link(DUPLICATE_CHAIN, i + 1, kind))
    _publish(kernel, topic, events)

    runner = kernel.audit_projector()
    try:
        assert runner.run_until_idle(idle_s=1.0) == 1 + kinds.count(None)
        dead = _dead(kernel)
        assert len(dead) == 5
        by_offset = {off: body for (_t, _p, off), body in dead.items()}
        for i, kind in enumerate(kinds):
            if kind is None:
                assert i + 1 not in by_offset
                continue
            body = by_offset[i + 1]
            assert body["processor"] == "audit"
            assert re.search(REASONS[kind], str(body["reason"])), (kind, body["reason"])
        seqs = _rows(url, "SELECT seq FROM audit_events ORDER BY seq")
        assert seqs == [(0,)] + [(i + 1,) for i, k in enumerate(kinds) if k is None]

        # Still running: the next records are projected by the same runner.
        _publish(kernel, topic, [link(DUPLICATE_CHAIN, 100 + i) for i in range(3)])
        assert runner.run_until_idle(idle_s=1.0) == 3
    finally:
        runner.close()
    with psycopg.connect(url) as conn:
        assert sum(read_checkpoints(conn, "audit").values()) == len(events) + 3


def test_the_sentinel_projector_dead_letters_a_nul_subject(db_kernel: Kernel) -> None:
    kernel, url = db_kernel, db_kernel.settings.database_url
    migrate(url)
    checks = [policy_check(f"acct-{i}") for i in range(5)]
    checks[1] = policy_check("acct\x00x")
    checks[3] = policy_check("acct-3", request_id="req\x00x")
    topic = kernel.names.policy_checks
    kernel.producer().publish_encoded(
        [(topic, b"acct", raw_encode(kernel.codec, c)) for c in checks]  # one partition
    )
    runners = kernel.sentinel_projectors()
    try:
        for runner in runners:
            runner.run_until_idle(idle_s=0.5)
    finally:
        for runner in runners:
            runner.close()
    ids = _rows(url, "SELECT policy_check_id::text FROM policy_checks ORDER BY source_offset")
    assert ids == [(checks[i].body["policyCheckId"],) for i in (0, 2, 4)]
    dead = sorted(_dead(kernel).items())
    assert [(t, off) for (t, _p, off), _ in dead] == [(topic, 1), (topic, 3)]
    for _, body in dead:
        assert body["processor"] == "policy_checks"
        assert re.search(REASONS["nul_text"], str(body["reason"]))


class FlakyDeadLetters:
    """Kafka "unavailable" on the first call; records what was visible meanwhile."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.calls: list[list[int]] = []
        self.visible_rows: list[int] = []

    def __call__(self, rejections: Sequence[Rejection]) -> None:
        self.calls.append([r.offset for r in rejections])
        (count,) = _rows(self.url, "SELECT count(*) FROM audit_events")[0]
        self.visible_rows.append(int(str(count)))
        if len(self.calls) == 1:
            raise LogUnavailableError("broker away (test)")


def test_dead_letters_are_on_kafka_before_the_batch_commits(db_kernel: Kernel) -> None:
    kernel, url = db_kernel, db_kernel.settings.database_url
    migrate(url)
    _publish(
        kernel, kernel.names.chain, [link("c/0", i, "uuid" if i == 3 else None) for i in range(6)]
    )
    sink = FlakyDeadLetters(url)
    runner = ProjectorRunner(
        AuditProjection(kernel.names.chain, kernel.names.checkpoints),
        kafka=kernel.kafka,
        database_url=url,
        codec=kernel.codec,
        group=f"{kernel.names.prefix}projector-audit",
        dead_letters=sink,
    )
    try:
        assert runner.run_until_idle(idle_s=1.0) == 5
    finally:
        runner.close()
    # Called inside the transaction (nothing committed yet), failed, so nothing
    # committed; the retry from the stored checkpoint dead-letters it again.
    assert sink.calls == [[3], [3]]
    assert sink.visible_rows == [0, 0]
    assert _rows(url, "SELECT count(*) FROM audit_events") == [(5,)]


def test_a_batch_from_a_moved_checkpoint_rolls_back_and_resumes_from_it(
    db_kernel: Kernel,
) -> None:
    """A zombie's batch: its partition's checkpoint moved under it (another instance)."""
    kernel, url = db_kernel, db_kernel.settings.database_url
    migrate(url)
    topic = kernel.names.chain
    _publish(kernel, topic, [link("c/0", i) for i in range(10)])
    runner = kernel.audit_projector()
    try:
        assert runner.run_until_idle(idle_s=1.0) == 10
        _publish(kernel, topic, [link("c/0", i) for i in range(10, 20)])
        with psycopg.connect(url) as conn:
            ((partition,),) = conn.execute(
                "SELECT partition FROM projection_checkpoints WHERE next_offset = 10"
            ).fetchall()
            conn.execute(  # "instance B" projected 10..14 meanwhile
                "UPDATE projection_checkpoints SET next_offset = 15 WHERE partition = %s",
                (partition,),
            )
        assert runner.run_until_idle(idle_s=1.0) == 5
        assert runner.conflicts >= 1
    finally:
        runner.close()
    seqs = [int(str(s)) for (s,) in _rows(url, "SELECT seq FROM audit_events ORDER BY seq")]
    assert seqs == [*range(10), *range(15, 20)]


@pytest.mark.parametrize("value", [b"", b"\xc3\x01" + b"\x00" * 8])
def test_undecodable_records_of_the_audit_topics_are_dead_lettered(
    db_kernel: Kernel, value: bytes
) -> None:
    kernel, url = db_kernel, db_kernel.settings.database_url
    migrate(url)
    _publish(kernel, kernel.names.checkpoints, [value])
    runner = kernel.audit_projector()
    try:
        runner.run_until_idle(idle_s=0.5)
    finally:
        runner.close()
    ((where, body),) = _dead(kernel).items()
    assert where[0] == kernel.names.checkpoints
    assert body["processor"] == "audit" and "undecodable" in str(body["reason"])
