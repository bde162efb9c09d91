"""The disaster-recovery drill: drop the projections, rebuild them from the log, compare.

Postgres holds only projections, so losing it must cost time, not data. The
drill proves it on a real deployment (staging!): it records a digest of every
projection table (chain heads, row counts, and an MD5 over every row's text,
ordered, leaving out the columns that hold wall-clock write times), drops and
recreates the database, migrates it, rebuilds every projection from the log,
and compares. The recovery time it prints is from the drop to the last
projection caught up.

The rebuild runs each projection's runner from an empty checkpoint table, i.e.
from offset 0 of its topics: the same code path as normal operation, so the
drill also proves the projectors are deterministic.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from schemas.errors import KernelError

__all__ = ["DrillError", "DrillReport", "drop_and_recreate", "projection_digests", "run_drill"]

# Columns that record when a row was written, not what the log says.
WALL_CLOCK = {("audit_checkpoints", "created_at")}
# Bookkeeping, not content: migrations are re-applied, and a checkpoint is a
# resume position that may legitimately differ by a transaction marker (a
# replay stores the log end, a projector the last record + 1).
SKIP_TABLES = {"schema_migrations", "projection_checkpoints"}


class DrillError(KernelError):
    """The drill could not run, or the rebuilt projections differ."""


@dataclass(frozen=True)
class TableDigest:
    rows: int
    md5: str


@dataclass
class DrillReport:
    before: dict[str, TableDigest]
    after: dict[str, TableDigest]
    chain_heads_before: dict[str, tuple[int, str]]
    chain_heads_after: dict[str, tuple[int, str]]
    seconds: float
    steps: list[tuple[str, float]] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return self.before == self.after and self.chain_heads_before == self.chain_heads_after

    def differences(self) -> list[str]:
        out = [
            f"{t}: before {self.before.get(t)} after {self.after.get(t)}"
            for t in sorted(set(self.before) | set(self.after))
            if self.before.get(t) != self.after.get(t)
        ]
        out += [
            f"chain {c}: before {self.chain_heads_before.get(c)} "
            f"after {self.chain_heads_after.get(c)}"
            for c in sorted(set(self.chain_heads_before) | set(self.chain_heads_after))
            if self.chain_heads_before.get(c) != self.chain_heads_after.get(c)
        ]
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "identical": self.identical,
            "recoverySeconds": round(self.seconds, 3),
            "steps": {name: round(s, 3) for name, s in self.steps},
            "tables": {t: {"rows": d.rows, "md5": d.md5} for t, d in sorted(self.after.items())},
            "chains": {
                c: {"length": n + 1, "head": h} for c, (n, h) in self.chain_heads_after.items()
            },
            "differences": self.differences(),
        }


Conn = psycopg.Connection[tuple[Any, ...]]


def _tables(conn: Conn) -> list[str]:
    rows = conn.execute(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name"
    ).fetchall()
    return [str(r[0]) for r in rows if r[0] not in SKIP_TABLES]


def _columns(conn: Conn, table: str) -> list[str]:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name = %s ORDER BY ordinal_position",
        (table,),
    ).fetchall()
    return [str(r[0]) for r in rows if (table, r[0]) not in WALL_CLOCK]


def projection_digests(conn: Conn) -> dict[str, TableDigest]:
    out = {}
    for table in _tables(conn):
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in _columns(conn, table))
        query = sql.SQL(
            "SELECT count(*), coalesce(md5(string_agg(r, E'\\n' ORDER BY r)), '') "
            "FROM (SELECT ROW({cols})::text AS r FROM {table}) AS t"
        ).format(cols=cols, table=sql.Identifier(table))
        row = conn.execute(query).fetchone()
        assert row is not None
        out[table] = TableDigest(int(row[0]), str(row[1]))
    return out


def chain_heads(conn: Conn) -> dict[str, tuple[int, str]]:
    if conn.execute("SELECT to_regclass('audit_events')").fetchone() == (None,):
        return {}
    rows = conn.execute(
        "SELECT DISTINCT ON (chain) chain, seq, hash FROM audit_events ORDER BY chain, seq DESC"
    ).fetchall()
    return {str(c): (int(s), str(h)) for c, s, h in rows}


def drop_and_recreate(url: str) -> None:
    name = str(conninfo_to_dict(url).get("dbname") or "")
    if not name or name in ("postgres", "template0", "template1"):
        raise DrillError(f"refusing to drop database {name!r}")
    admin = make_conninfo(url, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def run_drill(url: str, rebuild: Iterable[tuple[str, Callable[[], None]]]) -> DrillReport:
    """Digest, drop, then each ``(name, step)`` of the rebuild in order, then digest again."""
    with psycopg.connect(url) as conn:
        before, heads_before = projection_digests(conn), chain_heads(conn)
    steps: list[tuple[str, float]] = []
    started = time.monotonic()
    drop_and_recreate(url)
    steps.append(("drop and recreate", time.monotonic() - started))
    for name, step in rebuild:
        t0 = time.monotonic()
        step()
        steps.append((name, time.monotonic() - t0))
    seconds = time.monotonic() - started
    with psycopg.connect(url) as conn:
        after, heads_after = projection_digests(conn), chain_heads(conn)
    return DrillReport(before, after, heads_before, heads_after, seconds, steps)
