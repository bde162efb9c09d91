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

**Cost.** Most policies in scope of an action are enforced and active, and
either do not match or match and lose to the decider. Such a result is fully
determined by the policy version and the decision: not matched -- no effect,
no error, the reason "not matched" -- or matched and outranked -- its effect,
no error, the reason :func:`lost_reason` gives against the decider -- with the
values at the paths the version reads. So the evaluator names them
(``id@version``: :attr:`Evaluation.not_matched`, :attr:`Evaluation.outranked`)
and builds a :class:`PolicyResult` only for the decider and the policies that
errored or are not plainly enforced (:attr:`Evaluation.path`).
:attr:`Evaluation.results` expands the whole path on first use, equal to what
building every result eagerly gives. Per policy version, the orders used by the
precedence and the compact label are computed once (:class:`CompiledPolicy`);
per in-scope selection, the union of the paths read (the evidence) once
(:class:`PolicySet`).
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from operator import attrgetter
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
    read_paths,
)

__all__ = [
    "PRECEDENCE",
    "CompiledPolicy",
    "Evaluation",
    "Order",
    "Outcome",
    "PolicyResult",
    "PolicySet",
    "Role",
    "canary_sampled",
    "compile_policy",
    "evaluate",
    "lost_reason",
    "policy_paths",
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


Order = tuple[int, int, str, int]  # (precedence rank, severity rank, id, version)


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    policy: Policy
    rule: CompiledRule
    template: RationaleTemplate
    paths: tuple[AttrPath, ...]
    subjects: re.Pattern[str] | None
    actors: re.Pattern[str] | None
    actions: re.Pattern[str] | None
    # constant per version, derived in __post_init__: the decision order when the
    # policy contributes its effect / its fallback, and its compact "id@version"
    matched_order: Order = field(init=False, compare=False, repr=False)
    fallback_order: Order = field(init=False, compare=False, repr=False)
    label: str = field(init=False, compare=False, repr=False)
    severity_text: str = field(init=False, compare=False, repr=False)
    effect_text: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        p = self.policy
        rank = _SEVERITY[p.severity]
        object.__setattr__(self, "matched_order", (_RANK[p.effect], rank, p.policy_id, p.version))
        object.__setattr__(
            self, "fallback_order", (_RANK[p.fallback], rank, p.policy_id, p.version)
        )
        object.__setattr__(self, "label", f"{p.policy_id}@{p.version}")
        object.__setattr__(self, "severity_text", p.severity.value)
        object.__setattr__(self, "effect_text", p.effect.value)

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
    paths = _paths(rule.paths, template)
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


class _Selection:
    """What an evaluation needs of one in-scope selection, computed once per selection."""

    __slots__ = ("all_active", "candidates", "paths")

    def __init__(self, candidates: list[CompiledPolicy]) -> None:
        self.candidates = candidates
        # no canary or test version in scope: every candidate is enforced
        self.all_active = all(cp.policy.state is State.ACTIVE for cp in candidates)
        # every path any candidate reads, in order of first appearance: the evidence
        self.paths = tuple(dict.fromkeys(p for cp in candidates for p in cp.paths))


def policy_paths(policy: Policy) -> tuple[AttrPath, ...]:
    """The attribute paths a policy version reads (rule, then rationale), without compiling."""
    return _paths(read_paths(policy.rule), compile_template(policy.rationale))


def _paths(rule: tuple[AttrPath, ...], template: RationaleTemplate) -> tuple[AttrPath, ...]:
    return tuple(dict.fromkeys((*rule, *template.paths)))


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
    (event type, action), what an evaluation needs of each in-scope selection
    (:class:`_Selection`), and -- from the ``combine_after``-th evaluation of the
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
        self._selections: dict[tuple[int, ...], _Selection] = {}

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

    def selection(self, positions: tuple[int, ...]) -> _Selection:
        found = self._selections.get(positions)
        if found is None:
            found = _Selection([self.policies[i] for i in positions])
            if len(self._selections) >= _MAX_GROUPS:
                self._selections.clear()
            self._selections[positions] = found
        return found

    def outcomes(self, positions: tuple[int, ...], activation: Activation) -> list[RuleOutcome]:
        """Each selected policy's rule outcome, batched when the selection is a regular."""
        return self._outcomes(positions, activation)[0]

    def _outcomes(
        self, positions: tuple[int, ...], activation: Activation
    ) -> tuple[list[RuleOutcome], bool]:
        """The outcomes, and whether none is an error (each is MATCHED or NOT_MATCHED)."""
        every = self.policies
        batches = self._batches.get(positions)
        if batches is None:
            batches = self._maybe_compile(positions)
            if batches is None:
                out = [every[i].rule.evaluate(activation) for i in positions]
                return out, all(o.error is None for o in out)
        out = []
        clean = True
        for chunk, batch in batches:
            found = None if batch is None else batch.outcomes(activation)
            if found is None:  # an error or a non-boolean: each rule on its own
                found = [every[i].rule.evaluate(activation) for i in chunk]
                clean = clean and all(o.error is None for o in found)
            out.extend(found)
        return out, clean

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


class Evaluation:
    """One decision and its evaluation path; read-only once :func:`evaluate` returns.

    ``path`` holds a full :class:`PolicyResult` for the decider and each
    policy that errored or is not an enforced ``active`` version. The other
    enforced active policies are named (``id@version``, key order), their
    results fully determined by the version and the decision:

    - ``not_matched``: the rule was false -- no effect, no error, reason
      "not matched";
    - ``outranked``: the rule matched but another policy decided -- the
      version's effect, no error, reason :func:`lost_reason` against the
      enforced decision and decider;

    each with the values at the paths the version reads. ``results`` is every
    policy in scope, in key order. ``values_read`` and ``missing`` are what any
    policy in scope read, and the paths that were absent: the evidence.

    When every policy in scope was enforced and every rule gave a boolean (the
    common case), only the decider's result is built by :func:`evaluate`;
    ``results`` is derived on first use.
    """

    __slots__ = (
        "_matches",
        "_path",
        "_results",
        "deciding",
        "decision",
        "missing",
        "not_matched",
        "outranked",
        "rationale",
        "sim_deciding",
        "sim_decision",
        "sim_rationale",
        "values_read",
    )

    def __init__(
        self,
        decision: Effect,
        deciding: PolicyResult | None,
        rationale: str,
        results: Sequence[PolicyResult] = (),
        *,
        sim_decision: Effect | None = None,
        sim_deciding: PolicyResult | None = None,
        sim_rationale: str | None = None,
    ) -> None:
        """Every result given: the path and the evidence are derived from them."""
        self.decision = decision
        self.deciding = deciding
        self.rationale = rationale
        self.sim_decision = sim_decision
        self.sim_deciding = sim_deciding
        self.sim_rationale = sim_rationale
        self._results: tuple[PolicyResult, ...] | None = tuple(results)
        self._matches: _Matches | None = None
        self._path: tuple[PolicyResult, ...] = tuple(
            r for r in self._results if not _compact(r, deciding)
        )
        self.not_matched = tuple(f"{r.policy_id}@{r.version}" for r in self._results if _plain(r))
        self.outranked = tuple(
            f"{r.policy_id}@{r.version}" for r in self._results if _outranked(r, deciding)
        )
        values: dict[str, Any] = {}
        missing: dict[str, None] = {}
        for r in self._results:
            values.update(r.values)
            missing.update(dict.fromkeys(r.missing))
        self.values_read: dict[str, Any] = values
        self.missing: tuple[str, ...] = tuple(missing)

    @classmethod
    def _of(
        cls,
        decision: Effect,
        deciding: PolicyResult | None,
        rationale: str,
        *,
        not_matched: tuple[str, ...],
        outranked: tuple[str, ...],
        evidence: tuple[dict[str, Any], tuple[str, ...]],
        path: tuple[PolicyResult, ...],
        results: tuple[PolicyResult, ...] | None = None,
        matches: _Matches | None = None,
        sim: tuple[Effect | None, PolicyResult | None, str | None] = (None, None, None),
    ) -> Evaluation:
        self = cls.__new__(cls)
        self.decision, self.deciding, self.rationale = decision, deciding, rationale
        self.sim_decision, self.sim_deciding, self.sim_rationale = sim
        self.not_matched, self.outranked = not_matched, outranked
        self.values_read, self.missing = evidence
        self._path, self._results, self._matches = path, results, matches
        return self

    @property
    def path(self) -> tuple[PolicyResult, ...]:
        """The results recorded in full: all but the named ones, key order."""
        return self._path

    @property
    def results(self) -> tuple[PolicyResult, ...]:
        """Every policy in scope, in key order (the path with ``not_matched`` expanded)."""
        found = self._results
        if found is None:
            assert self._matches is not None
            found = self._results = self._matches.results(self.deciding)
        return found

    def path_json(self, *, with_outranked: bool = False) -> list[dict[str, Any]]:
        """``[r.to_json() for r in path]``; ``with_outranked``: those results in full too.

        A simulation view decides differently from the enforced one, and an
        outranked entry's reason names the enforced decider, so that view
        carries them in full rather than by name.
        """
        if with_outranked and self.outranked:
            return [r.to_json() for r in self.results if not _plain(r)]
        return [r.to_json() for r in self.path]

    @property
    def allowed(self) -> bool:
        return self.decision is Effect.ALLOW

    @property
    def errors(self) -> tuple[PolicyResult, ...]:
        return tuple(r for r in self.path if r.outcome is Outcome.ERROR)

    def _key(self) -> tuple[Any, ...]:
        return (
            self.decision,
            self.deciding,
            self.rationale,
            self.results,
            self.sim_decision,
            self.sim_deciding,
            self.sim_rationale,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Evaluation):
            return NotImplemented
        return self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"Evaluation(decision={self.decision!r}, deciding={self.deciding!r}, "
            f"rationale={self.rationale!r}, results={self.results!r}, "
            f"sim_decision={self.sim_decision!r}, sim_deciding={self.sim_deciding!r}, "
            f"sim_rationale={self.sim_rationale!r})"
        )


