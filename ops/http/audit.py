"""``GET /audit/events`` and ``GET /audit/chains``: the signed audit log, queried.

Thin routes over :mod:`projections.audit_queries`. A caller that has just
published (and holds the position ``kernel publish`` or the SDK returned)
passes ``after=<topic>/<partition>@<offset>`` and ``wait_ms=`` to wait until
the audit projection holds that record — read your own write — instead of
polling; past ``wait_ms`` the answer is 504 naming the position.

Every parameter is checked before the query (:mod:`ops.http.params`):
a NUL, an out-of-range offset or timestamp, a forged cursor raise
:class:`~schemas.errors.ValidationError`, which the API answers 422 naming it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ops.http.openapi import TEXT_PATTERN, error_responses
from ops.http.params import POSITION_PATTERN, optional_text, parse_position, parse_time
from projections import audit_queries as q
from projections.store import Connections, read

__all__ = ["audit_router"]

_POLL_S = 0.02
# What the document says of the parameters (documentation only: the route checks
# each itself, and names it as the caller spelled it, see ops.http.params).
_TEXT: Any = {"json_schema_extra": {"pattern": TEXT_PATTERN}}
_TS: Any = {"json_schema_extra": {"format": "date-time"}}
_CURSOR: Any = {"json_schema_extra": {"pattern": "^[A-Za-z0-9_-]+={0,2}$"}}  # URL-safe base64
_POSITION: Any = {"json_schema_extra": {"pattern": POSITION_PATTERN}}


# What the document says the answers are (the routes write the queries' dicts as JSON).
class _Position(BaseModel):
    topic: str
    partition: int
    offset: int


class AuditEvent(BaseModel):
    id: str
    chain: str
    seq: int
    event_type: str = Field(alias="eventType")
    event: dict[str, Any] = Field(description="the event as chained")
    hash: str
    signer_id: str = Field(alias="signerId")
    ts: str
    position: _Position


class AuditPage(BaseModel):
    events: list[AuditEvent]
    next_cursor: str | None = Field(alias="nextCursor", description="null on the last page")


class ChainHead(BaseModel):
    chain: str
    length: int
    head: str
    head_ts: str = Field(alias="headTs")
    signer_id: str = Field(alias="signerId")


class Chains(BaseModel):
    chains: list[ChainHead]


def audit_router(db: Connections) -> APIRouter:
    """The routes, reading through ``db`` (the API role's pool)."""
    router = APIRouter(tags=["audit"])

    async def wait_for(after: str, wait_ms: int) -> JSONResponse | None:
        topic, part, off = parse_position("after", after)
        deadline = time.monotonic() + wait_ms / 1000
        while not await read(db, q.reached, topic, part, off):
            if time.monotonic() >= deadline:
                return JSONResponse(
                    {
                        "error": "not yet projected",
                        "after": after,
                        "waitedMs": wait_ms,
                        "reason": "the audit projection has not reached this position yet",
                    },
                    status_code=504,
                )
            await asyncio.sleep(_POLL_S)
        return None

    @router.get(
        "/audit/events",
        summary="Audit events, filtered, in (ts, chain, seq) order",
        responses={200: {"model": AuditPage}, **error_responses(422, 503, 504)},
    )
    async def audit_events(  # noqa: PLR0917 - FastAPI query parameters
        event_type: str | None = Query(None, alias="eventType", **_TEXT),
        actor: str | None = Query(None, **_TEXT),
        subject: str | None = Query(None, **_TEXT),
        chain: str | None = Query(None, **_TEXT),
        from_ts: str | None = Query(None, alias="from", description="RFC 3339, inclusive", **_TS),
        to_ts: str | None = Query(None, alias="to", description="RFC 3339, exclusive", **_TS),
        limit: int = Query(100, ge=1, le=1000),
        cursor: str | None = Query(None, description="nextCursor of a page (opaque)", **_CURSOR),
        after: str | None = Query(
            None, description="wait until topic/partition@offset is in", **_POSITION
        ),
        wait_ms: int = Query(0, ge=0, le=30_000),
    ) -> JSONResponse:
        flt = q.EventFilter(
            event_type=optional_text("eventType", event_type),
            actor=optional_text("actor", actor),
            subject=optional_text("subject", subject),
            chain=optional_text("chain", chain),
            from_ms=parse_time("from", from_ts),
            to_ms=parse_time("to", to_ts),
        )
        if cursor is not None:
            q.decode_cursor(cursor)  # refused before waiting, not after
        if after is not None:
            early = await wait_for(after, wait_ms)
            if early is not None:
                return early
        return JSONResponse(await read(db, q.events, flt, limit, cursor))

    @router.get(
        "/audit/chains",
        summary="Every chain's head and length",
        responses={200: {"model": Chains}, **error_responses(503)},
    )
    async def audit_chains() -> JSONResponse:
        return JSONResponse({"chains": await read(db, q.chains)})

    return router
