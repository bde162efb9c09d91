"""Read routes' access to Postgres: one query function on a worker thread, errors translated.

A read route must not answer 500 for what is not a fault of this server: a
database that is down or restarting is :class:`~schemas.errors.StoreUnavailableError`
(the API answers 503 with ``Retry-After``), and a parameter Postgres refuses
as data (``DataError``: a value out of range, text it cannot store) is the
request's fault, :class:`~schemas.errors.ValidationError` (422). The routes
check their parameters first (:mod:`ops.http.params`, in the API), so the second
is a guard for what those checks did not foresee; anything else is a real
server fault and propagates.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Protocol, TypeVar

import psycopg

from schemas.errors import StoreUnavailableError, ValidationError

__all__ = ["Connections", "read"]

T = TypeVar("T")
Conn = psycopg.Connection[tuple[Any, ...]]


class Connections(Protocol):
    """Where read routes get a connection: a pool (:class:`projections.postgres.Database`)."""

    def connection(self) -> AbstractContextManager[Conn]: ...


def _call(db: Connections, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    try:
        with db.connection() as conn:
            return fn(conn, *args)
    except psycopg.DataError as exc:
        raise ValidationError(
            f"the database refused a parameter: {exc.diag.message_primary or exc}",
            field="query",
        ) from exc
    except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
        raise StoreUnavailableError(f"Postgres failed during the query: {exc}") from exc


async def read(db: Connections, fn: Callable[..., T], *args: Any) -> T:
    """``fn(conn, *args)`` on a worker thread, with a pooled connection from ``db``."""
    return await asyncio.to_thread(_call, db, fn, args)
