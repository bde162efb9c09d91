"""``POST /sentinel/check``: the thin HTTP entry point of the synchronous check.

Parsing and validation are :mod:`streams.sentinel.check_request`'s, the
decision and its durability :mod:`streams.sentinel.check_service`'s; this
module maps them to HTTP and metrics:

- 200: the decision, durably on the log (``allowed`` says whether to proceed);
- 400 malformed or non-I-JSON body, 413 over the size limit, 422 a field of
  the wrong type or missing (``{"error", "field", "reason"}``);
- 503: the log did not acknowledge the decision record -- the body is still a
  deny (``allowed=false``) with the reason, and ``Retry-After`` is set.

The router's lifespan starts the policy feed (and waits, bounded, for it to
read the policies topic once), the decision log producer and the service; the
service and feed are exposed on ``app.state`` for tests and the demo.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request, Response
from pydantic import BaseModel, Field

from ops import metrics
from ops.bootstrap import Kernel
from schemas.errors import ValidationError
from streams.sentinel.check_request import (
    MAX_REQUEST_BYTES,
    MalformedRequestError,
    RequestTooLargeError,
    parse_check_request,
)
from streams.sentinel.check_service import CheckAnswer, CheckService, Evaluator
from streams.sentinel.evaluator import evaluate
from streams.sentinel.kafka_decision_log import KafkaDecisionLog
from streams.sentinel.kafka_policy_feed import KafkaPolicyFeed

__all__ = ["check_router"]


class CheckRequestModel(BaseModel):
    """The request (documentation; the body is validated by ``parse_check_request``)."""

    action: str = Field(description="the action verb, e.g. payments.transfer")
    actor: str | None = Field(None, description="who acts (default 'anonymous')")
    resource: str | None = None
    context: dict[str, Any] | None = Field(None, description="I-JSON attributes rules read")
    request_id: str | None = Field(
        None, alias="requestId", description="idempotency and canary sampling key"
    )
    subject: str | None = Field(None, description="ordering key (default resource or actor)")


class CheckResponseModel(BaseModel):
    policy_check_id: str = Field(alias="policyCheckId")
    decision: str = Field(description="allow | deny | quarantine | remediate | escalate")
    allowed: bool
    policy_id: str | None = Field(alias="policyId")
    policy_version: int | None = Field(alias="policyVersion")
    rationale: str
    evidence: dict[str, Any] | None = Field(description="log position, values read, deciding")
    sim_mode: bool = Field(alias="simMode")
    ts: str


class ErrorModel(BaseModel):
    error: str
    field: str | None
    reason: str


def check_router(
    kernel: Kernel,
    *,
    evaluator: Evaluator = evaluate,
    ready_timeout_s: float = 5.0,
    max_in_flight: int = 8,
) -> APIRouter:
    """``max_in_flight``: checks answered at once before the excess is shed (fallback)."""
    settings = kernel.settings

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        feed = KafkaPolicyFeed(settings.kafka_bootstrap, kernel.codec, kernel.names.policies)
        feed.start()
        decision_log = KafkaDecisionLog(
            settings.kafka_bootstrap,
            kernel.codec,
            kernel.names.policy_checks,
            settings.publish_timeout_s,
        )
        service = CheckService(
            feed,
            decision_log,
            budget_ms=settings.check_budget_ms,
            evaluator=evaluator,
            max_in_flight=max_in_flight,
        )
        app.state.sentinel_check = service
        app.state.policy_feed = feed
        await asyncio.to_thread(feed.wait_ready, ready_timeout_s)
        try:
            yield
        finally:
            await service.drain()
            service.close()
            decision_log.close()
            feed.close()

    router = APIRouter(tags=["sentinel"], lifespan=lifespan)

    @router.post(
        "/sentinel/check",
        summary="Decide an action now; answers once the decision is durably on the log",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": CheckRequestModel.model_json_schema()}},
            }
        },
        responses={
            200: {"model": CheckResponseModel, "description": "the recorded decision"},
            400: {"model": ErrorModel, "description": "malformed or non-I-JSON body"},
            413: {"model": ErrorModel, "description": "body over the size limit"},
            422: {"model": ErrorModel, "description": "a field is missing or of the wrong type"},
            503: {"model": CheckResponseModel, "description": "log unavailable: deny, unrecorded"},
        },
    )
    async def check(request: Request) -> Response:
        started = time.perf_counter()
        raw = await _read_body(request)
        try:
            parsed = parse_check_request(raw)
        except ValidationError as exc:
            metrics.DECISION_ERRORS.labels("none", "invalid_input").inc()
            return _error(exc)
        service: CheckService = request.app.state.sentinel_check
        answer = await service.check(parsed, started)
        _observe(answer)
        headers = {"Retry-After": "1"} if answer.status == 503 else None
        return Response(
            orjson.dumps(answer.body),
            status_code=answer.status,
            media_type="application/json",
            headers=headers,
        )

    return router


async def _read_body(request: Request) -> bytes:
    """The body, refusing to buffer more than the limit (a length header can lie)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
        return b" " * (MAX_REQUEST_BYTES + 1)  # rejected by the parser with the limit
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_REQUEST_BYTES:
            return b" " * (MAX_REQUEST_BYTES + 1)
        chunks.append(chunk)
    return b"".join(chunks)


def _error(exc: ValidationError) -> Response:
    if isinstance(exc, RequestTooLargeError):
        status = 413
    elif isinstance(exc, MalformedRequestError):
        status = 400
    else:
        status = 422
    body = {"error": "invalid request", "field": exc.field, "reason": exc.reason}
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _observe(answer: CheckAnswer) -> None:
    metrics.SYNC_CHECK_DURATION.labels(answer.result).observe(answer.elapsed_s)
    body = answer.body
    if answer.status == 200:
        metrics.DECISIONS.labels(body["decision"], body["policyId"] or "none", "enforced").inc()
    if answer.reason is not None:
        metrics.DECISION_ERRORS.labels(body["policyId"] or "none", answer.reason).inc()
    for policy in answer.failed_policies:
        metrics.DECISION_ERRORS.labels(policy, "evaluation").inc()
