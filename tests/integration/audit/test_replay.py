"""``kernel replay audit`` on real Kafka and Postgres: verify, compare, swap."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ops.bootstrap import Kernel
from projections.audit import AuditProjection
from replay.audit_postgres import iter_rows
from replay.audit_replay import AuditReplay, ReplayReport
from replay.verify import ChainVerifier
from schemas.events import Event, new_event
from streams.chain.keys import load_signers_file
from streams.kafka.log_reader import KafkaLogReader


def _events(counts: list[tuple[str, int]]) -> list[Event]:
    return [
        new_event("kernelAction", "svc", subject, {"action": f"a{i}", "context": {"i": i}})
        for subject, n in counts
        for i in range(n)
    ]


def pipeline(kernel: Kernel, projector_batch: int = 5000) -> None:
    signer, checkpointer, projector = (
        kernel.chain_signer(),
        kernel.checkpointer(),
        kernel.audit_projector(),
    )
    projector.batch_size = projector_batch
    try:
        signer.run_until_idle(idle_s=0.5)
        checkpointer.run_until_idle(idle_s=0.5)
        projector.run_until_idle(idle_s=0.5)
    finally:
        signer.close()
        checkpointer.close()
        projector.close()


def replay(
    kernel: Kernel,
    signers: Path,
    *,
    verify_only: bool,
    from_ts_ms: int | None = None,
    workers: int | None = None,
) -> ReplayReport:
    reader = KafkaLogReader(kernel.settings.kafka_bootstrap, kernel.codec)
    try:
        return AuditReplay(
            reader=reader,
            database_url=kernel.settings.database_url,
            projection=AuditProjection(kernel.names.chain, kernel.names.checkpoints),
            verifiers=load_signers_file(signers),
            kafka=kernel.kafka,
            batch_size=7,  # many small batches: several COPYs per chain and partition
            workers=workers,
        ).run(verify_only=verify_only, from_ts_ms=from_ts_ms)
    finally:
        reader.close()


def table_text(url: str, table: str = "audit_events") -> list[tuple[Any, ...]]:
    """Every column of every row, as Postgres prints it: byte-for-byte comparison."""
    cols = "t::text" if table == "audit_events" else "chain, size, root_hash, head_hash, note"
    with psycopg.connect(url) as conn:
        return conn.execute(f"SELECT {cols} FROM public.{table} t ORDER BY 1").fetchall()


def _schemas(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'replay_%' ORDER BY 1"
        ).fetchall()
    return [str(r[0]) for r in rows]


def _tamper(url: str, sql: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")  # a superuser bypassing triggers
        conn.execute(sql)


def test_verify_only_on_a_faithful_projection_is_identical_and_changes_nothing(
    audit_kernel: Kernel, signers_file: Path
) -> None:
    audit_kernel.producer().publish_batch(_events([("a", 12), ("b", 9), ("c", 4)]))
    pipeline(audit_kernel)
    url = audit_kernel.settings.database_url
    before = table_text(url)

    report = replay(audit_kernel, signers_file, verify_only=True)

    assert report.verified, report.to_json()
    assert report.identical, report.to_json()
    assert report.records == 25
    assert report.checkpoints >= 1
    assert not report.swapped
    assert table_text(url) == before
    assert _schemas(url) == []  # the shadow is dropped


def test_a_tampered_row_is_named_and_a_swap_restores_the_log_truth(
    audit_kernel: Kernel, signers_file: Path
) -> None:
    audit_kernel.producer().publish_batch(_events([("a", 6), ("b", 5)]))
    pipeline(audit_kernel)
    url = audit_kernel.settings.database_url
    truth = table_text(url)
    _tamper(url, "UPDATE audit_events SET signer_id = 'mallory' WHERE seq = 3")

    found = replay(audit_kernel, signers_file, verify_only=True)
    assert found.verified
    assert not found.identical
    assert found.difference is not None
    assert (found.difference.seq, found.difference.column) == (3, "signer_id")
    assert found.difference.live == "mallory"

    swapped = replay(audit_kernel, signers_file, verify_only=False)
    assert swapped.swapped and swapped.backup is not None
    assert table_text(url) == truth
    again = replay(audit_kernel, signers_file, verify_only=True)
    assert again.identical, again.to_json()
    with psycopg.connect(url) as conn:
        triggers = conn.execute(
            "SELECT tgname, tgfoid::regprocedure::text FROM pg_trigger"
            " WHERE tgrelid = 'public.audit_events'::regclass AND NOT tgisinternal ORDER BY 1"
        ).fetchall()
        grants = conn.execute(
            "SELECT privilege_type FROM information_schema.role_table_grants"
            " WHERE table_schema = 'public' AND table_name = 'audit_events'"
            " AND grantee = 'kernel_projector' ORDER BY 1"
        ).fetchall()
        columns = conn.execute(
            "SELECT privilege_type, column_name FROM information_schema.column_privileges"
            " WHERE table_schema = 'public' AND table_name = 'audit_checkpoints'"
            " AND grantee = 'kernel_projector' AND privilege_type = 'SELECT' ORDER BY 2"
        ).fetchall()
        kept = conn.execute(
            f"SELECT signer_id FROM {swapped.backup}.audit_events WHERE seq = 3 LIMIT 1"
        ).fetchone()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM audit_events")
    assert triggers == [
        ("audit_events_append_only", "audit_append_only()"),
        ("audit_events_no_truncate", "audit_append_only()"),
    ]
    assert grants == [("INSERT",)]  # the projector role may only append (migration 0102)
    # its ON CONFLICT (chain, size) needs those columns (0300): column grants survive too
    assert columns == [("SELECT", "chain"), ("SELECT", "size")]
    assert kept == ("mallory",)  # the tampered table is kept aside for the investigation
    assert _schemas(url) == [swapped.backup]


def test_an_empty_live_projection_is_rebuilt_and_the_projector_resumes_after_it(
    audit_kernel: Kernel, signers_file: Path
) -> None:
    producer = audit_kernel.producer()
    producer.publish_batch(_events([("a", 5), ("b", 3)]))
    signer = audit_kernel.chain_signer()
    try:
        signer.run_until_idle(idle_s=0.5)
    finally:
        signer.close()  # live projection never ran: a DR restore into an empty database

    report = replay(audit_kernel, signers_file, verify_only=False)
    assert report.verified and report.swapped
    assert report.difference is not None
    assert report.difference.column == "(row missing in live)"
    producer.publish_batch(_events([("a", 2)]))
    pipeline(audit_kernel)  # resumes from the checkpoints the swap wrote: no duplicate
    url = audit_kernel.settings.database_url
    with psycopg.connect(url) as conn:
        rows = ChainVerifier(load_signers_file(signers_file)).feed_all(iter_rows(conn))
    assert rows.ok and rows.total == 10


def test_a_forged_link_in_the_log_fails_verification_and_live_is_untouched(
    audit_kernel: Kernel, signers_file: Path
) -> None:
    kernel = audit_kernel
    kernel.producer().publish_batch(_events([("a", 4)]))
    pipeline(kernel)
    url = kernel.settings.database_url
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT chain, hash, payload::text, source_topic, source_partition, source_offset"
            " FROM audit_events ORDER BY chain, seq DESC LIMIT 1"
        ).fetchone()
    assert row is not None
    chain, head, payload, topic, partition, offset = row
    forged_payload = json.loads(payload) | {"actor": "mallory"}
    body = {
        "chain": chain, "seq": 4, "prevHash": head, "hash": "0" * 64,
        "signature": "AAAA", "signerId": "test-signer", "sourceTopic": topic,
        "sourcePartition": partition, "sourceOffset": offset + 1, "payload": forged_payload,
    }  # fmt: skip
    forged = new_event("auditRecord", "mallory", chain, body)
    producer = kernel.producer()
    producer.publish_encoded([(kernel.names.chain, chain.encode(), kernel.codec.encode(forged))])
    before = table_text(url)

    report = replay(kernel, signers_file, verify_only=False)

    assert not report.verified
    assert not report.swapped
    assert report.verification is not None
    failure = report.verification.failures[0]
    assert (failure.chain, failure.seq) == (chain, 4)
    assert table_text(url) == before
    assert _schemas(url) == []


@settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rounds=st.lists(
        st.lists(st.tuples(st.sampled_from("abcdefgh"), st.integers(1, 6)), min_size=1, max_size=5),
        min_size=1,
        max_size=2,
    ),
    projector_batch=st.sampled_from([1, 3, 5000]),
)
def test_replay_equals_live_byte_for_byte_whatever_the_interleaving(
    audit_kernel: Kernel,
    signers_file: Path,
    rounds: list[list[tuple[str, int]]],
    projector_batch: int,
) -> None:
    # Examples share the kernel's topics and database: each adds rounds to the log,
    # so later examples replay longer, more interleaved chains.
    url = audit_kernel.settings.database_url
    for counts in rounds:
        audit_kernel.producer().publish_batch(_events(counts))
        pipeline(audit_kernel, projector_batch)
    live = table_text(url), table_text(url, "audit_checkpoints")

    report = replay(audit_kernel, signers_file, verify_only=True)
    assert report.identical, report.to_json()
    assert report.records == len(live[0])

    swapped = replay(audit_kernel, signers_file, verify_only=False)
    assert swapped.swapped and swapped.difference is None
    assert (table_text(url), table_text(url, "audit_checkpoints")) == live
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {swapped.backup} CASCADE")


def test_pooled_and_in_process_replays_write_the_same_rows_and_name_the_same_failure(
    audit_kernel: Kernel, signers_file: Path
) -> None:
    kernel = audit_kernel
    kernel.producer().publish_batch(_events([("a", 9), ("b", 7), ("c", 5)]))
    pipeline(kernel)
    url = kernel.settings.database_url
    truth = table_text(url), table_text(url, "audit_checkpoints")
    counts = []
    for workers in (0, 2):
        report = replay(kernel, signers_file, verify_only=False, workers=workers)
        assert report.swapped and report.difference is None, report.to_json()
        assert (table_text(url), table_text(url, "audit_checkpoints")) == truth
        counts.append((report.records, report.checkpoints))
    assert counts[0] == counts[1] and counts[0][0] == 21

    # A forged link (a payload edited after signing), then more real links behind it.
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT chain, seq, hash, signature, payload::text, source_topic, source_partition,"
            " source_offset FROM audit_events ORDER BY chain, seq DESC LIMIT 1"
        ).fetchone()
    assert row is not None
    chain, seq, head, signature, payload, topic, partition, offset = row
    body = {
        "chain": chain, "seq": seq + 1, "prevHash": head, "hash": head, "signature": signature,
        "signerId": "test-signer", "sourceTopic": topic, "sourcePartition": partition,
        "sourceOffset": offset + 1, "payload": json.loads(payload) | {"actor": "mallory"},
    }  # fmt: skip
    forged = new_event("auditRecord", "mallory", chain, body)
    producer = kernel.producer()
    producer.publish_encoded([(kernel.names.chain, chain.encode(), kernel.codec.encode(forged))])
    producer.publish_batch(_events([("a", 4), ("b", 4), ("c", 4)]))
    signer = kernel.chain_signer()
    try:
        signer.run_until_idle(idle_s=0.5)
    finally:
        signer.close()

    reports = [replay(kernel, signers_file, verify_only=True, workers=w) for w in (0, 2)]

    failures = [r.verification.failures if r.verification else None for r in reports]
    assert failures[0] == failures[1]
    assert failures[0] is not None
    assert (failures[0][0].chain, failures[0][0].seq) == (chain, seq + 1)
    assert failures[0][0].reason.startswith("hash does not match")
    assert not any(r.swapped for r in reports)
    assert (table_text(url), table_text(url, "audit_checkpoints")) == truth


def test_from_timestamp_rebuilds_chains_mid_way_pooled_or_not(
    audit_kernel: Kernel, signers_file: Path
) -> None:
    kernel = audit_kernel
    kernel.producer().publish_batch(_events([("a", 5), ("b", 4)]))
    pipeline(kernel)
    time.sleep(0.05)
    since = int(time.time() * 1000)
    kernel.producer().publish_batch(_events([("a", 3), ("c", 2)]))
    pipeline(kernel)
    url = kernel.settings.database_url
    truth = table_text(url), table_text(url, "audit_checkpoints")
    with psycopg.connect(url) as conn:
        rebuilt = conn.execute(
            "SELECT count(*) FROM audit_events WHERE seq >= ("
            " SELECT min(seq) FROM audit_events x WHERE x.chain = audit_events.chain"
            " AND x.ts >= to_timestamp(%s / 1000.0))",
            (since,),
        ).fetchone()
    for workers in (0, 2):
        checked = replay(kernel, signers_file, verify_only=True, from_ts_ms=since, workers=workers)
        assert checked.identical, checked.to_json()
        assert checked.records == 5
        swapped = replay(kernel, signers_file, verify_only=False, from_ts_ms=since, workers=workers)
        assert swapped.swapped and swapped.difference is None, swapped.to_json()
        assert (table_text(url), table_text(url, "audit_checkpoints")) == truth
    assert rebuilt == (5,)


def test_kernel_replay_command_verify_only_then_all(
    audit_kernel: Kernel, signers_file: Path
) -> None:
    from tests.e2e.conftest import make_cli

    audit_kernel.producer().publish_batch(_events([("a", 3), ("b", 2)]))
    pipeline(audit_kernel)
    cli = make_cli(audit_kernel.settings)
    verify = cli(
        "replay", "audit", "--verify-only", "--signers", str(signers_file), "--json",
        "--workers", "2",
    )  # fmt: skip
    assert verify.returncode == 0, verify.stderr
    doc = json.loads(verify.stdout)["projections"]["audit"]
    assert (doc["identical"], doc["swapped"], doc["records"]) == (True, False, 5)
    assert doc["workers"] == 2  # a small log defaults to none; the flag asks for two

    full = cli("replay", "--all", "--signers", str(signers_file))
    assert full.returncode == 0, full.stderr
    assert "audit: identical" in full.stdout
    assert "swapped in" in full.stdout
    assert cli("replay", "--signers", str(signers_file)).returncode == 2
