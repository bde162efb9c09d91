"""The evaluation model: each policy's result and the evaluation they make up.

A :class:`PolicyResult` is built by one function, :func:`policy_result`, on
the fast path and the general path alike, and an :class:`Evaluation` by one
constructor; so the property that both paths give equal evaluations
(``tests/unit/sentinel/test_policy_check_record.py``) compares the paths, not
two ways of writing a result. The words of a result (its reason) and of the
decision (the rationale) are :mod:`streams.sentinel.verdict`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from streams.sentinel.policy import Effect, Policy, Severity, State
from streams.sentinel.rules import RuleOutcome

if TYPE_CHECKING:
    from streams.sentinel.canary import CanaryView

__all__ = [
    "TEXT",
    "Evaluation",
    "Outcome",
    "PolicyResult",
    "Role",
    "is_compact",
    "is_outranked",
    "is_plain",
    "policy_result",
]


class Outcome(StrEnum):
    MATCHED = "matched"
    NOT_MATCHED = "not_matched"
    ERROR = "error"


class Role(StrEnum):
    ENFORCED = "enforced"
    SHADOW = "shadow"  # canary not sampled, or the active version beside a sampled canary
    SIMULATED = "simulated"  # test state


@dataclass(slots=True)
class PolicyResult:
    """One policy's result. Built by :func:`policy_result`; the evaluator may set
    ``reason`` once the decision is known (in place: ``dataclasses.replace``
    doubled the cost of a decision); read-only once the evaluation is returned."""

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
            "state": TEXT[self.state],
            "role": TEXT[self.role],
            "severity": TEXT[self.severity],
            "result": TEXT[self.outcome],
            "effect": None if effect is None else TEXT[effect],
            "error": self.error,
            "valuesRead": self.values,
            "missing": list(self.missing),
            "reason": self.reason,
        }


# StrEnum.value is a descriptor call; to_json and the reasons read this plain table
TEXT: dict[StrEnum, str] = {
    m: m.value for kind in (State, Role, Severity, Outcome, Effect) for m in kind
}


def policy_result(
    p: Policy,
    role: Role,
    outcome: RuleOutcome,
    read: tuple[dict[str, Any], tuple[str, ...]],
    reason: str = "",
) -> PolicyResult:
    """The one way a result is built: ``p``'s rule ``outcome`` in ``role``, with the
    values it ``read`` (present, missing paths).

    Matched contributes the effect; an error contributes the fallback in every
    non-simulated role -- fail closed, and a shadow reports what it *would*
    enforce -- and nothing when simulated (fail open).
    """
    present, missing = read
    error = outcome.error
    if error is not None:
        kind = Outcome.ERROR
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
        error,
        present,
        missing,
        reason,
    )


class Evaluation:
    """One decision and its evaluation path; read-only once built.

    ``path`` holds a full :class:`PolicyResult` for the decider and each
    policy that errored or is not an enforced ``active`` version. The other
    enforced active policies are named (``id@version``, key order), their
    results fully determined by the version and the decision:

    - ``not_matched``: the rule was false -- no effect, no error, reason
      "not matched";
    - ``outranked``: the rule matched but another policy decided -- the
      version's effect, no error, reason
      :func:`~streams.sentinel.verdict.lost_reason` against the
      enforced decision and decider;

    each with the values at the paths the version reads. ``results`` is every
    policy in scope, in key order. ``values_read`` and ``missing`` are what any
    policy in scope read, and the paths that were absent: the evidence.

    When every policy in scope was enforced and every rule gave a boolean (the
    common case), only the decider's result is built by
    :func:`~streams.sentinel.evaluator.evaluate`; ``results`` is derived on
    first use.
    """

    __slots__ = (
        "_expand",
        "_path",
        "_results",
        "canaries",
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
        *,
        path: tuple[PolicyResult, ...] = (),
        not_matched: tuple[str, ...] = (),
        outranked: tuple[str, ...] = (),
        evidence: tuple[dict[str, Any], tuple[str, ...]] | None = None,
        results: tuple[PolicyResult, ...] | None = None,
        expand: Callable[[], tuple[PolicyResult, ...]] | None = None,
        sim: tuple[Effect | None, PolicyResult | None, str | None] = (None, None, None),
        canaries: tuple[CanaryView, ...] = (),
    ) -> None:
        """``path``, ``not_matched``, ``outranked``: the results split as described above;
        ``evidence``: ``(values_read, missing)``; ``results``: every result, or
        ``expand``, which builds them on first use; neither: ``results`` is
        ``path``. ``sim``: ``(sim_decision, sim_deciding, sim_rationale)``.
        ``canaries``: a :class:`~streams.sentinel.canary.CanaryView` per canary in scope.

        With the defaults, a decision no policy took part in (a fallback).
        """
        self.decision, self.deciding, self.rationale = decision, deciding, rationale
        self.sim_decision, self.sim_deciding, self.sim_rationale = sim
        self.canaries = canaries
        self.not_matched, self.outranked = not_matched, outranked
        self.values_read, self.missing = ({}, ()) if evidence is None else evidence
        if results is None and expand is None:
            results = path
        self._path, self._results, self._expand = path, results, expand

    @property
    def path(self) -> tuple[PolicyResult, ...]:
        """The results recorded in full: all but the named ones, key order."""
        return self._path

    @property
    def results(self) -> tuple[PolicyResult, ...]:
        """Every policy in scope, in key order (the path with ``not_matched`` expanded)."""
        found = self._results
        if found is None:
            assert self._expand is not None
            found = self._results = self._expand()
        return found

    def path_json(self, *, with_outranked: bool = False) -> list[dict[str, Any]]:
        """``[r.to_json() for r in path]``; ``with_outranked``: those results in full too.

        A simulation view decides differently from the enforced one, and an
        outranked entry's reason names the enforced decider, so that view
        carries them in full rather than by name.
        """
        if with_outranked and self.outranked:
            return [r.to_json() for r in self.results if not is_plain(r)]
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
            self.canaries,
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


def is_plain(r: PolicyResult) -> bool:
    """Enforced, active, not matched: a result that ``not_matched`` can stand for."""
    return r.outcome is Outcome.NOT_MATCHED and r.role is Role.ENFORCED and r.state is State.ACTIVE


def is_outranked(r: PolicyResult, deciding: PolicyResult | None) -> bool:
    """Enforced, active, matched, not the decider: a result ``outranked`` can stand for."""
    return (
        r.outcome is Outcome.MATCHED
        and r.role is Role.ENFORCED
        and r.state is State.ACTIVE
        and r is not deciding
    )


def is_compact(r: PolicyResult, deciding: PolicyResult | None) -> bool:
    """A result the path names (``id@version``) instead of recording in full."""
    return is_plain(r) or is_outranked(r, deciding)
