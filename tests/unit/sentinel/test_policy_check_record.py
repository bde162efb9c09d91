"""The compact policyCheck (schema v2) still carries every policy evaluated with its result.

``evaluations`` has a full entry for each policy that matched, errored or is not
an enforced ``active`` version; ``notMatched`` names the rest by ``id@version``.
The properties, over random policy sets (erroring and non-boolean rules,
canary and test versions) and random actions:

- the record lists exactly the policies in scope, each once;
- the full entries are exactly the policies that matched, errored, or are not
  plainly enforced, and each matched one carries the values its rule read;
- :func:`~streams.sentinel.decision.expand_path` over the record (after an Avro
  round trip) rebuilds exactly the full path, ``Evaluation.results``;
- the evaluator's path for all-enforced sets (results built only for matches)
  equals its general path (every result built).
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.codec import EventCodec
from schemas.events import Event, new_event
from streams.sentinel import evaluator
from streams.sentinel.decision import EvaluatedEvent, build_policy_checks, expand_path
from streams.sentinel.evaluator import Outcome, PolicySet, Role, compile_policy, evaluate
from streams.sentinel.policy import Effect, Policy, Scope, Severity, State
from streams.sentinel.rules import Activation, read_paths, read_values

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


@settings(max_examples=250, deadline=None)
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
    for check in checks:
        body = CODEC.decode(CODEC.encode(check)).body
        entries, compact = body["evaluations"], body["notMatched"]
        listed = [(e["policyId"], e["version"]) for e in entries]
        listed += [(pid, int(v)) for pid, _, v in (c.rpartition("@") for c in compact)]
        # every policy in scope, once
        assert sorted(listed) == sorted((r.policy_id, r.version) for r in ev.results)
        # full entries: exactly the matched, errored and not plainly enforced ones
        plain = {
            (r.policy_id, r.version)
            for r in ev.results
            if r.outcome is Outcome.NOT_MATCHED
            and r.role is Role.ENFORCED
            and r.state is State.ACTIVE
        }
        assert {(e["policyId"], e["version"]) for e in entries} == {
            (r.policy_id, r.version) for r in ev.results
        } - plain
        # each matched policy's entry carries the values its rule read, from the action
        for e in entries:
            if e["result"] == "matched":
                rule = by_key[(e["policyId"], e["version"])].rule
                present, _ = read_values(read_paths(rule), activation)
                assert present.items() <= e["valuesRead"].items()
        # explain's expansion is the full path
        full = expand_path(entries, compact, body["evidence"], by_key)
        assert full == [r.to_json() for r in ev.results]


@settings(max_examples=250, deadline=None)
@given(policies_st, action_st, st.text(min_size=1, max_size=6))
def test_results_only_for_matches_equal_every_result_built(
    specs: list[tuple[Any, ...]], a: dict[str, Any], key: str
) -> None:
    pset = PolicySet(compile_policy(p) for p in build(specs))
    activation = Activation.of_event(action_event(a))
    fast = evaluate(pset, activation, key)
    positions = pset.select(activation.values)
    general = evaluator._evaluate_each(
        pset.selection(positions), pset.outcomes(positions, activation), activation, key
    )
    assert fast == general
    assert fast.path == general.path
    assert fast.not_matched == general.not_matched
    assert fast.values_read == general.values_read
    assert fast.missing == general.missing
    assert [r.to_json() for r in fast.results] == [r.to_json() for r in general.results]


def test_a_compact_entry_without_a_definition_says_so() -> None:
    evidence = {"valuesRead": {"actor": "a"}, "missing": []}
    matched = {"policyId": "b", "version": 1, "result": "matched"}
    (first, second) = expand_path([matched], ["a@2"], evidence, {})
    assert second is matched
    assert first["policyId"] == "a"
    assert first["version"] == 2
    assert first["result"] == "not_matched"
    assert first["reason"] == "not matched"
    assert (first["severity"], first["valuesRead"], first["missing"]) == (None, None, None)
