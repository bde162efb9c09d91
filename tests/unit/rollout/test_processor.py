"""The rollout step over policyChecks: a failing canary is rolled back, once, deterministically."""

from __future__ import annotations

import json
from dataclasses import replace

from schemas.events import Event, new_event
from streams.processor import InputRecord
from streams.rollout.processor import ROLLOUT_ACTOR, RolloutProcessor, RolloutState
from streams.sentinel.lifecycle import PolicyChange, apply_change, plan_create, plan_transition
from streams.sentinel.policy import Effect, Policy, Scope, Severity, State

RULES = {"windowS": 10, "minSample": 20, "consecutiveFailures": 2, "promoteAfterS": 30}


def _canary(severity: Severity = Severity.LOW) -> tuple[RolloutProcessor, RolloutState]:
    processor = RolloutProcessor("checks", "policies")
    state = processor.initial()
    policy = Policy("p", 1, "p", severity, Scope(("kernelAction",)), "true", Effect.DENY, "r",
                    rollout=tuple(sorted(RULES.items())))  # fmt: skip
    registry = state.registry
    for make in (
        lambda r: plan_create(r, policy, "alice"),
        lambda r: plan_transition(r, "p", 1, State.TEST, "alice"),
        lambda r: plan_transition(r, "p", 1, State.CANARY, "alice", canary_percent=10.0),
    ):
        change = make(registry)
        state = processor.absorb(state, _record("policies", change.to_event()))
        registry = state.registry
    return processor, state


def _record(topic: str, event: Event, offset: int = 0) -> InputRecord:
    return InputRecord(topic, 0, offset, event.ts_ms, None, event)


def _check(ts_ms: int, candidate: str, active: str = "allow", sim: bool = False) -> Event:
    view = {"policyId": "p", "canaryVersion": 1, "activeVersion": None, "percent": 10.0,
            "sampleValue": 0.5, "sampled": False, "candidateDecision": candidate,
            "activeDecision": active, "candidateError": None}  # fmt: skip
    body = {"policyCheckId": CHECK_ID, "decision": active, "allowed": True, "rationale": "",
            "evidence": {}, "evaluations": [], "simMode": sim, "mode": "stream",
            "rollout": [view]}  # fmt: skip
    return replace(new_event("policyCheck", "sentinel", "s", body), ts_ms=ts_ms)


def _run(processor: RolloutProcessor, state: RolloutState, checks: list[Event]) -> list[Event]:
    out = []
    for i, check in enumerate(checks):
        state, records = processor.step(state, _record("checks", check, i))
        out.extend(r.event for r in records)
    return out


T0 = 1_800_000_000_000
CHECK_ID = "00000000-0000-4000-8000-000000000001"


def test_a_canary_that_denies_too_much_is_rolled_back_once_naming_its_gates() -> None:
    processor, state = _canary()
    checks = [_check(T0 + i * 100, "deny") for i in range(600)]  # 10/s for 60 s
    changes = _run(processor, state, checks)
    assert len(changes) == 1
    (event,) = changes
    change = PolicyChange.from_event(event)
    assert (change.from_state, change.policy.state) == (State.CANARY, State.DRAFT)
    assert change.actor == ROLLOUT_ACTOR
    assert "disagreement 1 > 0.05" in (change.reason or "")
    assert "window" in (change.reason or "")
    report = json.loads(event.metadata["rolloutReport"])
    assert report["outcome"] == "fail" and report["consecutiveFailures"] == 2
    assert {f["gate"] for f in report["failures"]} == {"disagreement", "deny_rate_change"}
    # the rollback is legal against the registry it was judged on
    apply_change(state.registry, change)
    # and deterministic: the same checks give the same event
    assert _run(processor, state, checks) == changes


def test_too_little_traffic_never_promotes_and_enough_passing_traffic_does() -> None:
    processor, state = _canary()
    sparse = [_check(T0 + i * 5_000, "allow") for i in range(200)]  # 2 per 10 s window
    assert _run(processor, state, sparse) == []
    busy = [_check(T0 + i * 100, "allow") for i in range(600)]
    (event,) = _run(processor, state, busy)
    change = PolicyChange.from_event(event)
    assert (change.from_state, change.policy.state) == (State.CANARY, State.ACTIVE)


def test_a_high_canary_is_never_promoted_by_the_gates() -> None:
    processor, state = _canary(Severity.HIGH)
    busy = [_check(T0 + i * 100, "allow") for i in range(600)]
    assert _run(processor, state, busy) == []


def test_sim_views_and_versions_no_longer_in_canary_are_not_judged() -> None:
    processor, state = _canary()
    sim_views = [_check(T0 + i * 100, "deny", sim=True) for i in range(600)]
    assert _run(processor, state, sim_views) == []
    rolled = plan_transition(state.registry, "p", 1, State.DRAFT, "bob")
    state = processor.absorb(state, _record("policies", rolled.to_event()))
    assert _run(processor, state, [_check(T0 + i * 100, "deny") for i in range(600)]) == []


def test_a_backlog_read_partition_by_partition_is_still_judged() -> None:
    """Each partition alone is too sparse (10 in a 10 s window, minSample 20); read one
    after another, the later ones lie behind the clock and are judged by count."""
    processor, state = _canary()
    partitions = [[_check(T0 + p * 333 + i * 1_000, "deny") for i in range(60)] for p in range(3)]
    changes = _run(processor, state, [c for part in partitions for c in part])
    assert [PolicyChange.from_event(e).policy.state for e in changes] == [State.DRAFT]
    assert _run(processor, state, partitions[0]) == []  # one partition alone: inconclusive
