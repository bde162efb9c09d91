"""Shadow schemas for replay: build beside live, compare with it, swap it in.

A replay writes into ``replay_<hex>``, a schema made by the ordinary versioned
migrations under that search_path (so the shadow has exactly live's columns,
constraints, indexes, triggers and grants). Nothing in it is live until
:func:`swap`, which in **one** transaction, holding ACCESS EXCLUSIVE locks on
live's tables:

1. moves live's tables to ``replay_backup_<hex>`` (kept for the operator to
   inspect or drop), and the shadow's into ``public``;
2. re-creates live's triggers on the new tables (their definitions are read
   from the catalog, so they call ``public``'s trigger functions, not the
   shadow's) and re-grants live's table and column privileges;
3. sets the projection's ``projection_checkpoints`` rows to where the shadow
   stands, so the projector resumes exactly after the replayed records;
4. drops the shadow schema.

Comparison is digest first, detail second: per chain, length, head hash and a
SHA-256 over the md5 of every row's full text (all columns, in seq order) are
computed in Postgres; only chains whose digests differ are merged row by row
in Python to name the first difference (chain, seq, column).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from projections.migrate import migrate

__all__ = [
    "ChainDigest",
    "RowDifference",
    "TableSpec",
    "chain_digests",
    "create_shadow",
    "drop_shadow",
    "first_difference",
    "swap",
]

Conn = psycopg.Connection[tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class TableSpec:
    """A projected table: its name, its per-chain key and the columns compared."""

    name: str
    key: tuple[str, str]  # (group column, order column)
    columns: tuple[str, ...] | None = None  # None: the whole row (every column)
    head: str | None = None  # column whose last value is the group's head


@dataclass(frozen=True, slots=True)
class ChainDigest:
    chain: str
    length: int
    head: str
    digest: str

    def to_json(self) -> dict[str, Any]:
        return {"chain": self.chain, "length": self.length, "head": self.head}


@dataclass(frozen=True, slots=True)
class RowDifference:
    table: str
    chain: str
    seq: int
    column: str
    live: str | None
    shadow: str | None

    def __str__(self) -> str:
        return (
            f"{self.table}: chain {self.chain} seq {self.seq} column {self.column}: "
            f"live {_clip(self.live)} / replay {_clip(self.shadow)}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "chain": self.chain,
            "seq": self.seq,
            "column": self.column,
            "live": self.live,
            "replay": self.shadow,
        }


def _clip(value: str | None) -> str:
    if value is None:
        return "(no row)"
    return repr(value if len(value) <= 80 else value[:77] + "...")


def create_shadow(url: str) -> str:
    """A fresh migrated schema ``replay_<hex>``; returns its name."""
    schema = f"replay_{uuid.uuid4().hex[:12]}"
    migrate(url, schema=schema)
    return schema


def drop_shadow(conn: Conn, schema: str) -> None:
    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def _row_text(spec: TableSpec) -> sql.Composable:
    if spec.columns is None:
        return sql.SQL("t::text")
    return sql.SQL("row({})::text").format(
        sql.SQL(", ").join(sql.SQL("t.") + sql.Identifier(c) for c in spec.columns)
    )


def _since_join(since: Mapping[str, int] | None, spec: TableSpec) -> sql.Composable:
    """Rows of the rebuilt range only: chains and seqs at or after each chain's start."""
    if since is None:
        return sql.SQL("")
    group, order = spec.key
    return sql.SQL(
        " JOIN unnest(%(chains)s::text[], %(starts)s::bigint[]) AS f(c, start)"
        " ON t.{g} = f.c AND t.{o} >= f.start"
    ).format(g=sql.Identifier(group), o=sql.Identifier(order))


