"""The Postgres adapter: every connection Kernel makes is opened here.

A :class:`Database` is one database role's access (its URL): a
``psycopg_pool`` pool for the short uses of request handlers and checks
(:meth:`Database.connection`), and dedicated connections for what holds one for
as long as it runs (:meth:`Database.connect`: a projector, the auditor, replay).
The composition root keeps one :class:`Database` per role, so a process that
connects as a least-privileged role gets a pool of that role's connections.
``tests/unit/test_client_construction.py`` fails if a connection is opened
anywhere else.

A long-held connection must not hang its holder, so every way a call could
block is bounded (:class:`PostgresTimeouts`): the connect (``connect_timeout``),
every statement (``statement_timeout``, so a lock held by a stalled peer or a
runaway query ends in ``QueryCanceled``), and a dead peer (TCP keepalives for an
idle socket, ``tcp_user_timeout`` for one with unacknowledged data). Each of
these ends in a ``psycopg.OperationalError``, which the projector treats as
"Postgres unavailable": roll back, back off, resume from the stored checkpoint.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from schemas.errors import StoreUnavailableError

__all__ = ["Conn", "Database", "PostgresTimeouts", "connect", "open_connection", "redacted"]

Conn = psycopg.Connection[tuple[Any, ...]]


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

    def connect_kwargs(self) -> dict[str, Any]:
        return {
            "connect_timeout": self.connect_s,
            "keepalives": 1,
            "keepalives_idle": self.keepalive_s,
            "keepalives_interval": self.keepalive_interval_s,
            "keepalives_count": self.keepalive_count,
            "tcp_user_timeout": self.tcp_user_timeout_ms,
        }


def redacted(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in creds:
        return url
    return f"{scheme}{sep}{creds.split(':', 1)[0]}:***@{host}"


def open_connection(url: str, *, autocommit: bool = False, connect_timeout: int = 10) -> Conn:
    """One plain connection (an operator's command: migrate, backup, a drill).

    psycopg's errors pass through: the command reports them in its own words.
    """
    return psycopg.connect(url, autocommit=autocommit, connect_timeout=connect_timeout)


def connect(
    url: str, timeouts: PostgresTimeouts, *, autocommit: bool = False, statements: bool = True
) -> Conn:
    """A connection with every timeout of ``timeouts`` set (statement timeout per session,
    unless ``statements`` is false: a replay's bulk copy may rightly run for minutes)."""
    conn = psycopg.connect(url, autocommit=autocommit, **timeouts.connect_kwargs())
    try:
        if statements:
            _set_statement_timeout(conn, timeouts)
            if not autocommit:
                conn.commit()
    except BaseException:
        conn.close()
        raise
    return conn


def _set_statement_timeout(conn: Conn, timeouts: PostgresTimeouts) -> None:
    # set_config, not SET: SET takes no bind parameters. Session-wide (false).
    conn.execute("SELECT set_config('statement_timeout', %s, false)", (f"{timeouts.statement_s}s",))


class Database:
    """One role's connections to Postgres: pooled for short uses, dedicated for long ones."""

    def __init__(
        self,
        url: str,
        timeouts: PostgresTimeouts | None = None,
        *,
        role: str = "kernel",
        max_size: int = 4,
    ) -> None:
        self.url = url
        self.role = role
        self.timeouts = timeouts or PostgresTimeouts()
        self._max_size = max_size
        self._pool: ConnectionPool[Conn] | None = None
        self._lock = threading.Lock()
        self._down = True  # not known to answer yet: see connection()

    # -- pooled ---------------------------------------------------------------
    @contextmanager
    def connection(self) -> Iterator[Conn]:
        """A pooled connection for one unit of work: committed at the end, rolled back
        on an error, checked before it is handed out (a restarted server's dead
        connections are replaced, not served).

        While the server is not known to answer -- before the first success, and
        after a failure -- the unit of work gets a connection of its own instead:
        a refused connect is an answer at once, where the pool would wait its
        whole timeout for a connection it keeps failing to make.
        """
        if self._down:
            conn = self.connect()
            self._down = False
            with conn:
                yield conn
            return
        pool = self._opened()
        try:
            with pool.connection(timeout=float(self.timeouts.connect_s)) as conn:
                yield conn
        except PoolTimeout as exc:
            self._down = True
            raise StoreUnavailableError(
                f"Postgres at {redacted(self.url)} did not answer within "
                f"{self.timeouts.connect_s}s: {exc}"
            ) from exc
        except (psycopg.OperationalError, psycopg.InterfaceError):
            self._down = True
            raise

    def _opened(self) -> ConnectionPool[Conn]:
        with self._lock:
            if self._pool is None:
                self._pool = ConnectionPool(
                    self.url,
                    min_size=1,
                    max_size=self._max_size,
                    kwargs=dict(self.timeouts.connect_kwargs()),
                    configure=self._configure,
                    check=ConnectionPool.check_connection,
                    name=f"kernel-{self.role}",
                    open=False,
                )
                self._pool.open(wait=False)
            return self._pool

    def _configure(self, conn: Conn) -> None:
        _set_statement_timeout(conn, self.timeouts)
        conn.commit()

    # -- dedicated -------------------------------------------------------------
    def connect(self, *, autocommit: bool = False, statement_timeout: bool = False) -> Conn:
        """A connection of its own (the caller closes it): connect and keepalive timeouts
        set, and the statement timeout too if asked (a verification or replay
        statement over a whole table may rightly run long)."""
        try:
            return connect(
                self.url, self.timeouts, autocommit=autocommit, statements=statement_timeout
            )
        except psycopg.OperationalError as exc:
            raise StoreUnavailableError(
                f"Postgres at {redacted(self.url)} did not answer: {exc}"
            ) from exc

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
