"""Bisection on real Postgres: exactly the records Postgres refuses are isolated.

``write_isolating`` is driven directly (no Kafka) so that every kind of bad
row reaches Postgres whatever the decoder in front of it checks; each example
runs in a transaction that is rolled back.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ops.bootstrap import Kernel
from projections.audit import AuditProjection
from projections.migrate import migrate
from projections.rejections import is_record_error, write_isolating
from projections.sentinel import PolicyCheckProjection
from streams.processor import InputRecord
from tests.integration.projections.records import BAD_LINKS, DUPLICATE_CHAIN, link, policy_check

Conn = psycopg.Connection[tuple[object, ...]]

# What Postgres (or psycopg, or the projection) says about each kind.
REASONS = {
    "uuid": "invalid input syntax for type uuid",
    "check": "violates check constraint",
    "nul_text": "NUL",
    "nul_json": "unsupported Unicode escape sequence",
    "duplicate": "duplicate key value violates unique constraint",
    "malformed": "hash",
}


@dataclass
class Counting:
    """The audit projection, counting its write calls."""

    inner: AuditProjection
    calls: int = 0
    name: str = "audit"
    topics: Sequence[str] = field(default_factory=list)

    def write(self, cur: psycopg.Cursor[tuple[object, ...]], batch: Sequence[InputRecord]) -> None:
        self.calls += 1
        self.inner.write(cur, batch)


@pytest.fixture
def conn(db_kernel: Kernel) -> Iterator[Conn]:
    url = db_kernel.settings.database_url
    migrate(url)
    with psycopg.connect(url) as c:
        with c.transaction(), c.cursor() as cur:  # the row a "duplicate" link collides with
            AuditProjection("c", "k").write(
                cur, [InputRecord("t", 0, 0, 0, None, link(DUPLICATE_CHAIN, 0))]
            )
        yield c


def _records(kinds: list[str | None]) -> list[InputRecord]:
    return [
        InputRecord("t.chain", i % 3, i, 0, None, link(f"c/{i % 3}", i, kind))
        for i, kind in enumerate(kinds)
    ]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(kinds=st.lists(st.one_of(st.none(), st.none(), st.sampled_from(BAD_LINKS)), max_size=40))
def test_bisection_finds_exactly_the_bad_positions(conn: Conn, kinds: list[str | None]) -> None:
    records = _records(kinds)
    projection = Counting(AuditProjection("c", "k"))
    with conn.transaction(force_rollback=True), conn.cursor() as cur:
        refused = write_isolating(conn, cur, projection, records)
        rows = cur.execute(
            "SELECT source_offset FROM audit_events WHERE chain <> %s ORDER BY chain, seq",
            (DUPLICATE_CHAIN,),
        ).fetchall()
    bad = [i for i, k in enumerate(kinds) if k is not None]
    assert [r.offset for r, _ in refused] == bad
    for record, exc in refused:
        kind = kinds[record.offset]
        assert kind is not None and REASONS[kind] in str(exc), (kind, exc)
        assert is_record_error(exc)
    good = [i for i, k in enumerate(kinds) if k is None]
    assert sorted(int(str(o)) for (o,) in rows) == good  # every other row, once
    # O(k log n) writes: a clean batch is one call, each bad record costs a path.
    n = max(len(records), 1)
    assert projection.calls <= 1 + 2 * len(bad) * math.ceil(math.log2(n) + 1)
    if not bad:
        assert projection.calls == (1 if records else 0)


def test_a_policy_check_with_nul_is_refused_alone(conn: Conn) -> None:
    checks = [policy_check(f"acct-{i}") for i in range(6)]
    checks[2] = policy_check("acct\x00x")
    checks[4] = policy_check("acct-4", request_id="req\x00x")
    records = [InputRecord("t.checks", 0, i, 0, None, e) for i, e in enumerate(checks)]
    with conn.transaction(force_rollback=True), conn.cursor() as cur:
        refused = write_isolating(conn, cur, PolicyCheckProjection("t.checks"), records)
        rows = cur.execute("SELECT source_offset FROM policy_checks ORDER BY 1").fetchall()
    assert [r.offset for r, _ in refused] == [2, 4]
    assert all("NUL" in str(exc) for _, exc in refused)
    assert rows == [(0,), (1,), (3,), (5,)]  # each once, although written in halves


@dataclass
class Sleeping:
    name: str = "sleepy"
    topics: Sequence[str] = field(default_factory=list)

    def write(self, cur: psycopg.Cursor[tuple[object, ...]], batch: Sequence[InputRecord]) -> None:
        cur.execute("SELECT pg_sleep(5)")


def test_an_unwell_database_is_not_a_record_error(conn: Conn) -> None:
    """A missing table or a statement timeout is not the records' fault: it
    propagates (the runner pauses and resumes), nothing is isolated."""
    records = _records([None, None, None])
    with conn.transaction(force_rollback=True), conn.cursor() as cur:
        cur.execute("ALTER TABLE audit_events RENAME TO audit_events_gone")
        with pytest.raises(psycopg.errors.UndefinedTable):
            write_isolating(conn, cur, AuditProjection("c", "k"), records)
    with conn.transaction(force_rollback=True), conn.cursor() as cur:
        cur.execute("SET LOCAL statement_timeout = '50ms'")
        with pytest.raises(psycopg.errors.QueryCanceled):
            write_isolating(conn, cur, Sleeping(), records)
    with conn.cursor() as cur:  # the rename was rolled back with its transaction
        assert cur.execute("SELECT to_regclass('audit_events')::text").fetchone() == (
            "audit_events",
        )
