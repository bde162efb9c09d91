"""Versioned schema migrations: ``projections/migrations/NNNN_name.sql``, in order.

Each file runs once, in its own transaction, and is recorded with its SHA-256
in ``schema_migrations``; a recorded file whose text later changes is an error
(write a new migration instead). An advisory lock makes concurrent
``kernel db migrate`` runs safe. Number ranges by area: 0001-0099 core,
0100-0199 audit, 0200-0299 SentinelNet, 0300-0399 operations.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import psycopg

from projections.postgres import open_connection
from schemas.errors import KernelError

__all__ = ["Migration", "MigrationError", "applied", "migrate", "migrations", "pending"]

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 7_346_221_019  # arbitrary, constant: the advisory lock of migrations


class MigrationError(KernelError):
    """A migration failed, or an applied migration's file changed."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations() -> list[Migration]:
    folder = resources.files("projections").joinpath("migrations")
    found = []
    for item in folder.iterdir():
        match = _NAME.match(item.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), item.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migrations share a number: {sorted(versions)}")
    return sorted(found, key=lambda m: m.version)


def _ensure_table(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version int PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())"
    )


def applied(conn: psycopg.Connection[tuple[object, ...]]) -> dict[int, str]:
    row = conn.execute("SELECT to_regclass('schema_migrations')").fetchone()
    if row is None or row[0] is None:
        return {}
    return {
        int(str(v)): str(c)
        for v, c in conn.execute("SELECT version, checksum FROM schema_migrations")
    }


def pending(conn: psycopg.Connection[tuple[object, ...]]) -> list[Migration]:
    done = applied(conn)
    return [m for m in migrations() if m.version not in done]


def migrate(url: str, schema: str | None = None) -> list[Migration]:
    """Apply pending migrations; returns those applied. ``schema``: a search_path."""
    ran: list[Migration] = []
    with open_connection(url, autocommit=True) as conn:
        if schema:
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            conn.execute(f'SET search_path TO "{schema}", public')
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            _ensure_table(conn)
            done = applied(conn)
            for m in migrations():
                if m.version in done:
                    if done[m.version] != m.checksum:
                        raise MigrationError(
                            f"migration {m.version:04d}_{m.name} changed after it was applied; "
                            "add a new migration instead of editing an applied one"
                        )
                    continue
                try:
                    with conn.transaction():
                        conn.execute(m.sql.encode())
                        conn.execute(
                            "INSERT INTO schema_migrations (version, name, checksum) "
                            "VALUES (%s, %s, %s)",
                            (m.version, m.name, m.checksum),
                        )
                except psycopg.Error as exc:
                    raise MigrationError(
                        f"migration {m.version:04d}_{m.name} failed: {exc}"
                    ) from exc
                ran.append(m)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return ran
