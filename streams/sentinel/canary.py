"""Canary sampling, and what each canary in scope would change.

Sampling is deterministic: a request is in policy P's canary when
``uint32_be(SHA-256(key)[0:4]) / 2^32 < percent/100``, the key being the
request id (the event id when there is none), the same in the sync check and
the stream. :func:`sample_value` is that fraction, recorded so explain can
show it.

A canary version is enforced on its sample and evaluated beside the active
version in shadow everywhere else, so every action in its scope answers the
two questions the rollout gates ask (:mod:`streams.rollout.gates`): what would
the active set decide, and what would the active set with this canary in
place of its active version decide? :func:`canary_views` answers both from the
results of one evaluation, with the evaluation's own precedence
(:func:`~streams.sentinel.verdict.decide`), one :class:`CanaryView` per canary
in scope. Pure; it adds no rule evaluation (every result is already there).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from streams.sentinel.evaluation import TEXT, Outcome, PolicyResult
from streams.sentinel.policy import Effect, State
from streams.sentinel.verdict import decide

__all__ = ["CanaryView", "canary_sampled", "canary_views", "sample_value"]


def sample_value(sample_key: str) -> float:
    """``uint32_be(SHA-256(key)[0:4]) / 2^32``: in [0, 1), uniform over keys."""
    head = hashlib.sha256(sample_key.encode()).digest()[:4]
    return int.from_bytes(head, "big") / 2**32


def canary_sampled(sample_key: str, percent: float) -> bool:
    """Deterministic: the same request is always in, or always out of, the canary."""
    return sample_value(sample_key) < percent / 100


@dataclass(frozen=True, slots=True)
class CanaryView:
    """One canary in scope of one action: the two decisions the gates compare."""

    policy_id: str
    canary_version: int
    active_version: int | None  # None: the canary is a new policy
    percent: float
    sample_value: float
    sampled: bool
    candidate_decision: Effect  # the active set with this canary in place
    active_decision: Effect  # the active set alone
    candidate_error: str | None

    @property
    def disagrees(self) -> bool:
        return self.candidate_decision is not self.active_decision

    def to_json(self) -> dict[str, Any]:
        return {
            "policyId": self.policy_id,
            "canaryVersion": self.canary_version,
            "activeVersion": self.active_version,
            "percent": self.percent,
            "sampleValue": self.sample_value,
            "sampled": self.sampled,
            "candidateDecision": TEXT[self.candidate_decision],
            "activeDecision": TEXT[self.active_decision],
            "candidateError": self.candidate_error,
        }


def canary_views(
    results: Sequence[PolicyResult], percents: dict[str, float], sample_key: str
) -> tuple[CanaryView, ...]:
    """A view per canary result in ``results`` (``percents``: canary policy id -> percent)."""
    canaries = [r for r in results if r.state is State.CANARY]
    if not canaries:
        return ()
    active = [r for r in results if r.state is State.ACTIVE]
    active_decision, _ = decide(active)
    value = sample_value(sample_key)
    views = []
    for canary in canaries:
        pid = canary.policy_id
        replaced = [r for r in active if r.policy_id != pid]
        candidate_decision, _ = decide([*replaced, canary])
        percent = percents[pid]
        views.append(
            CanaryView(
                pid,
                canary.version,
                next((r.version for r in active if r.policy_id == pid), None),
                percent,
                value,
                value < percent / 100,
                candidate_decision,
                active_decision,
                canary.error if canary.outcome is Outcome.ERROR else None,
            )
        )
    return tuple(views)
