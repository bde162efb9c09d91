"""``POST /events``: HTTP ingestion for producers that are not Python (role ``producer``).

The body is one event or ``{"events": [...]}`` (at most :data:`MAX_BATCH`);
each is an envelope as ``kernel publish`` takes it (``eventType``, ``subject``,
``body``, and optionally ``eventId``, ``ts``, ``schemaVersion``, ``metadata``,
``actor``), validated against its schema and the input contract like every
other door (:meth:`schemas.events.Event.from_json`). A batch is all or nothing
at validation: one bad event is a 422 naming it (``events[3].body.amount``)
and nothing is published. Producers write actions only: an event type whose
topic is not ``actions`` is refused.

Who wrote it is the authenticated caller, not what the body says: the
envelope's ``actor`` is the caller's identity, and an ``actor`` the body
claims is kept in ``metadata.claimedActor``.

The answer (200) comes once Kafka has every event, with each one's position;
503 with ``Retry-After`` if it did not acknowledge. Publishing is idempotent
by ``eventId``: the same event sent again (a client's retry) is answered with
its first positions and not written twice while this process remembers it
(the last :data:`REMEMBERED` ids); past that, the signer and SentinelNet drop
an ``eventId`` already in their dedup window, so a late retry cannot become a
second audit link. The same ``eventId`` with different content is a 409.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ops.http.access_log import EventLog
from ops.http.errors import UnsupportedMediaTypeError
from ops.http.front_door import principal_of
from ops.http.openapi import error_responses
from schemas.catalog import catalog
from schemas.contract import InputContract, LimitError
from schemas.errors import LogUnavailableError, ValidationError
from schemas.events import Event
from schemas.ijson import loads_ijson
from schemas.positions import LogPosition
from schemas.topics import TopicNames
from streams.sentinel.check_request import MalformedRequestError, RequestTooLargeError

__all__ = ["MAX_BATCH", "MAX_BODY_BYTES", "REMEMBERED", "EventLog", "events_router"]

MAX_BATCH = 500
MAX_BODY_BYTES = 8 * 1024 * 1024
REMEMBERED = 100_000


def events_router(
    make_log: Callable[[], EventLog], names: TopicNames, contract: InputContract
) -> APIRouter:
    """``make_log`` builds the asynchronous publisher when the app starts."""
    state: dict[str, EventLog] = {}
    seen: OrderedDict[str, tuple[str, LogPosition]] = OrderedDict()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        state["log"] = make_log()
        try:
            yield
        finally:
            state.pop("log").close()

    router = APIRouter(tags=["events"], lifespan=lifespan)

    @router.post(
        "/events",
        summary="Publish one event or a batch; answers once Kafka has them, with positions",
        response_model=Published,
        responses=error_responses(
            400,
            409,
            413,
            415,
            422,
            503,
            s409="an eventId already published with other content",
            s422="an event is invalid; field names it",
            s503="Kafka did not acknowledge; retry after Retry-After",
        ),
        openapi_extra={"requestBody": _request_body(names, contract)},
    )
    async def publish(request: Request) -> JSONResponse:
        _json_only(request)
        raw = await _read(request)
        caller = principal_of(request.scope)
        assert caller is not None  # the front door admits only a producer here
        events = _events(raw, caller.name, names, contract)
        digests = [_digest(e) for e in events]
        fresh: list[tuple[int, Event]] = []
        answers: list[LogPosition | None] = []
        for i, (event, digest) in enumerate(zip(events, digests, strict=True)):
            known = seen.get(event.event_id)
            if known is not None and known[0] != digest:
                return JSONResponse(
                    {
                        "error": "conflict",
                        "field": f"{_where(i, len(events))}eventId",
                        "reason": f"event {event.event_id} was published with other content",
                    },
                    status_code=409,
                )
            answers.append(None if known is None else known[1])
            if known is None:
                fresh.append((i, event))
        log = state["log"]
        try:
            for topic in dict.fromkeys(names.for_event_type(e.event_type) for _, e in fresh):
                batch = [(i, e) for i, e in fresh if names.for_event_type(e.event_type) == topic]
                positions = await log.publish([e for _, e in batch], topic)
                for (i, event), position in zip(batch, positions, strict=True):
                    answers[i] = position
                    seen[event.event_id] = (digests[i], position)
        except LogUnavailableError as exc:
            return JSONResponse(
                {"error": "log unavailable", "field": None, "reason": str(exc)},
                status_code=503,
                headers={"retry-after": "1"},
            )
        while len(seen) > REMEMBERED:
            seen.popitem(last=False)
        return JSONResponse(
            {
                "events": [
                    {
                        "eventId": e.event_id,
                        "topic": p.topic,
                        "partition": p.partition,
                        "offset": p.offset,
                    }
                    for e, p in zip(events, answers, strict=True)
                    if p is not None
                ]
            }
        )

    return router


class _Position(BaseModel):
    event_id: str = Field(alias="eventId")
    topic: str
    partition: int
    offset: int


class Published(BaseModel):
    """Each event's position on the log, in the order sent."""

    events: list[_Position]


