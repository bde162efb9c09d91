"""Policy lifecycle: the registry state as a pure fold over ``policyChange`` events.

States are per policy *version*: a new version starts in ``draft`` while an
older one stays ``active``. Legal moves::

    draft -> test -> canary -> active -> deprecated
    test | canary | active -> draft          (rollback)

At most one version of a policy is in ``test``, ``canary`` or ``active`` at a
time, so "the canary of policy P" is well defined. Activating a version
deprecates the previously active one in the same step (recorded in the
history as ``superseded``), so a policy never has two enforced versions.

Each change names the state it moves *from*: a change computed against a stale
view of the registry (two operators racing) is rejected rather than applied
out of order. The same :func:`apply_change` validates a change before the CLI
publishes it and folds the log when the registry is rebuilt, so what was
accepted and what is replayed cannot disagree. On replay, :func:`fold` skips
an illegal change (it can only reach the log through a race) and reports it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Protocol

from schemas.errors import ValidationError
from schemas.events import Event, new_event
from streams.sentinel.errors import TransitionError
from streams.sentinel.policy import Policy, Severity, State

__all__ = [
    "TRANSITIONS",
    "ActivationApprovals",
    "ChangeKind",
    "HistoryEntry",
    "PolicyChange",
    "PolicyRecord",
    "RegistryState",
    "apply_change",
    "fold",
    "needs_approvals",
    "plan_create",
    "plan_transition",
    "plan_version",
]

TRANSITIONS: Mapping[State, frozenset[State]] = {
    State.DRAFT: frozenset({State.TEST}),
    State.TEST: frozenset({State.CANARY, State.DRAFT}),
    State.CANARY: frozenset({State.ACTIVE, State.DRAFT}),
    State.ACTIVE: frozenset({State.DEPRECATED, State.DRAFT}),
    State.DEPRECATED: frozenset(),
}
_EXCLUSIVE = (State.TEST, State.CANARY, State.ACTIVE)


class ChangeKind(StrEnum):
    CREATED = "created"
    VERSIONED = "versioned"
    TRANSITIONED = "transitioned"


@dataclass(frozen=True, slots=True)
class PolicyChange:
    """One ``policyChange`` event: its body plus the envelope's actor and time."""

    kind: ChangeKind
    policy: Policy  # the full definition, carrying ``to_state``
    from_state: State | None
    actor: str
    reason: str | None = None
    ts_ms: int = 0
    event_id: str | None = None

    @property
    def to_state(self) -> State:
        return self.policy.state

    def body(self) -> dict[str, Any]:
        return {
            "policyId": self.policy.policy_id,
            "version": self.policy.version,
            "change": self.kind.value,
            "fromState": None if self.from_state is None else self.from_state.value,
            "toState": self.to_state.value,
            "policy": self.policy.to_json(),
            "reason": self.reason,
        }

    def to_event(self) -> Event:
        """A new ``policyChange`` event keyed by the policy id (its order)."""
        return new_event("policyChange", self.actor, self.policy.policy_id, self.body())

    @classmethod
    def from_event(cls, event: Event) -> PolicyChange:
        body = event.body
        if event.event_type != "policyChange":
            raise ValidationError(f"expected policyChange, got {event.event_type}")
        policy = Policy.from_json(body["policy"])
        try:
            kind = ChangeKind(body["change"])
            to_state = State(body["toState"])
            from_state = None if body.get("fromState") is None else State(body["fromState"])
        except ValueError as exc:
            raise ValidationError(f"policyChange: {exc}", field="body.change") from exc
        if (policy.policy_id, policy.version, policy.state) != (
            body["policyId"],
            body["version"],
            to_state,
        ):
            raise ValidationError(
                "policyId/version/toState disagree with the policy they carry", field="body.policy"
            )
        return cls(
            kind=kind,
            policy=policy,
            from_state=from_state,
            actor=event.actor,
            reason=body.get("reason"),
            ts_ms=event.ts_ms,
            event_id=event.event_id,
        )


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    version: int
    change: str  # a ChangeKind value, or "superseded"
    from_state: State | None
    to_state: State
    actor: str
    ts_ms: int
    reason: str | None
    event_id: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "change": self.change,
            "fromState": None if self.from_state is None else self.from_state.value,
            "toState": self.to_state.value,
            "actor": self.actor,
            "ts": self.ts_ms,
            "reason": self.reason,
            "eventId": self.event_id,
        }


