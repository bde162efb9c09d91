"""``/approvals/requests``: pending approval requests, and approvals submitted over HTTP.

- ``GET /approvals/requests`` -- the pending requests, each with its approvals
  judged now (counted, refused with the reason);
- ``GET /approvals/requests/{requestId}`` -- one request, and its quorum once reached;
- ``POST /approvals/requests/{requestId}/approvals`` -- one approver's signature
  over the request's statement ``{subject, action, version, expiresAt}``.

The signature is what counts, not the HTTP caller: the route re-judges it with
:func:`~streams.approvals.log.plan_submission` (the CLI's rule) and records the
authenticated principal only as ``submittedBy``. A refused approval (forged,
expired, wrong subject, unknown or duplicate approver) is a 422 with the
reason, and nothing is published; the approval that completes a quorum also
publishes the quorum event. Role ``approver`` (``ops.http.access.RULES``).

The approvals topic is read whole on a worker thread per call (it is small:
one partition, a few events per request); submissions are serialized in this
process so one API instance never publishes two quorums for a request (two
instances may: the fold keeps the first).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ops.http.access_log import EventLog
from ops.http.front_door import principal_of
from ops.http.openapi import TEXT_PATTERN
from ops.http.params import check_text
from schemas.errors import LogUnavailableError
from streams.approvals.errors import ApprovalError
from streams.approvals.log import ApprovalRefusedError, ApprovalsLog, plan_submission
from streams.approvals.statement import Approval

MAX_EXPIRES_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
_REQUEST_ID = Path(json_schema_extra={"pattern": TEXT_PATTERN})

__all__ = ["ApprovalSubmission", "approvals_router"]


class ApprovalSubmission(BaseModel):
    """One approver's signature over the request's statement."""

    model_config = ConfigDict(extra="forbid")
    approverId: str = Field(min_length=1, max_length=128)  # noqa: N815 - the wire name
    # the bound is exact in a double, as JSON Schema tools read it (2^63-1 is not:
    # schemathesis sent 2^63+191 as "valid")
    expiresAt: int = Field(  # noqa: N815
        ge=0, le=MAX_EXPIRES_MS, description="UTC milliseconds, as signed"
    )
    signature: str = Field(
        min_length=1, max_length=128, description="base64 Ed25519 over the JCS of the statement"
    )


_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no identity"},
    403: {"description": "the identity lacks the approver role"},
    503: {"description": "Kafka unavailable; retry"},
}


def _error(status: int, error: str, reason: str, field: str | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "field": field, "reason": reason}, status_code=status)


def approvals_router(
    load: Callable[[], ApprovalsLog],
    make_log: Callable[[], EventLog],
    topic_of: Callable[[str], str],
    clock_ms: Callable[[], int],
) -> APIRouter:
    """``load`` reads the approvals topic (blocking); ``make_log`` builds the async
    publisher, on the first submission (most API instances never take one);
    ``topic_of`` names an event type's topic (approvals, and a remediation's quorum
    decision)."""
    state: dict[str, EventLog] = {}
    submitting = asyncio.Lock()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:  # the publisher exists only if an approval was submitted
            if "log" in state:
                state.pop("log").close()

    def publisher() -> EventLog:
        if "log" not in state:
            state["log"] = make_log()
        return state["log"]

    router = APIRouter(tags=["approvals"], lifespan=lifespan)

    @router.get(
        "/approvals/requests", summary="Pending approval requests, approvals judged now",
        responses=_ERRORS,
    )  # fmt: skip
    async def pending() -> JSONResponse:
        log = await asyncio.to_thread(load)
        now = clock_ms()
        out = []
        for request in log.pending():
            doc = request.to_json()
            doc["quorum"] = (
                None if log.registry is None else log.check(request.request_id, now).to_json()
            )
            out.append(doc)
        return JSONResponse({"requests": out})

    @router.get(
        "/approvals/requests/{request_id}", summary="One approval request and its quorum",
        responses={**_ERRORS, 404: {"description": "no such request"}},
    )  # fmt: skip
    async def one(request_id: str = _REQUEST_ID) -> JSONResponse:
        log = await asyncio.to_thread(load)
        found = log.requests.get(check_text("requestId", request_id))
        if found is None:
            return _error(404, "not found", f"no approval request {request_id!r} on the log")
        quorum = log.quorums.get(request_id)
        doc: dict[str, Any] = {"request": found.to_json(), "quorum": quorum and quorum.to_json()}
        if quorum is None and log.registry is not None:
            doc["now"] = log.check(request_id, clock_ms()).to_json()
        return JSONResponse(doc)

    @router.post(
        "/approvals/requests/{request_id}/approvals",
        summary="Submit one signed approval; publishes the quorum event when it completes one",
        status_code=201,
        responses={
            **_ERRORS,
            404: {"description": "no such request"},
            409: {"description": "the request already has its quorum"},
            422: {"description": "malformed, or refused: forged, expired, wrong subject, "
                  "unknown or duplicate approver (reason says which)"},
        },
    )  # fmt: skip
    async def submit(
        body: ApprovalSubmission, request: Request, request_id: str = _REQUEST_ID
    ) -> JSONResponse:
        caller = principal_of(request.scope)
        assert caller is not None  # the front door admits only an approver here
        check_text("requestId", request_id)
        async with submitting:
            log = await asyncio.to_thread(load)
            found = log.requests.get(request_id)
            if found is None:
                return _error(404, "not found", f"no approval request {request_id!r} on the log")
            if request_id in log.quorums:
                return _error(409, "conflict", f"request {request_id} already has its quorum")
            approval = Approval(body.approverId, found.statement(body.expiresAt), body.signature)
            try:
                submission = plan_submission(log, request_id, approval, caller.name, clock_ms())
            except ApprovalRefusedError as exc:
                return _error(422, "approval refused", str(exc), "signature")
            except ApprovalError as exc:
                return _error(422, "approval refused", str(exc))
            try:
                # by type: the approval and quorum to the approvals topic, a
                # remediation's quorum decision to the remediations topic
                for event in submission.events:
                    await publisher().publish([event], topic_of(event.event_type))
            except LogUnavailableError as exc:
                return JSONResponse(
                    {"error": "log unavailable", "field": None, "reason": str(exc)},
                    status_code=503,
                    headers={"retry-after": "1"},
                )
        result = submission.result
        return JSONResponse(
            {
                "approvalEventId": submission.events[0].event_id,
                "quorumEventId": submission.events[1].event_id if result.reached else None,
                "quorum": result.to_json(),
                "submittedBy": caller.name,
            },
            status_code=201,
        )

    return router