def _plain(r: PolicyResult) -> bool:
    """Enforced, active, not matched: a result that ``not_matched`` can stand for."""
    return r.outcome is Outcome.NOT_MATCHED and r.role is Role.ENFORCED and r.state is State.ACTIVE


def _outranked(r: PolicyResult, deciding: PolicyResult | None) -> bool:
    """Enforced, active, matched, not the decider: a result ``outranked`` can stand for."""
    return (
        r.outcome is Outcome.MATCHED
        and r.role is Role.ENFORCED
        and r.state is State.ACTIVE
        and r is not deciding
    )


def _compact(r: PolicyResult, deciding: PolicyResult | None) -> bool:
    return _plain(r) or _outranked(r, deciding)


class _Matches:
    """An all-enforced evaluation's rule outcomes, from which its results are built."""

    __slots__ = ("activation", "candidates", "decider", "outcomes")

    def __init__(
        self,
        candidates: Sequence[CompiledPolicy],
        outcomes: Sequence[RuleOutcome],
        decider: CompiledPolicy | None,
        activation: Activation,
    ) -> None:
        self.candidates = candidates
        self.outcomes = outcomes
        self.decider = decider
        self.activation = activation

    def results(self, deciding: PolicyResult | None) -> tuple[PolicyResult, ...]:
        values_at = self.activation.values_at
        decider = self.decider
        reasons: dict[Effect, str] = {}
        out = []
        for cp, outcome in zip(self.candidates, self.outcomes, strict=True):
            if cp is decider:
                assert deciding is not None
                out.append(deciding)
                continue
            p = cp.policy
            present, missing = values_at(cp.paths)
            if outcome.matched:
                assert deciding is not None  # something matched, so something decided
                reason = reasons.get(p.effect)
                if reason is None:  # the same for every loser of one effect
                    reason = reasons[p.effect] = _lost(p.effect, deciding)
                kind, effect = Outcome.MATCHED, p.effect
            else:
                kind, effect, reason = Outcome.NOT_MATCHED, None, _NOT_MATCHED
            out.append(
                PolicyResult(
                    p.policy_id,
                    p.version,
                    p.state,
                    Role.ENFORCED,
                    p.severity,
                    kind,
                    effect,
                    None,
                    present,
                    missing,
                    reason,
                )
            )
        return tuple(out)


