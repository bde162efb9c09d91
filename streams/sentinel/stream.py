"""Streaming evaluation: a pure :class:`~streams.processor.Processor` over kernel actions.

**Actions** (the input topic, split across instances by the consumer group)
are evaluated against the live policy set as it stands when the action is
read, and each yields its ``policyCheck`` events -- the enforced one, plus a
``simMode`` one when a ``test`` policy was in scope -- to the policy-checks
topic keyed by the action's subject, so checks of one subject stay in order.
The runner (``TransactionalRunner``) commits the checks and the input offsets
in one Kafka transaction: exactly once.

**Policies** are a *broadcast* input (``broadcast_topics``): every instance
needs the whole policy set, whichever action partitions it holds, so the
runner reads every partition of the policies topic outside the consumer group
-- from the beginning through :meth:`SentinelProcessor.absorb` after
``recover``, then whatever arrives before each transaction. That is what lets
several sentinel instances share the actions and still all see every policy
change. A change that is illegal against the registry (two operators raced)
is skipped, exactly as :func:`~streams.sentinel.lifecycle.fold` does, and
counted in the state.

Replay reproduces the records: the ``policyCheckId`` and the envelope's event
id are derived from the action's event id (``check_id_for``), and a stream
check carries the evaluated action's time rather than the clock (the decision
is made *as of* the action), so re-running the same inputs against the same
policy set yields byte-identical checks. The interleaving of a policy change
with actions is when the runner drained the policies topic, which is as
precise as a stream evaluator can be; the evidence says which policy versions
decided.

**What is refused** (dead-lettered by the runner, never decided): a record of
another type on the actions topic, and a duplicate eventId within the dedup
window of its partition (:mod:`streams.dedup`) -- the same window, over the
same records, as the chain signer's, so an action the signer refuses as a
duplicate is refused here too and no decision lacks its audit link
(``docs/decisions/0010``).

The state is immutable apart from the dedup memo (whose answers a step never
changes, see :mod:`streams.dedup`): a policy change builds a new
:class:`SentinelState`; an action leaves it untouched. A ``PolicyRegistry``
inside the state is never mutated after construction, so the runner's
rewind-on-abort is free.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from schemas.errors import ValidationError
from schemas.events import Event
from schemas.ids import uuid5_text
from streams.approvals.log import ActivationGate, ApprovalsLog
from streams.dedup import DEFAULT_WINDOW, DuplicateCheck
from streams.processor import InputRecord, LogReader, OutputRecord
from streams.sentinel.decision import EvaluatedEvent, build_policy_checks
from streams.sentinel.errors import TransitionError
from streams.sentinel.evaluator import Evaluation, PolicySet, evaluate
from streams.sentinel.lifecycle import PolicyChange, RegistryState, apply_change, fold
from streams.sentinel.registry import PolicyRegistry
from streams.sentinel.rules import Activation

__all__ = [
    "PROCESSOR_NAME",
    "SentinelProcessor",
    "SentinelState",
    "check_event_id",
    "evaluate_event",
]

PROCESSOR_NAME = "sentinel"
_EVENT_NS = uuid.UUID("9d7c2a51-3f0e-4b8e-a6f4-1f6b0e2d7c35")


def check_event_id(policy_check_id: str) -> str:
    """The envelope id of a stream policyCheck: derived, so replay reproduces it."""
    return uuid5_text(_EVENT_NS, policy_check_id)


@dataclass(frozen=True, slots=True)
class SentinelState:
    registry: PolicyRegistry
    rejected_changes: int = 0
    seen: DuplicateCheck = field(default_factory=DuplicateCheck)
    # k-of-n approvals (issue 12.3), when the approvals topic is broadcast too: the
    # approvals folded so far, and every policy change, refolded when a genesis or a
    # quorum arrives (the two topics interleave arbitrarily)
    approvals: ApprovalsLog | None = None
    changes: tuple[PolicyChange, ...] = ()

    @classmethod
    def of(
        cls, state: RegistryState, rejected: int = 0, seen: DuplicateCheck | None = None
    ) -> SentinelState:
        return cls(PolicyRegistry(state), rejected, DuplicateCheck() if seen is None else seen)


class SentinelProcessor:
    """Evaluates every kernel action; follows the policies topic as a broadcast input."""

    def __init__(
        self,
        actions_topic: str,
        policies_topic: str,
        checks_topic: str,
        name: str = PROCESSOR_NAME,
        dedup_window: int = DEFAULT_WINDOW,
        *,
        approvals_topic: str | None = None,
        approvals_required: bool = False,
    ) -> None:
        """``approvals_topic``: fold HIGH/CRITICAL activations under the k-of-n rule."""
        self.actions_topic = actions_topic
        self.policies_topic = policies_topic
        self.checks_topic = checks_topic
        self.name = name
        self.dedup_window = dedup_window
        self.approvals_topic = approvals_topic
        self.approvals_required = approvals_required
        self.input_topics: Sequence[str] = (actions_topic,)
        self.broadcast_topics: Sequence[str] = (
            (policies_topic,) if approvals_topic is None else (policies_topic, approvals_topic)
        )

    def recover(self, assigned: Sequence[tuple[str, int]], reader: LogReader) -> SentinelState:
        """An empty policy set and the dedup windows of the assigned action partitions.

        The policies are not read here: the runner folds the broadcast topics
        from their beginning through :meth:`absorb` right after this.
        """
        actions = [(t, p) for t, p in assigned if t == self.actions_topic]
        seen = DuplicateCheck.recover(actions, reader, self.dedup_window)
        return self._with_approvals(SentinelState.of(RegistryState(), 0, seen))

    def initial(self) -> SentinelState:
        """No policies, no actions seen (pure drivers, tests)."""
        state = SentinelState.of(RegistryState(), 0, DuplicateCheck(self.dedup_window))
        return self._with_approvals(state)

    def _with_approvals(self, state: SentinelState) -> SentinelState:
        return state if self.approvals_topic is None else replace(state, approvals=ApprovalsLog())

    def absorb(self, state: SentinelState, record: InputRecord) -> SentinelState:
        """Fold one record of the policies (or approvals) topic into the live set (no outputs).

        With approvals, the two broadcast topics interleave arbitrarily (an activation
        may be read before its quorum, or before the registry's genesis), so a genesis
        or a quorum refolds every policy change read so far: the gate compares
        timestamps, so the result does not depend on the interleaving, and equals
        the registry projection's.
        """
        event = record.event
        if state.approvals is not None and record.topic == self.approvals_topic:
            approvals = state.approvals.copy()
            if not approvals.apply(event) or event.body.get("kind") not in ("genesis", "quorum"):
                return replace(state, approvals=approvals)
            rule = ActivationGate(approvals, required=self.approvals_required)
            new, rejected = fold(state.changes, None, rule)
            return replace(
                state, registry=PolicyRegistry(new), approvals=approvals,
                rejected_changes=len(rejected),
            )  # fmt: skip
        if event.event_type != "policyChange":
            return state
        try:
            change = PolicyChange.from_event(event)
        except (ValidationError, KeyError):
            return replace(state, rejected_changes=state.rejected_changes + 1)
        gate: ActivationGate | None = None
        if state.approvals is not None:
            gate = ActivationGate(state.approvals, required=self.approvals_required)
            state = replace(state, changes=(*state.changes, change))
        try:
            new = apply_change(state.registry.state, change, gate)
        except (TransitionError, ValidationError, KeyError):
            return replace(state, rejected_changes=state.rejected_changes + 1)
        return replace(state, registry=PolicyRegistry(new))

    def step(
        self, state: SentinelState, record: InputRecord
    ) -> tuple[SentinelState, Sequence[OutputRecord]]:
        event = record.event
        state.seen.check(record)  # first: every record counts in the window (streams.dedup)
        if event.event_type != "kernelAction":
            raise ValidationError(
                f"the actions topic carries kernelAction, not {event.event_type}",
                field="eventType",
            )
        checks = policy_checks_for(state.registry, record)
        key = event.subject.encode()
        return state, [OutputRecord(self.checks_topic, key, c) for c in checks]


def evaluate_record(registry: PolicyRegistry, record: InputRecord) -> Evaluation:
    return evaluate_event(registry.policy_set, record.event)


def evaluate_event(
    policies: PolicySet, event: Event, activation: Activation | None = None
) -> Evaluation:
    """One action against ``policies``, sampled by its request id (else its event id):
    the stream's evaluation, which simulation over history reuses (passing the
    ``activation`` it built once for several sets)."""
    sample_key = event.body.get("requestId") or event.event_id
    return evaluate(policies, activation or Activation.of_event(event), sample_key)


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
