"""Postgres adapter: the projectors' own positions, from ``projection_checkpoints``.

Projectors resume from the checkpoint they store with their rows, not from a
consumer-group commit, so their lag is "stored checkpoint vs log end". The
table belongs to the projections' migration; until it exists there is
nothing to report, which is not an error.
"""

from __future__ import annotations

import psycopg

from projections.store import Connections
from schemas.errors import StoreUnavailableError

__all__ = ["PROJECTION_GROUP_PREFIX", "PostgresCheckpoints"]

# Projections appear in the lag report as pseudo-groups with this prefix.
PROJECTION_GROUP_PREFIX = "projection:"


class PostgresCheckpoints:
    """Reads on a pooled connection per sample: nothing is held between samples."""

    def __init__(self, db: Connections) -> None:
        self._db = db

    def checkpoints(self) -> dict[str, dict[tuple[str, int], int]]:
        """``{"projection:<name>": {(topic, partition): next_offset}}``."""
        try:
            with self._db.connection() as conn:
                row = conn.execute("SELECT to_regclass('projection_checkpoints')").fetchone()
                if row is None or row[0] is None:
                    return {}
                rows = conn.execute(
                    "SELECT projection, topic, partition, next_offset FROM projection_checkpoints"
                ).fetchall()
        except psycopg.Error as exc:
            raise StoreUnavailableError(f"cannot read projection checkpoints: {exc}") from exc
        out: dict[str, dict[tuple[str, int], int]] = {}
        for projection, topic, partition, offset in rows:
            group = PROJECTION_GROUP_PREFIX + str(projection)
            out.setdefault(group, {})[(str(topic), int(str(partition)))] = int(str(offset))
        return out

    def close(self) -> None:
        """Nothing held: each sample returns its connection to the pool."""
