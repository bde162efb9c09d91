"""The rollout controller as a stream step: policyChecks in, rollbacks and promotions out.

**Input.** The policy-checks topic. Every policyCheck (v3) names each canary in
scope with the two decisions the gates compare (its ``rollout`` field, built by
:mod:`streams.sentinel.canary` from the evaluation itself): each becomes one
:class:`~streams.rollout.gates.Observation` of that canary, at the check's own
time. ``simMode`` views repeat the enforced check's canaries and are skipped.
Sync and stream checks both count: a canary is judged on all its traffic.

**Policies** are a broadcast input, folded as the sentinel folds them, so the
step knows which versions are still in canary, their severity and their gate
settings (the policy's ``rollout`` object, else the defaults).

**Output.** When a canary's gates fail for ``consecutiveFailures`` windows in a
row, a ``policyChange`` moving it canary -> draft (the lifecycle's rollback),
its reason naming each failing gate with its value and threshold and the window;
the same report, as JSON, in the event's metadata (``rolloutReport``). When they
have passed for ``promoteAfterS``, a LOW or MEDIUM canary is moved to active.
The change names the state it moves from, so a change that lost a race with an
operator is refused by every fold rather than applied out of order. Event ids
derive from the canary and the action, and the time is the observation's: the
same log gives the same changes.

**Instances.** One. The gates need every observation of a canary, and checks
are keyed by subject over several partitions; a second instance would judge
half the traffic. (A restart re-judges from the positions it committed: the
window restarts empty, which delays a verdict, never invents one.)
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from schemas.errors import ValidationError
from schemas.ids import uuid5_text
from streams.processor import InputRecord, LogReader, OutputRecord
from streams.rollout.controller import Action, CanaryState, Step, observe
from streams.rollout.gates import Observation, Thresholds
from streams.sentinel.errors import TransitionError
from streams.sentinel.lifecycle import ChangeKind, PolicyChange, RegistryState, apply_change
from streams.sentinel.policy import Policy, State

__all__ = ["PROCESSOR_NAME", "ROLLOUT_ACTOR", "RolloutProcessor", "RolloutState"]

PROCESSOR_NAME = "rollout"
ROLLOUT_ACTOR = "kernel:rollout-controller"
_NS = uuid.UUID("4b0c3f7e-96a1-4d55-8e0e-2f1d6a9c7b13")

CanaryKey = tuple[str, int]


@dataclass(frozen=True, slots=True)
class RolloutState:
    registry: RegistryState = field(default_factory=RegistryState)
    canaries: Mapping[CanaryKey, CanaryState] = field(default_factory=lambda: MappingProxyType({}))
    steps: tuple[tuple[CanaryKey, Step], ...] = ()  # the last step's verdicts (metrics)
    rejected_changes: int = 0


class RolloutProcessor:
    def __init__(self, checks_topic: str, policies_topic: str, name: str = PROCESSOR_NAME) -> None:
        self.checks_topic = checks_topic
        self.policies_topic = policies_topic
        self.name = name
        self.input_topics: Sequence[str] = (checks_topic,)
        self.broadcast_topics: Sequence[str] = (policies_topic,)

    def recover(self, assigned: Sequence[tuple[str, int]], reader: LogReader) -> RolloutState:
        """Empty windows; the policies are folded next, by the runner, through absorb."""
        return RolloutState()

    def initial(self) -> RolloutState:
        return RolloutState()

    def absorb(self, state: RolloutState, record: InputRecord) -> RolloutState:
        event = record.event
        if event.event_type != "policyChange":
            return state  # simulations and anything else on the policies topic
        try:
            change = PolicyChange.from_event(event)
            registry = apply_change(state.registry, change)
        except (TransitionError, ValidationError, KeyError):
            return replace(state, rejected_changes=state.rejected_changes + 1)
        return replace(state, registry=registry)

    def step(
        self, state: RolloutState, record: InputRecord
    ) -> tuple[RolloutState, Sequence[OutputRecord]]:
        event = record.event
        if event.event_type != "policyCheck":
            raise ValidationError(
                f"the policy-checks topic carries policyCheck, not {event.event_type}",
                field="eventType",
            )
        body = event.body
        views = body.get("rollout") or []
        if body.get("simMode") or not views:
            return (replace(state, steps=()) if state.steps else state), []
        canaries = dict(state.canaries)
        outputs: list[OutputRecord] = []
        steps: list[tuple[CanaryKey, Step]] = []
        for view in views:
            key = (str(view["policyId"]), int(view["canaryVersion"]))
            policy = self._canary(state.registry, key)
            if policy is None:
                canaries.pop(key, None)  # rolled back, promoted or changed by hand
                continue
            thresholds = Thresholds.from_spec(dict(policy.rollout))
            current = canaries.get(key) or CanaryState.start(thresholds)
            seen = Observation(
                ts=event.ts_ms / 1000,
                candidate_denies=view["candidateDecision"] != "allow",
                active_denies=view["activeDecision"] != "allow",
                error=view.get("candidateError") is not None,
            )
            canaries[key], step = observe(current, seen, policy.severity.value, thresholds)
            if step is None:
                continue
            steps.append((key, step))
            if step.action in (Action.ROLLBACK, Action.PROMOTE):
                outputs.append(self._change(policy, step, event.ts_ms))
        return (
            replace(state, canaries=MappingProxyType(canaries), steps=tuple(steps)),
            outputs,
        )

    @staticmethod
    def _canary(registry: RegistryState, key: CanaryKey) -> Policy | None:
        record = registry.get(key[0])
        policy = None if record is None else record.version(key[1])
        return policy if policy is not None and policy.state is State.CANARY else None

    def _change(self, policy: Policy, step: Step, ts_ms: int) -> OutputRecord:
        to_state = State.DRAFT if step.action is Action.ROLLBACK else State.ACTIVE
        change = PolicyChange(
            ChangeKind.TRANSITIONED,
            policy.with_state(to_state),
            State.CANARY,
            ROLLOUT_ACTOR,
            step.reason + _window(step),
        )
        event = change.to_event()
        label = f"{policy.policy_id}/{policy.version}/{step.action.value}"
        report: dict[str, Any] = {
            **step.report.to_json(),
            "action": step.action.value,
            "consecutiveFailures": step.consecutive_failures,
            "passingS": step.passing_s,
        }
        event = replace(
            event,
            event_id=uuid5_text(_NS, label),
            ts_ms=ts_ms,
            metadata={"rolloutReport": json.dumps(report, sort_keys=True)},
        )
        return OutputRecord(self.policies_topic, policy.policy_id.encode(), event)


def _window(step: Step) -> str:
    r = step.report
    if r.window_start is None or r.window_end is None:
        return ""
    return f"; window {r.window_start:.0f}s..{r.window_end:.0f}s (unix time)"
