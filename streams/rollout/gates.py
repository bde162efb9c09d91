"""Canary gates: is a candidate policy safe to keep enforcing on a sample?

A canary version is enforced on its sample and evaluated in *shadow* on every
other action in scope, so each action in scope yields one
:class:`Observation`: what the candidate decided, what the active set decided,
whether the candidate's evaluation failed, how long it took and whether it fell
back. A :class:`Window` holds the observations of the last ``window_s``
seconds; :func:`judge` turns a window into a :class:`GateReport`:

- ``inconclusive`` when the window has fewer than ``min_sample`` observations.
  Too little data is never a pass: it pauses the promotion clock and never
  promotes (a canary on a quiet stream is not promoted on "no data").
- ``fail`` when any gate is over its threshold, naming each failing gate with
  its value, its threshold and the window (what the rollback event carries).
- ``pass`` otherwise.

The gates (per policy, with the defaults of :class:`Thresholds`):

================  ==========================================================
disagreement      share of observations where candidate and active differ
deny_rate_change  |candidate deny rate - active deny rate| (``deny_rate_delta``
                  keeps the sign: more denials is positive)
error_rate        share of observations whose candidate evaluation errored
p99_latency       99th percentile of the candidate's evaluation time, ms
fallbacks         candidate evaluations that fell back (count in the window)
================  ==========================================================

The history gate runs before the canary starts, on the candidate's simulation
over recent history (:func:`history_gate`): its newly-denied share must stay
within ``history_newly_denied_budget``; a simulation that saw fewer than
``min_sample`` events is inconclusive and does not let the canary start.

Pure: no clock, no I/O. The controller (:mod:`streams.rollout.controller`)
decides what a sequence of reports means.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from enum import StrEnum
from typing import Any

from schemas.errors import ValidationError

__all__ = [
    "GateFailure",
    "GateReport",
    "Observation",
    "Outcome",
    "Thresholds",
    "Window",
    "history_gate",
    "judge",
]


class Outcome(StrEnum):
    PASS = "pass"  # noqa: S105 - a gate outcome, not a password
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True, slots=True)
class Thresholds:
    """A policy's rollout settings; every field can be set per policy (``rollout`` in its spec)."""

    max_disagreement: float = 0.05
    max_deny_rate_change: float = 0.02
    max_error_rate: float = 0.001
    max_p99_latency_ms: float = 5.0
    max_fallbacks: int = 0
    window_s: float = 300.0
    min_sample: int = 200
    consecutive_failures: int = 2
    promote_after_s: float = 3600.0
    history_newly_denied_budget: float = 0.01

    def __post_init__(self) -> None:
        for name in ("max_disagreement", "max_deny_rate_change", "max_error_rate"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValidationError(f"must be a share between 0 and 1, not {value}", field=name)
        if not 0 <= self.history_newly_denied_budget <= 1:
            raise ValidationError(
                "must be a share between 0 and 1", field="history_newly_denied_budget"
            )
        for name in ("window_s", "promote_after_s", "max_p99_latency_ms"):
            if not getattr(self, name) > 0:
                raise ValidationError("must be greater than 0", field=name)
        if self.min_sample < 1 or self.consecutive_failures < 1 or self.max_fallbacks < 0:
            raise ValidationError(
                "min_sample and consecutive_failures must be >= 1, max_fallbacks >= 0",
                field="rollout",
            )

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any] | None) -> Thresholds:
        """From a policy's ``rollout`` mapping (camelCase keys); unknown keys are an error."""
        if not spec:
            return cls()
        known = {_camel(f.name): f for f in fields(cls)}
        changes: dict[str, Any] = {}
        for key, value in spec.items():
            found = known.get(key)
            if found is None:
                raise ValidationError(
                    f"unknown setting {key!r}; known: {', '.join(sorted(known))}",
                    field=f"rollout.{key}",
                )
            kind = int if found.type in ("int", int) else float
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValidationError(f"must be a number, not {value!r}", field=f"rollout.{key}")
            if kind is int and value != int(value):
                raise ValidationError("must be a whole number", field=f"rollout.{key}")
            changes[found.name] = kind(value)
        return replace(cls(), **changes)

    def to_json(self) -> dict[str, float | int]:
        return {_camel(f.name): getattr(self, f.name) for f in fields(self)}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


