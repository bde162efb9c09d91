"""POST /sentinel/check against the FastAPI app with real Kafka (httpx, in-process)."""

from __future__ import annotations

import asyncio
import functools
import json
import threading
import time
from dataclasses import replace
from typing import Any

import pytest
from fastapi import FastAPI

from ops.bootstrap import Kernel
from ops.http.app import create_app
from ops.http.sentinel_check import check_router
from schemas.events import Event
from streams.sentinel.evaluator import Evaluation, PolicySet, evaluate
from streams.sentinel.policy import Effect
from streams.sentinel.rules import Activation
from tests import identity
from tests.integration.core.test_producer import read_all
from tests.integration.sentinel.api_helpers import serve
from tests.integration.sentinel.test_stream_runner import DENY_BIG, activate

BIG = {"action": "payments.send", "actor": "agent:7", "context": {"amount": 5000}}
SMALL = {"action": "payments.send", "actor": "agent:7", "context": {"amount": 10}}


def app_for(kernel: Kernel, ready_timeout_s: float = 5.0, **kw: Any) -> FastAPI:
    build = functools.partial(kernel.sync_check, **kw)
    return create_app([check_router(build, ready_timeout_s=ready_timeout_s)], gate=identity.gate())


@pytest.fixture
def active_kernel(kernel: Kernel) -> Kernel:
    kernel.producer().publish_batch(activate(DENY_BIG))
    return kernel


def checks_on_log(kernel: Kernel, n: int, timeout_s: float = 10) -> list[Event]:
    deadline = time.monotonic() + timeout_s
    while True:
        found = [e for _, e, _ in read_all(kernel, kernel.names.policy_checks)]
        if len(found) >= n or time.monotonic() > deadline:
            return found


def test_decisions_are_durable_before_the_answer(active_kernel: Kernel) -> None:
    async def scenario() -> list[dict[str, Any]]:
        async with serve(app_for(active_kernel)) as c:
            deny = await c.post("/sentinel/check", json={**BIG, "requestId": "r-1"})
            assert deny.status_code == 200, deny.text
            allow = await c.post("/sentinel/check", json=SMALL)
            again = await c.post("/sentinel/check", json={**BIG, "requestId": "r-1"})
            return [deny.json(), allow.json(), again.json()]

    body, allow, again = asyncio.run(scenario())
    assert set(body) == {
        "policyCheckId", "decision", "allowed", "policyId", "policyVersion",
        "rationale", "evidence", "simMode", "ts",
    }  # fmt: skip
    assert (body["decision"], body["allowed"], body["policyId"], body["policyVersion"]) == (
        "deny",
        False,
        "deny-big",
        1,
    )
    # The actor is who authenticated, not who the body says: "agent:7" is only claimed.
    assert body["rationale"] == f"{identity.CALLER} moved 5000, over 1000"
    assert body["evidence"]["valuesRead"] == {"context.amount": 5000, "actor": identity.CALLER}
    assert body["simMode"] is False
    assert (allow["decision"], allow["allowed"], allow["policyId"]) == ("allow", True, None)
    # A retry of the same requestId is the same decision record.
    assert again["policyCheckId"] == body["policyCheckId"]
    # Durable: on the log when answered (read_committed, no waiting).
    on_log = {
        e.body["policyCheckId"]: e.body
        for _, e, _ in read_all(active_kernel, active_kernel.names.policy_checks)
    }
    recorded = {
        e.body["policyCheckId"]: e.metadata
        for _, e, _ in read_all(active_kernel, active_kernel.names.policy_checks)
    }
    assert recorded[body["policyCheckId"]] == {"caller": identity.CALLER, "claimedActor": "agent:7"}
    assert on_log[body["policyCheckId"]]["mode"] == "sync"
    assert on_log[body["policyCheckId"]]["decision"] == "deny"
    assert on_log[allow["policyCheckId"]]["decision"] == "allow"


def test_a_policy_change_is_live_for_the_next_check(active_kernel: Kernel) -> None:
    strict = replace(
        DENY_BIG,
        policy_id="quarantine-all",
        rule="true",
        effect=Effect.QUARANTINE,
        rationale="everything is quarantined",
    )

    async def scenario() -> tuple[str, dict[str, Any]]:
        app = app_for(active_kernel)
        async with serve(app) as c:
            before = (await c.post("/sentinel/check", json=SMALL)).json()["decision"]
            positions = active_kernel.producer().publish_batch(activate(strict))
            feed = app.state.policy_feed
            assert await asyncio.to_thread(feed.wait_for_offset, positions[-1].offset)
            return before, (await c.post("/sentinel/check", json=SMALL)).json()

    before, after = asyncio.run(scenario())
    assert before == "allow"
    assert (after["decision"], after["policyId"]) == ("quarantine", "quarantine-all")