_NOT_MATCHED = "not matched"
_by_matched_order = attrgetter("matched_order")


def evaluate(policies: PolicySet, activation: Activation, sample_key: str) -> Evaluation:
    """Decide ``activation`` against ``policies``; ``sample_key`` drives canary sampling."""
    positions = policies.select(activation.values)
    selection = policies.selection(positions)
    outcomes, clean = policies._outcomes(positions, activation)
    if selection.all_active and clean:
        return _evaluate_enforced(selection, outcomes, activation)
    return _evaluate_each(selection, outcomes, activation, sample_key)


def _evaluate_enforced(
    selection: _Selection, outcomes: list[RuleOutcome], activation: Activation
) -> Evaluation:
    """Every policy in scope enforced and every rule a boolean: one result, the decider's."""
    candidates = selection.candidates
    evidence = activation.values_at(selection.paths)
    matched = [cp for cp, o in zip(candidates, outcomes, strict=True) if o.matched]
    not_matched = tuple(
        cp.label for cp, o in zip(candidates, outcomes, strict=True) if not o.matched
    )
    if not matched:
        rationale = f"allow: no policy matched ({len(candidates)} in scope evaluated)"
        return Evaluation._of(
            Effect.ALLOW,
            None,
            rationale,
            not_matched=not_matched,
            outranked=(),
            evidence=evidence,
            path=(),
            matches=_Matches(candidates, outcomes, None, activation),
        )
    best = min(matched, key=_by_matched_order)
    p = best.policy
    decision = p.effect
    present, missing = activation.values_at(best.paths)
    deciding = PolicyResult(
        p.policy_id,
        p.version,
        p.state,
        Role.ENFORCED,
        p.severity,
        Outcome.MATCHED,
        decision,
        None,
        present,
        missing,
        f"decided {_TEXT[decision]} (matched, highest precedence)",
    )
    rationale = _rationale(decision, deciding, best, len(candidates))
    return Evaluation._of(
        decision,
        deciding,
        rationale,
        not_matched=not_matched,
        outranked=tuple(cp.label for cp in matched if cp is not best),
        evidence=evidence,
        path=(deciding,),
        matches=_Matches(candidates, outcomes, best, activation),
    )