def chain_digests(
    conn: Conn, schema: str, spec: TableSpec, since: Mapping[str, int] | None = None
) -> dict[str, ChainDigest]:
    group, order = spec.key
    head = sql.Identifier(spec.head) if spec.head else sql.SQL("''")
    query = sql.SQL(
        "SELECT t.{g}, count(*), (array_agg(t.{h}::text ORDER BY t.{o} DESC))[1],"
        " encode(sha256(convert_to(string_agg(md5({row}), '' ORDER BY t.{o}), 'UTF8')), 'hex')"
        " FROM {s}.{tab} t{join} GROUP BY t.{g}"
    ).format(
        g=sql.Identifier(group),
        o=sql.Identifier(order),
        h=head,
        row=_row_text(spec),
        s=sql.Identifier(schema),
        tab=sql.Identifier(spec.name),
        join=_since_join(since, spec),
    )
    params = _since_params(since)
    return {
        str(c): ChainDigest(str(c), int(n), str(h), str(d))
        for c, n, h, d in conn.execute(query, params).fetchall()
    }


def _since_params(since: Mapping[str, int] | None) -> dict[str, Any]:
    if since is None:
        return {}
    return {"chains": list(since), "starts": list(since.values())}


def _rows(
    conn: Conn, schema: str, spec: TableSpec, chain: str, start: int
) -> Iterator[tuple[int, dict[str, str | None]]]:
    group, order = spec.key
    with conn.cursor(name=f"cmp_{uuid.uuid4().hex[:8]}") as cur:
        cur.itersize = 2000
        cur.execute(
            sql.SQL("SELECT * FROM {s}.{tab} WHERE {g} = %s AND {o} >= %s ORDER BY {o}").format(
                s=sql.Identifier(schema),
                tab=sql.Identifier(spec.name),
                g=sql.Identifier(group),
                o=sql.Identifier(order),
            ),
            (chain, start),
        )
        names = [d.name for d in cur.description or ()]
        for row in cur:
            values = {n: None if v is None else _text(v) for n, v in zip(names, row, strict=True)}
            yield int(row[names.index(order)]), values


def _text(value: object) -> str:
    if isinstance(value, dict | list):
        import orjson  # noqa: PLC0415

        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    return str(value)


def first_difference(
    live_side: tuple[Conn, str],
    shadow_side: tuple[Conn, str],
    spec: TableSpec,
    chain: str,
    start: int = 0,
) -> RowDifference | None:
    """Merge one chain's rows of both sides in order; the first that differs."""
    live = _rows(*live_side, spec, chain, start)
    shadow = _rows(*shadow_side, spec, chain, start)
    columns = spec.columns
    while True:
        a, b = next(live, None), next(shadow, None)
        if a is None and b is None:
            return None
        if a is None or b is None or a[0] != b[0]:
            seq = min(x[0] for x in (a, b) if x is not None)
            missing_live = a is None or (b is not None and b[0] < a[0])
            return RowDifference(
                spec.name,
                chain,
                seq,
                "(row missing in live)" if missing_live else "(row missing in replay)",
                None if missing_live else "present",
                "present" if missing_live else None,
            )
        for name in columns or a[1].keys():
            if a[1].get(name) != b[1].get(name):
                return RowDifference(spec.name, chain, a[0], name, a[1].get(name), b[1].get(name))


