"""POST /sentinel/check's raw ASGI endpoint, in-process with fake ports (no Kafka)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
from fastapi import APIRouter, FastAPI

from ops.bootstrap import Kernel
from ops.config import Settings
from ops.http.app import create_app
from ops.http.front_door import ARRIVED, FrontDoor, HotRoute
from ops.http.sentinel_check import CHECK_OPERATION, CheckEndpoint, check_router
from streams.sentinel.check_request import MAX_REQUEST_BYTES, CheckRequest
from streams.sentinel.check_service import CheckAnswer
from tests import identity
from tests.unit.sentinel.test_check_service import Log, service

BIG = {"action": "payments.send", "actor": "agent:7", "context": {"amount": 5000}}


def app_with(svc: Any) -> FastAPI:
    """The API with the check router, its service replaced (the lifespan is not run)."""
    kernel = Kernel(Settings.from_env({}))
    app = create_app([check_router(kernel.sync_check)], gate=identity.gate())
    app.state.sentinel_check = svc
    return app


def post(app: FastAPI, content: bytes, **headers: str) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://kernel", headers=identity.AUTH
        ) as c:
            return await c.post(
                "/sentinel/check",
                content=content,
                headers={"content-type": "application/json", **headers},
            )

    return asyncio.run(go())


def test_the_raw_endpoint_decides_records_and_answers_json() -> None:
    log = Log()
    r = post(app_with(service(log)), orjson.dumps({**BIG, "requestId": "r-1"}))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    assert int(r.headers["content-length"]) == len(r.content)
    body = r.json()
    assert (body["decision"], body["allowed"], body["policyId"]) == ("deny", False, "deny-big")
    (event,) = log.events
    assert event.body["policyCheckId"] == body["policyCheckId"]


def test_bad_bodies_are_4xx_naming_field_and_reason_and_never_reach_the_service() -> None:
    log = Log()
    app = app_with(service(log))
    missing = post(app, b'{"actor": "a"}')
    assert missing.status_code == 422
    assert missing.json() == {
        "error": "invalid request",
        "field": "action",
        "reason": "required field is missing",
    }
    duplicate = post(app, b'{"action": "x", "action": "y"}')
    assert duplicate.status_code == 400 and duplicate.json()["field"] == "action"
    huge = b'{"action": "x", "context": {"blob": "' + b"a" * MAX_REQUEST_BYTES + b'"}}'
    too_large = post(app, huge)
    assert too_large.status_code == 413 and "limit" in too_large.json()["reason"]
    assert log.events == []


def test_an_unrecorded_decision_is_503_with_retry_after() -> None:
    r = post(app_with(service(Log(fail=True))), orjson.dumps(BIG))
    assert (r.status_code, r.headers["retry-after"]) == (503, "1")
    assert r.json()["allowed"] is False


def test_openapi_still_documents_the_operation_it_serves_raw() -> None:
    app = app_with(service(Log()))
    op = app.openapi()["paths"]["/sentinel/check"]["post"]
    assert {"200", "400", "413", "422", "503"} <= set(op["responses"])
    schema = op["requestBody"]["content"]["application/json"]["schema"]
    assert "action" in schema["required"]

    # GET is not a check: the raw route refuses other methods
    async def get() -> int:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://kernel", headers=identity.AUTH
        ) as c:
            return (await c.get("/sentinel/check")).status_code

    assert asyncio.run(get()) == 405


def test_the_check_is_one_route_documented_from_its_models() -> None:
    kernel = Kernel(Settings.from_env({}))
    (route,) = check_router(kernel.sync_check).routes  # no second, documentation-only route
    assert isinstance(route, HotRoute) and route.operation is CHECK_OPERATION
    app = create_app([check_router(kernel.sync_check)], gate=identity.gate())
    spec = app.openapi()
    op = spec["paths"]["/sentinel/check"]["post"]
    request = op["requestBody"]["content"]["application/json"]["schema"]
    assert request["title"] == "CheckRequestModel" and request["required"] == ["action"]
    ok = op["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/CheckResponseModel"}
    assert {"CheckResponseModel", "ErrorModel"} <= set(spec["components"]["schemas"])
    assert app.openapi() is spec  # cached, as FastAPI caches its own

    async def served() -> Any:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://kernel", headers=identity.AUTH
        ) as c:
            return (await c.get("/openapi.json")).json()

    assert asyncio.run(served()) == spec


class Recording:
    """A service that records when the endpoint says the check started."""

    def __init__(self) -> None:
        self.started: list[float | None] = []
        self.callers: list[str | None] = []

    async def check(
        self, request: CheckRequest, started: float | None = None, caller: str | None = None
    ) -> CheckAnswer:
        self.started.append(started)
        self.callers.append(caller)
        return CheckAnswer(200, {"decision": "allow", "policyId": None}, "decided", 0.0)


class _State:
    def __init__(self, svc: Recording) -> None:
        self.sentinel_check = svc


class _App:
    def __init__(self, svc: Recording) -> None:
        self.state = _State(svc)


def _scope(svc: Recording, **extra: Any) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "POST",
        "path": "/sentinel/check",
        "headers": [
            (b"content-type", b"application/json"),
            (b"authorization", identity.AUTH["authorization"].encode()),
        ],
        "app": _App(svc),
        **extra,
    }


def test_the_budget_clock_starts_at_the_arrival_stamp() -> None:
    svc = Recording()
    sent: list[dict[str, Any]] = []
    chunks = [orjson.dumps(BIG)[:10], orjson.dumps(BIG)[10:]]

    async def receive() -> dict[str, Any]:
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def scenario() -> None:
        await FrontDoor(CheckEndpoint(), gate=identity.gate())(_scope(svc), receive, send)
        await CheckEndpoint()(_scope(svc, **{ARRIVED: 123.5}), receive_again, send)

    again = [orjson.dumps(BIG)]

    async def receive_again() -> dict[str, Any]:
        return {"type": "http.request", "body": again.pop(), "more_body": False}

    asyncio.run(scenario())
    stamped, given = svc.started
    assert isinstance(stamped, float)  # the middleware's stamp, passed through
    assert given == 123.5  # whatever the scope says arrival was
    assert svc.callers == [identity.CALLER, None]  # the door's caller; none without the door
    statuses = [m["status"] for m in sent if m["type"] == "http.response.start"]
    assert statuses == [200, 200]


def test_a_client_gone_before_its_body_gets_no_answer_and_no_decision() -> None:
    svc = Recording()
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(CheckEndpoint()(_scope(svc), receive, send))
    assert sent == [] and svc.started == []


def test_the_front_door_serves_hot_routes_without_routing_and_the_rest_through_it() -> None:
    seen: list[dict[str, Any]] = []

    class Hot:
        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            seen.append(dict(scope))
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})

    router = APIRouter()
    router.routes.append(HotRoute("/hot", Hot(), "POST"))

    @router.get("/cold")
    async def cold() -> dict[str, bool]:
        return {"cold": True}

    app = create_app([router], gate=identity.gate(every_route=True))

    async def go() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://kernel", headers=identity.AUTH
        ) as c:
            return [
                (await c.post("/hot")).status_code,
                (await c.get("/hot")).status_code,  # routing: the same route, wrong method
                (await c.get("/cold")).status_code,
                (await c.get("/health")).status_code,
            ]

    assert asyncio.run(go()) == [204, 405, 200, 200]
    (scope,) = seen
    assert isinstance(scope[ARRIVED], float)
    assert "endpoint" not in scope and "route" not in scope  # no routing ran for it


def test_hostile_bodies_are_4xx_never_500() -> None:
    # Issue 9: invalid UTF-8 and JSON nested >= 990 were answered 500.
    log = Log()
    app = app_with(service(log))
    not_utf8 = post(app, b'{"action": "x\xff"}')
    assert not_utf8.status_code == 400
    assert "not valid UTF-8 at byte" in not_utf8.json()["reason"]
    for depth in (31, 990, 5000):
        deep = post(app, b'{"action": "x", "context": {"a": ' + b"[" * depth + b"]" * depth + b"}}")
        assert deep.status_code == 422, (depth, deep.text)
        assert deep.json()["field"] == "context.a" + "[0]" * 29
        assert "too deep" in deep.json()["reason"]
    nul = post(app, orjson.dumps({"action": "pay", "requestId": "r\x00"}))
    assert nul.status_code in (400, 422) and nul.json()["field"] == "requestId"
    name = post(app, orjson.dumps({"action": "é" * 257}))
    assert name.status_code == 422 and name.json()["field"] == "action"
    assert log.events == []


def test_the_deepest_accepted_context_is_that_of_a_kernel_action() -> None:
    # context sits where an action's body.context does: 29 levels inside it are allowed.
    ok = b'{"action": "x", "context": {"a": ' + b"[" * 29 + b"]" * 29 + b"}}"
    assert post(app_with(service(Log())), ok).status_code == 200