@dataclass(frozen=True, slots=True)
class PolicyRecord:
    """Every version of one policy (index ``version - 1``) and its history."""

    policy_id: str
    versions: tuple[Policy, ...]
    history: tuple[HistoryEntry, ...]

    @property
    def latest(self) -> Policy:
        return self.versions[-1]

    def version(self, number: int) -> Policy | None:
        return self.versions[number - 1] if 1 <= number <= len(self.versions) else None

    def in_state(self, state: State) -> Policy | None:
        return next((p for p in self.versions if p.state is state), None)


@dataclass(frozen=True, slots=True)
class RegistryState:
    policies: Mapping[str, PolicyRecord] = field(default_factory=dict)

    def get(self, policy_id: str) -> PolicyRecord | None:
        return self.policies.get(policy_id)

    def live(self) -> list[Policy]:
        """The versions the evaluator runs: test (simulated), canary and active."""
        return [p for r in self.policies.values() for p in r.versions if p.state in _EXCLUSIVE]


def needs_approvals(change: PolicyChange) -> bool:
    """A HIGH or CRITICAL version becoming active: the change k-of-n approvals guard."""
    return (
        change.kind is ChangeKind.TRANSITIONED
        and change.to_state is State.ACTIVE
        and change.policy.severity in (Severity.HIGH, Severity.CRITICAL)
    )


class ActivationApprovals(Protocol):
    """The k-of-n approval rule (:class:`streams.approvals.log.ActivationGate`)."""

    def refusal(self, change: PolicyChange) -> str | None:
        """Why ``change`` may not happen without approvals (None: it may)."""
        ...


def apply_change(
    state: RegistryState, change: PolicyChange, approvals: ActivationApprovals | None = None
) -> RegistryState:
    """The registry after ``change``; :class:`TransitionError` if it is illegal.

    With ``approvals``, a change it refuses (a HIGH/CRITICAL activation without
    a quorum) is illegal too; without, no approval is asked for.
    """
    policy = change.policy
    record = state.get(policy.policy_id)
    entry = HistoryEntry(
        policy.version,
        change.kind.value,
        change.from_state,
        change.to_state,
        change.actor,
        change.ts_ms,
        change.reason,
        change.event_id,
    )
    if change.kind is ChangeKind.CREATED:
        if record is not None:
            raise TransitionError(f"policy {policy.policy_id!r} already exists; add a version")
        _expect_new(change, 1)
        new = PolicyRecord(policy.policy_id, (policy,), (entry,))
    elif change.kind is ChangeKind.VERSIONED:
        if record is None:
            raise TransitionError(f"policy {policy.policy_id!r} does not exist; create it first")
        _expect_new(change, len(record.versions) + 1)
        new = replace(record, versions=(*record.versions, policy), history=(*record.history, entry))
    else:
        new = _transition(record, change, entry)
        refusal = None if approvals is None else approvals.refusal(change)
        if refusal is not None:
            raise TransitionError(refusal)
    return RegistryState({**state.policies, policy.policy_id: new})


def fold(
    changes: Iterable[PolicyChange],
    state: RegistryState | None = None,
    approvals: ActivationApprovals | None = None,
) -> tuple[RegistryState, list[tuple[PolicyChange, str]]]:
    """Fold a log of changes; illegal ones are skipped and returned with the reason."""
    current = state or RegistryState()
    rejected: list[tuple[PolicyChange, str]] = []
    for change in changes:
        try:
            current = apply_change(current, change, approvals)
        except TransitionError as exc:
            rejected.append((change, str(exc)))
    return current, rejected


