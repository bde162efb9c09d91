"""Records a projection cannot write: find them, so the rest of the batch can be.

A batch is written by one ``Projection.write`` call (COPY or pipelined
statements). When Postgres refuses a row -- a NUL in a text column, an id that
is not a UUID, a value too long, a constraint violated -- or the projection
itself raises for a record, the whole statement fails and says nothing useful
about *which* record. :func:`write_isolating` then bisects: each half is
written under its own savepoint, a half that fails is split again, down to the
single records that fail alone. Written halves stay, in log order, so the
transaction ends holding every writable record and nothing else; *k* bad
records in *n* cost O(k log n) extra writes, and a clean batch costs one
savepoint. This relies on ``write`` being decomposable: writing ``a + b`` in
one call must equal writing ``a`` then ``b`` in one transaction, which every
projection here guarantees (none keeps memory between calls).

Only *record* errors are isolated. An error that says the database or the
connection is unwell (:func:`is_record_error` false: a lost connection, a
statement timeout, a deadlock or serialization failure, a missing table or
privilege, resources exhausted) is not the record's fault: it propagates, the
transaction rolls back, and the projector pauses and resumes from its stored
checkpoint, as it always did.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import psycopg

from schemas.errors import LogUnavailableError, StoreUnavailableError
from streams.processor import InputRecord

__all__ = ["DeadLetters", "Projection", "Rejection", "is_record_error", "write_isolating"]

Cursor = psycopg.Cursor[tuple[object, ...]]

# SQLSTATE classes that describe the server, the session or the schema, never
# one record: connection (08), invalid transaction state (25), transaction
# rollback (40: deadlock, serialization), syntax/access (42: missing table or
# privilege -- run the migrations), insufficient resources (53), object state
# (55: lock not available), operator intervention (57: shutdown, timeout),
# system (58), configuration file (F0), internal (XX).
_INFRASTRUCTURE_CLASSES = frozenset({"08", "25", "40", "42", "53", "55", "57", "58", "F0", "XX"})


class Projection(Protocol):
    name: str
    topics: Sequence[str]

    def write(self, cur: Cursor, batch: Sequence[InputRecord]) -> None:
        """Called inside the batch's transaction; raise to roll the batch back.

        Must be decomposable (see the module docstring): the runner may call it
        several times in one transaction, on consecutive slices of a batch.
        """
        ...


@dataclass(frozen=True)
class Rejection:
    """A record that goes to the dead-letter topic instead of the projection."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    reason: str
    error_type: str


class DeadLetters(Protocol):
    def __call__(self, rejections: Sequence[Rejection]) -> None:
        """Publish every rejection durably, or raise ``LogUnavailableError``.

        Called inside the Postgres transaction that skips the records, before
        it commits: a dead letter is on the log before its record is passed.
        """
        ...


def is_record_error(exc: BaseException) -> bool:
    """True when ``exc`` is about the record(s) written, not the database."""
    if not isinstance(exc, Exception):
        return False  # KeyboardInterrupt, SystemExit, ...
    if isinstance(exc, LogUnavailableError | StoreUnavailableError):
        return False
    if isinstance(exc, psycopg.Error):
        state = exc.sqlstate
        if state is None:  # raised by psycopg itself, e.g. a NUL in a str it adapts
            return isinstance(exc, psycopg.DataError | psycopg.IntegrityError)
        # By SQLSTATE, not DB-API class: psycopg files "program limit exceeded"
        # (54: an index row or a row too large) under OperationalError.
        return state[:2] not in _INFRASTRUCTURE_CLASSES
    return True


def write_isolating(
    conn: psycopg.Connection[tuple[object, ...]],
    cur: Cursor,
    projection: Projection,
    batch: Sequence[InputRecord],
) -> list[tuple[InputRecord, Exception]]:
    """Write what can be written of ``batch``; return each record that fails alone."""
    if not batch:
        return []
    try:
        with conn.transaction():  # a savepoint inside the batch's transaction
            projection.write(cur, batch)
    except Exception as exc:
        if not is_record_error(exc):
            raise
        if len(batch) == 1:
            return [(batch[0], exc)]
        mid = len(batch) // 2
        return write_isolating(conn, cur, projection, batch[:mid]) + write_isolating(
            conn, cur, projection, batch[mid:]
        )
    return []
