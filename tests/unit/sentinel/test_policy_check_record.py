"""The compact policyCheck (schema v2) still carries every policy evaluated with its result.

``evaluations`` has a full entry for the decider and each policy that errored
or is not an enforced ``active`` version; ``notMatched`` and ``outranked`` name
the enforced active ones that did not match, or matched and lost, by
``id@version``. The properties, over random policy sets (erroring and
non-boolean rules, canary and test versions) and random actions:

- the record lists exactly the policies in scope, each once;
- the full entries are exactly the decider and the policies that errored or are
  not plainly enforced (in a simulation view that decided differently, the
  outranked ones too); ``outranked`` exactly the other matched enforced active
  ones;
- :func:`~streams.sentinel.decision.expand_path` over the record (after an Avro
  round trip) rebuilds exactly the full path, ``Evaluation.results``, entry by
  entry, and that path -- what explain returns -- lists exactly the policies
  whose rule, run on its own, matched, each with the values its version reads;
- the evaluator's path for all-enforced sets (results built only for matches)
  equals its general path (every result built).
"""

from __future__ import annotations

import fnmatch
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.codec import EventCodec
from schemas.events import Event, new_event
from streams.sentinel import evaluator
from streams.sentinel.decision import EvaluatedEvent, build_policy_checks, expand_path
from streams.sentinel.evaluator import (
    Outcome,
    PolicySet,
    Role,
    compile_policy,
    evaluate,
    policy_paths,
)
from streams.sentinel.policy import Effect, Policy, Scope, Severity, State
from streams.sentinel.rules import Activation, compile_rule, read_paths, read_values

RULES = [
    "true",
    "false",
    "context.amount > 100",
    'action == "a.x" && actor.startsWith("agent:")',
    'context.flag || resource == "r1"',
    "context.nope > 1",  # always an error
    "context.amount",  # not a boolean when present
    'resource != null && resource.matches("^r[0-9]$")',
]
RATIONALES = ["{policy.id} {effect}", "{actor} did {action} ({context.amount})"]
CODEC = EventCodec()

policies_st = st.lists(
    st.tuples(
        st.sampled_from(RULES),
        st.sampled_from(list(Effect)),
        st.sampled_from([State.TEST, State.CANARY, State.ACTIVE, State.ACTIVE, State.ACTIVE]),
        st.sampled_from(list(Severity)),
        st.sampled_from([(), ("a.*",), ("a.x",), ("b.z",)]),
        st.sampled_from([0.0, 50.0, 100.0]),
        st.sampled_from(RATIONALES),
    ),
    max_size=12,
)
action_st = st.fixed_dictionaries(
    {
        "action": st.sampled_from(["a.x", "a.y", "b.z"]),
        "actor": st.sampled_from(["agent:1", "svc:2"]),
        "resource": st.sampled_from([None, "r1", "rx"]),
        "context": st.fixed_dictionaries(
            {}, optional={"amount": st.integers(-5, 500), "flag": st.booleans()}
        ),
    }
)


def build(specs: list[tuple[Any, ...]]) -> list[Policy]:
    return [
        Policy(
            policy_id=f"p{i:02d}",
            version=1 + i % 3,
            name=f"p{i}",
            severity=severity,
            scope=Scope(("kernelAction",), actions=actions),
            rule=rule,
            effect=effect,
            rationale=rationale,
            state=state,
            canary_percent=pct,
        )
        for i, (rule, effect, state, severity, actions, pct, rationale) in enumerate(specs)
    ]


def action_event(a: dict[str, Any]) -> Event:
    body = {"action": a["action"], "context": a["context"], "requestId": "r-1"}
    if a["resource"] is not None:
        body["resource"] = a["resource"]
    return new_event("kernelAction", a["actor"], "s", body)


def labels(compact: list[str]) -> list[tuple[str, int]]:
    return [(pid, int(v)) for pid, _, v in (c.rpartition("@") for c in compact)]


def in_scope(p: Policy, action: str) -> bool:
    return p.state in (State.TEST, State.CANARY, State.ACTIVE) and (
        not p.scope.actions or any(fnmatch.fnmatchcase(action, g) for g in p.scope.actions)
    )


