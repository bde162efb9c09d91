"""``projection_checkpoints``: where each projection stands in the log.

A projector writes its rows and its new checkpoints in one transaction and
resumes from here, never from the consumer group's commit. With several
instances in one consumer group, a rebalance can leave a *zombie*: an instance
that has lost a partition but does not know it yet, still writing a batch it
read before. So the checkpoint moves by compare-and-set: a batch advances a
partition only if the stored ``next_offset`` still equals the one the batch
started from (no row yet: only if there is still no row). Under READ COMMITTED
a concurrent writer's UPDATE waits for the first to commit and then re-checks
its condition, so of two instances that read from the same position exactly
one commits; the other's rows roll back with its checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping

import psycopg

__all__ = ["advance_checkpoints", "read_checkpoints"]

Position = tuple[str, int]


def read_checkpoints(
    conn: psycopg.Connection[tuple[object, ...]], projection: str
) -> dict[Position, int]:
    rows = conn.execute(
        "SELECT topic, partition, next_offset FROM projection_checkpoints WHERE projection = %s",
        (projection,),
    ).fetchall()
    return {(str(t), int(str(p))): int(str(o)) for t, p, o in rows}


def advance_checkpoints(
    cur: psycopg.Cursor[tuple[object, ...]],
    projection: str,
    expected: Mapping[Position, int | None],
    nexts: Mapping[Position, int],
) -> bool:
    """Move each partition of ``nexts`` from ``expected`` to its next offset, or none.

    Returns False when any partition's stored checkpoint is no longer the
    expected one (another instance moved it): the caller must roll back.
    """
    updates = sorted((k, expected[k], n) for k, n in nexts.items() if expected[k] is not None)
    inserts = sorted((k, n) for k, n in nexts.items() if expected[k] is None)
    if updates:
        cur.execute(
            "UPDATE projection_checkpoints AS c SET next_offset = w.next, updated_at = now() "
            "FROM unnest(%s::text[], %s::int[], %s::bigint[], %s::bigint[]) "
            "AS w(topic, partition, expected, next) "
            "WHERE c.projection = %s AND c.topic = w.topic AND c.partition = w.partition "
            "AND c.next_offset = w.expected",
            (
                [t for (t, _), _, _ in updates],
                [p for (_, p), _, _ in updates],
                [e for _, e, _ in updates],
                [n for _, _, n in updates],
                projection,
            ),
        )
        if cur.rowcount != len(updates):
            return False
    if inserts:
        cur.execute(
            "INSERT INTO projection_checkpoints (projection, topic, partition, next_offset) "
            "SELECT %s, w.topic, w.partition, w.next "
            "FROM unnest(%s::text[], %s::int[], %s::bigint[]) AS w(topic, partition, next) "
            "ON CONFLICT (projection, topic, partition) DO NOTHING",
            (
                projection,
                [t for (t, _), _ in inserts],
                [p for (_, p), _ in inserts],
                [n for _, n in inserts],
            ),
        )
        if cur.rowcount != len(inserts):
            return False
    return True
