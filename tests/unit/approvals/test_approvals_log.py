"""The approvals fold: genesis, requests, quorums re-judged, registry changes, the gate."""

from __future__ import annotations

from dataclasses import replace

import pytest

from schemas.codec import EventCodec
from schemas.events import Event
from streams.approvals.log import (
    ActivationGate,
    ApprovalsLog,
    QuorumRecord,
    activation_request,
    approval_event,
    genesis_event,
    quorum_event,
    remediation_request,
    request_event,
)
from streams.approvals.quorum import ApprovalRequest, check_quorum
from streams.approvals.registry import (
    APPROVERS_SUBJECT,
    ApproverRegistry,
    add_action,
    parse_registry,
    remove_action,
)
from streams.approvals.statement import DAY_MS, sign_statement
from streams.chain.signing import LocalEd25519Signer
from streams.sentinel.errors import TransitionError
from streams.sentinel.lifecycle import (
    RegistryState,
    apply_change,
    fold,
    plan_create,
    plan_transition,
)
from streams.sentinel.policy import Effect, Policy, Scope, Severity, State

NOW = 1_780_000_000_000
SIGNERS = [LocalEd25519Signer(bytes([i + 1]) * 32, f"ap{i}") for i in range(6)]
GENESIS = ApproverRegistry(1, 3, {s.signer_id: s.public_key for s in SIGNERS[:5]})
HIGH = Policy("p1", 1, "p one", Severity.HIGH, Scope(("kernelAction",)), "true", Effect.DENY, "r")


def _roundtrip(event: Event) -> Event:
    codec = EventCodec()
    return codec.decode(codec.encode(event))


def _approve(log: ApprovalsLog, request: ApprovalRequest, who: range, ttl: int = DAY_MS) -> None:
    for i in who:
        approval = sign_statement(SIGNERS[i], request.statement(NOW + ttl))
        log.apply(
            _roundtrip(approval_event(request.request_id, request.target_type, approval, "api"))
        )


def _quorum(log: ApprovalsLog, request_id: str, at: int = NOW) -> bool:
    result = log.check(request_id, at)
    return log.apply(_roundtrip(quorum_event(result, "api")))


def _base() -> tuple[ApprovalsLog, ApprovalRequest]:
    log = ApprovalsLog()
    assert log.apply(_roundtrip(replace(genesis_event(GENESIS, "ops"), ts_ms=NOW - DAY_MS)))
    request = replace(activation_request("p1", 1, "alice"), ts_ms=NOW)
    assert log.apply(_roundtrip(request_event(request)))
    return log, request


def test_genesis_is_first_wins() -> None:
    log, _ = _base()
    other = ApproverRegistry(1, 1, {SIGNERS[5].signer_id: SIGNERS[5].public_key})
    assert not log.apply(genesis_event(other, "mallory"))
    assert log.registry == GENESIS
    assert "already has its genesis" in log.rejected[-1][1]


def test_quorum_with_three_not_two() -> None:
    log, request = _base()
    _approve(log, request, range(2))
    with pytest.raises(Exception, match="no quorum"):
        quorum_event(log.check(request.request_id, NOW), "api")
    _approve(log, request, range(2, 3))
    assert _quorum(log, request.request_id)
    q = log.quorum_for("policy:p1", "activate", 1)
    assert q is not None and [a.approver_id for a in q.approvals] == ["ap0", "ap1", "ap2"]
    assert QuorumRecord.from_json(q.to_json()) == q


def test_a_quorum_event_without_quorum_is_skipped_on_replay() -> None:
    log, request = _base()
    _approve(log, request, range(3))
    good = log.check(request.request_id, NOW)
    forged = replace(good, counted=good.counted[:2], threshold=2)  # claims k=2
    event = quorum_event(forged, "mallory")
    assert not log.apply(_roundtrip(event))
    assert (
        "no quorum" in log.rejected[-1][1]
        and "2 valid distinct approval(s) of the 3" in log.rejected[-1][1]
    )
    assert request.request_id not in log.quorums
    # the approvals expired by the quorum's time: refused too
    late = quorum_event(replace(good, at_ms=NOW + 2 * DAY_MS), "api")  # stamped 2 days later
    assert not log.apply(_roundtrip(late))
    assert "expired" in log.rejected[-1][1]
    assert log.apply(_roundtrip(quorum_event(good, "api")))