@settings(max_examples=300, deadline=None)
@given(policies_st, action_st, st.text(min_size=1, max_size=6))
def test_the_record_lists_every_policy_and_the_values_the_matched_ones_read(
    specs: list[tuple[Any, ...]], a: dict[str, Any], key: str
) -> None:
    policies = build(specs)
    pset = PolicySet(compile_policy(p) for p in policies)
    event = action_event(a)
    activation = Activation.of_event(event)
    ev = evaluate(pset, activation, key)
    checks = build_policy_checks(ev, EvaluatedEvent(event.event_id, "s"), mode="stream")
    by_key = {p.key: p for p in policies}
    plain = {
        (r.policy_id, r.version)
        for r in ev.results
        if r.outcome is Outcome.NOT_MATCHED and r.role is Role.ENFORCED and r.state is State.ACTIVE
    }
    outranked = {
        (r.policy_id, r.version)
        for r in ev.results
        if r.outcome is Outcome.MATCHED
        and r.role is Role.ENFORCED
        and r.state is State.ACTIVE
        and r is not ev.deciding
    }
    # the oracle: each in-scope policy's rule run on its own
    matched = {
        p.key
        for p in policies
        if in_scope(p, a["action"]) and compile_rule(p.rule).evaluate(activation).matched
    }
    for check in checks:
        body = CODEC.decode(CODEC.encode(check)).body
        entries = body["evaluations"]
        listed = [(e["policyId"], e["version"]) for e in entries]
        listed += labels(body["notMatched"]) + labels(body["outranked"])
        # every policy in scope, once
        assert sorted(listed) == sorted((r.policy_id, r.version) for r in ev.results)
        assert set(labels(body["notMatched"])) == plain
        # a simulation view that decided otherwise lists its outranked in full
        other_view = body["simMode"] and ev.sim_decision is not None
        assert set(labels(body["outranked"])) == (set() if other_view else outranked)
        assert {(e["policyId"], e["version"]) for e in entries} == {
            (r.policy_id, r.version) for r in ev.results
        } - plain - set(labels(body["outranked"]))
        # explain's expansion is the full path, entry by entry
        full = expand_path(body, by_key)
        assert full == [r.to_json() for r in ev.results]
        # and lists exactly the policies that matched, with the values each read
        assert {(e["policyId"], e["version"]) for e in full if e["result"] == "matched"} == matched
        for e in full:
            policy = by_key[(e["policyId"], e["version"])]
            present, missing = read_values(policy_paths(policy), activation)
            assert (e["valuesRead"], e["missing"]) == (present, missing)
            if e["result"] == "matched":
                rule_read, _ = read_values(read_paths(policy.rule), activation)
                assert rule_read.items() <= e["valuesRead"].items()


@settings(max_examples=250, deadline=None)
@given(policies_st, action_st, st.text(min_size=1, max_size=6), st.sampled_from([None, 1, 2]))
def test_results_only_for_matches_equal_every_result_built(
    specs: list[tuple[Any, ...]], a: dict[str, Any], key: str, combine_after: int | None
) -> None:
    policies = build(specs)
    pset = PolicySet((compile_policy(p) for p in policies), combine_after=combine_after)
    activation = Activation.of_event(action_event(a))
    positions = pset.select(activation.values)
    selection = pset.selection(positions)
    # the index: in scope exactly as the scope globs say, in key order
    assert [cp.policy for cp in selection.candidates] == sorted(
        (
            p
            for p in policies
            if not p.scope.actions
            or any(fnmatch.fnmatchcase(a["action"], g) for g in p.scope.actions)
        ),
        key=lambda p: p.key,
    )
    # the reference: every rule run on its own, every result built and decided
    alone = [cp.rule.evaluate(activation) for cp in selection.candidates]
    general = evaluator.evaluate_each(selection, alone, activation, key)
    for _ in range(3):  # batched from the combine_after-th run of this selection on
        # the index's rule runs, batched or not, are the rules run alone
        run = pset.run_rules(positions, activation)
        assert run.outcomes == alone
        assert run.clean == all(o.error is None for o in alone)
        fast = evaluate(pset, activation, key)
        assert fast == general
        assert fast.path == general.path
        assert fast.not_matched == general.not_matched
        assert fast.outranked == general.outranked
        assert fast.values_read == general.values_read
        assert fast.missing == general.missing
        assert [r.to_json() for r in fast.results] == [r.to_json() for r in general.results]
    # the result builder, on both paths: each result contributes what its outcome says
    by_id = {p.policy_id: p for p in policies}
    for r, outcome in zip(fast.results, alone, strict=True):
        p = by_id[r.policy_id]
        if outcome.error is not None:
            expected = (Outcome.ERROR, None if r.role is Role.SIMULATED else p.fallback)
        elif outcome.matched:
            expected = (Outcome.MATCHED, p.effect)
        else:
            expected = (Outcome.NOT_MATCHED, None)
        assert (r.outcome, r.effect, r.error) == (*expected, outcome.error)
        present, missing = read_values(policy_paths(p), activation)
        assert (r.values, list(r.missing)) == (present, list(missing))


