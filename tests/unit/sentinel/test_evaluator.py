"""The evaluator: scope index, precedence, fail closed, canary roles, simulation, rationale."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

import pytest

from streams.sentinel.evaluator import (
    Outcome,
    PolicySet,
    Role,
    canary_sampled,
    compile_policy,
    evaluate,
)
from streams.sentinel.policy import Effect, Policy, Scope, Severity, State
from streams.sentinel.rules import Activation


def pol(pid: str, rule: str, effect: Effect, **kw: Any) -> Policy:
    base = Policy(
        policy_id=pid,
        version=1,
        name=pid,
        severity=Severity.MEDIUM,
        scope=Scope(("kernelAction",)),
        rule=rule,
        effect=effect,
        rationale="{policy.id}: {effect} for {actor} ({context.amount})",
        state=State.ACTIVE,
    )
    return replace(base, **kw)


def act(action: str = "payments.transfer", **context: Any) -> Activation:
    return Activation(
        {
            "action": action,
            "actor": "agent:7",
            "subject": "acct:1",
            "resource": None,
            "context": context,
            "eventType": "kernelAction",
            "ts": 0,
        }
    )


def run(policies: list[Policy], activation: Activation, key: str = "req-1") -> Any:
    return evaluate(PolicySet(compile_policy(p) for p in policies), activation, key)


def test_no_policy_in_scope_allows() -> None:
    ev = run([], act(amount=1))
    assert ev.decision is Effect.ALLOW
    assert ev.allowed
    assert ev.deciding is None
    assert ev.results == ()
    assert "no policy matched" in ev.rationale


def test_precedence_and_the_path_explains_winners_and_losers() -> None:
    ev = run(
        [
            pol("a-allow", "true", Effect.ALLOW),
            pol("b-escalate", "context.amount > 10", Effect.ESCALATE),
            pol("c-quarantine", "context.amount > 100", Effect.QUARANTINE),
            pol("d-deny", "context.amount > 1000", Effect.DENY),
        ],
        act(amount=500),
    )
    assert ev.decision is Effect.QUARANTINE
    assert ev.deciding is not None
    assert ev.deciding.policy_id == "c-quarantine"
    assert ev.rationale == "c-quarantine: quarantine for agent:7 (500)"
    reasons = {r.policy_id: r.reason for r in ev.results}
    assert reasons["c-quarantine"].startswith("decided quarantine")
    assert "lost to quarantine" in reasons["a-allow"]
    assert reasons["d-deny"] == "not matched"
    assert ev.results[1].values == {"context.amount": 500, "actor": "agent:7"}


def test_ties_go_to_the_most_severe_then_the_lowest_id() -> None:
    ev = run(
        [
            pol("a", "true", Effect.DENY, severity=Severity.LOW),
            pol("b", "true", Effect.DENY, severity=Severity.CRITICAL),
            pol("c", "true", Effect.DENY, severity=Severity.CRITICAL),
        ],
        act(amount=1),
    )
    assert ev.deciding is not None
    assert ev.deciding.policy_id == "b"


def test_enforced_error_fails_closed_to_the_fallback() -> None:
    ev = run(
        [
            pol("allow-all", "true", Effect.ALLOW),
            pol("broken", "context.limit > 1", Effect.ESCALATE, fallback=Effect.QUARANTINE),
        ],
        act(amount=1),
    )
    assert ev.decision is Effect.QUARANTINE
    broken = ev.errors[0]
    assert broken.outcome is Outcome.ERROR
    assert broken.error is not None
    assert "limit" in broken.error
    assert broken.missing == ("context.limit",)
    assert "failed to evaluate" in ev.rationale
    default = run([pol("broken", "context.limit > 1", Effect.ALLOW)], act())
    assert default.decision is Effect.DENY


def test_test_state_is_simulated_fails_open_and_never_enforced() -> None:
    ev = run(
        [
            pol("t-deny", "true", Effect.DENY, state=State.TEST),
            pol("t-broken", "context.nope == 1", Effect.ESCALATE, state=State.TEST),
        ],
        act(),
    )
    assert ev.decision is Effect.ALLOW
    assert ev.sim_decision is Effect.DENY
    assert ev.sim_deciding is not None
    assert ev.sim_deciding.policy_id == "t-deny"
    broken = next(r for r in ev.results if r.policy_id == "t-broken")
    assert broken.role is Role.SIMULATED
    assert broken.effect is None
    assert "fails open" in broken.reason
    only_broken = run([pol("x", "context.nope == 1", Effect.DENY, state=State.TEST)], act())
    assert only_broken.sim_decision is Effect.ALLOW


def test_canary_sampling_formula_and_side_by_side_roles() -> None:
    key = "request-42"
    u = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") / 2**32
    assert canary_sampled(key, u * 100 + 0.001)
    assert not canary_sampled(key, u * 100)
    active = pol("p", "false", Effect.DENY)
    canary = replace(active, version=2, rule="true", state=State.CANARY, canary_percent=50.0)
    picked = [k for k in (f"r{i}" for i in range(200)) if canary_sampled(k, 50.0)]
    skipped = [k for k in (f"r{i}" for i in range(200)) if not canary_sampled(k, 50.0)]
    assert 60 < len(picked) < 140
    ev_in = run([active, canary], act(), picked[0])
    assert ev_in.decision is Effect.DENY
    assert [(r.version, r.role) for r in ev_in.results] == [(1, Role.SHADOW), (2, Role.ENFORCED)]
    ev_out = run([active, canary], act(), skipped[0])
    assert ev_out.decision is Effect.ALLOW
    assert [(r.version, r.role) for r in ev_out.results] == [(1, Role.ENFORCED), (2, Role.SHADOW)]


def test_scope_index_skips_unrelated_policies() -> None:
    related = pol(
        "pay", "true", Effect.DENY, scope=Scope(("kernelAction",), actions=("payments.*",))
    )
    literal = pol(
        "iam", "true", Effect.DENY, scope=Scope(("kernelAction",), actions=("iam.grant",))
    )
    other_type = pol("chg", "true", Effect.DENY, scope=Scope(("policyChange",)))
    by_actor = pol("svc", "true", Effect.DENY, scope=Scope(("kernelAction",), actors=("svc:*",)))
    draft = pol("draft", "true", Effect.DENY, state=State.DRAFT)
    pset = PolicySet(compile_policy(p) for p in (related, literal, other_type, by_actor, draft))
    assert len(pset) == 4
    assert [c.policy.policy_id for c in pset.in_scope(act().values)] == ["pay"]
    assert [c.policy.policy_id for c in pset.in_scope(act("iam.grant").values)] == ["iam"]
    assert pset.in_scope(act("other").values) == []


@pytest.mark.parametrize("rule", ["context.amount", "context.amount / 0 > 1"])
def test_runtime_errors_are_recorded(rule: str) -> None:
    ev = run([pol("p", rule, Effect.ESCALATE)], act(amount=3))
    assert ev.decision is Effect.DENY
    assert ev.results[0].outcome is Outcome.ERROR
