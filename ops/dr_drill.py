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

A table that differs is named with its first differing row. Before the drop,
the drill writes a fingerprint of every row to a temporary file (the row's key
-- primary key, else its first unique index -- an MD5 of the row and a short
MD5 of each column, in key order); after the rebuild it streams the rebuilt
table's fingerprints in the same order beside the file, so memory stays
bounded however large the tables, and the first key where they part is
reported: a row the rebuild lacks (live holds what the log does not), a row
live lacked, or a row whose columns differ (named).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from projections.postgres import open_connection
from schemas.errors import KernelError

__all__ = [
    "DrillError",
    "DrillReport",
    "drop_and_recreate",
    "first_difference",
    "projection_digests",
    "row_fingerprints",
    "run_drill",
]

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
    first_differences: dict[str, str] = field(default_factory=dict)

    @property
    def identical(self) -> bool:
        return self.before == self.after and self.chain_heads_before == self.chain_heads_after

    def differences(self) -> list[str]:
        firsts = self.first_differences
        out = [
            f"{t}: before {self.before.get(t)} after {self.after.get(t)}"
            + (f"; first difference: {firsts[t]}" if t in firsts else "")
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
            "firstDifferences": dict(sorted(self.first_differences.items())),
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


def _key_columns(conn: Conn, table: str) -> list[str]:
    """The primary key's columns, else the first unique index's; [] if neither."""
    row = conn.execute(
        "SELECT array_agg(a.attname ORDER BY k.ord) FROM ("
        "  SELECT i.indkey, i.indisprimary, i.indexrelid FROM pg_index i"
        "  WHERE i.indrelid = to_regclass(%s) AND (i.indisprimary OR i.indisunique)"
        "  ORDER BY i.indisprimary DESC, i.indexrelid LIMIT 1"
        ") AS x CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, ord) "
        "JOIN pg_attribute a ON a.attrelid = to_regclass(%s) AND a.attnum = k.attnum",
        (f"public.{table}", f"public.{table}"),
    ).fetchone()
    return [] if row is None or row[0] is None else [str(c) for c in row[0]]


Fingerprint = tuple[str, str, list[str]]
"""(key as JSON text, MD5 of the row, short MD5 of each column)."""


def row_fingerprints(conn: Conn, table: str) -> tuple[list[str], Iterator[Fingerprint]]:
    """The table's columns, and each row's fingerprint in key order (byte order of the key)."""
    columns = _columns(conn, table)
    keys = _key_columns(conn, table) or columns
    ident = sql.Identifier
    key = sql.SQL("jsonb_build_array({})::text").format(sql.SQL(", ").join(ident(c) for c in keys))
    per_column = sql.SQL(", ").join(
        sql.SQL("left(coalesce(md5({}::text), 'null'), 8)").format(ident(c)) for c in columns
    )
    row_text = sql.SQL("ROW({})::text").format(sql.SQL(", ").join(ident(c) for c in columns))
    query = sql.SQL(
        "SELECT k, m, c FROM (SELECT {key} AS k, md5({row}) AS m, ARRAY[{cols}] AS c "
        'FROM {table}) AS t ORDER BY k COLLATE "C"'
    ).format(key=key, row=row_text, cols=per_column, table=ident(table))

    def rows() -> Iterator[Fingerprint]:
        with conn.cursor(name=f"drill_{table}") as cur:  # server-side: streamed
            cur.itersize = 5000
            cur.execute(query)
            for k, md5, cols in cur:
                yield str(k), str(md5), [str(c) for c in cols]

    return columns, rows()


def _write_fingerprints(conn: Conn, table: str, out: IO[str]) -> None:
    _, rows = row_fingerprints(conn, table)
    for k, md5, cols in rows:
        out.write(f"{k}\t{md5}\t{','.join(cols)}\n")


def _read_fingerprints(src: IO[str]) -> Iterator[Fingerprint]:
    src.seek(0)
    for line in src:
        k, md5, cols = line.rstrip("\n").rsplit("\t", 2)
        yield k, md5, cols.split(",")


def first_difference(
    columns: list[str], before: Iterator[Fingerprint], after: Iterator[Fingerprint]
) -> str | None:
    """Where two key-ordered fingerprint streams first part, in words; None if they agree.

    Keys compare as Python strings, i.e. by code point: the byte order of UTF-8,
    which is the ``COLLATE "C"`` order the query sorts by.
    """
    b, a = next(before, None), next(after, None)
    while b is not None or a is not None:
        if a is None or (b is not None and b[0] < a[0]):
            assert b is not None
            return f"row {b[0]} is in live but not in the rebuild (not on the log)"
        if b is None or a[0] < b[0]:
            return f"row {a[0]} is in the rebuild but was missing from live"
        if b[1] != a[1]:
            changed = [c for c, x, y in zip(columns, b[2], a[2], strict=False) if x != y]
            return f"row {b[0]} differs in {', '.join(changed) or 'its columns'}"
        b, a = next(before, None), next(after, None)
    return None


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
    with open_connection(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def run_drill(url: str, rebuild: Iterable[tuple[str, Callable[[], None]]]) -> DrillReport:
    """Digest, drop, then each ``(name, step)`` of the rebuild in order, then digest again."""
    with open_connection(url) as conn:
        before, heads_before = projection_digests(conn), chain_heads(conn)
        saved: dict[str, IO[str]] = {}
        for table in before:
            saved[table] = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
            _write_fingerprints(conn, table, saved[table])
    try:
        return _drop_and_rebuild(url, rebuild, before, heads_before, saved)
    finally:
        for f in saved.values():
            f.close()


def _drop_and_rebuild(
    url: str,
    rebuild: Iterable[tuple[str, Callable[[], None]]],
    before: dict[str, TableDigest],
    heads_before: dict[str, tuple[int, str]],
    saved: dict[str, IO[str]],
) -> DrillReport:
    steps: list[tuple[str, float]] = []
    started = time.monotonic()
    drop_and_recreate(url)
    steps.append(("drop and recreate", time.monotonic() - started))
    for name, step in rebuild:
        t0 = time.monotonic()
        step()
        steps.append((name, time.monotonic() - t0))
    seconds = time.monotonic() - started
    firsts: dict[str, str] = {}
    with open_connection(url) as conn:
        after, heads_after = projection_digests(conn), chain_heads(conn)
        for table in sorted(set(before) & set(after)):
            if before[table] != after[table]:
                columns, rows = row_fingerprints(conn, table)
                found = first_difference(columns, _read_fingerprints(saved[table]), rows)
                if found is not None:
                    firsts[table] = found
    return DrillReport(before, after, heads_before, heads_after, seconds, steps, firsts)
