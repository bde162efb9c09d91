"""policyCheck events from an evaluation: body, evidence, path, simMode, Avro round trip."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from schemas.codec import EventCodec
from schemas.events import Event, new_event
from schemas.ids import uuid5_text
from schemas.positions import LogPosition
from streams.sentinel.decision import (
    EvaluatedEvent,
    build_policy_checks,
    check_id_for,
)
from streams.sentinel.evaluator import PolicySet, compile_policy, evaluate
from streams.sentinel.policy import Effect, Policy, Scope, Severity, State
from streams.sentinel.rules import Activation


def policy(pid: str, rule: str, effect: Effect, state: State = State.ACTIVE) -> Policy:
    return Policy(
        policy_id=pid,
        version=3,
        name=pid,
        severity=Severity.HIGH,
        scope=Scope(("kernelAction",), actions=("payments.*",)),
        rule=rule,
        effect=effect,
        rationale="{actor} moved {context.amount}: {effect} by {policy.id} v{policy.version}",
        state=state,
    )


def test_enforced_and_simulated_checks_carry_decision_evidence_and_path() -> None:
    action = new_event(
        "kernelAction",
        "agent:7",
        "acct:1",
        {"action": "payments.transfer", "requestId": "r-1", "context": {"amount": 25000}},
    )
    pset = PolicySet(
        compile_policy(p)
        for p in (
            policy("big", "context.amount > 10000", Effect.ESCALATE),
            policy("cand", "context.amount > 20000", Effect.DENY, State.TEST),
            policy("other", "context.limit > 1", Effect.DENY, State.TEST),
        )
    )
    ev = evaluate(pset, Activation.of_event(action), "r-1")
    where = EvaluatedEvent(action.event_id, action.subject, LogPosition("t.actions", 2, 41))
    checks = build_policy_checks(ev, where, mode="stream", request_id="r-1", deterministic_ids=True)
    assert len(checks) == 2
    enforced, sim = checks
    body = enforced.body
    assert enforced.event_type == "policyCheck"
    assert enforced.subject == "acct:1"
    assert body["decision"] == "escalate"
    assert body["allowed"] is False
    assert (body["policyId"], body["policyVersion"]) == ("big", 3)
    assert body["rationale"] == "agent:7 moved 25000: escalate by big v3"
    assert body["simMode"] is False
    assert body["subjectEventId"] == action.event_id
    assert body["policyCheckId"] == check_id_for(action.event_id, "stream", False)
    evidence = body["evidence"]
    assert evidence["event"] == {
        "topic": "t.actions",
        "partition": 2,
        "offset": 41,
        "eventId": action.event_id,
    }
    assert evidence["valuesRead"] == {"context.amount": 25000, "actor": "agent:7"}
    assert evidence["missing"] == ["context.limit"]
    assert evidence["deciding"]["policyId"] == "big"
    assert [e["policyId"] for e in body["evaluations"]] == ["big", "cand", "other"]
    assert [e["role"] for e in body["evaluations"]] == ["enforced", "simulated", "simulated"]
    assert body["evaluations"][2]["result"] == "error"
    assert sim.body["simMode"] is True
    assert sim.body["decision"] == "deny"
    assert sim.body["policyId"] == "cand"
    assert sim.body["policyCheckId"] != body["policyCheckId"]
    codec = EventCodec()
    for check in checks:
        assert Event.from_json(check.to_json()) == check  # valid by the JSON mapping, too
        assert codec.decode(codec.encode(check)).to_json() == check.to_json()


def test_no_match_allows_with_null_policy() -> None:
    action = new_event("kernelAction", "a", "s", {"action": "payments.x", "context": {}})
    ev = evaluate(PolicySet([]), Activation.of_event(action), action.event_id)
    (check,) = build_policy_checks(ev, EvaluatedEvent(action.event_id, "s"), mode="sync")
    assert check.body["decision"] == "allow"
    assert check.body["allowed"] is True
    assert check.body["policyId"] is None
    assert check.body["evidence"]["event"]["offset"] is None
    assert check.body["evaluations"] == []


@given(st.uuids(), st.text(max_size=80))
def test_derived_ids_are_uuid5(namespace: uuid.UUID, name: str) -> None:
    assert uuid5_text(namespace, name) == str(uuid.uuid5(namespace, name))
