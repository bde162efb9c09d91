"""Each canary's two decisions (issue 12), against the evaluator on rewritten policy sets.

For a canary in scope, ``activeDecision`` must be what the evaluator decides
with no canary at all, and ``candidateDecision`` what it decides with that
canary promoted to active in place of its active version: the gates and
explain may then trust both without a second evaluation.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.sentinel.canary import canary_sampled, sample_value
from streams.sentinel.decision import EvaluatedEvent, build_policy_check
from streams.sentinel.evaluator import PolicySet, compile_policy, evaluate
from streams.sentinel.policy import Effect, Policy, Severity, State
from streams.sentinel.rules import Activation
from tests.unit.sentinel.test_evaluator_properties import action_st, build, policies_st


def _decide(policies: list[Policy], values: dict[str, Any], key: str) -> Effect:
    pset = PolicySet(compile_policy(p) for p in policies)
    return evaluate(pset, Activation(values), key).decision


def _with_versions(policies: list[Policy], data: st.DataObject) -> list[Policy]:
    """Some canaries become version 2 of an active policy (the usual rollout)."""
    out = list(policies)
    for i, p in enumerate(policies):
        if p.state is State.CANARY and data.draw(st.booleans(), label=f"v2 of active {i}"):
            out[i] = replace(p, version=2)
            out.append(replace(p, version=1, state=State.ACTIVE, rule=data.draw(
                st.sampled_from(["true", "false", "context.amount > 100"]), label="active rule"
            )))  # fmt: skip
    return out


@settings(max_examples=300, deadline=None)
@given(policies_st, action_st, st.text(min_size=1, max_size=8), st.data())
def test_each_canary_view_equals_the_evaluator_on_the_rewritten_set(
    specs: list[tuple[Any, ...]], values: dict[str, Any], key: str, data: st.DataObject
) -> None:
    policies = _with_versions(build(specs), data)
    ev = evaluate(PolicySet(compile_policy(p) for p in policies), Activation(values), key)
    in_scope = {r.policy_id for r in ev.results if r.state is State.CANARY}
    assert {v.policy_id for v in ev.canaries} == in_scope
    no_canaries = [p for p in policies if p.state is not State.CANARY]
    for view in ev.canaries:
        assert view.active_decision is _decide(no_canaries, values, key)
        promoted = [p for p in no_canaries if p.policy_id != view.policy_id]
        canary = next(
            p for p in policies if p.policy_id == view.policy_id and p.state is State.CANARY
        )
        promoted.append(replace(canary, state=State.ACTIVE))
        assert view.candidate_decision is _decide(promoted, values, key)
        assert view.sampled == canary_sampled(key, canary.canary_percent)
        assert view.sample_value == sample_value(key) and 0 <= view.sample_value < 1
        active = [p for p in policies if p.policy_id == view.policy_id and p.state is State.ACTIVE]
        assert view.active_version == (active[0].version if active else None)
    if len(ev.canaries) == 1 and ev.canaries[0].sampled:
        assert ev.decision is ev.canaries[0].candidate_decision
    if ev.canaries and not any(v.sampled for v in ev.canaries):
        assert ev.decision is ev.canaries[0].active_decision


def test_the_policy_check_names_the_canary_its_sample_and_the_active_decision() -> None:
    active = build([("false", Effect.DENY, Effect.DENY, State.ACTIVE, Severity.LOW, (), 0.0)])[0]
    canary = replace(active, version=2, rule="true", state=State.CANARY, canary_percent=100.0)
    values = {"action": "a.x", "actor": "a", "subject": "s", "resource": None,
              "context": {}, "eventType": "kernelAction", "ts": 0}  # fmt: skip
    ev = evaluate(PolicySet(compile_policy(p) for p in (active, canary)), Activation(values), "r1")
    check = build_policy_check(ev, EvaluatedEvent("e1", "s", None), mode="stream")
    assert check.body["rollout"] == [
        {
            "policyId": "p00",
            "canaryVersion": 2,
            "activeVersion": 1,
            "percent": 100.0,
            "sampleValue": sample_value("r1"),
            "sampled": True,
            "candidateDecision": "deny",
            "activeDecision": "allow",
            "candidateError": None,
        }
    ]
    assert check.body["decision"] == "deny"