def test_gate_refuses_high_activation_without_quorum_and_fold_skips_it() -> None:
    log, request = _base()
    gate = ActivationGate(log, now_ms=NOW)
    state = RegistryState()
    state = apply_change(state, plan_create(state, HIGH, "alice"))
    for s in (State.TEST, State.CANARY):
        state = apply_change(state, plan_transition(state, "p1", 1, s, "alice", canary_percent=5))
    _approve(log, request, range(2))
    with pytest.raises(TransitionError, match="needs a quorum of 3 of 5 approvers; no quorum yet"):
        plan_transition(state, "p1", 1, State.ACTIVE, "alice", approvals=gate)
    unapproved = plan_transition(state, "p1", 1, State.ACTIVE, "alice")  # planned without the gate
    folded, rejected = fold([replace(unapproved, ts_ms=NOW)], state, gate)
    assert folded.get("p1").version(1).state is State.CANARY  # type: ignore[union-attr]
    assert rejected and "HIGH" in rejected[0][1]
    _approve(log, request, range(2, 3))
    assert _quorum(log, request.request_id)
    change = plan_transition(state, "p1", 1, State.ACTIVE, "alice", approvals=gate)
    assert (
        apply_change(state, replace(change, ts_ms=NOW + 1), gate).get("p1").version(1).state
        is State.ACTIVE
    )  # type: ignore[union-attr]
    # an activation that reached the log before its quorum is still refused on replay
    with pytest.raises(TransitionError):
        apply_change(state, replace(change, ts_ms=NOW - 1), gate)


def test_gate_lets_low_policies_and_logs_without_a_registry_through() -> None:
    state = RegistryState()
    state = apply_change(state, plan_create(state, HIGH, "alice"))
    for s in (State.TEST, State.CANARY, State.ACTIVE):
        state = apply_change(
            state,
            plan_transition(
                state, "p1", 1, s, "a", canary_percent=5, approvals=ActivationGate(ApprovalsLog())
            ),
        )
    gate = ActivationGate(ApprovalsLog(), required=True)
    s2 = apply_change(RegistryState(), plan_create(RegistryState(), HIGH, "a"))
    for st_ in (State.TEST, State.CANARY):
        s2 = apply_change(
            s2, plan_transition(s2, "p1", 1, st_, "a", canary_percent=5, approvals=gate)
        )
    with pytest.raises(TransitionError, match="no approvers registry exists"):
        plan_transition(s2, "p1", 1, State.ACTIVE, "a", approvals=gate)


def test_registry_changes_need_a_quorum_of_the_current_registry() -> None:
    log, _ = _base()
    newcomer = SIGNERS[5]
    add = ApprovalRequest(
        "r-add", "approvers", APPROVERS_SUBJECT, add_action("ap5", newcomer.public_key), 1, "ops"
    )
    assert log.apply(_roundtrip(request_event(add)))
    _approve(log, add, range(3))
    assert _quorum(log, "r-add")
    assert (
        log.registry is not None and log.registry.version == 2 and "ap5" in log.registry.approvers
    )
    # an approval of a change made for registry v1 cannot be replayed on v2
    again = ApprovalRequest("r-rm", "approvers", APPROVERS_SUBJECT, remove_action("ap0"), 1, "ops")
    assert log.apply(_roundtrip(request_event(again)))
    _approve(log, again, range(3))
    assert not _quorum(log, "r-rm")
    assert "approved for registry v1" in log.rejected[-1][1]


def test_registry_refuses_an_impossible_threshold() -> None:
    with pytest.raises(Exception, match="no quorum could ever be reached"):
        parse_registry({"threshold": 3, "approvers": []})
    two = ApproverRegistry(1, 2, {s.signer_id: s.public_key for s in SIGNERS[:2]})
    with pytest.raises(Exception, match="exceeds"):
        two.apply(remove_action("ap0"))
    assert parse_registry(GENESIS.to_json()) == GENESIS


def test_a_remediation_request_through_the_same_judge() -> None:
    request = remediation_request("d1:webhook", "webhook", "remediation-worker")
    assert (request.subject, request.action, request.version) == (
        "remediation:d1:webhook",
        "webhook",
        1,
    )
    expired = [sign_statement(SIGNERS[0], request.statement(NOW - 1))]
    result = check_quorum(request, expired, GENESIS, NOW)
    assert not result.reached and "expired" in result.explain()
    valid = [sign_statement(s, request.statement(NOW + DAY_MS)) for s in SIGNERS[:3]]
    assert check_quorum(request, valid, GENESIS, NOW).reached
    log, _ = _base()
    assert log.apply(_roundtrip(request_event(request)))
    _approve(log, request, range(3))
    assert _quorum(log, request.request_id)


def test_an_activation_before_the_genesis_stays_legal_on_replay() -> None:
    state = RegistryState()
    state = apply_change(state, plan_create(state, HIGH, "alice"))
    for s in (State.TEST, State.CANARY):
        state = apply_change(state, plan_transition(state, "p1", 1, s, "a", canary_percent=5))
    early = replace(plan_transition(state, "p1", 1, State.ACTIVE, "a"), ts_ms=NOW - 1)
    log = ApprovalsLog()
    log.apply(replace(genesis_event(GENESIS, "ops"), ts_ms=NOW))  # the registry came later
    gate = ActivationGate(log)
    assert apply_change(state, early, gate).get("p1").version(1).state is State.ACTIVE  # type: ignore[union-attr]
    with pytest.raises(TransitionError, match="no approval request"):
        apply_change(state, replace(early, ts_ms=NOW + 1), gate)
    copy = log.copy()
    copy.apply(request_event(replace(activation_request("p1", 1, "alice"), ts_ms=NOW)))
    assert copy.requests and not log.requests  # a copy is independent
