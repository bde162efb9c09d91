"""The in-memory policy registry the evaluator reads, kept current from policyChange events.

Pure: it folds events handed to it (by the Kafka adapter
:mod:`streams.sentinel.kafka_registry`, a runner, or a test) through
:func:`~streams.sentinel.lifecycle.apply_change` -- the same function that
validated each change before it was published -- and rebuilds the indexed
:class:`~streams.sentinel.policy_index.PolicySet` of live versions after each
change. Changes are rare and rules are compiled once per source text (cached),
so a rebuild costs little; the set is immutable, so an evaluation in flight
keeps the set it started with.

Two failure rules keep it fail-closed:

- an illegal change on the log (two operators raced) is skipped and kept in
  :attr:`PolicyRegistry.rejected`, never half-applied;
- a live version whose rule no longer compiles (an engine upgrade) is kept
  with a rule that always errors, so it enforces its fallback instead of
  silently disappearing from enforcement.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

from schemas.errors import KernelError, ValidationError
from schemas.events import Event
from streams.sentinel.errors import TransitionError
from streams.sentinel.lifecycle import (
    ActivationApprovals,
    PolicyChange,
    RegistryState,
    apply_change,
    needs_approvals,
)
from streams.sentinel.policy import Policy
from streams.sentinel.policy_index import CompiledPolicy, PolicySet, compile_policy
from streams.sentinel.rules import uncompilable_rule

__all__ = ["PolicyRegistry", "compile_live"]


class PolicyRegistry:
    def __init__(
        self,
        state: RegistryState | None = None,
        approvals: ActivationApprovals | None = None,
        approvals_source: Callable[[], ActivationApprovals] | None = None,
    ) -> None:
        """``approvals``: the k-of-n rule for HIGH/CRITICAL activations; or
        ``approvals_source``, called for each such activation to get the rule as of
        now (it reads the approvals topic: a quorum is on the log before the change)."""
        self.state = state or RegistryState()
        self.approvals = approvals
        self.approvals_source = approvals_source
        self.rejected: list[tuple[str | None, str]] = []  # (event id, reason)
        self.applied = 0
        self.policy_set = self._build()

    def apply_event(self, event: Event) -> bool:
        """Fold one policyChange event; False (and recorded) if it was rejected."""
        try:
            change = PolicyChange.from_event(event)
            self.state = apply_change(self.state, change, self._rule(change))
        except (TransitionError, ValidationError) as exc:
            self.rejected.append((event.event_id, str(exc)))
            return False
        self.applied += 1
        self.policy_set = self._build()
        return True

    def apply_events(self, events: Iterable[Event]) -> None:
        """Fold many events, rebuilding the policy set once at the end."""
        for event in events:
            try:
                change = PolicyChange.from_event(event)
                self.state = apply_change(self.state, change, self._rule(change))
                self.applied += 1
            except (TransitionError, ValidationError) as exc:
                self.rejected.append((event.event_id, str(exc)))
        self.policy_set = self._build()

    def _rule(self, change: PolicyChange) -> ActivationApprovals | None:
        if self.approvals is None and self.approvals_source and needs_approvals(change):
            try:
                return self.approvals_source()
            except KernelError as exc:  # fail closed: refused, and a restart re-folds it
                return _Unreadable(f"the approvals could not be read: {exc}")
        return self.approvals

    def _build(self) -> PolicySet:
        return PolicySet(compile_live(p) for p in self.state.live())


class _Unreadable:
    def __init__(self, reason: str) -> None:
        self.reason = reason

    def refusal(self, change: PolicyChange) -> str | None:
        return self.reason


def compile_live(policy: Policy) -> CompiledPolicy:
    """A live version compiled; one whose rule no longer compiles always errors (fails
    closed to its fallback when enforced)."""
    try:
        return compile_policy(policy)
    except ValidationError as exc:
        cp = compile_policy(_placeholder(policy))
        rule = uncompilable_rule(policy.rule, exc.reason)
        return CompiledPolicy(
            policy, rule, cp.template, rule.paths, cp.subjects, cp.actors, cp.actions
        )


def _placeholder(policy: Policy) -> Policy:
    return replace(policy, rule="true", rationale="policy {policy.id} does not compile")
