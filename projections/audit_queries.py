"""Queries of the audit projection: filtered, keyset-paginated events; chain heads.

Pagination is by keyset on ``(ts, chain, seq)`` — stable while rows are
appended, O(page) per request however deep — and the cursor is that triple,
opaque to callers (URL-safe base64 of JSON). Filters: event type, actor,
subject (both read from the payload, indexed), and a half-open time range.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg

from schemas.errors import ValidationError
from schemas.events import format_ts

__all__ = ["EventFilter", "chains", "decode_cursor", "events", "reached"]

Conn = psycopg.Connection[tuple[Any, ...]]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
# Years 0001..9999 (what a cursor's timestamp can be); seq is a bigint.
_MIN_TS_MS = -62_135_596_800_000
_MAX_TS_MS = 253_402_300_799_999
_INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class EventFilter:
    event_type: str | None = None
    actor: str | None = None
    subject: str | None = None
    from_ms: int | None = None
    to_ms: int | None = None
    chain: str | None = None


def encode_cursor(ts_ms: int, chain: str, seq: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([ts_ms, chain, seq])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str, int]:
    """The keyset of a cursor this API returned; anything else is a ValidationError.

    A cursor is caller input: every field is checked to be one the query can
    take (a timestamp Postgres can hold, a chain name that is text, a
    ``bigint`` sequence number), so a forged one is a 422, not a query error.
    """
    try:
        raw = base64.urlsafe_b64decode(cursor.encode("ascii") + b"=" * (-len(cursor) % 4))
        ts_ms, chain, seq = orjson.loads(raw)
        if not (isinstance(ts_ms, int) and isinstance(chain, str) and isinstance(seq, int)):
            raise TypeError("cursor fields")
    except (ValueError, TypeError) as exc:
        raise ValidationError("not a cursor this API returned", field="cursor") from exc
    if isinstance(ts_ms, bool) or isinstance(seq, bool) or "\x00" in chain:
        raise ValidationError("not a cursor this API returned", field="cursor")
    if not (_MIN_TS_MS <= ts_ms <= _MAX_TS_MS and 0 <= seq <= _INT64_MAX):
        raise ValidationError("cursor position out of range", field="cursor")
    return ts_ms, chain, seq


def _ms(ts: datetime) -> int:
    return (ts - _EPOCH) // _MS


def events(conn: Conn, f: EventFilter, limit: int, cursor: str | None) -> dict[str, Any]:
    where: list[str] = ["TRUE"]
    params: list[object] = []
    for column, value in (
        ("event_type", f.event_type),
        ("payload->>'actor'", f.actor),
        ("payload->>'subject'", f.subject),
        ("chain", f.chain),
    ):
        if value is not None:
            where.append(f"{column} = %s")
            params.append(value)
    if f.from_ms is not None:
        where.append("ts >= to_timestamp(%s / 1000.0)")
        params.append(f.from_ms)
    if f.to_ms is not None:
        where.append("ts < to_timestamp(%s / 1000.0)")
        params.append(f.to_ms)
    if cursor is not None:
        ts_ms, chain, seq = decode_cursor(cursor)
        where.append("(ts, chain, seq) > (to_timestamp(%s / 1000.0), %s, %s)")
        params += [ts_ms, chain, seq]
    rows = conn.execute(
        "SELECT id, chain, seq, event_type, payload, hash, signer_id, ts, source_topic, "
        "source_partition, source_offset FROM audit_events WHERE "
        + " AND ".join(where)
        + " ORDER BY ts, chain, seq LIMIT %s",
        [*params, limit + 1],
    ).fetchall()
    page = rows[:limit]
    items = [
        {
            "id": str(r[0]),
            "chain": r[1],
            "seq": r[2],
            "eventType": r[3],
            "event": r[4],
            "hash": r[5],
            "signerId": r[6],
            "ts": format_ts(_ms(r[7])),
            "position": {"topic": r[8], "partition": r[9], "offset": r[10]},
        }
        for r in page
    ]
    next_cursor = None
    if len(rows) > limit and page:
        last = page[-1]
        next_cursor = encode_cursor(_ms(last[7]), last[1], last[2])
    return {"events": items, "nextCursor": next_cursor}


def chains(conn: Conn) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT DISTINCT ON (chain) chain, seq, hash, ts, signer_id FROM audit_events "
        "ORDER BY chain, seq DESC"
    ).fetchall()
    return [
        {
            "chain": r[0],
            "length": r[1] + 1,
            "head": r[2],
            "headTs": format_ts(_ms(r[3])),
            "signerId": r[4],
        }
        for r in rows
    ]


def reached(conn: Conn, topic: str, partition: int, offset: int) -> bool:
    """Whether the audit projection holds the record at (or past) this source position."""
    row = conn.execute(
        "SELECT 1 FROM audit_events WHERE source_topic = %s AND source_partition = %s "
        "AND source_offset >= %s LIMIT 1",
        (topic, partition, offset),
    ).fetchone()
    return row is not None