def test_a_compact_entry_without_a_definition_says_so() -> None:
    evidence = {"valuesRead": {"actor": "a"}, "missing": []}
    matched = {"policyId": "b", "version": 1, "result": "matched"}
    body = {
        "evaluations": [matched],
        "notMatched": ["a@2"],
        "outranked": ["c@1"],
        "evidence": evidence,
        "decision": "deny",
        "policyId": "b",
        "policyVersion": 1,
    }
    (first, second, third) = expand_path(body, {})
    assert second is matched
    assert (first["policyId"], first["version"]) == ("a", 2)
    assert first["result"] == "not_matched"
    assert first["reason"] == "not matched"
    assert (first["severity"], first["valuesRead"], first["missing"]) == (None, None, None)
    assert (third["policyId"], third["result"]) == ("c", "matched")
    assert (third["severity"], third["effect"], third["reason"]) == (None, None, None)


def test_outranked_policies_are_named_and_expand_to_their_full_entries() -> None:
    def rule(pid: str, effect: Effect, severity: Severity, state: State = State.ACTIVE) -> Policy:
        return Policy(
            policy_id=pid,
            version=1,
            name=pid,
            severity=severity,
            scope=Scope(("kernelAction",)),
            rule="context.amount > 100",
            effect=effect,
            rationale="{policy.id}: {actor} moved {context.amount}",
            state=state,
        )

    policies = [
        rule("a-escalate", Effect.ESCALATE, Severity.LOW),
        rule("b-deny", Effect.DENY, Severity.LOW),
        rule("c-deny", Effect.DENY, Severity.CRITICAL),
        rule("d-test", Effect.ALLOW, Severity.LOW, State.TEST),
    ]
    event = action_event(
        {"action": "a.x", "actor": "agent:1", "resource": None, "context": {"amount": 500}}
    )
    ev = evaluate(PolicySet(compile_policy(p) for p in policies), Activation.of_event(event), "k")
    enforced, sim = (
        CODEC.decode(CODEC.encode(c)).body
        for c in build_policy_checks(ev, EvaluatedEvent(event.event_id, "s"), mode="stream")
    )
    # the most severe deny decides; the other matches are named only
    assert (enforced["decision"], enforced["policyId"]) == ("deny", "c-deny")
    assert [e["policyId"] for e in enforced["evaluations"]] == ["c-deny", "d-test"]
    assert enforced["outranked"] == ["a-escalate@1", "b-deny@1"]
    by_key = {p.key: p for p in policies}
    full = expand_path(enforced, by_key)
    assert full == [r.to_json() for r in ev.results]
    assert full[0] == {
        "policyId": "a-escalate",
        "version": 1,
        "state": "active",
        "role": "enforced",
        "severity": "LOW",
        "result": "matched",
        "effect": "escalate",
        "error": None,
        "valuesRead": {"context.amount": 500, "actor": "agent:1"},
        "missing": [],
        "reason": "escalate lost to deny of c-deny v1 (lower precedence)",
    }
    assert full[1]["reason"] == "deny lost to deny of c-deny v1 (tied, outranked by severity or id)"
    # the simulation view: the reasons name the enforced decider, so they are in full
    assert (sim["simMode"], sim["outranked"]) == (True, [])
    assert [e["policyId"] for e in sim["evaluations"]] == [p.policy_id for p in policies]
    assert expand_path(sim, by_key) == [r.to_json() for r in ev.results]
