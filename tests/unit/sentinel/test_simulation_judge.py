"""Simulation over history, pure: the judged decisions equal the evaluator's, windows, tallies."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.errors import ValidationError
from schemas.events import Event
from streams.sentinel.policy import Effect, Policy, Scope, Severity, State
from streams.sentinel.rules import Activation, compile_rule
from streams.sentinel.simulation import (
    EXAMPLES_PER_KIND,
    SimulationTally,
    Window,
    active_decision,
    judge,
    parse_duration,
    parse_offsets,
    resolve_ranges,
    simulation_set,
    split_ranges,
)
from streams.sentinel.stream import evaluate_event
from tests.unit.sentinel.test_evaluator_properties import RULES, action_st, build, policies_st


def event_of(values: dict[str, Any], i: int = 0) -> Event:
    body = {
        "action": values["action"],
        "resource": values["resource"],
        "context": values["context"],
    }
    return Event(f"00000000-0000-4000-8000-{i:012d}", "kernelAction", 0, values["actor"],
                 values["subject"], body)  # fmt: skip


def candidate_of(rule: str, effect: Effect, severity: Severity, pid: str, version: int) -> Policy:
    return Policy(pid, version, "candidate", severity, Scope(("kernelAction",), actions=("a.*",)),
                  rule, effect, "{policy.id} {effect}", state=State.DRAFT)  # fmt: skip


candidate_st = st.tuples(
    st.sampled_from(RULES),
    st.sampled_from(list(Effect)),
    st.sampled_from(list(Severity)),
    st.sampled_from(["cand", "p00", "p01"]),  # a new policy, or a new version of one
)


@settings(max_examples=150, deadline=None)
@given(policies_st, candidate_st, st.lists(action_st, min_size=1, max_size=5))
def test_judged_decisions_are_the_evaluators(
    specs: list[tuple[Any, ...]], cand: tuple[Any, ...], actions: list[dict[str, Any]]
) -> None:
    """Active: the stream's evaluation of the enforced set. Candidate: the evaluation of
    the enforced set with the candidate promoted (its error failing open: without it)."""
    live = build(specs)
    rule, effect, severity, pid = cand
    candidate = candidate_of(rule, effect, severity, pid, 2)
    sets = simulation_set(live, candidate)
    for i, values in enumerate(actions):
        event = event_of(values, i)
        judged = judge(sets, event)
        assert judged.active is evaluate_event(sets.active, event).decision
        act = Activation.of_event(event)
        assert active_decision(sets.active, event, act)[0] is judged.active
        in_scope = values["action"].startswith("a.")
        outcome = compile_rule(rule).evaluate(act)
        if in_scope and outcome.error is not None:
            expected = evaluate_event(sets.without, event).decision
        else:
            expected = evaluate_event(sets.promoted, event).decision
        assert judged.candidate is expected
        assert (judged.outcome is None) is not in_scope


def _tally(sets: Any, events: list[tuple[int, int, Event]]) -> SimulationTally:
    t = SimulationTally(sets.policy.policy_id, sets.policy.version)
    t.run(sets, events)
    return t


def _active(rule: str, effect: Effect, pid: str = "base") -> Policy:
    return Policy(pid, 1, pid, Severity.MEDIUM, Scope(("kernelAction",)), rule, effect,
                  "{policy.id}", state=State.ACTIVE)  # fmt: skip


def _events(n: int) -> list[tuple[int, int, Event]]:
    out = []
    for i in range(n):
        values = {"action": "a.x", "actor": f"agent:{i % 3}", "subject": f"s{i % 4}",
                  "resource": None, "context": {"amount": i}}  # fmt: skip
        out.append((i % 2, i, event_of(values, i)))
    return out


def test_report_counts_the_newly_denied_by_actor_subject_and_action() -> None:
    live = [_active("context.amount > 90", Effect.DENY)]
    candidate = candidate_of("context.amount >= 50", Effect.DENY, Severity.HIGH, "cand", 1)
    events = _events(100)
    report = _tally(simulation_set(live, candidate), events).to_json()
    newly = [e for _, _, e in events if 50 <= e.body["context"]["amount"] <= 90]
    assert report["eventsEvaluated"] == 100
    assert report["candidateMatched"] == 50
    assert report["matchRate"] == 0.5
    assert report["decisions"] == {
        "active": {"allow": 91, "deny": 9},
        "candidate": {"allow": 50, "deny": 50},
    }
    denied = report["changes"]["newlyDenied"]
    assert denied["count"] == len(newly) == 41
    by_actor = Counter(e.actor for e in newly)
    assert {x["key"]: x["count"] for x in denied["byActor"]["top"]} == by_actor
    by_subject = Counter(e.subject for e in newly)
    assert {x["key"]: x["count"] for x in denied["bySubject"]["top"]} == by_subject
    assert denied["byAction"]["top"] == [{"key": "a.x", "count": 41}]
    assert report["changes"]["newlyAllowed"]["count"] == 0
    assert report["changes"]["transitions"] == {"allow->deny": 41}
    kinds = Counter(e["kind"] for e in report["examples"])
    assert kinds == {"newlyDenied": EXAMPLES_PER_KIND, "matched": EXAMPLES_PER_KIND}
    example = next(e for e in report["examples"] if e["kind"] == "newlyDenied")
    assert example["active"]["decision"] == "allow"
    assert example["candidate"]["decision"] == "deny"
    simulated = [p for p in example["path"] if p["role"] == "simulated"]
    assert simulated[0]["policyId"] == "cand"
    assert simulated[0]["result"] == "matched"


def test_a_new_version_that_allows_is_newly_allowed_and_errors_fail_open() -> None:
    live = [_active("context.amount > 90", Effect.DENY, "cand")]
    allows = candidate_of("context.amount > 95", Effect.DENY, Severity.HIGH, "cand", 2)
    report = _tally(simulation_set(live, allows), _events(100)).to_json()
    assert report["changes"]["newlyAllowed"]["count"] == 5  # 91..95
    broken = candidate_of("context.nope > 1", Effect.DENY, Severity.HIGH, "other", 1)
    report = _tally(simulation_set(live, broken), _events(10)).to_json()
    assert report["errors"] == 10
    assert report["changes"]["total"] == 0  # a simulated error contributes nothing
    assert report["errorReasons"]["top"][0]["count"] == 10


def test_split_tallies_merge_into_the_whole() -> None:
    live = [_active("context.amount > 90", Effect.DENY)]
    candidate = candidate_of("context.amount >= 50", Effect.DENY, Severity.HIGH, "cand", 1)
    sets = simulation_set(live, candidate)
    events = sorted(_events(100), key=lambda x: (x[0], x[1]))
    whole = _tally(sets, events)
    a, b = _tally(sets, events[:37]), _tally(sets, events[37:])
    assert b.merge(a).to_json() == whole.to_json()


def test_windows_resolve_to_offset_ranges() -> None:
    starts, ends = {0: 0, 1: 5, 2: 0}, {0: 10, 1: 8, 2: 0}
    assert resolve_ranges(Window(last=7), starts, ends) == {0: (6, 10), 1: (5, 8), 2: (0, 0)}
    assert resolve_ranges(Window(last=100), starts, ends) == {0: (0, 10), 1: (5, 8), 2: (0, 0)}
    ranges = resolve_ranges(Window(since_ms=1000), starts, ends, {0: 4, 1: 8, 2: 0})
    assert ranges == {0: (4, 10), 1: (8, 8), 2: (0, 0)}
    assert resolve_ranges(Window(offsets={1: 6}), starts, ends) == {1: (6, 8)}
    with pytest.raises(ValidationError, match="no partition 7"):
        resolve_ranges(Window(offsets={7: 0}), starts, ends)
    shares = split_ranges({0: (0, 10), 1: (5, 8)}, 2)
    assert shares == [{0: (0, 5), 1: (5, 6)}, {0: (5, 10), 1: (6, 8)}]


@pytest.mark.parametrize(
    ("text", "message"),
    [("24x", "not a duration"), ("0h", "not a duration"), ("h", "not a duration")],
)
def test_bad_durations_say_what_to_write(text: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_duration(text)


def test_arguments_are_checked() -> None:
    assert parse_duration("24h") == 86_400_000
    assert parse_offsets("0:12, 2:0") == {0: 12, 2: 0}
    with pytest.raises(ValidationError, match="PARTITION:OFFSET"):
        parse_offsets("0=12")
    with pytest.raises(ValidationError, match="given twice"):
        parse_offsets("0:1,0:2")
    with pytest.raises(ValidationError, match="exactly one"):
        Window(last=3, since_ms=5)
    with pytest.raises(ValidationError, match="positive"):
        Window(last=0)
    active = _active("true", Effect.DENY, "cand")
    with pytest.raises(ValidationError, match="only a draft or test version"):
        simulation_set([active], active)
    newer = Policy("cand", 3, "c", Severity.LOW, Scope(("kernelAction",)), "true", Effect.DENY,
                   "x", state=State.ACTIVE)  # fmt: skip
    old = candidate_of("true", Effect.DENY, Severity.LOW, "cand", 2)
    with pytest.raises(ValidationError, match="newer"):
        simulation_set([newer], old)
