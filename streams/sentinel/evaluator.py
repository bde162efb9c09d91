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
from functools import lru_cache
from typing import Any

from streams.sentinel.policy import Effect, Policy, Severity, State, glob_regex
from streams.sentinel.rationale import RationaleTemplate, compile_template
from streams.sentinel.rules import (
    BATCH_MAX_CHARS,
    Activation,
    AttrPath,
    CompiledRule,
    RuleBatch,
    RuleOutcome,
    compile_batch,
    compile_rule,
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


@lru_cache(maxsize=16384)
def compile_policy(policy: Policy) -> CompiledPolicy:
    """Compile rule and rationale; raises the create-time validation errors.

    Cached by value: every policy change rebuilds the live set, and recompiling
    each live policy's template and scope globs made a change O(live policies).
    """
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


class _Group:
    """The policies an (event type, action) can reach, by position in key order."""

    __slots__ = ("checked", "positions")

    def __init__(self, positions: tuple[int, ...], checked: frozenset[int]) -> None:
        self.positions = positions
        self.checked = checked  # those whose subject/actor/action globs must still match


_MAX_GROUPS = 4096  # (event type, action) pairs remembered; actions are caller-chosen
_MAX_BATCHES = 256  # compiled batch programs per policy set
_Batches = tuple[tuple[tuple[int, ...], RuleBatch | None], ...]


class PolicySet:
    """An immutable, indexed set of live policy versions (test, canary, active).

    Memoised on the side, invisible to results: the in-scope candidates of each
    (event type, action), and -- from the ``combine_after``-th evaluation of the
    same in-scope selection on -- its rules compiled as :class:`RuleBatch`
    programs of at most :data:`~streams.sentinel.rules.BATCH_MAX_CHARS`.
    ``combine_after=None`` turns batches off (every rule on its own). Dict
    reads and writes are atomic, so concurrent evaluations at worst compile a
    batch twice.
    """

    def __init__(
        self, policies: Iterable[CompiledPolicy], *, combine_after: int | None = 2
    ) -> None:
        self._literal: dict[tuple[str, str], list[int]] = defaultdict(list)
        self._glob: dict[str, list[int]] = defaultdict(list)
        self.policies = sorted(
            (p for p in policies if p.policy.state in _LIVE), key=lambda p: p.policy.key
        )
        for i, cp in enumerate(self.policies):
            actions = cp.policy.scope.actions
            for event_type in cp.policy.scope.event_types:
                if actions and not any(_GLOB_CHARS.search(a) for a in actions):
                    for action in actions:
                        self._literal[(event_type, action)].append(i)
                else:
                    self._glob[event_type].append(i)
        self._groups: dict[tuple[str, str], _Group] = {}
        self._combine_after = combine_after
        self._seen: dict[tuple[int, ...], int] = {}
        self._batches: dict[tuple[int, ...], _Batches] = {}

    def __len__(self) -> int:
        return len(self.policies)

    def in_scope(self, values: Mapping[str, Any]) -> list[CompiledPolicy]:
        every = self.policies
        return [every[i] for i in self.select(values)]

    def select(self, values: Mapping[str, Any]) -> tuple[int, ...]:
        """Positions (in ``policies``, so in key order) of the policies in scope."""
        key = (values["eventType"], values["action"])
        group = self._groups.get(key)
        if group is None:
            group = self._group(key)
        if not group.checked:
            return group.positions
        every = self.policies
        return tuple(
            i for i in group.positions if i not in group.checked or every[i].in_scope(values)
        )

    def _group(self, key: tuple[str, str]) -> _Group:
        # the action is part of the key, so action globs are resolved here once;
        # subject and actor globs are left to each call
        every = self.policies
        glob = [i for i in self._glob.get(key[0], ()) if _action_in_scope(every[i], key[1])]
        positions = tuple(sorted({*self._literal.get(key, ()), *glob}))
        checked = frozenset(
            i for i in positions if every[i].subjects is not None or every[i].actors is not None
        )
        group = _Group(positions, checked)
        if len(self._groups) < _MAX_GROUPS:
            self._groups[key] = group
        return group

    def outcomes(self, positions: tuple[int, ...], activation: Activation) -> list[RuleOutcome]:
        """Each selected policy's rule outcome, batched when the selection is a regular."""
        every = self.policies
        batches = self._batches.get(positions)
        if batches is None:
            batches = self._maybe_compile(positions)
            if batches is None:
                return [every[i].rule.evaluate(activation) for i in positions]
        out: list[RuleOutcome] = []
        for chunk, batch in batches:
            found = None if batch is None else batch.outcomes(activation)
            if found is None:  # an error or a non-boolean: each rule on its own
                found = [every[i].rule.evaluate(activation) for i in chunk]
            out.extend(found)
        return out

    def _maybe_compile(self, positions: tuple[int, ...]) -> _Batches | None:
        after = self._combine_after
        if after is None or len(positions) < 2 or len(self._batches) >= _MAX_BATCHES:
            return None
        seen = self._seen.get(positions, 0) + 1
        if seen < after:
            if len(self._seen) >= _MAX_GROUPS:
                self._seen.clear()
            self._seen[positions] = seen
            return None
        self._seen.pop(positions, None)
        batches = tuple(
            (chunk, _batch(tuple(self.policies[i].rule for i in chunk)))
            for chunk in _chunks(positions, self.policies)
        )
        self._batches[positions] = batches
        return batches


@lru_cache(maxsize=_MAX_BATCHES)
def _batch(rules: tuple[CompiledRule, ...]) -> RuleBatch | None:
    """Shared across policy sets: a lifecycle step that keeps the rules keeps the program."""
    return compile_batch(rules)


def _action_in_scope(cp: CompiledPolicy, action: str) -> bool:
    return cp.actions is None or cp.actions.fullmatch(action) is not None


def _chunks(positions: tuple[int, ...], every: Sequence[CompiledPolicy]) -> list[tuple[int, ...]]:
    """Split so each batch's source stays under the engine's size limit."""
    out: list[tuple[int, ...]] = []
    current: list[int] = []
    size = 2
    for i in positions:
        cost = len(every[i].rule.source) + 4
        if current and size + cost > BATCH_MAX_CHARS:
            out.append(tuple(current))
            current, size = [], 2
        current.append(i)
        size += cost
    if current:
        out.append(tuple(current))
    return out


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
        effect = self.effect
        # StrEnum.value is a descriptor call; these tables are plain lookups
        return {
            "policyId": self.policy_id,
            "version": self.version,
            "state": _TEXT[self.state],
            "role": _TEXT[self.role],
            "severity": _TEXT[self.severity],
            "result": _TEXT[self.outcome],
            "effect": None if effect is None else _TEXT[effect],
            "error": self.error,
            "valuesRead": self.values,
            "missing": list(self.missing),
            "reason": self.reason,
        }


_TEXT: dict[StrEnum, str] = {
    m: m.value for kind in (State, Role, Severity, Outcome, Effect) for m in kind
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
    positions = policies.select(activation.values)
    every = policies.policies
    candidates = [every[i] for i in positions]
    outcomes = policies.outcomes(positions, activation)
    roles = _roles(candidates, sample_key)
    all_enforced = roles is None
    if roles is None:
        roles = [Role.ENFORCED] * len(candidates)
    values_at = activation.values_at
    raw = [
        _run(cp.policy, role, outcome, values_at(cp.paths))
        for cp, role, outcome in zip(candidates, roles, outcomes, strict=True)
    ]
    enforced = raw if all_enforced else [r for r in raw if r.role is Role.ENFORCED]
    decision, deciding = _decide(enforced)
    rationale = _rationale(decision, deciding, raw, candidates)
    sim_decision = sim_deciding = sim_rationale = None
    if not all_enforced and any(r.role is Role.SIMULATED for r in raw):
        sim_decision, sim_deciding = _decide(_candidate_view(raw))
        sim_rationale = _rationale(sim_decision, sim_deciding, raw, candidates)
    for r in raw:
        # most results are enforced and contributed nothing: the reason is a constant
        if r.effect is None and r.role is Role.ENFORCED:
            r.reason = "not matched"
        else:
            r.reason = _reason(r, decision, deciding)
    results = tuple(raw)
    return Evaluation(
        decision, deciding, rationale, results, sim_decision, sim_deciding, sim_rationale
    )


def _roles(candidates: Sequence[CompiledPolicy], sample_key: str) -> list[Role] | None:
    """Each candidate's role; None when all are enforced (no canary or test in scope)."""
    if all(cp.policy.state is State.ACTIVE for cp in candidates):
        return None
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


def _run(
    p: Policy, role: Role, outcome: RuleOutcome, read: tuple[dict[str, Any], tuple[str, ...]]
) -> PolicyResult:
    present, missing = read
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
        missing,
    )


def _decide(results: Iterable[PolicyResult]) -> tuple[Effect, PolicyResult | None]:
    best: PolicyResult | None = None
    best_order: tuple[int, int, str, int] | None = None
    for r in results:
        if r.effect is None:
            continue
        order = _order(r)
        if best_order is None or order < best_order:
            best, best_order = r, order
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
    results: Sequence[PolicyResult],
    candidates: Sequence[CompiledPolicy],
) -> str:
    considered = len(results)
    if deciding is None:
        return f"allow: no policy matched ({considered} in scope evaluated)"
    if deciding.outcome is Outcome.ERROR:
        return (
            f"{decision.value}: policy {deciding.policy_id} v{deciding.version} failed to "
            f"evaluate ({deciding.error}); failing closed to its fallback"
        )
    cp = next(c for r, c in zip(results, candidates, strict=True) if r is deciding)
    facts = {
        "policy.id": cp.policy.policy_id,
        "policy.name": cp.policy.name,
        "policy.version": cp.policy.version,
        "policy.severity": cp.policy.severity.value,
        "effect": decision.value,
    }
    return cp.template.render(facts, deciding.values)


def _reason(r: PolicyResult, decision: Effect, deciding: PolicyResult | None) -> str:
    if r.role is Role.ENFORCED:
        if r is deciding:
            how = "fallback after error" if r.outcome is Outcome.ERROR else "matched"
            return f"decided {_TEXT[decision]} ({how}, highest precedence)"
        if r.effect is None:
            return "not matched"
        assert deciding is not None
        lost = "tied, outranked by severity or id" if r.effect is decision else "lower precedence"
        return (
            f"{_TEXT[r.effect]} lost to {_TEXT[decision]} of "
            f"{deciding.policy_id} v{deciding.version} ({lost})"
        )
    would = "error (fails open)" if r.role is Role.SIMULATED and r.error else _TEXT[r.outcome]
    if r.effect is not None:
        would = f"{would} -> {_TEXT[r.effect]}"
    return f"{_TEXT[r.role]}, not enforced: {would}"