@dataclass(frozen=True, slots=True)
class Observation:
    """One action in the canary's scope, evaluated by the candidate beside the active set."""

    ts: float  # seconds; the event's own time, so a replayed window is the same window
    candidate_denies: bool
    active_denies: bool
    error: bool = False
    latency_ms: float = 0.0
    fallback: bool = False

    @property
    def disagrees(self) -> bool:
        return self.candidate_denies != self.active_denies


class Window:
    """The observations of the last ``span_s`` seconds (by observation time)."""

    def __init__(self, span_s: float) -> None:
        self.span_s = span_s
        self._items: deque[Observation] = deque()

    def add(self, observation: Observation) -> None:
        self._items.append(observation)
        self.expire(observation.ts)

    def expire(self, now: float) -> None:
        while self._items and self._items[0].ts <= now - self.span_s:
            self._items.popleft()

    def __len__(self) -> int:
        return len(self._items)

    def observations(self) -> tuple[Observation, ...]:
        return tuple(self._items)


@dataclass(frozen=True, slots=True)
class GateFailure:
    gate: str
    value: float
    threshold: float

    def to_json(self) -> dict[str, Any]:
        return {"gate": self.gate, "value": self.value, "threshold": self.threshold}


@dataclass(frozen=True, slots=True)
class GateReport:
    outcome: Outcome
    sample: int
    metrics: Mapping[str, float]
    failures: tuple[GateFailure, ...] = ()
    window_start: float | None = None
    window_end: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome.value,
            "sample": self.sample,
            "metrics": dict(self.metrics),
            "failures": [f.to_json() for f in self.failures],
            "window": {"start": self.window_start, "end": self.window_end},
        }


def p99(values: Iterable[float]) -> float:
    """Nearest-rank 99th percentile (0.0 of nothing)."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


def metrics_of(observations: tuple[Observation, ...]) -> dict[str, float]:
    n = len(observations)
    if n == 0:
        return dict.fromkeys((*_GATES, "deny_rate_delta"), 0.0)
    candidate_denies = sum(o.candidate_denies for o in observations)
    active_denies = sum(o.active_denies for o in observations)
    delta = (candidate_denies - active_denies) / n
    return {
        "disagreement": sum(o.disagrees for o in observations) / n,
        "deny_rate_change": abs(delta),
        "deny_rate_delta": delta,
        "error_rate": sum(o.error for o in observations) / n,
        "p99_latency": p99(o.latency_ms for o in observations),
        "fallbacks": float(sum(o.fallback for o in observations)),
    }


_GATES = ("disagreement", "deny_rate_change", "error_rate", "p99_latency", "fallbacks")


def _limits(t: Thresholds) -> dict[str, float]:
    return {
        "disagreement": t.max_disagreement,
        "deny_rate_change": t.max_deny_rate_change,
        "error_rate": t.max_error_rate,
        "p99_latency": t.max_p99_latency_ms,
        "fallbacks": float(t.max_fallbacks),
    }


def judge(window: Window, thresholds: Thresholds) -> GateReport:
    """The gates over one window. A gate fails when its value is over its threshold."""
    observations = window.observations()
    metrics = metrics_of(observations)
    start = observations[0].ts if observations else None
    end = observations[-1].ts if observations else None
    if len(observations) < thresholds.min_sample:
        return GateReport(Outcome.INCONCLUSIVE, len(observations), metrics, (), start, end)
    failures = tuple(
        GateFailure(gate, metrics[gate], limit)
        for gate, limit in _limits(thresholds).items()
        if metrics[gate] > limit
    )
    outcome = Outcome.FAIL if failures else Outcome.PASS
    return GateReport(outcome, len(observations), metrics, failures, start, end)


def history_gate(evaluated: int, newly_denied: int, thresholds: Thresholds) -> GateReport:
    """The simulation gate: may the candidate enter canary?"""
    share = newly_denied / evaluated if evaluated else 0.0
    metrics = {"newly_denied": share, "evaluated": float(evaluated)}
    if evaluated < thresholds.min_sample:
        return GateReport(Outcome.INCONCLUSIVE, evaluated, metrics)
    if share > thresholds.history_newly_denied_budget:
        failure = GateFailure("history_newly_denied", share, thresholds.history_newly_denied_budget)
        return GateReport(Outcome.FAIL, evaluated, metrics, (failure,))
    return GateReport(Outcome.PASS, evaluated, metrics)