def _evaluate_each(
    selection: _Selection,
    outcomes: list[RuleOutcome],
    activation: Activation,
    sample_key: str,
) -> Evaluation:
    """The general case: canary or test versions in scope, or a rule that errored."""
    candidates = selection.candidates
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
    rationale = _rationale(decision, deciding, _policy_of(deciding, raw, candidates), len(raw))
    sim: tuple[Effect | None, PolicyResult | None, str | None] = (None, None, None)
    if not all_enforced and any(r.role is Role.SIMULATED for r in raw):
        sim_decision, sim_deciding = _decide(_candidate_view(raw))
        sim_cp = _policy_of(sim_deciding, raw, candidates)
        sim = (sim_decision, sim_deciding, _rationale(sim_decision, sim_deciding, sim_cp, len(raw)))
    for r in raw:
        # most results are enforced and contributed nothing: the reason is a constant
        if r.effect is None and r.role is Role.ENFORCED:
            r.reason = _NOT_MATCHED
        else:
            r.reason = _reason(r, decision, deciding)
    path = tuple(r for r in raw if not _compact(r, deciding))
    pairs = list(zip(candidates, raw, strict=True))
    return Evaluation._of(
        decision,
        deciding,
        rationale,
        not_matched=tuple(cp.label for cp, r in pairs if _plain(r)),
        outranked=tuple(cp.label for cp, r in pairs if _outranked(r, deciding)),
        evidence=values_at(selection.paths),
        path=path,
        results=tuple(raw),
        sim=sim,
    )


def _policy_of(
    r: PolicyResult | None, results: Sequence[PolicyResult], candidates: Sequence[CompiledPolicy]
) -> CompiledPolicy | None:
    if r is None:
        return None
    return next(c for x, c in zip(results, candidates, strict=True) if x is r)


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
    decision: Effect, deciding: PolicyResult | None, cp: CompiledPolicy | None, considered: int
) -> str:
    if deciding is None:
        return f"allow: no policy matched ({considered} in scope evaluated)"
    if deciding.outcome is Outcome.ERROR:
        return (
            f"{decision.value}: policy {deciding.policy_id} v{deciding.version} failed to "
            f"evaluate ({deciding.error}); failing closed to its fallback"
        )
    assert cp is not None
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
        return _lost(r.effect, deciding)
    would = "error (fails open)" if r.role is Role.SIMULATED and r.error else _TEXT[r.outcome]
    if r.effect is not None:
        would = f"{would} -> {_TEXT[r.effect]}"
    return f"{_TEXT[r.role]}, not enforced: {would}"


def _lost(effect: Effect, deciding: PolicyResult) -> str:
    assert deciding.effect is not None
    return lost_reason(effect, deciding.effect, deciding.policy_id, deciding.version)


def lost_reason(effect: Effect, decision: Effect, policy_id: str, version: int) -> str:
    """The reason of an enforced result contributing ``effect`` that lost to ``decision``
    of the deciding policy version ``policy_id`` / ``version``."""
    lost = "tied, outranked by severity or id" if effect is decision else "lower precedence"
    return f"{_TEXT[effect]} lost to {_TEXT[decision]} of {policy_id} v{version} ({lost})"
