"""Batched rule evaluation gives exactly the Evaluation of one engine call per rule.

:class:`~streams.sentinel.rules.RuleBatch` runs the in-scope rules of a
selection as one CEL list and falls back to each rule on its own when any of
them errors or is not boolean. The property: for random policy sets (erroring,
non-boolean, commented and uncompilable rules included) and random actions,
``evaluate`` over a set that batches from the first sight is equal -- results,
errors, values read, reasons, rationale, simulation -- to ``evaluate`` over
the same set with batching off, and stays so when the cached batch is reused.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.sentinel.evaluator import CompiledPolicy, PolicySet, compile_policy, evaluate
from streams.sentinel.policy import Effect, Policy, Scope, Severity, State
from streams.sentinel.rules import (
    Activation,
    batch_source,
    compile_batch,
    compile_rule,
    uncompilable_rule,
)

RULES = [
    "true",
    "false",
    "context.amount > 100",
    'action == "a.x" && actor.startsWith("agent:")',
    'context.flag || resource == "r1"',
    "context.nope > 1",  # always an error
    "context.amount",  # dyn: not a boolean when present
    'resource != null && resource.matches("^r[0-9]$")',
    "context.amount > 10 // a trailing comment must not swallow the separator",
    'context.amount > "x" || true',  # a run-time type error CEL's || absorbs
    "context.amount / 0 > 1",  # a division by zero at run time
    'resource.matches("^r1")',  # literal patterns: string tests in a batch
    'actor.matches("gent:") && resource.matches("x$")',
    'resource.matches("^r.*") || context.flag',
]
ACTIONS = ["a.x", "a.y", "b.z"]
SCOPES = [(), ("a.*",), ("a.x",), ("b.z",)]
UNCOMPILABLE = "!uncompilable"

policies_st = st.lists(
    st.tuples(
        st.sampled_from([*RULES, UNCOMPILABLE]),
        st.sampled_from(list(Effect)),
        st.sampled_from([State.TEST, State.CANARY, State.ACTIVE, State.ACTIVE]),
        st.sampled_from(list(Severity)),
        st.sampled_from(SCOPES),
        st.sampled_from([0.0, 50.0, 100.0]),
    ),
    max_size=14,
)
action_st = st.fixed_dictionaries(
    {
        "action": st.sampled_from(ACTIONS),
        "actor": st.sampled_from(["agent:1", "svc:2"]),
        "subject": st.just("s"),
        "resource": st.sampled_from([None, "r1", "rx"]),
        "context": st.fixed_dictionaries(
            {},
            optional={
                "amount": st.integers(-5, 500) | st.sampled_from(["big", 2.5]),
                "flag": st.booleans(),
            },
        ),
        "eventType": st.just("kernelAction"),
        "ts": st.just(0),
    }
)


def compiled(specs: list[tuple[Any, ...]]) -> list[CompiledPolicy]:
    out = []
    for i, (rule, effect, state, severity, actions, pct) in enumerate(specs):
        policy = Policy(
            policy_id=f"p{i:02d}",
            version=1,
            name=f"p{i}",
            severity=severity,
            scope=Scope(("kernelAction",), actions=actions),
            rule="true" if rule == UNCOMPILABLE else rule,
            effect=effect,
            rationale="{policy.id} {effect} {context.amount}",
            state=state,
            canary_percent=pct,
        )
        cp = compile_policy(policy)
        if rule == UNCOMPILABLE:
            cp = replace(cp, rule=uncompilable_rule("bad(", "engine upgrade"))
        out.append(cp)
    return out


@settings(max_examples=300, deadline=None)
@given(policies_st, st.lists(action_st, min_size=1, max_size=4), st.text(min_size=1, max_size=6))
def test_batched_evaluation_equals_per_rule_evaluation(
    specs: list[tuple[Any, ...]], actions: list[dict[str, Any]], key: str
) -> None:
    cps = compiled(specs)
    single = PolicySet(cps, combine_after=None)
    batched = PolicySet(cps, combine_after=1)
    for values in [*actions, *actions]:  # the second round reuses the cached batches
        expected = evaluate(single, Activation(values), key)
        got = evaluate(batched, Activation(values), key)
        assert got == expected
        assert [r.to_json() for r in got.results] == [r.to_json() for r in expected.results]


def test_a_batch_answers_each_rule_and_declines_on_any_error() -> None:
    values = {"action": "a.x", "actor": "agent:1", "subject": "s", "resource": None,
              "context": {"amount": 50}, "eventType": "kernelAction", "ts": 0}  # fmt: skip
    rules = [compile_rule(r) for r in ("true", "context.amount > 100", "action == 'a.x'")]
    batch = compile_batch(rules)
    assert batch is not None
    assert batch.matches(Activation(values)) == [True, False, True]
    erring = compile_batch([*rules, compile_rule("context.nope > 1")])
    assert erring is not None
    assert erring.matches(Activation(values)) is None
    not_bool = compile_batch([*rules, compile_rule("context.amount")])
    assert not_bool is not None
    assert not_bool.matches(Activation(values)) is None
    assert compile_batch([*rules, uncompilable_rule("x(", "no")]) is None


def test_a_selection_is_batched_from_its_second_evaluation() -> None:
    values = {"action": "a.x", "actor": "agent:1", "subject": "s", "resource": None,
              "context": {"amount": 500}, "eventType": "kernelAction", "ts": 0}  # fmt: skip
    cps = compiled([(r, Effect.DENY, State.ACTIVE, Severity.LOW, (), 0.0) for r in RULES[:5]])
    pset = PolicySet(cps)
    positions = pset.select(values)
    first = evaluate(pset, Activation(values), "k")
    assert positions not in pset._batches
    second = evaluate(pset, Activation(values), "k")
    assert positions in pset._batches
    assert first == second


def _cel_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@settings(max_examples=400, deadline=None)
@given(
    st.text(alphabet="ab/.-é^$*", max_size=8),
    st.sampled_from(["", "^"]),
    st.text(alphabet="ab/-é", max_size=3),
    st.sampled_from(["", ".*", "$"]),
    st.sampled_from([None, 7]),
)
def test_a_literal_pattern_is_the_same_partial_match_as_its_string_test(
    subject: str, head: str, literal: str, tail: str, other: int | None
) -> None:
    pattern = head + literal + tail
    source = f"actor.matches({_cel_string(pattern)})"
    rewritten = batch_source(source)
    if head == "^" and tail == "$":
        assert rewritten == source  # a whole-string match is left to the regex
        return
    assert "matches" not in rewritten
    values = {"action": "a", "actor": subject, "subject": "s", "resource": None,
              "context": {}, "eventType": "kernelAction", "ts": 0}  # fmt: skip
    original = compile_rule(source).evaluate(Activation(values))
    fast = compile_rule(rewritten).evaluate(Activation(values))
    assert original == fast
    # a receiver that is not a string errors either way
    on_dyn = source.replace("actor", "context.v")
    values["context"] = {"v": other}
    assert compile_rule(on_dyn).evaluate(Activation(values)).error is not None
    assert compile_rule(batch_source(on_dyn)).evaluate(Activation(values)).error is not None


def test_only_plain_literal_patterns_are_rewritten() -> None:
    kept = [
        'resource.matches("^r[0-9]$")',
        'resource.matches("^a$")',
        'resource.matches(r"^a")',
        'matches(resource, "^a")',
        'resource.matches("a\\\\.b")',
    ]
    for source in kept:
        assert batch_source(source) == source
    assert batch_source('resource != null && resource.matches("^prod/.*") // x') == (
        'resource != null && resource.startsWith("prod/") // x'
    )
