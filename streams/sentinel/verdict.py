"""The verdict over an evaluation's results: precedence, the decider, and its words.

Precedence deny > quarantine > remediate > escalate > allow over the enforced
contributions; nothing contributes -> allow. Among the policies that
contributed the winning effect, the decider is the most severe, then the
lowest ``(id, version)``, so the choice is deterministic (:data:`Order`).

Every string that explains a decision is written here once: the decision's
rationale (:func:`rationale`, rendered from the decider's template over the
values this evaluation recorded -- there is no other explaining code path)
and each result's reason (:func:`reason`, :func:`decided_reason`,
:data:`NOT_MATCHED`, :func:`lost_reason`). The evaluator's fast and general
paths and the policyCheck's compact entries (:func:`~streams.sentinel.decision.expand_path`)
all call them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from streams.sentinel.evaluation import TEXT, Outcome, PolicyResult, Role
from streams.sentinel.policy import Effect, Severity

if TYPE_CHECKING:
    from streams.sentinel.policy_index import CompiledPolicy

__all__ = [
    "EFFECT_RANK",
    "NOT_MATCHED",
    "PRECEDENCE",
    "SEVERITY_RANK",
    "Order",
    "candidate_view",
    "decide",
    "decided_reason",
    "lost",
    "lost_reason",
    "rationale",
    "reason",
]

PRECEDENCE: tuple[Effect, ...] = (
    Effect.DENY,
    Effect.QUARANTINE,
    Effect.REMEDIATE,
    Effect.ESCALATE,
    Effect.ALLOW,
)
EFFECT_RANK = {e: i for i, e in enumerate(PRECEDENCE)}
SEVERITY_RANK = {Severity.CRITICAL: 0, Severity.HIGH: 1, Severity.MEDIUM: 2, Severity.LOW: 3}

Order = tuple[int, int, str, int]  # (precedence rank, severity rank, id, version)

NOT_MATCHED = "not matched"  # the reason of every enforced result that contributed nothing


def decide(results: Iterable[PolicyResult]) -> tuple[Effect, PolicyResult | None]:
    """The decision over ``results`` (all of them contribute) and its decider, if any."""
    best: PolicyResult | None = None
    best_order: Order | None = None
    for r in results:
        if r.effect is None:
            continue
        order = _order(r)
        if best_order is None or order < best_order:
            best, best_order = r, order
    return (Effect.ALLOW, None) if best is None else (best.effect or Effect.ALLOW, best)


def _order(r: PolicyResult) -> Order:
    assert r.effect is not None
    return (EFFECT_RANK[r.effect], SEVERITY_RANK[r.severity], r.policy_id, r.version)


def candidate_view(results: Sequence[PolicyResult]) -> list[PolicyResult]:
    """Each policy id's newest live version: what enforcement would be if promoted."""
    newest: dict[str, PolicyResult] = {}
    for r in results:
        if r.policy_id not in newest or r.version > newest[r.policy_id].version:
            newest[r.policy_id] = r
    return list(newest.values())


def rationale(
    decision: Effect, deciding: PolicyResult | None, cp: CompiledPolicy | None, considered: int
) -> str:
    """Why ``decision``: the decider ``deciding`` (compiled as ``cp``) of ``considered``."""
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


def decided_reason(decision: Effect, *, after_error: bool) -> str:
    """The decider's reason."""
    how = "fallback after error" if after_error else "matched"
    return f"decided {TEXT[decision]} ({how}, highest precedence)"


def reason(r: PolicyResult, decision: Effect, deciding: PolicyResult | None) -> str:
    """Why ``r`` won, lost or did not count, given the enforced decision and decider."""
    if r.role is Role.ENFORCED:
        if r is deciding:
            return decided_reason(decision, after_error=r.outcome is Outcome.ERROR)
        if r.effect is None:
            return NOT_MATCHED
        assert deciding is not None
        return lost(r.effect, deciding)
    would = "error (fails open)" if r.role is Role.SIMULATED and r.error else TEXT[r.outcome]
    if r.effect is not None:
        would = f"{would} -> {TEXT[r.effect]}"
    return f"{TEXT[r.role]}, not enforced: {would}"


def lost(effect: Effect, deciding: PolicyResult) -> str:
    """:func:`lost_reason` against the decider ``deciding``."""
    assert deciding.effect is not None
    return lost_reason(effect, deciding.effect, deciding.policy_id, deciding.version)


def lost_reason(effect: Effect, decision: Effect, policy_id: str, version: int) -> str:
    """The reason of an enforced result contributing ``effect`` that lost to ``decision``
    of the deciding policy version ``policy_id`` / ``version``."""
    lost = "tied, outranked by severity or id" if effect is decision else "lower precedence"
    return f"{TEXT[effect]} lost to {TEXT[decision]} of {policy_id} v{version} ({lost})"
