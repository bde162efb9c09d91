"""Properties of the evaluator over random policy sets and actions (hypothesis).

The oracle recomputes, independently of the evaluator's own bookkeeping, which
policies are in scope (fnmatch), which are enforced (state and the canary
formula), what each rule returns (evaluated on its own), and the precedence.
"""

from __future__ import annotations

import fnmatch
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.sentinel.evaluator import (
    PRECEDENCE,
    Outcome,
    PolicySet,
    canary_sampled,
    compile_policy,
    evaluate,
)
from streams.sentinel.policy import Effect, Policy, Scope, Severity, State
from streams.sentinel.rules import Activation, compile_rule, read_paths, read_values

RULES = [
    "true",
    "false",
    "context.amount > 100",
    'action == "a.x" && actor.startsWith("agent:")',
    'context.flag || resource == "r1"',
    "context.nope > 1",  # never present: always an error
    'context.amount > 10 && context.country in ["FR", "DE"]',
    "context.amount",  # not a boolean at run time when present
]
ACTIONS = ["a.x", "a.y", "b.z"]
SCOPES = [(), ("a.*",), ("a.x",), ("b.z",), ("a.y", "b.z")]

policies_st = st.lists(
    st.tuples(
        st.sampled_from(RULES),
        st.sampled_from(list(Effect)),
        st.sampled_from([Effect.DENY, Effect.QUARANTINE, Effect.ESCALATE]),
        st.sampled_from(list(State)),
        st.sampled_from(list(Severity)),
        st.sampled_from(SCOPES),
        st.sampled_from([0.0, 10.0, 50.0, 100.0]),
    ),
    max_size=12,
)
action_st = st.fixed_dictionaries(
    {
        "action": st.sampled_from(ACTIONS),
        "actor": st.sampled_from(["agent:1", "svc:2"]),
        "subject": st.just("s"),
        "resource": st.sampled_from([None, "r1", "r2"]),
        "context": st.fixed_dictionaries(
            {},
            optional={
                "amount": st.integers(-5, 500),
                "flag": st.booleans(),
                "country": st.sampled_from(["FR", "US"]),
            },
        ),
        "eventType": st.just("kernelAction"),
        "ts": st.just(0),
    }
)


def build(specs: list[tuple[Any, ...]]) -> list[Policy]:
    out = []
    for i, (rule, effect, fallback, state, severity, actions, pct) in enumerate(specs):
        out.append(
            Policy(
                policy_id=f"p{i:02d}",
                version=1,
                name=f"p{i}",
                severity=severity,
                scope=Scope(("kernelAction",), actions=actions),
                rule=rule,
                effect=effect,
                rationale="{policy.id} {effect}",
                fallback=fallback,
                state=state,
                canary_percent=pct,
            )
        )
    return out


def oracle(
    policies: list[Policy], values: dict[str, Any], key: str
) -> tuple[Effect, dict[str, bool]]:
    act = Activation(values)
    contributions: list[Effect] = []
    matched: dict[str, bool] = {}
    for p in policies:
        if p.state not in (State.TEST, State.CANARY, State.ACTIVE):
            continue
        if p.scope.actions and not any(
            fnmatch.fnmatchcase(values["action"], g) for g in p.scope.actions
        ):
            continue
        outcome = compile_rule(p.rule).evaluate(act)
        matched[p.policy_id] = outcome.matched
        enforced = p.state is State.ACTIVE or (
            p.state is State.CANARY and canary_sampled(key, p.canary_percent)
        )
        if not enforced:
            continue
        if outcome.error is not None:
            contributions.append(p.fallback)
        elif outcome.matched:
            contributions.append(p.effect)
    decision = min(contributions, key=PRECEDENCE.index, default=Effect.ALLOW)
    return decision, matched


@settings(max_examples=300, deadline=None)
@given(policies_st, action_st, st.text(min_size=1, max_size=8))
def test_decision_is_the_precedence_over_individual_results(
    specs: list[tuple[Any, ...]], values: dict[str, Any], key: str
) -> None:
    policies = build(specs)
    ev = evaluate(PolicySet(compile_policy(p) for p in policies), Activation(values), key)
    expected, matched = oracle(policies, values, key)
    assert ev.decision is expected
    assert ev.allowed == (expected is Effect.ALLOW)
    # the path lists exactly the policies in scope, and which of them matched
    assert {r.policy_id for r in ev.results} == set(matched)
    assert {r.policy_id for r in ev.results if r.outcome is Outcome.MATCHED} == {
        pid for pid, m in matched.items() if m
    }
    # and the values each one read, straight from the action
    by_id = {p.policy_id: p for p in policies}
    for r in ev.results:
        present, missing = read_values(read_paths(by_id[r.policy_id].rule), Activation(values))
        assert r.values == present
        assert list(r.missing) == missing
    # the decider, when there is one, contributed exactly the decision
    if ev.deciding is not None:
        assert ev.deciding.effect is ev.decision
        assert ev.rationale == f"{ev.deciding.policy_id} {ev.decision.value}" or (
            ev.deciding.outcome is Outcome.ERROR and "failed to evaluate" in ev.rationale
        )


@settings(max_examples=200, deadline=None)
@given(policies_st, action_st, st.text(min_size=1, max_size=8))
def test_an_enforced_error_never_yields_allow_and_is_recorded(
    specs: list[tuple[Any, ...]], values: dict[str, Any], key: str
) -> None:
    broken_policy = Policy(
        policy_id="zz-broken",
        version=1,
        name="broken",
        severity=Severity.LOW,
        scope=Scope(("kernelAction",)),
        rule="context.nope > 1",
        effect=Effect.ALLOW,
        rationale="never",
        state=State.ACTIVE,
    )
    policies = [*build(specs), broken_policy]
    ev = evaluate(PolicySet(compile_policy(p) for p in policies), Activation(values), key)
    assert ev.decision is not Effect.ALLOW
    assert not ev.allowed
    broken = [r for r in ev.results if r.policy_id == "zz-broken"]
    assert len(broken) == 1
    assert broken[0].outcome is Outcome.ERROR
    assert broken[0].error
    assert broken[0].to_json()["error"] == broken[0].error
