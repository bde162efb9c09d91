"""Streaming evaluation: a pure :class:`~streams.processor.Processor` over kernel actions.

The processor consumes two topics. **Policies** (one partition, one ordered
log) move the live policy set; **actions** are evaluated against the set as it
stands when the action is read, and each yields its ``policyCheck`` events --
the enforced one, plus a ``simMode`` one when a ``test`` policy was in scope --
to the policy-checks topic keyed by the action's subject, so checks of one
subject stay in order. The runner (``TransactionalRunner``) commits the checks
and both input offsets in one Kafka transaction: exactly once.

Replay reproduces the records: the ``policyCheckId`` and the envelope's event
id are derived from the action's event id (``check_id_for``), and a stream
check carries the evaluated action's time rather than the clock (the decision
is made *as of* the action), so re-running the same inputs in the same order
yields byte-identical checks. Across the two topics the interleaving of a
policy change with actions is the order the consumer read them, which is as
precise as a stream evaluator can be; the evidence says which policy versions
decided.

``recover`` folds the policies topic up to this group's committed offset on it:
the records after that point will be consumed again by ``step``, and folding
them twice would reject them as stale. A change that is illegal against the
registry (two operators raced) is skipped, exactly as
:func:`~streams.sentinel.lifecycle.fold` does, and counted in the state.

The state is immutable: a policy change builds a new :class:`SentinelState`;
an action leaves it untouched. A ``PolicyRegistry`` inside the state is never
mutated after construction, so the runner's rewind-on-abort is free.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace

from schemas.errors import ValidationError
from schemas.events import Event
from schemas.ids import uuid5_text
from streams.processor import InputRecord, LogReader, OutputRecord
from streams.sentinel.decision import EvaluatedEvent, build_policy_checks
from streams.sentinel.errors import TransitionError
from streams.sentinel.evaluator import Evaluation, evaluate
from streams.sentinel.lifecycle import PolicyChange, RegistryState, apply_change
from streams.sentinel.registry import PolicyRegistry
from streams.sentinel.rules import Activation

__all__ = ["PROCESSOR_NAME", "SentinelProcessor", "SentinelState", "check_event_id"]

PROCESSOR_NAME = "sentinel"
_EVENT_NS = uuid.UUID("9d7c2a51-3f0e-4b8e-a6f4-1f6b0e2d7c35")


def check_event_id(policy_check_id: str) -> str:
    """The envelope id of a stream policyCheck: derived, so replay reproduces it."""
    return uuid5_text(_EVENT_NS, policy_check_id)


@dataclass(frozen=True, slots=True)
class SentinelState:
    registry: PolicyRegistry
    rejected_changes: int = 0

    @classmethod
    def of(cls, state: RegistryState, rejected: int = 0) -> SentinelState:
        return cls(PolicyRegistry(state), rejected)


class SentinelProcessor:
    """Evaluates every kernel action; follows the policies topic in the same stream."""

    def __init__(
        self,
        actions_topic: str,
        policies_topic: str,
        checks_topic: str,
        name: str = PROCESSOR_NAME,
    ) -> None:
        self.actions_topic = actions_topic
        self.policies_topic = policies_topic
        self.checks_topic = checks_topic
        self.name = name
        self.input_topics: Sequence[str] = (actions_topic, policies_topic)

    def recover(self, assigned: Sequence[tuple[str, int]], reader: LogReader) -> SentinelState:
        """The policy set as of this group's committed position on the policies topic.

        Every instance needs the whole policy set, whether or not the policies
        partition is assigned to it, so this reads the topic directly.
        """
        state = RegistryState()
        rejected = 0
        for partition in reader.partitions(self.policies_topic):
            end = reader.committed(self.policies_topic, partition)
            for record in reader.read(self.policies_topic, partition, 0, end):
                state, ok = _fold(state, record.event)
                rejected += not ok
        return SentinelState.of(state, rejected)

    def step(
        self, state: SentinelState, record: InputRecord
    ) -> tuple[SentinelState, Sequence[OutputRecord]]:
        event = record.event
        if record.topic == self.policies_topic:
            if event.event_type != "policyChange":
                return state, ()
            new, ok = _fold(state.registry.state, event)
            if not ok:
                return replace(state, rejected_changes=state.rejected_changes + 1), ()
            return SentinelState.of(new, state.rejected_changes), ()
        if event.event_type != "kernelAction":
            raise ValidationError(
                f"the actions topic carries kernelAction, not {event.event_type}",
                field="eventType",
            )
        checks = policy_checks_for(state.registry, record)
        key = event.subject.encode()
        return state, [OutputRecord(self.checks_topic, key, c) for c in checks]


def evaluate_record(registry: PolicyRegistry, record: InputRecord) -> Evaluation:
    event = record.event
    sample_key = event.body.get("requestId") or event.event_id
    return evaluate(registry.policy_set, Activation.of_event(event), sample_key)


def policy_checks_for(registry: PolicyRegistry, record: InputRecord) -> list[Event]:
    """The stream policyCheck(s) of one action record, with deterministic ids."""
    event = record.event
    evaluation = evaluate_record(registry, record)
    evaluated = EvaluatedEvent(event.event_id, event.subject, record.position)
    return build_policy_checks(
        evaluation,
        evaluated,
        mode="stream",
        request_id=event.body.get("requestId"),
        deterministic_ids=True,
        ts_ms=event.ts_ms,
        event_id_for=check_event_id,
    )


def _fold(state: RegistryState, event: Event) -> tuple[RegistryState, bool]:
    try:
        return apply_change(state, PolicyChange.from_event(event)), True
    except (TransitionError, ValidationError, KeyError):
        return state, False
