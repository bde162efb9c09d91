"""``POST /sentinel/check``: the thin HTTP entry point of the synchronous check.

Parsing and validation are :mod:`streams.sentinel.check_request`'s, the
decision and its durability :mod:`streams.sentinel.check_service`'s; this
module maps them to HTTP and metrics:

- 200: the decision, durably on the log (``allowed`` says whether to proceed);
- 400 malformed or non-I-JSON body (not UTF-8, empty, nested too deep), 413
  over the size limit, 415 a ``Content-Type`` that is not JSON (none at all
  is read as JSON), 422 a field of the wrong type or missing (``{"error",
  "field", "reason"}``);
- 503: the log did not acknowledge the decision record -- the body is still a
  deny (``allowed=false``) with the reason, and ``Retry-After`` is set.

The router's lifespan asks the composition root for the check's parts
(:class:`SyncCheck`: the service, the policy feed and the decision log, from
:meth:`ops.bootstrap.Kernel.sync_check`), starts the feed and waits, bounded,
for it to read the policies topic once; the service and feed are exposed on
``app.state`` for tests and the demo.

**Served as raw ASGI.** The check is the API's hot path, and FastAPI's request
machinery (dependency solving, the ``Request`` object, ``Response`` rendering)
was a third of its HTTP cost while doing nothing for it: the body is parsed
and validated by ``parse_check_request`` anyway. So the router's one route is
a :class:`~ops.http.front_door.HotRoute` to :class:`CheckEndpoint`, a bare
ASGI app that reads the body, answers with orjson and nothing else; the API's
front middleware hands it its requests before FastAPI's own layers. The
OpenAPI document still has the operation: the route carries it as a
:class:`~ops.http.openapi.HotOperation` built from the request and answer
models below. The check's clock starts at the request's arrival in the app
(:data:`ops.http.front_door.ARRIVED`, stamped by the outermost middleware), so
the budget covers the time it waited behind other requests on the event loop.

Once the policy feed is loaded, the lifespan freezes the objects alive then
(``gc.freeze``): the long-lived heap is not walked again by the cyclic
collections that requests' garbage triggers, which otherwise paused checks for
milliseconds.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import Message, Receive, Scope, Send

from ops import metrics
from ops.http.errors import validation_status
from ops.http.front_door import ARRIVED, HotRoute, principal_of
from ops.http.openapi import HotOperation
from schemas.contract import default_contract
from schemas.errors import ValidationError
from streams.sentinel.check_request import (
    MAX_REQUEST_BYTES,
    CheckRequest,
    MalformedRequestError,
    parse_check_request,
)
from streams.sentinel.check_service import CheckAnswer, CheckService
from streams.sentinel.kafka_decision_log import KafkaDecisionLog
from streams.sentinel.kafka_policy_feed import KafkaPolicyFeed

__all__ = ["CHECK_OPERATION", "CheckEndpoint", "SyncCheck", "check_router"]


@dataclass(frozen=True)
class SyncCheck:
    """The check service and the adapters it runs on, for the life of one app."""

    service: CheckService
    feed: KafkaPolicyFeed
    decision_log: KafkaDecisionLog


def _name_field(description: str | None = None, *, required: bool = False, **kw: Any) -> Any:
    """A name of the request (at most the contract's name size in UTF-8 bytes, not blank)."""
    limit = default_contract().max_name_bytes
    text = f"at most {limit} bytes of UTF-8, not blank"
    return Field(
        ... if required else None,
        min_length=1,
        max_length=limit,
        pattern=r"\S",
        description=f"{description}; {text}" if description else text,
        **kw,
    )


class CheckRequestModel(BaseModel):
    """The request (documentation; the body is validated by ``parse_check_request``,
    at most :data:`~streams.sentinel.check_request.MAX_REQUEST_BYTES`)."""

    model_config = ConfigDict(extra="forbid")

    action: str = _name_field("the action verb, e.g. payments.transfer", required=True)
    actor: str | None = _name_field(
        "who the caller acts for: recorded as claimedActor; the actor is the caller"
    )
    resource: str | None = _name_field()
    context: dict[str, Any] | None = Field(None, description="I-JSON attributes rules read")
    request_id: str | None = _name_field("idempotency and canary sampling key", alias="requestId")
    subject: str | None = _name_field("ordering key (default resource or actor)")


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


CHECK_OPERATION = HotOperation(
    operation_id="check_sentinel_check_post",
    summary="Decide an action now; answers once the decision is durably on the log",
    tags=("sentinel",),
    request=CheckRequestModel,
    request_description=f"at most {MAX_REQUEST_BYTES} bytes (413 past it)",
    responses={
        200: (CheckResponseModel, "the recorded decision"),
        400: (ErrorModel, "malformed or non-I-JSON body"),
        413: (ErrorModel, "body over the size limit"),
        415: (ErrorModel, "Content-Type is not application/json"),
        422: (ErrorModel, "a field is missing or of the wrong type"),
        503: (CheckResponseModel, "log unavailable: deny, unrecorded"),
    },
)
"""What the OpenAPI document says of ``POST /sentinel/check``."""


def check_router(build: Callable[[], SyncCheck], *, ready_timeout_s: float = 5.0) -> APIRouter:
    """``build`` makes the check's parts when the app starts (the composition root's
    :meth:`~ops.bootstrap.Kernel.sync_check`, with its evaluator and in-flight limit)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        check = build()
        service, feed, decision_log = check.service, check.feed, check.decision_log
        feed.start()
        app.state.sentinel_check = service
        app.state.policy_feed = feed
        await asyncio.to_thread(feed.wait_ready, ready_timeout_s)
        # What is alive now (modules, the compiled policy set, clients) lives as long
        # as the process: move it out of the cyclic collector's reach, so the
        # collections that requests' garbage triggers stop re-walking it (a full one
        # walked ~80,000 objects, a pause of several ms in the middle of checks).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await service.drain()
            service.close()
            decision_log.close()
            feed.close()
            gc.unfreeze()  # an app's lifetime, not the process's (tests run many apps)

    router = APIRouter(tags=["sentinel"], lifespan=lifespan)
    # Served by the front door, or else by routing (another method: 405).
    router.routes.append(HotRoute("/sentinel/check", CheckEndpoint(), "POST", CHECK_OPERATION))
    return router


class CheckEndpoint:
    """``POST /sentinel/check`` as a bare ASGI app over ``app.state.sentinel_check``."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started: float = scope.get(ARRIVED) or time.perf_counter()
        refused = _content_type_refusal(scope)
        raw = await _read_body(scope, receive)
        if raw is None:
            return  # the client went away before sending the body: nothing to decide
        if refused is not None:
            metrics.DECISION_ERRORS.labels("none", "invalid_input").inc()
            await _respond(send, 415, _error_body(refused))
            return
        try:
            parsed = _parse(raw)
        except ValidationError as exc:
            metrics.DECISION_ERRORS.labels("none", "invalid_input").inc()
            await _respond(send, validation_status(exc), _error_body(exc))
            return
        service: CheckService = scope["app"].state.sentinel_check
        caller = principal_of(scope)
        answer = await service.check(parsed, started, None if caller is None else caller.name)
        _observe(answer)
        retry = ((b"retry-after", b"1"),) if answer.status == 503 else ()
        await _respond(send, answer.status, orjson.dumps(answer.body), retry)


_JSON = (b"content-type", b"application/json")
_TOO_LARGE = b" " * (MAX_REQUEST_BYTES + 1)  # refused by the parser, which names the limit


async def _respond(
    send: Send, status: int, body: bytes, extra: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    headers = [_JSON, (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _read_body(scope: Scope, receive: Receive) -> bytes | None:
    """The body, refusing to buffer more than the limit (a length header can lie).

    ``None`` if the client disconnected first.
    """
    for name, value in scope["headers"]:
        if name == b"content-length":
            if value.isdigit() and int(value) > MAX_REQUEST_BYTES:
                return _TOO_LARGE
            break
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Message = await receive()
        if message["type"] != "http.request":
            return None  # http.disconnect
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > MAX_REQUEST_BYTES:
            return _TOO_LARGE
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _content_type_refusal(scope: Scope) -> ValidationError | None:
    """Why the request's ``Content-Type`` is not one the check reads; None if it is.

    JSON (``application/json`` or ``application/*+json``), UTF-8 if a charset
    is named; no header at all is read as JSON.
    """
    for name, value in scope["headers"]:
        if name == b"content-type":
            media, _, params = value.decode("latin-1").partition(";")
            media = media.strip().lower()
            if media != "application/json" and not (
                media.startswith("application/") and media.endswith("+json")
            ):
                return ValidationError(
                    f"Content-Type {media or '(empty)'!r} is not JSON; send application/json",
                    field="content-type",
                )
            for param in params.split(";"):
                key, _, charset = param.partition("=")
                if key.strip().lower() == "charset" and charset.strip(' "').lower() not in (
                    "utf-8",
                    "utf8",
                ):
                    return ValidationError(
                        f"charset {charset.strip()!r} is not accepted; the body must be UTF-8",
                        field="content-type",
                    )
            return None
    return None


def _parse(raw: bytes) -> CheckRequest:
    """``parse_check_request``, with what a parser raises past its own checks mapped to 400.

    The parser names what it refuses; this guard keeps a body it did not foresee
    (bytes that are not UTF-8, nesting past the interpreter's recursion limit)
    a 400 naming the body, not a server error.
    """
    try:
        return parse_check_request(raw)
    except UnicodeDecodeError as exc:
        raise MalformedRequestError(
            f"the body is not valid UTF-8 (byte {exc.start}); send UTF-8 JSON"
        ) from exc
    except RecursionError as exc:
        raise MalformedRequestError("the body is nested too deeply to be read") from exc
    except ValidationError:
        raise
    except ValueError as exc:
        raise MalformedRequestError(f"malformed JSON: {exc}") from exc


def _error_body(exc: ValidationError) -> bytes:
    return orjson.dumps({"error": "invalid request", "field": exc.field, "reason": exc.reason})


def _observe(answer: CheckAnswer) -> None:
    metrics.SYNC_CHECK_DURATION.labels(answer.result).observe(answer.elapsed_s)
    body = answer.body
    if answer.status == 200:
        metrics.DECISIONS.labels(body["decision"], body["policyId"] or "none", "enforced").inc()
    if answer.reason is not None:
        metrics.DECISION_ERRORS.labels(body["policyId"] or "none", answer.reason).inc()
    for policy in answer.failed_policies:
        metrics.DECISION_ERRORS.labels(policy, "evaluation").inc()
