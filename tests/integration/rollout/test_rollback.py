"""On real Kafka: a canary that denies too much, on a live stream, is rolled back by its gates."""

from __future__ import annotations

import uuid
from dataclasses import replace

from ops import metrics
from ops.bootstrap import Kernel
from schemas.events import Event, new_event
from streams.rollout.processor import ROLLOUT_ACTOR
from streams.sentinel.lifecycle import (
    PolicyChange,
    RegistryState,
    apply_change,
    plan_create,
    plan_transition,
    plan_version,
)
from streams.sentinel.policy import Effect, Policy, Scope, Severity, State
from tests.integration.core.test_producer import read_all

GATES = (("consecutiveFailures", 2), ("minSample", 30), ("windowS", 10))


def _rollout_of(pid: str) -> list[Event]:
    """v1 active (denies almost nothing); v2 in canary at 50%, denying most transfers."""
    v1 = Policy(pid, 1, "Huge transfers", Severity.LOW, Scope(("kernelAction",),
                actions=("payments.*",)), "context.amount > 1000000", Effect.DENY,
                "{actor} moved {context.amount}")  # fmt: skip
    v2 = replace(v1, rule="context.amount > 10", rollout=GATES)
    state, events = RegistryState(), []

    def take(change: PolicyChange) -> None:
        nonlocal state
        state = apply_change(state, change)
        events.append(change.to_event())

    take(plan_create(state, v1, "alice"))
    for target in (State.TEST, State.CANARY, State.ACTIVE):
        take(plan_transition(state, pid, 1, target, "bob", canary_percent=10.0))
    take(plan_version(state, v2, "alice"))
    take(plan_transition(state, pid, 2, State.TEST, "bob"))
    take(plan_transition(state, pid, 2, State.CANARY, "bob", canary_percent=50.0))
    return events


def test_a_canary_that_denies_too_much_is_rolled_back_naming_the_gate(kernel: Kernel) -> None:
    pid = f"roll-{uuid.uuid4().hex[:8]}"
    producer = kernel.producer()
    producer.publish_batch(_rollout_of(pid))
    start = new_event("kernelAction", "a", "s", {"action": "x"}).ts_ms - 60_000
    send = {"action": "payments.send", "context": {"amount": 500}}
    actions = [  # 400 actions over the last minute
        replace(new_event("kernelAction", f"agent:{i % 3}", f"acct-{i % 5}", send), ts_ms=t)
        for i, t in enumerate(range(start, start + 400 * 150, 150))
    ]
    producer.publish_batch(actions)
    sentinel = kernel.sentinel()
    sentinel.run_until_idle(idle_s=0.5)
    sentinel.close()

    label = f"{pid}@2"
    before = metrics.CANARY_ROLLBACKS.labels(label, "disagreement")._value.get()
    rollout = kernel.rollout()
    rollout.run_until_idle(idle_s=0.5)
    rollout.close()

    changes = [
        PolicyChange.from_event(e)
        for _, e, _ in read_all(kernel, kernel.names.policies)
        if e.event_type == "policyChange" and e.actor == ROLLOUT_ACTOR
    ]
    assert len(changes) == 1, changes
    (rollback,) = changes
    assert (rollback.policy.policy_id, rollback.policy.version) == (pid, 2)
    assert (rollback.from_state, rollback.policy.state) == (State.CANARY, State.DRAFT)
    reason = rollback.reason or ""
    assert "disagreement 1 > 0.05" in reason and "window" in reason, reason
    after = metrics.CANARY_ROLLBACKS.labels(label, "disagreement")._value.get()
    assert after == before + 1  # what KernelCanaryRolledBack reads

    # a second run over the same log (a restart from the committed positions,
    # or a new instance) takes no second step: the canary is no longer in canary
    again = kernel.rollout()
    again.run_until_idle(idle_s=0.5)
    again.close()
    rollbacks = [
        e for _, e, _ in read_all(kernel, kernel.names.policies) if e.actor == ROLLOUT_ACTOR
    ]
    assert len(rollbacks) == 1
