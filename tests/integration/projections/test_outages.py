"""Postgres unwell, not the records: the projector pauses, resumes, loses nothing.

The shared test Postgres must not be stopped, so its outages are made per
database: ``ALLOW_CONNECTIONS false`` plus terminating the sessions refuses
every connection exactly as a stopped server would; a row lock held by another
session stalls the projector's statements until ``statement_timeout``.
"""

from __future__ import annotations

import threading
import time

import psycopg

from ops.bootstrap import Kernel
from ops.config import Settings
from projections.audit import AuditProjection
from projections.migrate import migrate
from projections.postgres import PostgresTimeouts
from projections.projector import ProjectorRunner, read_checkpoints
from tests.integration.core.test_producer import read_all
from tests.integration.projections.records import link
from tests.integration.projections.test_dead_letters import _publish, _rows


def _runner(kernel: Kernel, url: str, timeouts: PostgresTimeouts) -> ProjectorRunner:
    return ProjectorRunner(
        AuditProjection(kernel.names.chain, kernel.names.checkpoints),
        kafka=kernel.kafka,
        database_url=url,
        codec=kernel.codec,
        group=f"{kernel.names.prefix}projector-audit",
        timeouts=timeouts,
    )


def _connections(admin_url: str, db: str, allow: bool) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS {str(allow).lower()}')
        if not allow:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (db,),
            )


def test_postgres_refusing_connections_from_the_start_then_back(
    db_kernel: Kernel, base_settings: Settings
) -> None:
    kernel, url = db_kernel, db_kernel.settings.database_url
    admin, db = base_settings.database_url, url.rsplit("/", 1)[1]
    migrate(url)
    _publish(kernel, kernel.names.chain, [link("c/0", i) for i in range(8)])
    _connections(admin, db, allow=False)
    runner = _runner(kernel, url, PostgresTimeouts(connect_s=2, statement_s=5, keepalive_s=5))
    try:
        for _ in range(3):  # refused: nothing, no crash, backing off
            assert runner.poll_once() == 0
        _connections(admin, db, allow=True)
        assert runner.run_until_idle(idle_s=1.0) == 8
    finally:
        _connections(admin, db, allow=True)
        runner.close()
    seqs = [int(str(s)) for (s,) in _rows(url, "SELECT seq FROM audit_events ORDER BY 1")]
    assert seqs == [*range(8)]


def test_postgres_lost_at_the_assignment_holds_the_partitions_until_it_is_back(
    db_kernel: Kernel, base_settings: Settings
) -> None:
    kernel, url = db_kernel, db_kernel.settings.database_url
    admin, db = base_settings.database_url, url.rsplit("/", 1)[1]
    migrate(url)
    _publish(kernel, kernel.names.chain, [link("c/0", i) for i in range(8)])
    runner = _runner(kernel, url, PostgresTimeouts(connect_s=2, statement_s=5, keepalive_s=5))
    try:
        runner._connection()  # connected, then Postgres goes before the group assigns
        _connections(admin, db, allow=False)
        deadline = time.monotonic() + 60
        while not runner._joined and time.monotonic() < deadline:
            assert runner.poll_once() == 0
        assert runner._joined
        assert runner._pending  # assigned but held: the checkpoints were unreadable
        for _ in range(2):
            assert runner.poll_once() == 0
        _connections(admin, db, allow=True)
        assert runner.run_until_idle(idle_s=1.0) == 8  # sought to the checkpoints, resumed
    finally:
        _connections(admin, db, allow=True)
        runner.close()
    seqs = [int(str(s)) for (s,) in _rows(url, "SELECT seq FROM audit_events ORDER BY 1")]
    assert seqs == [*range(8)]


def test_a_statement_stuck_on_a_lock_times_out_and_the_batch_is_retried(
    db_kernel: Kernel,
) -> None:
    kernel, url = db_kernel, db_kernel.settings.database_url
    migrate(url)
    _publish(kernel, kernel.names.chain, [link("c/0", i) for i in range(3)])
    runner = _runner(kernel, url, PostgresTimeouts(connect_s=5, statement_s=1, keepalive_s=5))
    try:
        assert runner.run_until_idle(idle_s=0.5) == 3
        _publish(kernel, kernel.names.chain, [link("c/0", i) for i in range(3, 6)])
        release = threading.Event()

        def hold_the_checkpoint_row() -> None:
            with psycopg.connect(url) as conn:
                conn.execute("SELECT * FROM projection_checkpoints FOR UPDATE").fetchall()
                locked.set()
                release.wait(30)

        locked = threading.Event()
        holder = threading.Thread(target=hold_the_checkpoint_row)
        holder.start()
        assert locked.wait(10)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 4:  # several 1 s statement timeouts, no row
            runner.poll_once()
        assert _rows(url, "SELECT count(*) FROM audit_events") == [(3,)]
        release.set()
        holder.join(10)
        assert runner.run_until_idle(idle_s=0.5) == 3
    finally:
        runner.close()
    with psycopg.connect(url) as conn:
        assert sum(read_checkpoints(conn, "audit").values()) == 6
    assert read_all(kernel, kernel.names.dlq) == []  # a timeout is nobody's record