def _request_body(names: TopicNames, contract: InputContract) -> dict[str, Any]:
    """The document's request body: an event of an action type, or a batch of them."""
    types = [t for t in catalog().event_types if names.for_event_type(t) == names.actions]
    name = {"type": "string", "minLength": 1, "maxLength": contract.max_name_bytes}
    envelope = {
        "eventId": {
            "type": ["string", "null"],
            "format": "uuid",
            "pattern": _UUID,
            "description": "the idempotency key; absent or null: the server makes one",
        },
        "ts": {
            "type": ["string", "null"],
            "format": "date-time",
            "description": "absent or null: now",
        },
        "actor": {
            "type": ["string", "null"],
            "description": "who the producer acts for: kept as metadata.claimedActor",
        },
        "subject": name,
        "schemaVersion": {"type": "integer", "minimum": 1},
        "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
    }
    described = (
        "an envelope as `kernel publish` takes it; the actor is the caller (a claimed actor "
        "goes to metadata.claimedActor); ts at most "
        f"{contract.future_skew_ms // 1000} s ahead of the server's clock, after 2000; the "
        f"event's JSON at most {contract.max_event_bytes} bytes, I-JSON, nested at most "
        f"{contract.max_depth} deep"
    )
    events = [
        {
            "type": "object",
            "description": described,
            "properties": {
                **envelope,
                "eventType": {"type": "string", "enum": [t]},
                "body": _body_schema(catalog().newest(t)),
            },
            "required": ["eventType", "subject", "body"],
            "additionalProperties": False,
        }
        for t in types
    ]
    event = events[0] if len(events) == 1 else {"oneOf": events}
    batch = {
        "type": "object",
        "properties": {
            "events": {"type": "array", "items": event, "minItems": 1, "maxItems": MAX_BATCH}
        },
        "required": ["events"],
        "additionalProperties": False,
    }
    return {
        "required": True,
        "description": f"at most {MAX_BODY_BYTES} bytes (413 past it)",
        "content": {"application/json": {"schema": {"oneOf": [event, batch]}}},
    }


_AVRO_JSON = {"string": "string", "boolean": "boolean", "int": "integer", "long": "integer"}


def _body_schema(schema: Any) -> dict[str, Any]:
    """The JSON schema of an event type's body, from its Avro record."""
    props: dict[str, Any] = {}
    for f in schema.raw["fields"][-1]["type"]["fields"]:
        kinds = f["type"] if isinstance(f["type"], list) else [f["type"]]
        json_types = []
        for kind in kinds:
            if f["name"] in schema.json_fields:
                json_types.append("object")
            elif kind == "null":
                json_types.append("null")
            else:
                json_types.append(
                    _AVRO_JSON.get(kind, "string") if isinstance(kind, str) else "object"
                )
        props[f["name"]] = {"type": json_types[0] if len(json_types) == 1 else json_types}
    return {
        "type": "object",
        "properties": props,
        "required": sorted(schema.required_body_fields),
        "additionalProperties": False,
    }