BAD = [
    ({"actor": "a"}, 422, "action", "required"),
    ({"action": 5}, 422, "action", "must be a string, got number"),
    ({"action": "x", "context": [1]}, 422, "context", "must be an object, got array"),
    ({"action": "x", "actor": None, "contxt": {}}, 422, "contxt", "unknown field"),
    (
        '{"action": "x", "context": {"amount": 1152921504606846976}}',
        400,
        "context.amount",
        "I-JSON",
    ),
    ('{"action": "x", "action": "y"}', 400, "action", "duplicate"),
    ("{not json", 400, None, "malformed JSON"),
    ({"action": "x", "context": {"blob": "a" * 70_000}}, 413, None, "limit"),
]


def test_bad_requests_name_the_field_and_reason(kernel: Kernel) -> None:
    async def scenario() -> list[tuple[int, dict[str, Any]]]:
        out = []
        async with serve(app_for(kernel)) as c:
            for payload, *_ in BAD:
                content = payload if isinstance(payload, str) else json.dumps(payload)
                r = await c.post(
                    "/sentinel/check",
                    content=content,
                    headers={"content-type": "application/json"},
                )
                out.append((r.status_code, r.json()))
        return out

    for (_, status, field, reason), (got_status, got) in zip(
        BAD, asyncio.run(scenario()), strict=True
    ):
        assert got_status == status, got
        assert got["field"] == field, got
        assert reason in got["reason"], got


def test_past_the_budget_the_fallback_answers_and_the_evaluation_completes(
    active_kernel: Kernel,
) -> None:
    # A rule that cannot finish before the test lets it: an answer that arrives
    # while it is held was given before the evaluation ended -- no wall clock
    # (a loaded machine can stretch the decision record's round trip past any
    # tight bound).
    release, finished = threading.Event(), threading.Event()

    def slow(ps: PolicySet, act: Activation, key: str) -> Evaluation:
        release.wait(120)
        try:
            return evaluate(ps, act, key)
        finally:
            finished.set()

    kernel = Kernel(replace(active_kernel.settings, check_budget_ms=50))

    async def scenario() -> tuple[dict[str, Any], bool]:
        async with serve(app_for(kernel, evaluator=slow)) as c:
            r = await c.post("/sentinel/check", json=SMALL)
            assert r.status_code == 200
            evaluating = not finished.is_set()
            release.set()
            return r.json(), evaluating  # leaving the lifespan drains the completion

    body, evaluating = asyncio.run(scenario())
    assert evaluating  # answered while the evaluation was still running
    assert finished.is_set()  # and the lifespan's drain let it complete
    assert (body["decision"], body["allowed"], body["simMode"]) == ("deny", False, False)
    assert "50 ms budget" in body["rationale"]
    completion = body["evidence"]["completion"]["policyCheckId"]
    checks = {e.body["policyCheckId"]: e.body for e in checks_on_log(kernel, 2)}
    assert checks[body["policyCheckId"]]["decision"] == "deny"
    assert checks[completion]["simMode"] is True
    assert checks[completion]["decision"] == "allow"
    # deny-big did not match: policyCheck v2 names it in notMatched, not as a full entry
    assert checks[completion]["evaluations"] == []
    assert checks[completion]["notMatched"] == ["deny-big@1"]


def test_zero_budget_always_falls_back(active_kernel: Kernel) -> None:
    kernel = Kernel(replace(active_kernel.settings, check_budget_ms=0))

    async def scenario() -> dict[str, Any]:
        async with serve(app_for(kernel)) as c:
            return (await c.post("/sentinel/check", json=BIG)).json()

    body = asyncio.run(scenario())
    assert body["decision"] == "deny" and body["policyId"] is None
    assert "0 ms budget" in body["rationale"]


def test_log_unreachable_answers_deny_with_503(kernel: Kernel) -> None:
    dead = Kernel(replace(kernel.settings, bootstrap_servers="127.0.0.1:1", publish_timeout_s=1.0))

    async def scenario() -> tuple[int, str, dict[str, Any]]:
        async with serve(app_for(dead, ready_timeout_s=0.2)) as c:
            r = await c.post("/sentinel/check", json=SMALL)
            return r.status_code, r.headers["retry-after"], r.json()

    status, retry, body = asyncio.run(scenario())
    assert (status, retry) == (503, "1")
    assert (body["decision"], body["allowed"]) == ("deny", False)
    assert "could not be recorded" in body["rationale"]


def test_openapi_documents_the_check(kernel: Kernel) -> None:
    spec = app_for(kernel).openapi()
    op = spec["paths"]["/sentinel/check"]["post"]
    assert "action" in op["requestBody"]["content"]["application/json"]["schema"]["required"]
    assert {"200", "400", "413", "422", "503"} <= set(op["responses"])
