"""Backup and restore on the real stack: rows, checkpoints and the replay report."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import Producer

from ops.backup import MANIFEST, BackupError, Manifest, restore
from ops.bootstrap import Kernel
from projections.migrate import migrate, migrations
from tests.e2e.conftest import make_cli


@pytest.fixture
def second_database(second_database_url: str) -> str:
    """The restore target: another fresh, empty database."""
    return second_database_url


def _seed(kernel: Kernel) -> None:
    """Migrated schema, 5 audit rows, a checkpoint at 5 on a partition that holds 8."""
    migrate(kernel.settings.database_url)
    topic = kernel.names.actions
    producer = Producer({"bootstrap.servers": kernel.settings.kafka_bootstrap})
    for i in range(8):
        producer.produce(topic, f"r{i}".encode(), partition=0)
    assert producer.flush(10) == 0
    with psycopg.connect(kernel.settings.database_url) as conn:
        for seq in range(5):
            conn.execute(
                "INSERT INTO audit_events (id, chain, seq, event_type, payload, prev_hash, hash,"
                " signature, signer_id, ts, source_topic, source_partition, source_offset)"
                " VALUES (%s, %s, %s, 'kernelAction', '{}', 'p', 'h', 's', 'k', now(), %s, 0, %s)",
                (uuid.uuid4(), f"{topic}/0", seq, topic, seq),
            )
        conn.execute(
            "INSERT INTO projection_checkpoints (projection, topic, partition, next_offset)"
            " VALUES ('audit_events', %s, 0, 5)",
            (topic,),
        )


def _counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return {
            table: int(str(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]))  # type: ignore[index]
            for table in ("audit_events", "projection_checkpoints", "schema_migrations")
        }


def test_backup_then_restore_into_a_fresh_database(
    db_kernel: Kernel, second_database: str, tmp_path: Path
) -> None:
    _seed(db_kernel)
    cli = make_cli(db_kernel.settings)
    out = tmp_path / "backup"
    done = cli("backup", "--out", str(out))
    assert done.returncode == 0, done.stderr
    manifest = Manifest.from_json((out / MANIFEST).read_text())
    topic = db_kernel.names.actions
    assert manifest.checkpoints == {"audit_events": {topic: {0: 5}}}
    assert manifest.end_offsets[topic][0] == 8
    assert set(manifest.end_offsets[topic]) == {0, 1, 2}
    assert manifest.migrations == [f"{m.version:04d}_{m.name}" for m in migrations()]

    done = cli("restore", "--from", str(out), "--database-url", second_database, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert _counts(second_database) == _counts(db_kernel.settings.database_url)
    assert _counts(second_database)["audit_events"] == 5
    (behind,) = report["behind"]
    assert (behind["checkpoint"], behind["end_at_backup"], behind["end_now"]) == (5, 8, 8)
    assert report["toReplay"] == {"audit_events": 3}


def test_restore_refuses_a_database_with_tables(db_kernel: Kernel, tmp_path: Path) -> None:
    _seed(db_kernel)
    cli = make_cli(db_kernel.settings)
    assert cli("backup", "--out", str(tmp_path / "b")).returncode == 0
    done = cli("restore", "--from", str(tmp_path / "b"))  # into the source itself
    assert done.returncode == 2
    assert "not empty" in done.stderr and "fresh database" in done.stderr
    assert cli("backup", "--out", str(tmp_path / "b")).returncode == 2  # never overwrites


def test_restore_rejects_a_dump_that_does_not_match_its_manifest(
    db_kernel: Kernel, second_database: str, tmp_path: Path
) -> None:
    migrate(db_kernel.settings.database_url)
    assert make_cli(db_kernel.settings)("backup", "--out", str(tmp_path)).returncode == 0
    with (tmp_path / "projections.dump").open("ab") as fh:
        fh.write(b"tampered")
    with pytest.raises(BackupError, match="SHA-256"):
        restore(db_kernel.offsets(), tmp_path, second_database)
