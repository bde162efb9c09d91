"""The in-memory registry: folds policyChange events, keeps the live set, fails closed."""

from __future__ import annotations

from dataclasses import replace

from streams.sentinel.evaluator import Outcome, evaluate
from streams.sentinel.lifecycle import ChangeKind, PolicyChange, plan_create, plan_transition
from streams.sentinel.policy import Effect, Policy, Scope, Severity, State
from streams.sentinel.registry import PolicyRegistry
from streams.sentinel.rules import Activation

P = Policy(
    policy_id="p",
    version=1,
    name="p",
    severity=Severity.LOW,
    scope=Scope(("kernelAction",)),
    rule="context.amount > 5",
    effect=Effect.ESCALATE,
    rationale="{policy.id} escalates {context.amount}",
)
ACT = Activation(
    {
        "action": "x",
        "actor": "a",
        "subject": "s",
        "resource": None,
        "context": {"amount": 9},
        "eventType": "kernelAction",
        "ts": 0,
    }
)


def test_registry_follows_the_log_and_rejects_illegal_changes() -> None:
    reg = PolicyRegistry()
    assert reg.apply_event(plan_create(reg.state, P, "alice").to_event())
    assert len(reg.policy_set) == 0  # draft is not live
    for target in (State.TEST, State.CANARY, State.ACTIVE):
        change = plan_transition(reg.state, "p", 1, target, "alice", canary_percent=10.0)
        assert reg.apply_event(change.to_event())
    assert [cp.policy.state for cp in reg.policy_set.policies] == [State.ACTIVE]
    assert evaluate(reg.policy_set, ACT, "k").decision is Effect.ESCALATE
    stale = PolicyChange(ChangeKind.TRANSITIONED, P.with_state(State.TEST), State.DRAFT, "bob")
    assert not reg.apply_event(stale.to_event())
    assert reg.rejected
    assert "re-read" in reg.rejected[0][1]
    again = PolicyRegistry()
    again.apply_events([plan_create(again.state, P, "alice").to_event()])
    assert again.applied == 1


def test_a_live_rule_that_no_longer_compiles_fails_closed() -> None:
    reg = PolicyRegistry()
    reg.apply_event(plan_create(reg.state, P, "alice").to_event())
    reg.apply_event(plan_transition(reg.state, "p", 1, State.TEST, "alice").to_event())
    # simulate an engine that now rejects the stored rule
    record = reg.state.get("p")
    assert record is not None
    broken = replace(record.versions[0], rule="context.amount >", state=State.ACTIVE)
    reg.state = replace(reg.state, policies={"p": replace(record, versions=(broken,))})
    reg.policy_set = reg._build()
    ev = evaluate(reg.policy_set, ACT, "k")
    assert ev.decision is Effect.DENY
    assert ev.results[0].outcome is Outcome.ERROR
    assert ev.results[0].error is not None
    assert "does not compile" in ev.results[0].error
