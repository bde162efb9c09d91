"""The streaming sentinel folds HIGH activations under the k-of-n rule, whatever the
interleaving of the policies and approvals topics (both broadcast)."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.events import Event
from streams.approvals.log import (
    ApprovalsLog,
    activation_request,
    approval_event,
    genesis_event,
    quorum_event,
    request_event,
)
from streams.approvals.registry import ApproverRegistry
from streams.approvals.statement import DAY_MS, sign_statement
from streams.chain.signing import LocalEd25519Signer
from streams.processor import InputRecord
from streams.sentinel.lifecycle import RegistryState, apply_change, plan_create, plan_transition
from streams.sentinel.policy import Effect, Policy, Scope, Severity, State
from streams.sentinel.stream import SentinelProcessor, SentinelState

NOW = 1_780_000_000_000
SIGNERS = [LocalEd25519Signer(bytes([i + 1]) * 32, f"ap{i}") for i in range(5)]
REGISTRY = ApproverRegistry(1, 3, {s.signer_id: s.public_key for s in SIGNERS})
HIGH = Policy("p1", 1, "p", Severity.HIGH, Scope(("kernelAction",)), "true", Effect.DENY, "r")
POLICIES, APPROVALS = "t.policies", "t.approvals"


def policy_log(activation_ts: int) -> list[Event]:
    state = RegistryState()
    changes = [plan_create(state, HIGH, "alice")]
    state = apply_change(state, changes[0])
    for s in (State.TEST, State.CANARY, State.ACTIVE):
        changes.append(plan_transition(state, "p1", 1, s, "bob", canary_percent=5))
        state = apply_change(state, changes[-1])
    events = [c.to_event() for c in changes]
    return [*events[:-1], replace(events[-1], ts_ms=activation_ts)]


def approvals_log(approvers: int) -> list[Event]:
    log = ApprovalsLog()
    events = [replace(genesis_event(REGISTRY, "ops"), ts_ms=NOW - DAY_MS)]
    request = replace(activation_request("p1", 1, "alice"), ts_ms=NOW)
    events.append(request_event(request))
    for s in SIGNERS[:approvers]:
        approval = sign_statement(s, request.statement(NOW + DAY_MS))
        events.append(approval_event(request.request_id, request.target_type, approval, "api"))
    for e in events:
        log.apply(e)
    result = log.check(request.request_id, NOW)
    if result.reached:
        events.append(quorum_event(result, "api"))
    return events


def run(order: list[tuple[str, Event]]) -> SentinelState:
    processor = SentinelProcessor("t.actions", POLICIES, "t.checks", approvals_topic=APPROVALS)
    state = processor.initial()
    offsets: dict[str, int] = {}
    for topic, event in order:
        off = offsets.get(topic, 0)
        offsets[topic] = off + 1
        state = processor.absorb(state, InputRecord(topic, 0, off, event.ts_ms, b"k", event))
    return state


def interleave(
    draw: st.DrawFn, a: list[tuple[str, Event]], b: list[tuple[str, Event]]
) -> list[tuple[str, Event]]:
    picks = draw(st.permutations([0] * len(a) + [1] * len(b)))
    ia, ib, out = iter(a), iter(b), []
    for p in picks:
        out.append(next(ia) if p == 0 else next(ib))
    return out


def _state(state: SentinelState) -> State:
    record = state.registry.state.get("p1")
    assert record is not None
    version = record.version(1)
    assert version is not None
    return version.state


@settings(max_examples=30, deadline=None)
@given(st.data(), st.sampled_from([2, 3]), st.booleans())
def test_activation_needs_the_quorum_whatever_the_interleaving(
    data: st.DataObject, approvers: int, after_quorum: bool
) -> None:
    activation_ts = NOW + 1 if after_quorum else NOW - 1
    policies = [(POLICIES, e) for e in policy_log(activation_ts)]
    approvals = [(APPROVALS, e) for e in approvals_log(approvers)]
    state = run(interleave(data.draw, policies, approvals))
    accepted = approvers >= 3 and after_quorum
    assert _state(state) is (State.ACTIVE if accepted else State.CANARY)
    assert state.rejected_changes == (0 if accepted else 1)  # refused, never half-applied
    assert len(state.changes) == 4


def test_without_the_approvals_topic_nothing_changes() -> None:
    processor = SentinelProcessor("t.actions", POLICIES, "t.checks")
    assert processor.broadcast_topics == (POLICIES,)
    state = processor.initial()
    for off, e in enumerate(policy_log(NOW)):
        state = processor.absorb(state, InputRecord(POLICIES, 0, off, e.ts_ms, b"k", e))
    assert _state(state) is State.ACTIVE and state.approvals is None
