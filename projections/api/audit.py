"""``GET /audit/events`` and ``GET /audit/chains``: the signed audit log, queried.

Thin routes over :mod:`projections.audit_queries`. A caller that has just
published (and holds the position ``kernel publish`` or the SDK returned)
passes ``after=<topic>/<partition>@<offset>`` and ``wait_ms=`` to wait until
the audit projection holds that record — read your own write — instead of
polling; past ``wait_ms`` the answer is 504 naming the position.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from ops.bootstrap import Kernel
from projections import audit_queries as q
from schemas.errors import ValidationError
from schemas.events import parse_ts

__all__ = ["audit_router"]

_POSITION = re.compile(r"^(?P<topic>[^/@]+)/(?P<partition>\d+)@(?P<offset>\d+)$")
_POLL_S = 0.02


def _invalid(field: str, reason: str) -> JSONResponse:
    return JSONResponse({"error": "invalid request", "field": field, "reason": reason}, 422)


def audit_router(kernel: Kernel) -> APIRouter:
    router = APIRouter(tags=["audit"])

    def run(fn: Any, *args: Any) -> Any:
        with kernel.connect() as conn:
            return fn(conn, *args)

    async def wait_for(after: str, wait_ms: int) -> JSONResponse | None:
        match = _POSITION.match(after)
        if match is None:
            return _invalid("after", "expected <topic>/<partition>@<offset>")
        topic, part, off = match["topic"], int(match["partition"]), int(match["offset"])
        deadline = time.monotonic() + wait_ms / 1000
        while not await asyncio.to_thread(run, q.reached, topic, part, off):
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

    @router.get("/audit/events", summary="Audit events, filtered, in (ts, chain, seq) order")
    async def audit_events(  # noqa: PLR0917 - FastAPI query parameters
        event_type: str | None = Query(None, alias="eventType"),
        actor: str | None = None,
        subject: str | None = None,
        chain: str | None = None,
        from_ts: str | None = Query(None, alias="from", description="RFC 3339, inclusive"),
        to_ts: str | None = Query(None, alias="to", description="RFC 3339, exclusive"),
        limit: int = Query(100, ge=1, le=1000),
        cursor: str | None = None,
        after: str | None = Query(None, description="wait until topic/partition@offset is in"),
        wait_ms: int = Query(0, ge=0, le=30_000),
    ) -> JSONResponse:
        if after is not None:
            early = await wait_for(after, wait_ms)
            if early is not None:
                return early
        try:
            flt = q.EventFilter(
                event_type=event_type,
                actor=actor,
                subject=subject,
                chain=chain,
                from_ms=None if from_ts is None else parse_ts(from_ts),
                to_ms=None if to_ts is None else parse_ts(to_ts),
            )
            page = await asyncio.to_thread(run, q.events, flt, limit, cursor)
        except ValidationError as exc:
            field = {"ts": "from/to"}.get(exc.field or "", exc.field or "query")
            return _invalid(field, exc.reason)
        return JSONResponse(page)

    @router.get("/audit/chains", summary="Every chain's head and length")
    async def audit_chains() -> JSONResponse:
        return JSONResponse({"chains": await asyncio.to_thread(run, q.chains)})

    return router
