"""Lifecycle: legal transitions, rollback, supersession, stale and illegal changes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from schemas.events import Event
from streams.sentinel.errors import TransitionError
from streams.sentinel.lifecycle import (
    ChangeKind,
    PolicyChange,
    RegistryState,
    apply_change,
    fold,
    plan_create,
    plan_transition,
    plan_version,
)
from streams.sentinel.policy import Effect, Policy, Scope, Severity, State

BASE = Policy(
    policy_id="p1",
    version=1,
    name="p one",
    severity=Severity.LOW,
    scope=Scope(("kernelAction",)),
    rule="true",
    effect=Effect.DENY,
    rationale="because",
)


def walk(state: RegistryState, version: int, *states: State) -> RegistryState:
    for s in states:
        pct = 10.0 if s is State.CANARY else None
        state = apply_change(
            state, plan_transition(state, "p1", version, s, "alice", canary_percent=pct)
        )
    return state


def created() -> RegistryState:
    return apply_change(RegistryState(), plan_create(RegistryState(), BASE, "alice"))


def test_full_lifecycle_records_actor_and_states() -> None:
    state = walk(created(), 1, State.TEST, State.CANARY, State.ACTIVE, State.DEPRECATED)
    record = state.get("p1")
    assert record is not None
    assert [(h.from_state, h.to_state) for h in record.history] == [
        (None, State.DRAFT),
        (State.DRAFT, State.TEST),
        (State.TEST, State.CANARY),
        (State.CANARY, State.ACTIVE),
        (State.ACTIVE, State.DEPRECATED),
    ]
    assert {h.actor for h in record.history} == {"alice"}
    assert record.latest.state is State.DEPRECATED
    assert state.live() == []


@pytest.mark.parametrize("start", [State.TEST, State.CANARY, State.ACTIVE])
def test_rollback_to_draft(start: State) -> None:
    path = [State.TEST, State.CANARY, State.ACTIVE]
    state = walk(created(), 1, *path[: path.index(start) + 1])
    state = walk(state, 1, State.DRAFT)
    record = state.get("p1")
    assert record is not None
    assert record.latest.state is State.DRAFT


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ([], State.CANARY),
        ([], State.ACTIVE),
        ([State.TEST], State.ACTIVE),
        ([State.TEST, State.CANARY, State.ACTIVE, State.DEPRECATED], State.DRAFT),
        ([State.TEST, State.CANARY, State.ACTIVE, State.DEPRECATED], State.ACTIVE),
    ],
)
def test_illegal_transitions_are_rejected(path: list[State], target: State) -> None:
    state = walk(created(), 1, *path)
    with pytest.raises(TransitionError, match="is not allowed"):
        plan_transition(state, "p1", 1, target, "bob", canary_percent=5.0)


def test_canary_needs_a_percent() -> None:
    state = walk(created(), 1, State.TEST)
    with pytest.raises(TransitionError, match="canary percent"):
        plan_transition(state, "p1", 1, State.CANARY, "bob")


def test_new_version_supersedes_the_active_one() -> None:
    state = walk(created(), 1, State.TEST, State.CANARY, State.ACTIVE)
    state = apply_change(state, plan_version(state, replace(BASE, rule="false"), "carol"))
    state = walk(state, 2, State.TEST, State.CANARY)
    live = {(p.version, p.state) for p in state.live()}
    assert live == {(1, State.ACTIVE), (2, State.CANARY)}
    state = walk(state, 2, State.ACTIVE)
    record = state.get("p1")
    assert record is not None
    assert [p.state for p in record.versions] == [State.DEPRECATED, State.ACTIVE]
    assert record.history[-1].change == "superseded"
    assert record.history[-1].version == 1


def test_only_one_canary_per_policy() -> None:
    state = walk(created(), 1, State.TEST, State.CANARY)
    state = apply_change(state, plan_version(state, BASE, "carol"))
    state = walk(state, 2, State.TEST)
    with pytest.raises(TransitionError, match="already canary"):
        plan_transition(state, "p1", 2, State.CANARY, "x", canary_percent=1.0)


def test_create_twice_and_version_of_unknown_are_rejected() -> None:
    state = created()
    with pytest.raises(TransitionError, match="already exists"):
        plan_create(state, BASE, "alice")
    with pytest.raises(TransitionError, match="does not exist"):
        apply_change(
            RegistryState(),
            PolicyChange(ChangeKind.VERSIONED, replace(BASE, version=2), None, "a"),
        )
    with pytest.raises(TransitionError, match="no version 7"):
        plan_transition(state, "p1", 7, State.TEST, "alice")


def test_stale_change_is_rejected_and_fold_skips_it() -> None:
    state = created()
    to_test = plan_transition(state, "p1", 1, State.TEST, "a")
    state2 = apply_change(state, to_test)
    with pytest.raises(TransitionError, match="re-read"):
        apply_change(state2, to_test)
    folded, rejected = fold([plan_create(RegistryState(), BASE, "alice"), to_test, to_test])
    assert folded == state2
    assert len(rejected) == 1


def test_a_transition_cannot_edit_the_policy() -> None:
    state = created()
    change = plan_transition(state, "p1", 1, State.TEST, "a")
    forged = replace(change, policy=replace(change.policy, rule="false"))
    with pytest.raises(TransitionError, match="add a version"):
        apply_change(state, forged)


def test_event_round_trip_keeps_actor_and_body() -> None:
    change = plan_create(RegistryState(), BASE, "alice")
    event = change.to_event()
    assert event.subject == "p1"
    again = PolicyChange.from_event(Event.from_json(event.to_json()))
    assert again.policy == change.policy
    assert again.actor == "alice"
    assert again.kind is ChangeKind.CREATED
    assert again.event_id == event.event_id
