"""``GET /sentinel/simulations`` and ``GET /sentinel/simulations/{simulationId}``.

Thin routes over :mod:`projections.sentinel_queries`: the ``policy_simulations``
read model, which the policy registry projection builds from the
``policySimulation`` events on the policies topic (``kernel policy simulate``
publishes them), so it is rebuilt from the log like every table. The list is
newest first and summarised; one simulation is the whole report with where its
event is on the log. Roles ``policy-author`` and ``auditor`` (:data:`~ops.http.access.RULES`).
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse

from ops.http.params import check_text
from projections import sentinel_queries as q
from projections.store import Connections, read
from schemas.errors import ValidationError

__all__ = ["simulations_router"]

_ERRORS: dict[int | str, dict[str, str]] = {
    422: {"description": "a malformed parameter; field names it"},
    503: {"description": "Postgres is unavailable; retry"},
}


def simulations_router(db: Connections) -> APIRouter:
    """The routes, reading through ``db`` (the API role's pool)."""
    router = APIRouter(tags=["sentinel"])

    @router.get(
        "/sentinel/simulations",
        summary="Simulation reports, newest first (summaries)",
        responses=_ERRORS,
    )
    async def simulations(
        policy_id: str | None = Query(None, alias="policyId", description="only this policy's"),
        limit: int = Query(50, ge=1, le=500),
    ) -> JSONResponse:
        pid = None if policy_id is None else check_text("policyId", policy_id)
        return JSONResponse({"simulations": await read(db, q.list_simulations, pid, limit)})

    @router.get(
        "/sentinel/simulations/{simulation_id}",
        summary="One simulation report in full",
        responses={404: {"description": "no such simulation (yet)"}, **_ERRORS},
    )
    async def simulation(
        simulation_id: str = Path(json_schema_extra={"format": "uuid"}),
    ) -> JSONResponse:
        """Events evaluated, match rate, decisions by outcome, the change against the
        active set by actor, subject and action, errors, and examples with their paths."""
        try:
            sid = str(uuid.UUID(simulation_id))
        except ValueError:
            raise ValidationError("not a UUID", field="simulationId") from None
        found = await read(db, q.get_simulation, sid)
        if found is None:
            return JSONResponse(
                {
                    "error": "not found",
                    "reason": f"no simulation {sid} in the simulations projection; if it was "
                    "just published, the projector may be behind: retry",
                },
                status_code=404,
            )
        return JSONResponse(found)

    return router
