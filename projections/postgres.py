"""Postgres connections that cannot hang a worker.

A projector holds one connection for as long as it runs, so every way a call
could block is bounded: the connect (``connect_timeout``), every statement
(``statement_timeout``, so a lock held by a stalled peer or a runaway query
ends in ``QueryCanceled``), and a dead peer (TCP keepalives for an idle
socket, ``tcp_user_timeout`` for one with unacknowledged data). Each of these
ends in a ``psycopg.OperationalError``, which the projector treats as
"Postgres unavailable": roll back, back off, resume from the stored checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

__all__ = ["PostgresTimeouts", "connect"]


@dataclass(frozen=True)
class PostgresTimeouts:
    connect_s: int = 10
    statement_s: int = 30
    keepalive_s: int = 10

    @property
    def keepalive_interval_s(self) -> int:
        return max(1, self.keepalive_s // 3)

    @property
    def keepalive_count(self) -> int:
        return 3

    @property
    def tcp_user_timeout_ms(self) -> int:
        """Unacknowledged data is given up on once keepalives would have been."""
        return (self.keepalive_s + self.keepalive_count * self.keepalive_interval_s) * 1000


def connect(url: str, timeouts: PostgresTimeouts) -> psycopg.Connection[tuple[object, ...]]:
    """A connection with every timeout of ``timeouts`` set (statement timeout per session)."""
    conn = psycopg.connect(
        url,
        connect_timeout=timeouts.connect_s,
        keepalives=1,
        keepalives_idle=timeouts.keepalive_s,
        keepalives_interval=timeouts.keepalive_interval_s,
        keepalives_count=timeouts.keepalive_count,
        tcp_user_timeout=timeouts.tcp_user_timeout_ms,
    )
    try:
        # set_config, not SET: SET takes no bind parameters. Session-wide (false).
        conn.execute(
            "SELECT set_config('statement_timeout', %s, false)", (f"{timeouts.statement_s}s",)
        )
        conn.commit()
    except BaseException:
        conn.close()
        raise
    return conn
