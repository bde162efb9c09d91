"""Canary gates: is a candidate policy safe to keep enforcing on a sample?

A canary version is enforced on its sample and evaluated in *shadow* on every
other action in scope, so each action in scope yields one
:class:`Observation`: what the candidate decided, what the active set decided,
whether the candidate's evaluation failed, how long it took and whether it fell
back. A :class:`Tally` holds the observations of the last ``window_s``
seconds as per-second :class:`Counts` (bounded, immutable); :func:`judge` turns
it into a :class:`GateReport`:

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
p99_latency       99th percentile of the candidate's evaluation time, ms (the
                  upper bound of its histogram bucket)
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
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from enum import StrEnum
from typing import Any

from schemas.errors import ValidationError

__all__ = [
    "GATES",
    "Counts",
    "GateFailure",
    "GateReport",
    "Observation",
    "Outcome",
    "Tally",
    "Thresholds",
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


# Upper bounds (ms) of the latency histogram; p99 is reported as the bound of the
# bucket that holds the 99th percentile (an upper estimate, never an under-report).
LATENCY_BOUNDS_MS = (
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    25.0,
    50.0,
    100.0,
    250.0,
    1000.0,
    math.inf,
)


@dataclass(frozen=True, slots=True)
class Counts:
    """What the gates need of a set of observations: counts and a latency histogram."""

    n: int = 0
    disagree: int = 0
    candidate_denies: int = 0
    active_denies: int = 0
    errors: int = 0
    fallbacks: int = 0
    latency: tuple[int, ...] = (0,) * len(LATENCY_BOUNDS_MS)

    def add(self, o: Observation) -> Counts:
        slot = next(i for i, bound in enumerate(LATENCY_BOUNDS_MS) if o.latency_ms <= bound)
        latency = list(self.latency)
        latency[slot] += 1
        return Counts(
            self.n + 1,
            self.disagree + o.disagrees,
            self.candidate_denies + o.candidate_denies,
            self.active_denies + o.active_denies,
            self.errors + o.error,
            self.fallbacks + o.fallback,
            tuple(latency),
        )

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.n + other.n,
            self.disagree + other.disagree,
            self.candidate_denies + other.candidate_denies,
            self.active_denies + other.active_denies,
            self.errors + other.errors,
            self.fallbacks + other.fallbacks,
            tuple(a + b for a, b in zip(self.latency, other.latency, strict=True)),
        )

    def p99_ms(self) -> float:
        if self.n == 0:
            return 0.0
        rank, seen = math.ceil(0.99 * self.n), 0
        for bound, count in zip(LATENCY_BOUNDS_MS, self.latency, strict=True):
            seen += count
            if seen >= rank:
                return bound
        return math.inf  # pragma: no cover - the last bound is infinite


@dataclass(frozen=True, slots=True)
class Tally:
    """The observations of the last ``span_s`` seconds, as per-``bucket_s`` counts.

    Immutable: :meth:`add` returns a new tally (a stream step must not mutate its
    state; the runner rewinds to it when a transaction aborts). Its size is bounded by
    ``span_s / bucket_s`` buckets, whatever the traffic.
    """

    span_s: float
    bucket_s: float = 1.0
    buckets: tuple[tuple[int, Counts], ...] = ()  # (bucket index, counts), ascending

    def add(self, o: Observation) -> Tally:
        """Count ``o`` in the bucket of its own time. Observations arrive out of time order
        (checks of several partitions); one older than the span, as of the newest bucket,
        is dropped (:meth:`late` says whether it would be)."""
        index = math.floor(o.ts / self.bucket_s)
        buckets = self.buckets
        if buckets and buckets[-1][0] == index:
            buckets = (*buckets[:-1], (index, buckets[-1][1].add(o)))
        elif not buckets or buckets[-1][0] < index:
            buckets = (*buckets, (index, Counts().add(o)))
        elif self.late(o):
            return self
        else:
            at = next(i for i, (b, _) in enumerate(buckets) if b >= index)
            if buckets[at][0] == index:
                buckets = (*buckets[:at], (index, buckets[at][1].add(o)), *buckets[at + 1 :])
            else:
                buckets = (*buckets[:at], (index, Counts().add(o)), *buckets[at:])
            return replace(self, buckets=buckets)
        return replace(self, buckets=buckets).expire(o.ts)

    def late(self, o: Observation) -> bool:
        """Older than the span as of the newest bucket's start: it would expire at once."""
        if not self.buckets:
            return False
        newest = self.buckets[-1][0] * self.bucket_s
        return (math.floor(o.ts / self.bucket_s) + 1) * self.bucket_s <= newest - self.span_s

    def expire(self, now: float) -> Tally:
        oldest = now - self.span_s
        kept = tuple(b for b in self.buckets if (b[0] + 1) * self.bucket_s > oldest)
        return self if len(kept) == len(self.buckets) else replace(self, buckets=kept)

    def total(self) -> Counts:
        out = Counts()
        for _, counts in self.buckets:
            out = out + counts
        return out

    @property
    def start(self) -> float | None:
        return self.buckets[0][0] * self.bucket_s if self.buckets else None

    @property
    def end(self) -> float | None:
        return (self.buckets[-1][0] + 1) * self.bucket_s if self.buckets else None


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


def metrics_of(c: Counts) -> dict[str, float]:
    n = c.n
    if n == 0:
        return dict.fromkeys((*GATES, "deny_rate_delta"), 0.0)
    delta = (c.candidate_denies - c.active_denies) / n
    return {
        "disagreement": c.disagree / n,
        "deny_rate_change": abs(delta),
        "deny_rate_delta": delta,
        "error_rate": c.errors / n,
        "p99_latency": c.p99_ms(),
        "fallbacks": float(c.fallbacks),
    }


GATES = ("disagreement", "deny_rate_change", "error_rate", "p99_latency", "fallbacks")


def _limits(t: Thresholds) -> dict[str, float]:
    return {
        "disagreement": t.max_disagreement,
        "deny_rate_change": t.max_deny_rate_change,
        "error_rate": t.max_error_rate,
        "p99_latency": t.max_p99_latency_ms,
        "fallbacks": float(t.max_fallbacks),
    }


def judge(tally: Tally, thresholds: Thresholds) -> GateReport:
    """The gates over one window. A gate fails when its value is over its threshold."""
    counts = tally.total()
    metrics = metrics_of(counts)
    if counts.n < thresholds.min_sample:
        return GateReport(Outcome.INCONCLUSIVE, counts.n, metrics, (), tally.start, tally.end)
    failures = tuple(
        GateFailure(gate, metrics[gate], limit)
        for gate, limit in _limits(thresholds).items()
        if metrics[gate] > limit
    )
    outcome = Outcome.FAIL if failures else Outcome.PASS
    return GateReport(outcome, counts.n, metrics, failures, tally.start, tally.end)


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
