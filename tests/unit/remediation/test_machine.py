"""The remediation state machine and worker, driven over an in-memory log.

:class:`Log` plays the transactional runner: one record per transaction, the
outputs and the input offset committed together, and a crash anywhere
before the commit loses the outputs (the webhook call already made) and
restarts the worker from the committed offsets with ``recover`` over the
whole topic. The receiver deduplicates by idempotency key and counts raw
deliveries. The hypothesis property is the kill test of
tests/integration/remediation/ without a broker: any crash schedule, each
remediation takes effect exactly once and its events tell the truth.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ops import metrics
from ops.remediation.worker import QuarantineRunner, RemediationWorker, WebhookRunner
from schemas.events import Event
from schemas.topics import TopicNames
from streams.processor import InputRecord
from streams.remediation.actions import ActionSpec, parse_actions
from streams.remediation.approval import HumanDecision, approval
from streams.remediation.errors import ActionConfigError
from streams.remediation.machine import decision_event, request_event

NAMES = TopicNames("t.")
REMEDIATIONS = NAMES.for_event_type("remediation")
HOOK = ActionSpec("hook", "webhook", ("pay-*",), url="http://x", secret_env="S")
RISKY = ActionSpec("risky", "webhook", (), high_risk=True, url="http://x", secret_env="S")
QUARANTINE = ActionSpec("quarantine", "quarantine", ("pay-*",))
ACTIONS = {a.name: a for a in (HOOK, RISKY, QUARANTINE)}


@dataclass
class Receiver:
    """A webhook receiver: applies each Idempotency-Key once, counts every delivery."""

    status: int = 200
    deliveries: Counter[str] = field(default_factory=Counter)
    applied: Counter[str] = field(default_factory=Counter)

    def deliver(self, payload: dict[str, Any], key: str) -> Any:
        self.deliveries[key] += 1
        if self.status == 200 and self.applied[key] == 0:
            self.applied[key] += 1

        @dataclass
        class Result:
            ok: bool
            attempts: int
            status: int
            reason: str

        return Result(self.status == 200, 1, self.status, f"HTTP {self.status}")


class Log:
    """Topics as lists; one consumer (the worker) with committed offsets."""

    def __init__(self, worker: RemediationWorker) -> None:
        self.worker = worker
        self.topics: dict[str, list[Event]] = {
            NAMES.policy_checks: [],
            REMEDIATIONS: [],
            NAMES.actions: [],
        }
        self.committed = {NAMES.policy_checks: 0, REMEDIATIONS: 0}
        self.state = worker.recover([], self)

    # LogReader, as far as recover uses it
    def partitions(self, topic: str) -> list[int]:
        return [0]

    def read(
        self, topic: str, partition: int, start: int, end: int | None = None
    ) -> Sequence[InputRecord]:
        events = self.topics[topic][start:end]
        return [
            InputRecord(topic, 0, start + i, 0, e.subject.encode(), e) for i, e in enumerate(events)
        ]

    def append(self, event: Event) -> None:
        self.topics[self.worker.names.for_event_type(event.event_type)].append(event)

    def pending(self) -> list[str]:
        return [t for t, o in self.committed.items() if o < len(self.topics[t])]

    def transact(self, topic: str, crash: bool) -> None:
        offset = self.committed[topic]
        record = self.read(topic, 0, offset, offset + 1)[0]
        state, outs = self.worker.step(self.state, record)
        if crash:  # SIGKILL before the commit: outputs lost, state from the log
            self.state = self.worker.recover([], self)
            return
        for out in outs:
            self.topics[out.topic].append(out.event)
        self.committed[topic] = offset + 1
        self.state = state

    def drain(self, crashes: Sequence[bool] = ()) -> None:
        schedule = iter(crashes)
        for _ in range(10_000):
            pending = self.pending()
            if not pending:
                return
            self.transact(pending[0], next(schedule, False))
        raise AssertionError("the log never drained")

    def steps(self, key: str) -> list[str]:
        return [
            e.body["status"] for e in self.topics[REMEDIATIONS] if e.body["idempotencyKey"] == key
        ]


def _worker(receiver: Receiver) -> RemediationWorker:
    runners = {
        "hook": WebhookRunner(receiver),
        "risky": WebhookRunner(receiver),
        "quarantine": QuarantineRunner(),
    }
    return RemediationWorker(NAMES, ACTIONS, runners, clock=lambda: 1_700_000_000_000)


def _check(
    check_id: str, decision: str = "remediate", *, sim: bool = False, severity: str = "LOW"
) -> Event:
    path = [{"policyId": "pay-limit", "version": 1, "severity": severity}]
    body = {
        "policyCheckId": check_id, "decision": decision, "policyId": "pay-limit",
        "policyVersion": 1, "simMode": sim, "evaluations": path,
    }  # fmt: skip
    return Event(check_id, "policyCheck", 1, "sentinel", "acct-1", body, 2)


def _request(decision: str, action: str = "hook", high_risk: bool = False) -> Event:
    return request_event(
        decision_id=decision, action=action, subject="acct-9", actor="operator:ann",
        reason="test", high_risk=high_risk, ts_ms=1,
    )  # fmt: skip


def test_a_remediate_decision_requests_approves_starts_and_applies_each_matching_action() -> None:
    receiver = Receiver()
    log = Log(_worker(receiver))
    applied = metrics.REMEDIATION_STEPS.labels("hook", "applied")
    calls = metrics.REMEDIATION_CALLS.labels("hook", "ok")
    before = (applied._value.get(), calls._value.get())
    log.append(_check("c1"))
    log.drain()
    assert log.steps("c1:hook") == ["requested", "approved", "started", "applied"]
    assert (applied._value.get(), calls._value.get()) == (before[0] + 1, before[1] + 1)
    assert log.steps("c1:quarantine") == ["requested", "approved", "started", "applied"]
    assert "c1:risky" not in {e.body["idempotencyKey"] for e in log.topics[REMEDIATIONS]}
    assert receiver.deliveries == Counter({"c1:hook": 1})
    (quarantined,) = log.topics[NAMES.actions]
    assert quarantined.body["action"] == "kernel.quarantine"
    assert quarantined.subject == "acct-1"


@pytest.mark.parametrize(
    ("decision", "sim"), [("deny", False), ("allow", False), ("remediate", True)]
)
def test_other_decisions_and_simulations_never_remediate(decision: str, sim: bool) -> None:
    log = Log(_worker(Receiver()))
    log.append(_check("c1", decision, sim=sim))
    log.drain()
    assert log.topics[REMEDIATIONS] == []


def test_a_high_severity_decision_waits_for_a_human_then_runs_once() -> None:
    receiver = Receiver()
    log = Log(_worker(receiver))
    log.append(_check("c1", severity="CRITICAL"))
    log.drain()
    assert log.steps("c1:hook") == ["requested"]
    assert receiver.deliveries == Counter()
    item = log.state.get("c1:hook")
    assert item is not None and item.high_risk
    log.append(decision_event(item, approve=True, actor="operator:bo", reason="ok", ts_ms=2))
    log.append(decision_event(item, approve=False, actor="operator:cy", reason="late", ts_ms=3))
    log.drain()
    # first decision wins: the later rejection is on the log and changes nothing
    assert log.steps("c1:hook") == ["requested", "approved", "rejected", "started", "applied"]
    assert log.state.get("c1:hook").status == "applied"  # type: ignore[union-attr]
    assert receiver.deliveries == Counter({"c1:hook": 1})


def test_a_rejected_remediation_never_starts_and_a_later_approval_changes_nothing() -> None:
    receiver = Receiver()
    log = Log(_worker(receiver))
    log.append(_request("d1", "risky"))
    log.drain()
    item = log.state.get("d1:risky")
    assert item is not None and item.status == "requested"
    log.append(decision_event(item, approve=False, actor="operator:bo", reason="no", ts_ms=2))
    log.append(decision_event(item, approve=True, actor="operator:cy", reason="yes", ts_ms=3))
    log.drain()
    assert log.steps("d1:risky") == ["requested", "rejected", "approved"]
    assert log.state.get("d1:risky").status == "rejected"  # type: ignore[union-attr]
    assert receiver.deliveries == Counter()


def test_a_refused_webhook_is_failed_with_its_reason_and_an_unknown_action_fails_at_once() -> None:
    receiver = Receiver(status=400)
    log = Log(_worker(receiver))
    log.append(_request("d1"))
    log.append(_request("d2", "gone"))
    log.drain()
    assert log.steps("d1:hook") == ["requested", "approved", "started", "failed"]
    failed = {
        e.body["idempotencyKey"]: e
        for e in log.topics[REMEDIATIONS]
        if e.body["status"] == "failed"
    }
    assert failed["d1:hook"].body["details"]["reason"] == "HTTP 400"
    assert failed["d1:hook"].body["details"]["httpStatus"] == 400
    assert log.steps("d2:gone") == ["requested", "failed"]
    assert "no action 'gone'" in failed["d2:gone"].body["details"]["reason"]


def test_a_repeated_request_and_a_reset_group_execute_nothing_again() -> None:
    receiver = Receiver()
    worker = _worker(receiver)
    log = Log(worker)
    log.append(_request("d1"))
    log.append(_request("d1"))  # the same key again (an operator's retry)
    log.append(_check("c1"))
    log.drain()
    before = list(log.topics[REMEDIATIONS])
    # A new group reads everything again from offset 0 (a replay of the topics).
    log.committed = dict.fromkeys(log.committed, 0)
    log.state = worker.recover([], log)
    log.drain()
    assert log.topics[REMEDIATIONS] == before
    assert receiver.deliveries == Counter({"d1:hook": 1, "c1:hook": 1})
    assert len(log.topics[NAMES.actions]) == 1


@settings(max_examples=80, deadline=None)
@given(
    decisions=st.lists(
        st.sampled_from(["hook", "quarantine", "check", "risky"]), min_size=1, max_size=8
    ),
    crashes=st.lists(st.booleans(), max_size=80),
)
def test_any_crash_schedule_takes_each_effect_exactly_once_and_events_tell_the_truth(
    decisions: list[str], crashes: list[bool]
) -> None:
    receiver = Receiver()
    log = Log(_worker(receiver))
    for i, kind in enumerate(decisions):
        log.append(_check(f"c{i}") if kind == "check" else _request(f"d{i}", kind))
    log.drain(crashes)
    # the risky ones wait: approve them all, crash some more
    for item in list(log.state.items.values()):
        if item.status == "requested":
            log.append(decision_event(item, approve=True, actor="operator:bo", reason="", ts_ms=2))
    log.drain(crashes)
    keys = {e.body["idempotencyKey"] for e in log.topics[REMEDIATIONS]}
    assert len(keys) == sum(2 if k == "check" else 1 for k in decisions)
    for key in keys:
        steps = log.steps(key)
        assert steps.count("requested") == 1, steps
        assert steps.count("started") == 1, steps
        assert steps.count("applied") == 1, steps
        assert steps.index("started") < steps.index("applied")
        assert "failed" not in steps
        if not key.endswith(":quarantine"):
            assert receiver.applied[key] == 1
            assert receiver.deliveries[key] >= 1
    assert len(log.topics[NAMES.actions]) == sum(1 for k in keys if k.endswith(":quarantine"))
    assert set(receiver.applied) == {k for k in keys if not k.endswith(":quarantine")}


def test_the_approval_seam() -> None:
    yes = HumanDecision("e1", "ann", True, "")
    no = HumanDecision("e2", "bo", False, "")
    assert approval(False, ()) == "approved"
    assert approval(True, ()) == "pending"
    assert approval(True, (yes, no)) == "approved"
    assert approval(True, (no, yes)) == "rejected"


def test_action_config_is_validated_with_the_action_and_field_named() -> None:
    good = {
        "page": {
            "type": "webhook",
            "url": "https://h/x",
            "timeoutS": 1,
            "retries": 2,
            "secretEnv": "S",
        },
        "q": {"type": "quarantine", "policies": ["*"], "highRisk": True},
    }
    actions = parse_actions(good)
    assert actions["page"].retries == 2 and actions["q"].high_risk
    assert actions["q"].remediates("anything") and not actions["page"].remediates("anything")
    bad = [
        ({"page": {"type": "email"}}, "type must be webhook or quarantine"),
        ({"page": {"type": "webhook", "url": "ftp://h", "secretEnv": "S"}}, "url must be"),
        ({"page": {"type": "webhook", "url": "http://h"}}, "exactly one of secretFile"),
        (
            {"page": {"type": "webhook", "url": "http://h", "secretEnv": "S", "retries": 11}},
            "retries",
        ),
        (
            {"page": {"type": "webhook", "url": "http://h", "secretEnv": "S", "timeoutS": 20}},
            "over 50s",
        ),
        ({"page": {"type": "quarantine", "url": "http://h"}}, "unknown field 'url'"),
        ({"Bad Name": {"type": "quarantine"}}, "a name is"),
        ([], "must be a JSON object"),
    ]
    for data, message in bad:
        with pytest.raises(ActionConfigError, match=message):
            parse_actions(data)


def test_a_quorum_approves_a_high_risk_remediation_and_is_named_in_its_decisions() -> None:
    from streams.remediation.machine import quorum_decision_event

    receiver = Receiver()
    log = Log(_worker(receiver))
    log.append(_check("c2", severity="HIGH"))
    log.drain()
    assert log.steps("c2:hook") == ["requested"]
    quorum = quorum_decision_event(
        "c2:hook", "hook", request_id="r-1", quorum_event_id="q-1",
        approvers=["a", "b", "c"], actor="approver:a", ts_ms=5,
    )  # fmt: skip
    log.append(quorum)
    log.append(quorum)  # published twice (two API instances): one decision
    log.drain()
    assert log.steps("c2:hook")[-2:] == ["started", "applied"]
    item = log.state.get("c2:hook")
    assert item is not None
    assert [(d.actor, d.approve) for d in item.decisions] == [("quorum:r-1", True)]
    assert receiver.deliveries == Counter({"c2:hook": 1})