def plan_create(state: RegistryState, policy: Policy, actor: str) -> PolicyChange:
    change = PolicyChange(ChangeKind.CREATED, policy.with_state(State.DRAFT, 0.0), None, actor)
    apply_change(state, change)
    return change


def plan_version(state: RegistryState, policy: Policy, actor: str) -> PolicyChange:
    """A new version of an existing policy; its number is assigned here."""
    record = state.get(policy.policy_id)
    number = 1 if record is None else len(record.versions) + 1
    numbered = replace(policy, version=number, state=State.DRAFT, canary_percent=0.0)
    change = PolicyChange(ChangeKind.VERSIONED, numbered, None, actor)
    apply_change(state, change)
    return change


def plan_transition(
    state: RegistryState,
    policy_id: str,
    version: int,
    to_state: State,
    actor: str,
    *,
    reason: str | None = None,
    canary_percent: float | None = None,
    approvals: ActivationApprovals | None = None,
) -> PolicyChange:
    record = state.get(policy_id)
    current = None if record is None else record.version(version)
    if current is None:
        raise TransitionError(f"policy {policy_id!r} has no version {version}")
    change = PolicyChange(
        ChangeKind.TRANSITIONED,
        current.with_state(to_state, canary_percent),
        current.state,
        actor,
        reason,
    )
    apply_change(state, change, approvals)
    return change


def _expect_new(change: PolicyChange, number: int) -> None:
    if change.policy.version != number:
        raise TransitionError(
            f"policy {change.policy.policy_id!r}: expected version {number}, "
            f"got {change.policy.version}"
        )
    if change.from_state is not None or change.to_state is not State.DRAFT:
        raise TransitionError("a new policy version starts in draft")


def _transition(
    record: PolicyRecord | None, change: PolicyChange, entry: HistoryEntry
) -> PolicyRecord:
    policy = change.policy
    current = None if record is None else record.version(policy.version)
    if record is None or current is None:
        raise TransitionError(f"policy {policy.policy_id!r} has no version {policy.version}")
    where = f"policy {policy.policy_id!r} v{policy.version}"
    if change.from_state is not current.state:
        raise TransitionError(
            f"{where} is {current.state.value}, not {change.from_state}; "
            "re-read the registry and retry"
        )
    if change.to_state not in TRANSITIONS[current.state]:
        legal = ", ".join(sorted(s.value for s in TRANSITIONS[current.state])) or "none"
        raise TransitionError(
            f"{where}: {current.state.value} -> {change.to_state.value} is not allowed "
            f"(from {current.state.value}: {legal})"
        )
    if policy.with_state(current.state, current.canary_percent) != current:
        raise TransitionError(f"{where}: a transition cannot change the policy; add a version")
    if change.to_state is State.CANARY and not 0 < policy.canary_percent <= 100:
        raise TransitionError(f"{where}: canary needs a canary percent in (0, 100]")
    versions = list(record.versions)
    history = [*record.history]
    if change.to_state in (State.TEST, State.CANARY):
        other = record.in_state(change.to_state)
        if other is not None:
            raise TransitionError(
                f"{where}: v{other.version} is already {change.to_state.value}; "
                "promote or roll it back first"
            )
    old = record.in_state(State.ACTIVE) if change.to_state is State.ACTIVE else None
    if old is not None:
        versions[old.version - 1] = old.with_state(State.DEPRECATED)
    versions[policy.version - 1] = policy
    history.append(entry)
    if old is not None:
        history.append(
            replace(
                entry,
                version=old.version,
                change="superseded",
                from_state=State.ACTIVE,
                to_state=State.DEPRECATED,
            )
        )
    return PolicyRecord(record.policy_id, tuple(versions), tuple(history))
