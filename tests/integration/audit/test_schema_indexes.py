"""The migrated audit schema: no index is paid for twice."""

from __future__ import annotations

import psycopg

from ops.bootstrap import Kernel


def test_no_two_indexes_of_a_table_cover_the_same_columns(audit_kernel: Kernel) -> None:
    # Each index costs Postgres CPU on every projected row (ADR 0006).
    with psycopg.connect(audit_kernel.settings.database_url) as conn:
        rows = conn.execute(
            "SELECT tablename, indexname, regexp_replace(indexdef, '^.* USING ', '')"
            " FROM pg_indexes WHERE schemaname = 'public'"
        ).fetchall()
    seen: dict[tuple[str, str], str] = {}
    duplicates = []
    for table, name, definition in rows:
        key = (table, definition)
        if key in seen:
            duplicates.append((seen[key], name))
        seen[key] = name
    assert duplicates == []
    names = {name for _, name, _ in rows}
    assert "audit_events_source_position" in names  # the explain evidence lookup's index
