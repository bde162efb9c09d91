"""The streaming processor, driven with no broker the way the runner drives it.

``recover`` for the assigned action partitions, then every record of the
policies topic (a broadcast input) through ``absorb``, then actions through
``step`` with new policy records absorbed between them.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.errors import ValidationError
from schemas.events import Event, new_event
from streams.processor import InputRecord, OutputRecord
from streams.sentinel.decision import check_id_for
from streams.sentinel.lifecycle import RegistryState, apply_change, plan_create, plan_transition
from streams.sentinel.policy import Effect, Policy, Scope, Severity, State
from streams.sentinel.stream import SentinelProcessor, SentinelState, check_event_id

ACTIONS, POLICIES, CHECKS = "t.actions", "t.policies", "t.policy-checks"
BIG = Policy(
    policy_id="big-transfer",
    version=1,
    name="big",
    severity=Severity.HIGH,
    scope=Scope(("kernelAction",), actions=("payments.*",)),
    rule="context.amount > 1000",
    effect=Effect.DENY,
    rationale="{actor} moved {context.amount}",
)


def policy_events(*targets: State, policy: Policy = BIG) -> list[Event]:
    state = RegistryState()
    change = plan_create(state, policy, "alice")
    events = [change.to_event()]
    state = apply_change(state, change)
    for target in targets:
        change = plan_transition(state, policy.policy_id, 1, target, "bob", canary_percent=50.0)
        state = apply_change(state, change)
        events.append(change.to_event())
    return events


def action(amount: int, subject: str = "acct-1", action_name: str = "payments.send") -> Event:
    return new_event(
        "kernelAction", "agent:7", subject, {"action": action_name, "context": {"amount": amount}}
    )


class Records:
    def __init__(self) -> None:
        self.offsets: dict[str, int] = {}

    def __call__(self, topic: str, event: Event) -> InputRecord:
        off = self.offsets.get(topic, 0)
        self.offsets[topic] = off + 1
        return InputRecord(topic, 0, off, event.ts_ms, event.subject.encode(), event)


class FakeReader:
    def __init__(self, records: dict[str, list[InputRecord]], committed: dict[str, int]) -> None:
        self.records = records
        self._committed = committed

    def partitions(self, topic: str) -> list[int]:
        return [0] if topic in self.records else []

    def read(
        self, topic: str, partition: int, start: int, end: int | None = None
    ) -> Sequence[InputRecord]:
        rs = self.records.get(topic, [])
        return [r for r in rs if r.offset >= start and (end is None or r.offset < end)]

    def read_keyed(
        self, topic: str, partition: int, start: int, end: int, keys: frozenset[bytes]
    ) -> Sequence[InputRecord]:
        return [r for r in self.read(topic, partition, start, end) if r.key in keys]

    def end_offset(self, topic: str, partition: int) -> int:
        return len(self.records.get(topic, []))

    def committed(self, topic: str, partition: int) -> int:
        return self._committed.get(topic, 0)


def run(
    proc: SentinelProcessor, state: SentinelState, records: list[InputRecord]
) -> tuple[SentinelState, list[OutputRecord]]:
    """Records in order: a policies record is absorbed, an action stepped."""
    outs: list[OutputRecord] = []
    for r in records:
        if r.topic in proc.broadcast_topics:
            state = proc.absorb(state, r)
            continue
        state, o = proc.step(state, r)
        outs.extend(o)
    return state, outs


def proc() -> SentinelProcessor:
    return SentinelProcessor(ACTIONS, POLICIES, CHECKS)


def test_policies_in_the_stream_decide_the_actions_after_them() -> None:
    rec = Records()
    p = proc()
    empty = p.recover([(ACTIONS, 0)], FakeReader({}, {}))
    before = rec(ACTIONS, action(5000))
    stream = [before, *(rec(POLICIES, e) for e in policy_events(State.TEST, State.CANARY))]
    state, outs = run(p, empty, stream)
    # before any policy: allow, one check, keyed by subject, to the checks topic
    assert len(outs) == 1
    assert outs[0].topic == CHECKS and outs[0].key == b"acct-1"
    assert outs[0].event.body["decision"] == "allow"
    # after test+canary(50%): enforced for half the sample keys; decisions follow the rule
    small, large = rec(ACTIONS, action(10)), rec(ACTIONS, action(5000))
    _, outs = run(p, state, [small, large])
    enforced = [o.event.body for o in outs if not o.event.body["simMode"]]
    assert [b["subjectEventId"] for b in enforced] == [
        small.event.event_id,
        large.event.event_id,
    ]
    assert enforced[0]["decision"] == "allow"
    role = enforced[1]["evaluations"][0]["role"]
    assert enforced[1]["decision"] == ("deny" if role == "enforced" else "allow")
    assert all(o.event.body["mode"] == "stream" for o in outs)


def test_checks_carry_the_position_and_deterministic_ids() -> None:
    rec = Records()
    p = proc()
    state, _ = run(
        p,
        p.initial(),
        [rec(POLICIES, e) for e in policy_events(State.TEST, State.CANARY, State.ACTIVE)],
    )
    rec.offsets[ACTIONS] = 41
    r = rec(ACTIONS, action(5000, subject="acct-9"))
    _, outs = p.step(state, r)
    _, again = p.step(state, r)
    assert [o.event for o in outs] == [o.event for o in again]  # replay: identical records
    (check,) = outs
    body = check.event.body
    assert body["decision"] == "deny" and body["policyId"] == "big-transfer"
    assert body["evidence"]["event"] == {
        "topic": ACTIONS,
        "partition": 0,
        "offset": 41,
        "eventId": r.event.event_id,
    }
    assert body["evidence"]["valuesRead"]["context.amount"] == 5000
    assert body["policyCheckId"] == check_id_for(r.event.event_id, "stream", False)
    assert check.event.event_id == check_event_id(body["policyCheckId"])
    assert check.event.ts_ms == r.event.ts_ms
    assert check.key == b"acct-9"


def test_a_test_policy_adds_a_sim_mode_check() -> None:
    rec = Records()
    p = proc()
    state, _ = run(p, p.initial(), [rec(POLICIES, e) for e in policy_events(State.TEST)])
    _, outs = p.step(state, rec(ACTIONS, action(5000)))
    assert [(o.event.body["simMode"], o.event.body["decision"]) for o in outs] == [
        (False, "allow"),
        (True, "deny"),
    ]
    assert len({o.event.body["policyCheckId"] for o in outs}) == 2


def test_policies_are_a_broadcast_input_folded_by_absorb_not_by_recover() -> None:
    rec = Records()
    records = [rec(POLICIES, e) for e in policy_events(State.TEST, State.CANARY, State.ACTIVE)]
    p = proc()
    assert tuple(p.input_topics) == (ACTIONS,) and tuple(p.broadcast_topics) == (POLICIES,)
    # recover reads no policies (the runner folds the broadcast topic after it), even
    # with the policies committed: a group never commits a broadcast input
    state = p.recover([(ACTIONS, 0)], FakeReader({POLICIES: records}, {POLICIES: 4}))
    assert state.registry.state.get("big-transfer") is None
    folded = state
    for r in records:
        folded = p.absorb(folded, r)
    assert folded.rejected_changes == 0
    assert [cp.policy.state for cp in folded.registry.policy_set.policies] == [State.ACTIVE]
    assert state.registry.state.get("big-transfer") is None  # absorb did not mutate
    # another event type on the policies topic is ignored, not counted
    assert p.absorb(folded, rec(POLICIES, action(1))) is folded


def test_every_instance_sees_every_policy_change_and_decides_alike() -> None:
    """Two instances split the action partitions; each absorbs the whole policies topic."""
    rec = Records()
    changes = [rec(POLICIES, e) for e in policy_events(State.TEST, State.CANARY, State.ACTIVE)]
    reader = FakeReader({POLICIES: changes}, {})
    actions = [
        InputRecord(ACTIONS, i % 2, i // 2, 0, b"s", action(500 * i, action_name="payments.x"))
        for i in range(8)
    ]
    decided: dict[str, str] = {}
    for partitions in ([0], [1]):
        p = proc()
        state = p.recover([(ACTIONS, q) for q in partitions], reader)
        for r in reader.read(POLICIES, 0, 0):
            state = p.absorb(state, r)
        for r in actions:
            if r.partition in partitions:
                _, (out,) = p.step(state, r)
                decided[out.event.body["subjectEventId"]] = out.event.body["decision"]
    assert decided == {
        r.event.event_id: ("deny" if r.event.body["context"]["amount"] > 1000 else "allow")
        for r in actions
    }


def test_an_illegal_change_is_skipped_and_counted_and_state_is_not_mutated() -> None:
    rec = Records()
    events = policy_events(State.TEST)
    p = proc()
    state, _ = run(p, p.initial(), [rec(POLICIES, e) for e in events])
    again = p.absorb(state, rec(POLICIES, events[1]))  # the same transition twice: stale
    assert again.rejected_changes == 1 and state.rejected_changes == 0
    assert again.registry.state == state.registry.state


def test_an_action_topic_record_of_another_type_is_refused() -> None:
    rec = Records()
    stray = policy_events()[0]
    with pytest.raises(ValidationError, match="kernelAction"):
        proc().step(proc().initial(), rec(ACTIONS, stray))


@settings(max_examples=40, deadline=None)
@given(amounts=st.lists(st.integers(min_value=0, max_value=5000), min_size=1, max_size=20))
def test_every_action_gets_exactly_one_enforced_check_with_the_rule_decision(
    amounts: list[int],
) -> None:
    rec = Records()
    p = proc()
    state, _ = run(
        p,
        p.initial(),
        [rec(POLICIES, e) for e in policy_events(State.TEST, State.CANARY, State.ACTIVE)],
    )
    records = [rec(ACTIONS, action(a, action_name="payments.x")) for a in amounts]
    _, outs = run(p, state, records)
    assert len(outs) == len(amounts)
    for a, r, o in zip(amounts, records, outs, strict=True):
        assert o.event.body["subjectEventId"] == r.event.event_id
        assert o.event.body["decision"] == ("deny" if a > 1000 else "allow")
