"""The evaluator: one action against the live policy set. Pure: no I/O, no clock.

1. **Scope.** :class:`PolicySet` indexes compiled policies by event type, then
   by literal action name; policies whose action scope is a glob (or empty) sit
   in a per-event-type list checked by one precompiled regex each. A policy for
   another event type or another literal action is never looked at, so cost
   grows with the policies that could apply, not with the registry.
2. **Roles.** ``active`` policies are enforced. A ``canary`` version is enforced
   for the requests its sample picks -- ``uint32(SHA-256(key)[0:4]) / 2^32 <
   percent/100`` -- and then the active version of the same policy is
   evaluated beside it as a shadow; otherwise the roles swap. ``test``
   versions are always simulated. Shadow and simulated results never touch
   the enforced decision.
3. **Results.** Each rule matches, does not match, or errors. An enforced
   error contributes the policy's fallback (deny by default): fail closed. A
   simulated error contributes nothing: fail open, simulation only.
4. **Decision.** Precedence deny > quarantine > remediate > escalate > allow
   over the enforced contributions; nothing contributes -> allow. Among the
   policies that contributed the winning effect, the decider is the most
   severe, then the lowest ``(id, version)``, so the choice is deterministic.
5. **Simulation.** If any simulated policy is in scope, the same precedence
   over the *candidate* view -- each policy id's newest live version, test
   errors failing open -- gives ``sim_decision`` (a ``simMode`` policyCheck).

The rationale is rendered from the decider's template over the values this
evaluation recorded; there is no other explaining code path.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from streams.sentinel.policy import Effect, Policy, Severity, State, glob_regex
from streams.sentinel.rationale import RationaleTemplate, compile_template
from streams.sentinel.rules import (
    Activation,
    AttrPath,
    CompiledRule,
    compile_rule,
    read_values,
)

__all__ = [
    "PRECEDENCE",
    "CompiledPolicy",
    "Evaluation",
    "Outcome",
    "PolicyResult",
    "PolicySet",
    "Role",
    "canary_sampled",
    "compile_policy",
    "evaluate",
]

PRECEDENCE: tuple[Effect, ...] = (
    Effect.DENY,
    Effect.QUARANTINE,
    Effect.REMEDIATE,
    Effect.ESCALATE,
    Effect.ALLOW,
)
_RANK = {e: i for i, e in enumerate(PRECEDENCE)}
_SEVERITY = {Severity.CRITICAL: 0, Severity.HIGH: 1, Severity.MEDIUM: 2, Severity.LOW: 3}
_GLOB_CHARS = re.compile(r"[*?\[]")
_LIVE = (State.TEST, State.CANARY, State.ACTIVE)


class Outcome(StrEnum):
    MATCHED = "matched"
    NOT_MATCHED = "not_matched"
    ERROR = "error"


class Role(StrEnum):
    ENFORCED = "enforced"
    SHADOW = "shadow"  # canary not sampled, or the active version beside a sampled canary
    SIMULATED = "simulated"  # test state


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    policy: Policy
    rule: CompiledRule
    template: RationaleTemplate
    paths: tuple[AttrPath, ...]
    subjects: re.Pattern[str] | None
    actors: re.Pattern[str] | None
    actions: re.Pattern[str] | None

    def in_scope(self, values: Mapping[str, Any]) -> bool:
        return (
            (self.actions is None or self.actions.fullmatch(values["action"]) is not None)
            and (self.subjects is None or self.subjects.fullmatch(values["subject"]) is not None)
            and (self.actors is None or self.actors.fullmatch(values["actor"]) is not None)
        )


def compile_policy(policy: Policy) -> CompiledPolicy:
    """Compile rule and rationale; raises the create-time validation errors."""
    rule = compile_rule(policy.rule)
    template = compile_template(policy.rationale)
    paths = tuple(dict.fromkeys((*rule.paths, *template.paths)))
    s = policy.scope
    return CompiledPolicy(
        policy,
        rule,
        template,
        paths,
        glob_regex(s.subjects),
        glob_regex(s.actors),
        glob_regex(s.actions),
    )


class PolicySet:
    """An immutable, indexed set of live policy versions (test, canary, active)."""

    def __init__(self, policies: Iterable[CompiledPolicy]) -> None:
        self._literal: dict[tuple[str, str], list[CompiledPolicy]] = defaultdict(list)
        self._glob: dict[str, list[CompiledPolicy]] = defaultdict(list)
        self.policies = sorted(
            (p for p in policies if p.policy.state in _LIVE), key=lambda p: p.policy.key
        )
        for cp in self.policies:
            actions = cp.policy.scope.actions
            for event_type in cp.policy.scope.event_types:
                if actions and not any(_GLOB_CHARS.search(a) for a in actions):
                    for action in actions:
                        self._literal[(event_type, action)].append(cp)
                else:
                    self._glob[event_type].append(cp)

    def __len__(self) -> int:
        return len(self.policies)

    def in_scope(self, values: Mapping[str, Any]) -> list[CompiledPolicy]:
        key = (values["eventType"], values["action"])
        found = [*self._literal.get(key, ()), *self._glob.get(key[0], ())]
        found.sort(key=lambda p: p.policy.key)
        return [p for p in found if p.in_scope(values)]


def canary_sampled(sample_key: str, percent: float) -> bool:
    """Deterministic: the same request is always in, or always out of, the canary."""
    head = hashlib.sha256(sample_key.encode()).digest()[:4]
    return int.from_bytes(head, "big") / 2**32 < percent / 100


@dataclass(slots=True)
class PolicyResult:
    """One policy's result. Built by the evaluator, which sets ``reason`` once the
    decision is known (in place: ``dataclasses.replace`` doubled the cost of a
    decision); read-only after :func:`evaluate` returns."""

    policy_id: str
    version: int
    state: State
    role: Role
    severity: Severity
    outcome: Outcome
    effect: Effect | None  # what it contributes: its effect if matched, its fallback if an
    # enforced error, None otherwise
    error: str | None
    values: dict[str, Any]
    missing: tuple[str, ...]
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "policyId": self.policy_id,
            "version": self.version,
            "state": self.state.value,
            "role": self.role.value,
            "severity": self.severity.value,
            "result": self.outcome.value,
            "effect": None if self.effect is None else self.effect.value,
            "error": self.error,
            "valuesRead": self.values,
            "missing": list(self.missing),
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class Evaluation:
    decision: Effect
    deciding: PolicyResult | None
    rationale: str
    results: tuple[PolicyResult, ...]
    sim_decision: Effect | None = None
    sim_deciding: PolicyResult | None = None
    sim_rationale: str | None = None

    @property
    def allowed(self) -> bool:
        return self.decision is Effect.ALLOW

    @property
    def errors(self) -> tuple[PolicyResult, ...]:
        return tuple(r for r in self.results if r.outcome is Outcome.ERROR)


def evaluate(policies: PolicySet, activation: Activation, sample_key: str) -> Evaluation:
    """Decide ``activation`` against ``policies``; ``sample_key`` drives canary sampling."""
    candidates = policies.in_scope(activation.values)
    roles = _roles(candidates, sample_key)
    raw = [_run(cp, role, activation) for cp, role in zip(candidates, roles, strict=True)]
    enforced = [r for r in raw if r.role is Role.ENFORCED]
    decision, deciding = _decide(enforced)
    by_key = {(r.policy_id, r.version): cp for r, cp in zip(raw, candidates, strict=True)}
    rationale = _rationale(decision, deciding, by_key, len(raw))
    sim_decision = sim_deciding = sim_rationale = None
    if any(r.role is Role.SIMULATED for r in raw):
        sim_decision, sim_deciding = _decide(_candidate_view(raw))
        sim_rationale = _rationale(sim_decision, sim_deciding, by_key, len(raw))
    for r in raw:
        r.reason = _reason(r, decision, deciding)
    results = tuple(raw)
    return Evaluation(
        decision, deciding, rationale, results, sim_decision, sim_deciding, sim_rationale
    )


def _roles(candidates: Sequence[CompiledPolicy], sample_key: str) -> list[Role]:
    canary_ids = {
        cp.policy.policy_id: cp.policy for cp in candidates if cp.policy.state is State.CANARY
    }
    sampled = {pid: canary_sampled(sample_key, p.canary_percent) for pid, p in canary_ids.items()}
    roles = []
    for cp in candidates:
        p = cp.policy
        if p.state is State.TEST:
            roles.append(Role.SIMULATED)
        elif p.state is State.CANARY:
            roles.append(Role.ENFORCED if sampled[p.policy_id] else Role.SHADOW)
        else:
            roles.append(Role.SHADOW if sampled.get(p.policy_id) else Role.ENFORCED)
    return roles


def _run(cp: CompiledPolicy, role: Role, activation: Activation) -> PolicyResult:
    p = cp.policy
    outcome = cp.rule.evaluate(activation)
    present, missing = read_values(cp.paths, activation)
    if outcome.error is not None:
        kind = Outcome.ERROR
        # fail closed for every non-simulated role: a shadow reports what it *would* enforce
        effect = None if role is Role.SIMULATED else p.fallback
    elif outcome.matched:
        kind, effect = Outcome.MATCHED, p.effect
    else:
        kind, effect = Outcome.NOT_MATCHED, None
    return PolicyResult(
        p.policy_id,
        p.version,
        p.state,
        role,
        p.severity,
        kind,
        effect,
        outcome.error,
        present,
        tuple(missing),
    )


def _decide(results: Iterable[PolicyResult]) -> tuple[Effect, PolicyResult | None]:
    best: PolicyResult | None = None
    for r in results:
        if r.effect is None:
            continue
        if best is None or _order(r) < _order(best):
            best = r
    return (Effect.ALLOW, None) if best is None else (best.effect or Effect.ALLOW, best)


def _order(r: PolicyResult) -> tuple[int, int, str, int]:
    assert r.effect is not None
    return (_RANK[r.effect], _SEVERITY[r.severity], r.policy_id, r.version)


def _candidate_view(results: Sequence[PolicyResult]) -> list[PolicyResult]:
    """Each policy id's newest live version: what enforcement would be if promoted."""
    newest: dict[str, PolicyResult] = {}
    for r in results:
        if r.policy_id not in newest or r.version > newest[r.policy_id].version:
            newest[r.policy_id] = r
    return list(newest.values())


