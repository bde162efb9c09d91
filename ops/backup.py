"""Backup and restore of the projection database, with the log positions it matches.

The log is the source of truth; Postgres holds projections of it. A backup is
therefore a ``pg_dump`` (custom format) *plus* a manifest saying where in the
log that dump stands, so a restore knows what the projectors will redo:

* ``projections.dump`` -- ``pg_dump -Fc`` of the projection database, taken
  from an exported snapshot (``pg_export_snapshot``);
* ``manifest.json`` -- the projection checkpoints read **in that same
  snapshot** (so they are exactly the checkpoints inside the dump), the
  applied migrations, the end offset of every partition of our topics when
  the backup was taken, and the dump's SHA-256.

Restore refuses a database that already has tables (restore into a fresh
one, or drop it first), runs ``pg_restore`` in one transaction, checks the
restored checkpoints against the manifest, and reports per projection and
partition how far the checkpoint is behind the log's current end -- the
records the projectors (or ``kernel replay``) will process again. Projectors
resume from their stored checkpoints, so starting them after a restore *is*
the replay.

``pg_dump``/``pg_restore`` come from the same Postgres bindir the local stack
uses (:func:`ops.stack.postgres_server.postgres_bindir`).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from projections.postgres import open_connection, redacted
from schemas.errors import KernelError
from schemas.topics import TOPICS

if TYPE_CHECKING:
    from schemas.topics import TopicNames
    from streams.kafka.offsets import KafkaOffsets

__all__ = [
    "DUMP",
    "MANIFEST",
    "BackupError",
    "Manifest",
    "PartitionBehind",
    "RestoreReport",
    "backup",
    "restore",
]

MANIFEST = "manifest.json"
DUMP = "projections.dump"
FORMAT = 1

Offsets = dict[str, dict[int, int]]  # topic -> partition -> offset


class BackupError(KernelError):
    """A backup or restore could not be made; the message says what to do."""


@dataclass(frozen=True)
class Manifest:
    created_at: float
    topic_prefix: str
    migrations: list[str]
    checkpoints: dict[str, Offsets]  # projection -> topic -> partition -> next offset
    end_offsets: Offsets  # log end (high watermark) when the backup was taken
    dump: str = DUMP
    dump_sha256: str = ""
    dump_bytes: int = 0
    format: int = FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        raw: dict[str, Any] = json.loads(text)
        if raw.get("format") != FORMAT:
            raise BackupError(f"manifest format {raw.get('format')!r} is not {FORMAT}")
        # JSON object keys are strings; partitions are ints.
        raw["checkpoints"] = {p: _int_keys(t) for p, t in raw["checkpoints"].items()}
        raw["end_offsets"] = _int_keys(raw["end_offsets"])
        return cls(**raw)


@dataclass(frozen=True)
class PartitionBehind:
    projection: str
    topic: str
    partition: int
    checkpoint: int
    end_at_backup: int | None
    end_now: int | None

    @property
    def to_replay(self) -> int | None:
        """Records between the restored checkpoint and the log end (now, else at backup)."""
        end = self.end_now if self.end_now is not None else self.end_at_backup
        return None if end is None else max(0, end - self.checkpoint)


@dataclass
class RestoreReport:
    database: str
    tables: int
    seconds: float
    behind: list[PartitionBehind] = field(default_factory=list)
    log_unavailable: str | None = None  # why end_now is missing, if it is

    def to_replay(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for b in self.behind:
            out[b.projection] = out.get(b.projection, 0) + (b.to_replay or 0)
        return out


def _int_keys(topics: dict[str, dict[str, int]]) -> Offsets:
    return {t: {int(p): int(o) for p, o in parts.items()} for t, parts in topics.items()}


def _tool(name: str) -> str:
    from ops.stack.postgres_server import postgres_bindir  # noqa: PLC0415

    path = postgres_bindir() / name
    if not path.exists():
        raise BackupError(f"{path} not found; install the PostgreSQL client (postgresql-client)")
    return str(path)


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """``url`` without its password, and the environment that carries the password:
    a password on a command line is readable by every user of the machine (ps)."""
    params = conninfo_to_dict(url)
    password = params.pop("password", None)
    env = dict(os.environ)
    if password is not None:
        env["PGPASSWORD"] = str(password)
    return make_conninfo(**{k: str(v) for k, v in params.items() if v is not None}), env


def _run(cmd: list[str], what: str, url: str) -> None:
    """Run ``cmd`` with ``{url}`` standing for the database, its password in the environment."""
    conninfo, env = _libpq(url)
    argv = [conninfo if part == "{url}" else part for part in cmd]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        raise BackupError(f"{what} failed (exit {done.returncode}): {done.stderr.strip()}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _checkpoints(conn: psycopg.Connection[tuple[object, ...]]) -> dict[str, Offsets]:
    row = conn.execute("SELECT to_regclass('projection_checkpoints')").fetchone()
    if row is None or row[0] is None:
        return {}
    out: dict[str, Offsets] = {}
    for projection, topic, partition, offset in conn.execute(
        "SELECT projection, topic, partition, next_offset FROM projection_checkpoints"
    ):
        parts = out.setdefault(str(projection), {}).setdefault(str(topic), {})
        parts[int(str(partition))] = int(str(offset))
    return out


def _migrations(conn: psycopg.Connection[tuple[object, ...]]) -> list[str]:
    row = conn.execute("SELECT to_regclass('schema_migrations')").fetchone()
    if row is None or row[0] is None:
        return []
    return [
        f"{int(str(v)):04d}_{n}"
        for v, n in conn.execute("SELECT version, name FROM schema_migrations ORDER BY version")
    ]


def _end_offsets(offsets: KafkaOffsets, topics: set[str]) -> Offsets:
    """High watermark of every partition of ``topics`` that exists on the broker."""
    counts = offsets.partitions(topics)
    wanted = [(t, p) for t in sorted(counts) for p in range(counts[t])]
    out: Offsets = {}
    for (topic, partition), end in offsets.ends(wanted).items():
        out.setdefault(topic, {})[partition] = end.high_watermark
    return out


def backup(url: str, offsets: KafkaOffsets, names: TopicNames, out: Path) -> Manifest:
    """Dump the projection database at ``url`` and write the manifest into ``out`` (new or
    empty); the log ends are read through ``offsets``, of the topics ``names`` names."""
    if out.exists() and any(out.iterdir()):
        raise BackupError(f"{out} is not empty; back up into a new directory")
    out.mkdir(parents=True, exist_ok=True)
    dump = out / DUMP
    try:
        with open_connection(url) as conn:
            # REPEATABLE READ + exported snapshot: pg_dump sees exactly what the
            # checkpoint query below sees, so the manifest matches the dump.
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            snap = conn.execute("SELECT pg_export_snapshot()").fetchone()
            assert snap is not None
            checkpoints = _checkpoints(conn)
            migrations = _migrations(conn)
            _run(
                [_tool("pg_dump"), "-Fc", f"--snapshot={snap[0]}", "-f", str(dump), "-d", "{url}"],
                "pg_dump",
                url,
            )
            conn.rollback()
    except psycopg.Error as exc:
        raise BackupError(f"cannot read the projection database at {url}: {exc}") from exc
    # The log end is read after the snapshot, so it is at or beyond every checkpoint.
    topics = {names.name(s.name) for s in TOPICS}
    topics |= {t for parts in checkpoints.values() for t in parts}
    ends = _end_offsets(offsets, topics)
    manifest = Manifest(
        created_at=time.time(),
        topic_prefix=names.prefix,
        migrations=migrations,
        checkpoints=checkpoints,
        end_offsets=ends,
        dump_sha256=_sha256(dump),
        dump_bytes=dump.stat().st_size,
    )
    (out / MANIFEST).write_text(manifest.to_json() + "\n")
    return manifest


def read_manifest(src: Path) -> Manifest:
    path = src / MANIFEST
    if not path.exists():
        raise BackupError(f"{path} not found; is {src} a directory made by `kernel backup`?")
    return Manifest.from_json(path.read_text())


def restore(offsets: KafkaOffsets, src: Path, database_url: str) -> RestoreReport:
    """Restore ``src`` into the empty database at ``database_url`` and report the replay."""
    started = time.monotonic()
    manifest = read_manifest(src)
    dump = src / manifest.dump
    if not dump.exists() or _sha256(dump) != manifest.dump_sha256:
        raise BackupError(f"{dump} is missing or does not match the manifest's SHA-256")
    try:
        with open_connection(database_url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S')"
                " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
                " AND n.nspname NOT LIKE 'pg_toast%'"
            ).fetchone()
            if row is not None and int(str(row[0])) > 0:
                raise BackupError(
                    f"the database at {redacted(database_url)} is not empty ({row[0]} relations); "
                    "restore into a fresh database (createdb NAME) or drop and recreate it"
                )
    except psycopg.Error as exc:
        raise BackupError(f"cannot connect to {redacted(database_url)}: {exc}") from exc
    _run(
        [
            _tool("pg_restore"),
            "--no-owner",
            "--exit-on-error",
            "--single-transaction",
            "-d",
            "{url}",
            str(dump),
        ],
        "pg_restore",
        database_url,
    )
    with open_connection(database_url) as conn:
        restored = _checkpoints(conn)
        tables = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN "
            "('pg_catalog', 'information_schema')"
        ).fetchone()
    if restored != manifest.checkpoints:
        raise BackupError(
            "restored checkpoints differ from the manifest; the dump and manifest "
            "do not belong together -- take a new backup"
        )
    report = RestoreReport(
        database=database_url.rsplit("/", 1)[-1],
        tables=int(str(tables[0])) if tables else 0,
        seconds=0.0,
    )
    topics = {t for parts in restored.values() for t in parts}
    now: Offsets = {}
    try:
        now = _end_offsets(offsets, topics)
    except KernelError as exc:
        report.log_unavailable = str(exc)
    for projection, parts in sorted(restored.items()):
        for topic, stored in sorted(parts.items()):
            for partition, checkpoint in sorted(stored.items()):
                report.behind.append(
                    PartitionBehind(
                        projection,
                        topic,
                        partition,
                        checkpoint,
                        manifest.end_offsets.get(topic, {}).get(partition),
                        None if report.log_unavailable else now.get(topic, {}).get(partition),
                    )
                )
    report.seconds = time.monotonic() - started
    return report
