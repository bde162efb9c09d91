"""The synchronous check service with fake ports: budget, fail closed, durability, ids."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.errors import LogUnavailableError, ValidationError
from schemas.events import Event
from schemas.positions import LogPosition
from streams.sentinel.check_request import (
    MAX_REQUEST_BYTES,
    CheckRequest,
    MalformedRequestError,
    RequestTooLargeError,
    parse_check_request,
)
from streams.sentinel.check_service import CheckService
from streams.sentinel.decision import check_id_for
from streams.sentinel.evaluator import Evaluation, PolicySet, evaluate
from streams.sentinel.lifecycle import RegistryState, apply_change, plan_create, plan_transition
from streams.sentinel.policy import Effect, Policy, Scope, Severity, State
from streams.sentinel.registry import PolicyRegistry
from streams.sentinel.rules import Activation

BIG = Policy(
    policy_id="deny-big",
    version=1,
    name="big",
    severity=Severity.HIGH,
    scope=Scope(("kernelAction",), actions=("payments.*",)),
    rule="context.amount > 1000",
    effect=Effect.DENY,
    rationale="{actor} moved {context.amount}",
)
BROKEN = Policy(
    policy_id="broken",
    version=1,
    name="broken",
    severity=Severity.LOW,
    scope=Scope(("kernelAction",)),
    rule="context.limit > 3",
    effect=Effect.ESCALATE,
    rationale="limit",
)


def live(*policies: Policy) -> PolicyRegistry:
    state = RegistryState()
    for p in policies:
        state = apply_change(state, plan_create(state, p, "a"))
        for target in (State.TEST, State.CANARY, State.ACTIVE):
            change = plan_transition(state, p.policy_id, 1, target, "a", canary_percent=5.0)
            state = apply_change(state, change)
    return PolicyRegistry(state)


class Policies:
    def __init__(self, registry: PolicyRegistry, ready: bool = True) -> None:
        self.registry = registry
        self.ready = ready


class Log:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.events: list[Event] = []

    async def publish(self, events: Sequence[Event]) -> list[LogPosition]:
        if self.fail:
            raise LogUnavailableError("Kafka at nowhere did not acknowledge")
        self.events.extend(events)
        return [LogPosition("checks", 0, i) for i in range(len(events))]


def service(log: Log, registry: PolicyRegistry | None = None, **kw: Any) -> CheckService:
    return CheckService(Policies(registry or live(BIG)), log, **kw)


def request(amount: int, request_id: str | None = None) -> CheckRequest:
    return CheckRequest(
        "payments.send", "agent:7", context={"amount": amount}, request_id=request_id
    )


def test_a_decision_is_published_before_it_is_answered() -> None:
    log = Log()
    answer = asyncio.run(service(log).check(request(5000, "r-1")))
    assert answer.status == 200 and answer.result == "decided"
    assert answer.body["decision"] == "deny" and answer.body["policyId"] == "deny-big"
    (event,) = log.events
    assert event.body["policyCheckId"] == answer.body["policyCheckId"]
    assert event.body["mode"] == "sync"
    assert answer.positions == (LogPosition("checks", 0, 0),)


def test_the_same_request_id_reproduces_the_check_id() -> None:
    svc = service(Log())
    a = asyncio.run(svc.check(request(5, "same")))
    b = asyncio.run(svc.check(request(5, "same")))
    c = asyncio.run(svc.check(request(5)))
    assert a.body["policyCheckId"] == b.body["policyCheckId"] != c.body["policyCheckId"]


def test_past_the_budget_deny_now_and_a_sim_mode_completion_later() -> None:
    release = threading.Event()

    def slow(ps: PolicySet, act: Activation, key: str) -> Evaluation:
        release.wait(5)
        return evaluate(ps, act, key)

    log = Log()
    svc = service(log, budget_ms=20, evaluator=slow)

    async def scenario() -> Any:
        answer = await svc.check(request(10))
        assert len(log.events) == 1  # the fallback is recorded before the answer
        release.set()
        await svc.drain()
        return answer

    answer = asyncio.run(scenario())
    assert (answer.status, answer.result, answer.reason) == (200, "fallback", "timeout")
    assert answer.body["decision"] == "deny" and not answer.body["allowed"]
    fallback, completion = log.events
    event_id = fallback.body["subjectEventId"]
    assert fallback.body["policyCheckId"] == check_id_for(event_id, "sync", False)
    assert (
        answer.body["evidence"]["completion"]["policyCheckId"]
        == completion.body["policyCheckId"]
        == check_id_for(event_id, "sync", True)
    )
    assert completion.body["simMode"] is True
    assert completion.body["decision"] == "allow"  # what the policies actually say


def test_over_the_in_flight_limit_a_check_is_shed_recorded_and_not_evaluated() -> None:
    release = threading.Event()
    calls: list[str] = []

    def slow(ps: PolicySet, act: Activation, key: str) -> Evaluation:
        calls.append(key)
        release.wait(5)
        return evaluate(ps, act, key)

    log = Log()
    svc = service(log, budget_ms=20, evaluator=slow, max_in_flight=1)

    async def scenario() -> tuple[Any, Any, Any]:
        first = await svc.check(request(10, "first"))  # past its budget, still running
        shed = await svc.check(request(10, "shed"))
        release.set()
        await svc.drain()
        after = await svc.check(request(10, "after"))  # the slot is free again
        return first, shed, after

    first, shed, after = asyncio.run(scenario())
    assert (first.reason, shed.reason, after.reason) == ("timeout", "overload", None)
    assert calls == ["first", "after"]
    assert shed.result == "fallback" and shed.body["decision"] == "deny"
    assert not shed.body["allowed"] and "overloaded" in shed.body["rationale"]
    recorded = [e.body["policyCheckId"] for e in log.events]
    assert shed.body["policyCheckId"] in recorded
    assert "completion" not in shed.body["evidence"]  # nothing runs later for a shed check


def test_an_unreachable_log_is_a_503_deny_and_nothing_is_claimed() -> None:
    answer = asyncio.run(service(Log(fail=True)).check(request(10)))
    assert (answer.status, answer.result, answer.reason) == (503, "error", "log_unavailable")
    assert answer.body["decision"] == "deny" and answer.body["allowed"] is False
    assert "could not be recorded" in answer.body["rationale"]
    assert answer.body["evidence"] is None


def test_an_evaluator_crash_and_an_unloaded_policy_set_fail_closed() -> None:
    def crash(ps: PolicySet, act: Activation, key: str) -> Evaluation:
        raise RuntimeError("boom")

    crashed = asyncio.run(service(Log(), evaluator=crash).check(request(10)))
    assert crashed.body["decision"] == "deny" and crashed.reason == "evaluation"
    assert "boom" in crashed.body["rationale"]
    svc = CheckService(Policies(live(BIG), ready=False), Log())
    unloaded = asyncio.run(svc.check(request(10)))
    assert unloaded.body["decision"] == "deny" and "not loaded" in unloaded.body["rationale"]


def test_an_enforced_rule_error_never_allows_and_is_reported() -> None:
    answer = asyncio.run(service(Log(), live(BROKEN)).check(request(10)))
    assert answer.body["decision"] == "deny"  # BROKEN's fallback: context.limit is absent
    assert answer.failed_policies == ("broken",)
    assert answer.body["evidence"]["deciding"]["error"]


def test_request_parsing_names_field_and_reason() -> None:
    with pytest.raises(RequestTooLargeError):
        parse_check_request(b" " * (MAX_REQUEST_BYTES + 1))
    with pytest.raises(MalformedRequestError, match="empty"):
        parse_check_request(b"")
    with pytest.raises(ValidationError, match="must be a JSON object"):
        parse_check_request(b"[1]")
    with pytest.raises(ValidationError) as info:
        parse_check_request(b'{"action": "x", "requestId": 7}')
    assert info.value.field == "requestId"
    r = parse_check_request(b'{"action": "x", "resource": "db/1"}')
    assert (r.actor, r.subject_or_default, r.context) == ("anonymous", "db/1", None)
    assert r.activation_values(5)["context"] == {}


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(
    body=st.dictionaries(
        st.sampled_from(["action", "actor", "resource", "context", "requestId", "subject", "x"]),
        JSON,
    )
)
def test_any_json_body_parses_or_is_refused_with_a_validation_error(body: dict[str, Any]) -> None:
    raw = json.dumps(body).encode()
    refused: str | None
    try:
        parsed = parse_check_request(raw)
    except ValidationError as exc:
        refused = exc.reason
    else:
        refused = None
    if refused is not None:
        assert refused.strip()  # every refusal says why
        return
    assert isinstance(parsed.action, str) and parsed.action.strip()
    assert parsed.context is None or isinstance(parsed.context, dict)
