"""Streaming evaluation on real Kafka: exactly one policyCheck per action, resumable.

The policies topic is a broadcast input: the runner folds it through the
processor's ``absorb`` (not counted as processed), every instance in full.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from ops.bootstrap import Kernel
from schemas.events import Event, new_event
from streams.kafka.log_reader import KafkaLogReader
from streams.kafka.transactional_runner import TransactionalRunner
from streams.sentinel.lifecycle import RegistryState, apply_change, plan_create, plan_transition
from streams.sentinel.policy import Effect, Policy, Scope, Severity, State
from streams.sentinel.stream import SentinelState
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

DENY_TINY = Policy(
    policy_id="deny-tiny",
    version=1,
    name="Tiny transfers",
    severity=Severity.LOW,
    scope=Scope(("kernelAction",), actions=("payments.*",)),
    rule="context.amount < 10",
    effect=Effect.DENY,
    rationale="{actor} moved only {context.amount}",
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
    runner = kernel.sentinel()
    first = actions(12, rng)
    producer.publish_batch(first)
    producer.publish_encoded([(kernel.names.actions, b"acct-x", b"not avro")])
    producer.publish_batch([first[0]])  # the same event again: a duplicate, refused
    # 12 decided, 2 dead-lettered; the 4 policy changes are absorbed, not processed
    assert runner.run_until_idle(idle_s=1.0) == 14
    runner.close()

    # A restarted runner folds the policy set from the log, rebuilds the dedup
    # window from before its committed offsets, and resumes after the commit.
    again = kernel.sentinel()
    second = actions(8, rng)
    producer.publish_batch(second)
    producer.publish_batch([first[1]])  # a duplicate of an event the first runner decided
    assert again.run_until_idle(idle_s=1.0) == 9
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

    dead = [e.body for _, e, _ in read_all(kernel, kernel.names.dlq)]
    assert len(dead) == 3
    assert all(d["processor"] == "sentinel" for d in dead)
    (junk,) = [d for d in dead if "undecodable" in d["reason"]]
    assert junk["sourceValue"] == b"not avro"
    duplicates = sorted(
        (d for d in dead if "duplicate" in d["reason"]), key=lambda d: d["sourceOffset"]
    )
    assert [first[0].event_id in d["reason"] for d in duplicates] == [True, False]
    assert first[1].event_id in duplicates[1]["reason"]
    assert all("at offset" in d["reason"] for d in duplicates)


def spread(n: int, rng: random.Random) -> list[Event]:
    """Actions of n subjects, so every actions partition gets some."""
    return [
        new_event(
            "kernelAction",
            "agent:1",
            f"acct-{i}",
            {"action": "payments.send", "context": {"amount": rng.randint(0, 2000)}},
        )
        for i in range(n)
    ]


def test_two_instances_share_the_actions_and_both_see_every_policy_change(
    kernel: Kernel,
) -> None:
    rng = random.Random(11)
    producer = kernel.producer()
    producer.publish_batch(activate(DENY_BIG))
    runners = [kernel.sentinel(instance_id="0"), kernel.sentinel(instance_id="1")]

    def poll_until(done: Callable[[], bool], what: str, max_s: float = 120.0) -> None:
        deadline = time.monotonic() + max_s
        while not done():
            assert time.monotonic() < deadline, f"not within {max_s:.0f} s: {what}"
            for r in runners:
                r.poll_once()

    def active(r: TransactionalRunner[SentinelState], policy_id: str) -> bool:
        state = r._state  # the runner's folded state: is the change absorbed yet?
        record = None if state is None else state.registry.state.get(policy_id)
        return record is not None and record.latest.state is State.ACTIVE

    def assigned(r: TransactionalRunner[SentinelState]) -> int:
        return len(r._consumer.assignment())

    try:
        for r in runners:
            r.start()
        poll_until(lambda: all(assigned(r) for r in runners), "both instances assigned")
        assert sum(assigned(r) for r in runners) == 3  # the actions partitions, split
        first = spread(30, rng)
        producer.publish_batch(first)
        poll_until(lambda: sum(r.stats.processed for r in runners) >= 30, "30 decided")
        # a policy change reaches both instances, whichever partitions they hold
        producer.publish_batch(activate(DENY_TINY))
        poll_until(lambda: all(active(r, "deny-tiny") for r in runners), "absorbed by both")
        second = spread(30, rng) + [
            new_event("kernelAction", "agent:1", f"acct-{i}", {"action": "payments.send",
                      "context": {"amount": 5}})
            for i in range(4)
        ]  # fmt: skip
        producer.publish_batch(second)
        poll_until(lambda: sum(r.stats.processed for r in runners) >= 64, "64 decided")
        assert all(r.stats.processed > 0 for r in runners)
    finally:
        for r in runners:
            r.close()
    checks = {
        e.body["subjectEventId"]: e.body for _, e, _ in read_all(kernel, kernel.names.policy_checks)
    }
    assert set(checks) == {e.event_id for e in first + second}
    for event in first + second:
        amount = event.body["context"]["amount"]
        tiny = event in second and amount < 10
        expected = "deny" if amount > 1000 or tiny else "allow"
        assert checks[event.event_id]["decision"] == expected, (amount, tiny)


def test_the_evidence_offset_returns_exactly_the_evaluated_event(kernel: Kernel) -> None:
    rng = random.Random(7)
    producer = kernel.producer()
    producer.publish_batch(activate(DENY_BIG))
    events = actions(15, rng)
    producer.publish_batch(events)
    runner = kernel.sentinel()
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


def test_a_large_action_read_by_a_policy_is_decided_with_a_bounded_record(kernel: Kernel) -> None:
    quote_note = Policy(
        policy_id="quote-note",
        version=1,
        name="Notes",
        severity=Severity.LOW,
        scope=Scope(("kernelAction",), actions=("payments.*",)),
        rule="context.note.size() > 0",
        effect=Effect.ESCALATE,
        rationale="{actor} wrote {context.note}",
    )
    producer = kernel.producer()
    producer.publish_batch(activate(DENY_BIG) + activate(quote_note))
    note = "é" * 32_000  # 64,000 bytes of UTF-8 (the contract allows 64 KiB); quoted
    big = new_event(
        "kernelAction",
        "agent:1",
        "acct-big",
        {"action": "payments.send", "context": {"amount": 5, "note": note, "n2": note[:1000]}},
    )
    producer.publish_batch([big])
    runner = kernel.sentinel()
    assert runner.run_until_idle(idle_s=1.0) == 1
    runner.close()
    ((_, check, _),) = read_all(kernel, kernel.names.policy_checks)
    assert len(kernel.codec.encode(check)) < 64 * 1024  # the note is referenced, not quoted
    body = check.body
    assert body["subjectEventId"] == big.event_id
    assert (body["decision"], body["policyId"]) == ("escalate", "quote-note")
    assert body["evidence"]["truncated"] == ["context.note"]
    assert body["evidence"]["valuesRead"]["context.note"]["bytes"] == 64_002
    assert body["rationale"].startswith("agent:1 wrote éé")
    assert len(body["rationale"]) < 2_200
