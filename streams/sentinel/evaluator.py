"""The evaluator: one action against the live policy set. Pure: no I/O, no clock.

1. **Scope.** :class:`PolicySet` selects the live versions in scope of the
   action through its index; cost grows with the policies that could apply,
   not with the registry.
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
   over the enforced contributions; nothing contributes -> allow; ties go to
   the most severe, then the lowest ``(id, version)`` (:mod:`.verdict`).
5. **Simulation.** If any simulated policy is in scope, the same precedence
   over the *candidate* view -- each policy id's newest live version, test
   errors failing open -- gives ``sim_decision`` (a ``simMode`` policyCheck).

The rationale is rendered from the decider's template over the values this
evaluation recorded; there is no other explaining code path.

**Modules.** The index (scope, batches, caches) is
:mod:`streams.sentinel.policy_index`; the model (:class:`PolicyResult`, built
by :func:`~streams.sentinel.evaluation.policy_result`, and
:class:`Evaluation`) is :mod:`streams.sentinel.evaluation`; precedence, the
rationale and every reason are :mod:`streams.sentinel.verdict`'s. This module
is the evaluation itself, and re-exports their public names.

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

from collections.abc import Sequence
from operator import attrgetter

from streams.sentinel.canary import canary_sampled, canary_views
from streams.sentinel.evaluation import (
    Evaluation,
    Outcome,
    PolicyResult,
    Role,
    is_compact,
    is_outranked,
    is_plain,
    policy_result,
)
from streams.sentinel.policy import Effect, State
from streams.sentinel.policy_index import (
    CompiledPolicy,
    PolicySet,
    RuleRun,
    Selection,
    compile_policy,
    policy_paths,
)
from streams.sentinel.rules import Activation, RuleOutcome
from streams.sentinel.verdict import (
    NOT_MATCHED,
    PRECEDENCE,
    Order,
    candidate_view,
    decide,
    decided_reason,
    lost,
    lost_reason,
    rationale,
    reason,
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
    "RuleRun",
    "Selection",
    "canary_sampled",
    "compile_policy",
    "evaluate",
    "evaluate_each",
    "lost_reason",
    "policy_paths",
]


class _Matches:
    """An all-enforced evaluation's rule outcomes, from which its results are built."""

    __slots__ = ("activation", "candidates", "decider", "deciding", "outcomes")

    def __init__(
        self,
        candidates: Sequence[CompiledPolicy],
        outcomes: Sequence[RuleOutcome],
        decider: CompiledPolicy | None,
        deciding: PolicyResult | None,
        activation: Activation,
    ) -> None:
        self.candidates = candidates
        self.outcomes = outcomes
        self.decider = decider
        self.deciding = deciding
        self.activation = activation

    def results(self) -> tuple[PolicyResult, ...]:
        values_at = self.activation.values_at
        decider, deciding = self.decider, self.deciding
        reasons: dict[Effect, str] = {}
        out = []
        for cp, outcome in zip(self.candidates, self.outcomes, strict=True):
            if cp is decider:
                assert deciding is not None
                out.append(deciding)
                continue
            p = cp.policy
            if outcome.matched:
                assert deciding is not None  # something matched, so something decided
                why = reasons.get(p.effect)
                if why is None:  # the same for every loser of one effect
                    why = reasons[p.effect] = lost(p.effect, deciding)
            else:
                why = NOT_MATCHED
            out.append(policy_result(p, Role.ENFORCED, outcome, values_at(cp.paths), why))
        return tuple(out)


_by_matched_order = attrgetter("matched_order")
_MATCHED = RuleOutcome(matched=True)


def evaluate(policies: PolicySet, activation: Activation, sample_key: str) -> Evaluation:
    """Decide ``activation`` against ``policies``; ``sample_key`` drives canary sampling."""
    positions = policies.select(activation.values)
    selection = policies.selection(positions)
    run = policies.run_rules(positions, activation)
    if selection.all_active and run.clean:
        return _evaluate_enforced(selection, run.outcomes, activation)
    return evaluate_each(selection, run.outcomes, activation, sample_key)