def _rationale(
    decision: Effect,
    deciding: PolicyResult | None,
    compiled: dict[tuple[str, int], CompiledPolicy],
    considered: int,
) -> str:
    if deciding is None:
        return f"allow: no policy matched ({considered} in scope evaluated)"
    if deciding.outcome is Outcome.ERROR:
        return (
            f"{decision.value}: policy {deciding.policy_id} v{deciding.version} failed to "
            f"evaluate ({deciding.error}); failing closed to its fallback"
        )
    cp = compiled[(deciding.policy_id, deciding.version)]
    facts = {
        "policy.id": cp.policy.policy_id,
        "policy.name": cp.policy.name,
        "policy.version": cp.policy.version,
        "policy.severity": cp.policy.severity.value,
        "effect": decision.value,
    }
    return cp.template.render(facts, deciding.values)


def _reason(r: PolicyResult, decision: Effect, deciding: PolicyResult | None) -> str:
    if r.role is not Role.ENFORCED:
        would = "error (fails open)" if r.role is Role.SIMULATED and r.error else r.outcome.value
        if r.effect is not None:
            would = f"{would} -> {r.effect.value}"
        return f"{r.role.value}, not enforced: {would}"
    if r is deciding:
        how = "fallback after error" if r.outcome is Outcome.ERROR else "matched"
        return f"decided {decision.value} ({how}, highest precedence)"
    if r.effect is None:
        return "not matched"
    assert deciding is not None
    lost = "tied, outranked by severity or id" if r.effect is decision else "lower precedence"
    return (
        f"{r.effect.value} lost to {decision.value} of "
        f"{deciding.policy_id} v{deciding.version} ({lost})"
    )
