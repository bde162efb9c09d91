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

from ops.http.access_log import EventLog
from ops.http.errors import UnsupportedMediaTypeError
from ops.http.front_door import principal_of
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
        responses={
            400: {"description": "malformed or non-I-JSON body"},
            409: {"description": "an eventId already published with other content"},
            413: {"description": "body over the size limit"},
            415: {"description": "Content-Type is not application/json"},
            422: {"description": "an event is invalid; field names it"},
            503: {"description": "Kafka did not acknowledge; retry"},
        },
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
        return Event.from_json(data, contract=contract)
    except ValidationError as exc:
        raise ValidationError(exc.reason, field=f"{where}{exc.field or 'body'}") from exc


def _where(i: int, n: int) -> str:
    return f"events[{i}]." if n > 1 else ""


def _digest(event: Event) -> str:
    doc = event.to_avro()
    doc.pop("ts", None)  # a retry without ts gets a new one: still the same event
    return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()