_UUID = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


def _json_only(request: Request) -> None:
    media = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if media != "application/json" and not (
        media.startswith("application/") and media.endswith("+json")
    ):
        raise UnsupportedMediaTypeError(
            f"Content-Type {media or '(empty)'!r} is not JSON; send application/json",
            field="content-type",
        )


async def _read(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise RequestTooLargeError(f"the body is over {MAX_BODY_BYTES} bytes", field="body")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise RequestTooLargeError(f"the body is over {MAX_BODY_BYTES} bytes", field="body")
        chunks.append(chunk)
    return b"".join(chunks)


def _events(raw: bytes, caller: str, names: TopicNames, contract: InputContract) -> list[Event]:
    if not raw.strip():
        raise MalformedRequestError('the body is empty; send an event or {"events": [...]}')
    try:
        doc = loads_ijson(raw, max_depth=contract.max_depth + 2)
    except LimitError:
        raise
    except ValidationError as exc:
        raise MalformedRequestError(exc.reason, field=exc.field) from exc
    except UnicodeDecodeError as exc:
        raise MalformedRequestError(f"the body is not valid UTF-8 (byte {exc.start})") from exc
    except (ValueError, RecursionError) as exc:
        raise MalformedRequestError(f"malformed JSON: {exc}") from exc
    if isinstance(doc, dict) and set(doc) == {"events"}:
        items = doc["events"]
        if not isinstance(items, list) or not items:
            raise ValidationError("must be a non-empty array of events", field="events")
        if len(items) > MAX_BATCH:
            raise ValidationError(f"at most {MAX_BATCH} events per request", field="events")
        batch = True
    else:
        items, batch = [doc], False
    out: list[Event] = []
    for i, item in enumerate(items):
        where = f"events[{i}]." if batch else ""
        out.append(_event(item, caller, names, contract, where))
    return out


def _event(item: Any, caller: str, names: TopicNames, contract: InputContract, where: str) -> Event:
    if not isinstance(item, dict):
        raise ValidationError("an event must be a JSON object", field=where.rstrip(".") or "body")
    data = dict(item)
    given = data.get("eventId")
    if given is not None and not (isinstance(given, str) and given):
        # 0, false or "" were read as "no id" and given a random one: a retry of the
        # same event then published it again, under another id
        raise ValidationError(
            "must be a UUID (or absent: the server makes one)", field=f"{where}eventId"
        )
    claimed = data.get("actor")
    metadata = data.get("metadata", {})
    if isinstance(metadata, dict) and claimed is not None and claimed != caller:
        metadata = {**metadata, "claimedActor": claimed}
    data["actor"] = caller
    data["metadata"] = metadata
    event_type = data.get("eventType")
    known = isinstance(event_type, str) and event_type in catalog().event_types
    if known and names.for_event_type(str(event_type)) != names.actions:
        raise ValidationError(
            f"producers write actions only; {event_type!r} is not published here",
            field=f"{where}eventType",
        )
    try:
        event = Event.from_json(data, contract=contract)
    except ValidationError as exc:
        raise ValidationError(exc.reason, field=f"{where}{exc.field or 'body'}") from exc
    context = event.body.get("context", {})
    if not isinstance(context, dict):  # rules read an object: [] would evaluate as {}
        raise ValidationError(
            f"must be an object, got {type(context).__name__}", field=f"{where}body.context"
        )
    return event


def _where(i: int, n: int) -> str:
    return f"events[{i}]." if n > 1 else ""


def _digest(event: Event) -> str:
    doc = event.to_avro()
    doc.pop("ts", None)  # a retry without ts gets a new one: still the same event
    return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()
