"""``GET /sentinel/explain/{policyCheckId}``, ``GET /policies``, ``GET /policies/{id}``.

Thin routes over :mod:`projections.sentinel_queries` (Postgres, run on a worker
thread). Explain answers from the ``policy_checks`` projection, which trails
the log by the projector's lag; a caller that has just received a
``policyCheckId`` (from ``POST /sentinel/check``) passes ``?wait_ms=`` to wait
up to that long for the projection to catch up -- read your own write --
instead of polling. Unknown ids are a 404 saying so, and whether it waited.
A malformed id is a 422 naming ``policyCheckId`` or ``policyId``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ops.http.openapi import TEXT_PATTERN, error_responses
from ops.http.params import check_text
from projections import sentinel_queries as q
from projections.store import Connections, read
from schemas.errors import ValidationError

__all__ = ["MAX_WAIT_MS", "explain_router"]

MAX_WAIT_MS = 30_000
_POLL_S = 0.02


# What the document says the answers are (the routes write the queries' dicts as JSON).
class Explanation(BaseModel):
    policy_check_id: str = Field(alias="policyCheckId")
    decision: str = Field(description="allow | deny | quarantine | remediate | escalate")
    allowed: bool
    policy_id: str | None = Field(alias="policyId")
    policy_version: int | None = Field(alias="policyVersion")
    rationale: str
    ts: str
    evidence: dict[str, Any] | None
    evaluations: list[Any] = Field(description="the full evaluation path")


class _VersionState(BaseModel):
    state: str
    canary_percent: float = Field(alias="canaryPercent")


class PolicySummary(BaseModel):
    id: str
    name: str
    severity: str
    updated_at: str = Field(alias="updatedAt")
    versions: dict[str, _VersionState]


class Policies(BaseModel):
    policies: list[PolicySummary]


class _Change(BaseModel):
    seq: int
    version: int
    change: str
    from_state: str | None = Field(alias="fromState")
    to_state: str = Field(alias="toState")
    actor: str
    ts: str
    reason: str | None
    event_id: str | None = Field(alias="eventId")


class PolicyHistory(BaseModel):
    id: str
    versions: list[dict[str, Any]] = Field(description="each version's definition")
    history: list[_Change]


def _not_found(message: str) -> JSONResponse:
    return JSONResponse({"error": "not found", "reason": message}, status_code=404)


def explain_router(db: Connections) -> APIRouter:
    """The routes, reading through ``db`` (the API role's pool)."""
    router = APIRouter(tags=["sentinel"])

    @router.get(
        "/sentinel/explain/{policy_check_id}",
        summary="Explain one decision",
        responses={
            200: {"model": Explanation},
            **error_responses(404, 422, 503, s404="no such policyCheck (yet)"),
        },
    )
    async def explain(
        policy_check_id: str = Path(json_schema_extra={"format": "uuid"}),
        wait_ms: int = Query(0, ge=0, le=MAX_WAIT_MS, description="wait for the projection"),
    ) -> JSONResponse:
        """Decision, rationale, evidence (with the evaluated event's chain position and
        hash once chained) and the full evaluation path."""
        try:
            check_id = str(uuid.UUID(policy_check_id))
        except ValueError:
            raise ValidationError("not a UUID", field="policyCheckId") from None
        deadline = time.monotonic() + wait_ms / 1000
        while True:
            found = await read(db, q.explain, check_id)
            if found is not None:
                return JSONResponse(found)
            if time.monotonic() >= deadline:
                waited = f" after waiting {wait_ms} ms" if wait_ms else ""
                return _not_found(
                    f"no policyCheck {check_id} in the explain projection{waited}; if it was "
                    "just decided, retry with ?wait_ms= (the projector may be behind)"
                )
            await asyncio.sleep(_POLL_S)

    @router.get(
        "/policies",
        tags=["policies"],
        summary="Every policy and its versions' states",
        responses={200: {"model": Policies}, **error_responses(503)},
    )
    async def policies() -> JSONResponse:
        return JSONResponse({"policies": await read(db, q.list_policies)})

    @router.get(
        "/policies/{policy_id}",
        tags=["policies"],
        summary="A policy with its history",
        responses={
            200: {"model": PolicyHistory},
            **error_responses(404, 422, 503, s404="no such policy"),
        },
    )
    async def policy(
        policy_id: str = Path(json_schema_extra={"pattern": TEXT_PATTERN}),
    ) -> JSONResponse:
        found = await read(db, q.get_policy, check_text("policyId", policy_id))
        if found is None:
            return _not_found(f"no policy {policy_id!r} in the registry projection")
        return JSONResponse(found)

    return router
