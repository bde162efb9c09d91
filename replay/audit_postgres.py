"""The Postgres adapter of audit verification and proofs: reads ``audit_events``.

Rows stream through a server-side (named) cursor in ``(chain, seq)`` order,
``itersize`` at a time, so verifying a million rows holds one batch in
memory. ``payload`` and ``metadata`` are fetched as text and parsed with
orjson: jsonb keeps numbers as exact decimals, so the value read back is the
value the projector wrote, and JCS re-derives the same bytes from it.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import orjson
import psycopg

from projections.postgres import Database
from replay.verify import AuditRow
from streams.chain.note import ChainCheckpoint

__all__ = [
    "chain_hashes",
    "checkpoint_notes",
    "connect",
    "find_event",
    "first_signed_at",
    "insert_checkpoint",
    "iter_rows",
    "latest_checkpoint_note",
]

Conn = psycopg.Connection[tuple[Any, ...]]

_COLUMNS = (
    "id::text, chain, seq, event_type, payload::text, prev_hash, hash, signature, signer_id,"
    " (extract(epoch FROM ts) * 1000)::bigint, metadata::text"
)


def connect(url: str) -> Conn:
    """A dedicated connection to ``url`` (``kernel audit-verify --database-url``)."""
    return Database(url).connect()


def _json(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text  # not parseable by a strict reader: verification will say so


def first_signed_at(conn: Conn, signer_id: str, ts_ms: int) -> dict[str, int]:
    """Per chain, the first seq ``signer_id`` signed with event time at or after ``ts_ms``."""
    rows = conn.execute(
        "SELECT chain, min(seq) FROM audit_events"
        " WHERE signer_id = %s AND ts >= to_timestamp(%s / 1000.0) GROUP BY chain",
        (signer_id, ts_ms),
    ).fetchall()
    return {str(chain): int(seq) for chain, seq in rows}


def iter_rows(
    conn: Conn, chain: str | None = None, *, itersize: int = 5000, from_seq: int = 0
) -> Iterator[AuditRow]:
    """Rows ordered by ``(chain, seq)``; with ``chain``, only its rows from ``from_seq``."""
    where, params = ("WHERE chain = %s AND seq >= %s", (chain, from_seq)) if chain else ("", ())
    with conn.cursor(name="audit_verify") as cur:
        cur.itersize = itersize
        cur.execute(f"SELECT {_COLUMNS} FROM audit_events {where} ORDER BY chain, seq", params)
        for r in cur:
            yield AuditRow(
                r[0], r[1], r[2], r[3], _json(r[4]), r[5], r[6], r[7], r[8], r[9], _json(r[10])
            )


def find_event(conn: Conn, event_id: str) -> AuditRow | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM audit_events WHERE id = %s ORDER BY chain, seq LIMIT 1",
        (event_id,),
    ).fetchone()
    if row is None:
        return None
    r = row
    return AuditRow(r[0], r[1], r[2], r[3], _json(r[4]), r[5], r[6], r[7], r[8], r[9], _json(r[10]))


def chain_hashes(conn: Conn, chain: str, size: int) -> Iterator[bytes]:
    """The raw record hashes of seq 0..size-1, streamed."""
    with conn.cursor(name="audit_hashes") as cur:
        cur.itersize = 20000
        cur.execute(
            "SELECT hash FROM audit_events WHERE chain = %s AND seq < %s ORDER BY seq",
            (chain, size),
        )
        for (h,) in cur:
            yield bytes.fromhex(h)


def checkpoint_notes(conn: Conn, chain: str) -> list[str]:
    rows = conn.execute(
        "SELECT note FROM audit_checkpoints WHERE chain = %s ORDER BY size", (chain,)
    ).fetchall()
    return [str(n) for (n,) in rows]


def latest_checkpoint_note(conn: Conn, chain: str, min_size: int = 0) -> str | None:
    row = conn.execute(
        "SELECT note FROM audit_checkpoints WHERE chain = %s AND size >= %s"
        " ORDER BY size DESC LIMIT 1",
        (chain, min_size),
    ).fetchone()
    return None if row is None else str(row[0])


def insert_checkpoint(conn: Conn, cp: ChainCheckpoint, signer_id: str, note: str) -> None:
    conn.execute(
        "INSERT INTO audit_checkpoints (chain, size, root_hash, head_hash, signer_id, note)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (cp.chain, cp.size, base64.b64encode(cp.root).decode(), cp.head_hash, signer_id, note),
    )