def swap(
    conn: Conn,
    shadow: str,
    tables: Sequence[str],
    *,
    projection: str,
    positions: Mapping[tuple[str, int], int],
    live: str = "public",
) -> str:
    """Swap the shadow's ``tables`` into ``live``; the caller holds the transaction."""
    backup = f"replay_backup_{shadow.removeprefix('replay_')}"
    ident = sql.Identifier
    triggers: list[str] = []
    grants: dict[str, list[tuple[str, str]]] = {}
    column_grants: dict[str, list[tuple[str, str, str]]] = {}
    for table in tables:
        conn.execute(
            sql.SQL("LOCK TABLE {}.{} IN ACCESS EXCLUSIVE MODE").format(ident(live), ident(table))
        )
        triggers += [
            str(d)
            for (d,) in conn.execute(
                "SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t"
                " WHERE t.tgrelid = %s::regclass AND NOT t.tgisinternal",
                (f'"{live}"."{table}"',),
            )
        ]
        grants[table] = _grants(conn, live, table)
        column_grants[table] = _column_grants(conn, live, table)
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(ident(backup)))
    for table in tables:
        conn.execute(
            sql.SQL("ALTER TABLE {}.{} SET SCHEMA {}").format(
                ident(live), ident(table), ident(backup)
            )
        )
        conn.execute(
            sql.SQL("ALTER TABLE {}.{} SET SCHEMA {}").format(
                ident(shadow), ident(table), ident(live)
            )
        )
        for (name,) in conn.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal",
            (f'"{live}"."{table}"',),
        ).fetchall():
            conn.execute(
                sql.SQL("DROP TRIGGER {} ON {}.{}").format(ident(name), ident(live), ident(table))
            )
        granted = {g for g, _ in _grants(conn, live, table)}
        granted |= {g for g, _, _ in _column_grants(conn, live, table)}
        for grantee in sorted(granted):  # REVOKE ALL takes the column privileges too
            conn.execute(
                sql.SQL("REVOKE ALL ON {}.{} FROM {}").format(
                    ident(live), ident(table), ident(grantee)
                )
            )
        for grantee, privilege in grants[table]:
            conn.execute(
                sql.SQL("GRANT {} ON {}.{} TO {}").format(
                    sql.SQL(privilege), ident(live), ident(table), ident(grantee)
                )
            )
        for grantee, privilege, column in column_grants[table]:
            conn.execute(
                sql.SQL("GRANT {} ({}) ON {}.{} TO {}").format(
                    sql.SQL(privilege), ident(column), ident(live), ident(table), ident(grantee)
                )
            )
    for definition in triggers:  # read while the tables were in live: they name live
        conn.execute(definition.encode())
    with conn.cursor() as cur:
        cur.executemany(
            sql.SQL(
                "INSERT INTO {}.projection_checkpoints (projection, topic, partition, next_offset)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (projection, topic, partition)"
                " DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()"
            ).format(ident(live)),
            [(projection, t, p, o) for (t, p), o in positions.items()],
        )
    drop_shadow(conn, shadow)
    return backup


_PRIVILEGES = {"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"}


def _grants(conn: Conn, schema: str, table: str) -> list[tuple[str, str]]:
    """(grantee, privilege) on a table, its owner's implicit rights excepted."""
    rows = conn.execute(
        "SELECT g.grantee, g.privilege_type FROM information_schema.role_table_grants g"
        " JOIN pg_class c ON c.relname = g.table_name"
        " JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = g.table_schema"
        " WHERE g.table_schema = %s AND g.table_name = %s"
        " AND g.grantee <> pg_get_userbyid(c.relowner) ORDER BY 1, 2",
        (schema, table),
    ).fetchall()
    return [(str(g), str(p)) for g, p in rows if str(p) in _PRIVILEGES]


def _column_grants(conn: Conn, schema: str, table: str) -> list[tuple[str, str, str]]:
    """(grantee, privilege, column) granted on single columns (``SELECT (chain, size)``:
    migration 0300), the owner's and PUBLIC's excepted."""
    rows = conn.execute(
        "SELECT pg_get_userbyid(x.grantee), x.privilege_type, a.attname"
        " FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid,"
        " LATERAL aclexplode(a.attacl) AS x"
        " WHERE a.attrelid = %s::regclass AND a.attacl IS NOT NULL"
        " AND x.grantee <> c.relowner AND x.grantee <> 0 ORDER BY 1, 2, 3",
        (f'"{schema}"."{table}"',),
    ).fetchall()
    return [(str(g), str(p), str(c)) for g, p, c in rows if str(p) in _PRIVILEGES]
