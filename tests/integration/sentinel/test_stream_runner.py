"""Streaming evaluation on real Kafka: exactly one policyCheck per action, resumable."""

from __future__ import annotations

import random

from ops.bootstrap import Kernel
from ops.workers.sentinel import build_runner
from schemas.events import Event, new_event
from streams.kafka.log_reader import KafkaLogReader
from streams.sentinel.lifecycle import RegistryState, apply_change, plan_create, plan_transition
from streams.sentinel.policy import Effect, Policy, Scope, Severity, State
from tests.integration.core.test_producer import read_all

DENY_BIG = Policy(
    policy_id="deny-big",
    version=1,
    name="Big transfers",
    severity=Severity.HIGH,
    scope=Scope(("kernelAction",), actions=("payments.*",)),
    rule="context.amount > 1000",
    effect=Effect.DENY,
    rationale="{actor} moved {context.amount}, over 1000",
)


def activate(policy: Policy) -> list[Event]:
    state = RegistryState()
    change = plan_create(state, policy, "alice")
    state = apply_change(state, change)
    events = [change.to_event()]
    for target in (State.TEST, State.CANARY, State.ACTIVE):
        change = plan_transition(state, policy.policy_id, 1, target, "bob", canary_percent=10.0)
        state = apply_change(state, change)
        events.append(change.to_event())
    return events


def actions(n: int, rng: random.Random) -> list[Event]:
    return [
        new_event(
            "kernelAction",
            f"agent:{i % 3}",
            f"acct-{i % 4}",
            {"action": "payments.send", "context": {"amount": rng.randint(0, 2000)}},
        )
        for i in range(n)
    ]


def test_one_check_per_action_dead_letters_and_resume(kernel: Kernel) -> None:
    rng = random.Random(4)
    producer = kernel.producer()
    producer.publish_batch(activate(DENY_BIG))
    runner = build_runner(kernel)
    # The policies are read first, so the actions below see the active policy.
    assert runner.run_until_idle(idle_s=1.0) == 4
    first = actions(12, rng)
    producer.publish_batch(first)
    producer.publish_encoded([(kernel.names.actions, b"acct-x", b"not avro")])
    assert runner.run_until_idle(idle_s=1.0) == 13
    runner.close()

    # A restarted runner recovers the policy set from the log and resumes after the commit.
    again = build_runner(kernel)
    second = actions(8, rng)
    producer.publish_batch(second)
    assert again.run_until_idle(idle_s=1.0) == 8
    again.close()

    published = {e.event_id: e for e in first + second}
    checks = [e for _, e, _ in read_all(kernel, kernel.names.policy_checks)]
    assert sorted(c.body["subjectEventId"] for c in checks) == sorted(published)  # one each
    for check in checks:
        body = check.body
        evaluated = published[body["subjectEventId"]]
        expected = "deny" if evaluated.body["context"]["amount"] > 1000 else "allow"
        assert (body["decision"], body["mode"], body["simMode"]) == (expected, "stream", False)
        assert body["policyId"] == ("deny-big" if expected == "deny" else None)
        assert check.subject == evaluated.subject

    dead = [e for _, e, _ in read_all(kernel, kernel.names.dlq)]
    assert len(dead) == 1
    assert "undecodable" in dead[0].body["reason"]
    assert dead[0].body["sourceValue"] == b"not avro"
    assert dead[0].body["processor"] == "sentinel"


def test_the_evidence_offset_returns_exactly_the_evaluated_event(kernel: Kernel) -> None:
    rng = random.Random(7)
    producer = kernel.producer()
    producer.publish_batch(activate(DENY_BIG))
    events = actions(15, rng)
    producer.publish_batch(events)
    runner = build_runner(kernel)
    runner.run_until_idle(idle_s=1.0)
    runner.close()
    checks = [e for _, e, _ in read_all(kernel, kernel.names.policy_checks)]
    assert len(checks) == len(events)
    reader = KafkaLogReader(kernel.settings.kafka_bootstrap, kernel.codec)
    try:
        by_id = {e.event_id: e for e in events}
        for check in checks:
            where = check.body["evidence"]["event"]
            assert where["topic"] == kernel.names.actions
            (found,) = reader.read(
                where["topic"], where["partition"], where["offset"], where["offset"] + 1
            )
            assert found.offset == where["offset"]
            assert found.event == by_id[where["eventId"]]
            assert found.event.event_id == check.body["subjectEventId"]
    finally:
        reader.close()