def _evaluate_enforced(
    selection: Selection, outcomes: list[RuleOutcome], activation: Activation
) -> Evaluation:
    """Every policy in scope enforced and every rule a boolean: one result, the decider's."""
    candidates = selection.candidates
    evidence = activation.values_at(selection.paths)
    matched = [cp for cp, o in zip(candidates, outcomes, strict=True) if o.matched]
    not_matched = tuple(
        cp.label for cp, o in zip(candidates, outcomes, strict=True) if not o.matched
    )
    if not matched:
        return Evaluation(
            Effect.ALLOW,
            None,
            rationale(Effect.ALLOW, None, None, len(candidates)),
            not_matched=not_matched,
            evidence=evidence,
            expand=_Matches(candidates, outcomes, None, None, activation).results,
        )
    best = min(matched, key=_by_matched_order)
    decision = best.policy.effect
    deciding = policy_result(
        best.policy,
        Role.ENFORCED,
        _MATCHED,  # clean: its outcome is a plain match
        activation.values_at(best.paths),
        decided_reason(decision, after_error=False),
    )
    return Evaluation(
        decision,
        deciding,
        rationale(decision, deciding, best, len(candidates)),
        path=(deciding,),
        not_matched=not_matched,
        outranked=tuple(cp.label for cp in matched if cp is not best),
        evidence=evidence,
        expand=_Matches(candidates, outcomes, best, deciding, activation).results,
    )


def evaluate_each(
    selection: Selection,
    outcomes: list[RuleOutcome],
    activation: Activation,
    sample_key: str,
) -> Evaluation:
    """The general path: every result built and decided on its own.

    :func:`evaluate` takes it when a canary or test version is in scope or a
    rule errored; on any selection it gives what :func:`evaluate` gives (the
    property tests call it as the reference for the fast path).
    """
    candidates = selection.candidates
    roles = _roles(candidates, sample_key)
    all_enforced = roles is None
    if roles is None:
        roles = [Role.ENFORCED] * len(candidates)
    values_at = activation.values_at
    raw = [
        policy_result(cp.policy, role, outcome, values_at(cp.paths))
        for cp, role, outcome in zip(candidates, roles, outcomes, strict=True)
    ]
    enforced = raw if all_enforced else [r for r in raw if r.role is Role.ENFORCED]
    decision, deciding = decide(enforced)
    why = rationale(decision, deciding, _policy_of(deciding, raw, candidates), len(raw))
    sim: tuple[Effect | None, PolicyResult | None, str | None] = (None, None, None)
    if not all_enforced and any(r.role is Role.SIMULATED for r in raw):
        sim_decision, sim_deciding = decide(candidate_view(raw))
        sim_cp = _policy_of(sim_deciding, raw, candidates)
        sim = (sim_decision, sim_deciding, rationale(sim_decision, sim_deciding, sim_cp, len(raw)))
    for r in raw:
        # most results are enforced and contributed nothing: the reason is a constant
        if r.effect is None and r.role is Role.ENFORCED:
            r.reason = NOT_MATCHED
        else:
            r.reason = reason(r, decision, deciding)
    pairs = list(zip(candidates, raw, strict=True))
    percents = {
        cp.policy.policy_id: cp.policy.canary_percent
        for cp in candidates
        if cp.policy.state is State.CANARY
    }
    return Evaluation(
        decision,
        deciding,
        why,
        path=tuple(r for r in raw if not is_compact(r, deciding)),
        not_matched=tuple(cp.label for cp, r in pairs if is_plain(r)),
        outranked=tuple(cp.label for cp, r in pairs if is_outranked(r, deciding)),
        evidence=values_at(selection.paths),
        results=tuple(raw),
        sim=sim,
        canaries=canary_views(raw, percents, sample_key) if percents else (),
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
