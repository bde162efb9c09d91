"""The canary controller: what a sequence of gate reports means for one canary.

One :class:`CanaryController` per canary version. Observations go in as they
arrive (:meth:`observe`); every ``step_s`` of observation time (:meth:`tick`)
the window is judged and the controller answers with a :class:`Step`:

- ``rollback`` after ``consecutive_failures`` failing windows in a row. The step
  carries the failing report: the gates, their numbers and the window, which is
  what the rollback event records.
- ``promote`` once the gates have passed for ``promote_after_s`` of observation
  time, for a LOW or MEDIUM policy. A HIGH or CRITICAL one answers
  ``awaiting_approval`` instead: its activation needs a k-of-n quorum.
- ``hold`` otherwise. An inconclusive window (too little data) neither counts
  toward promotion nor resets the failure streak; a passing one resets the
  streak; a failing one resets the passing time.

Time is the observations' own time (the events' timestamps), never a wall
clock, so replaying the same log takes the same steps at the same places.
After ``rollback`` or ``promote`` the controller is finished and takes no
further steps.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from streams.rollout.gates import GateReport, Observation, Outcome, Tally, Thresholds, judge

__all__ = ["Action", "CanaryController", "CanaryState", "Step", "observe", "tick"]

AUTO_PROMOTED = frozenset({"LOW", "MEDIUM"})


class Action(StrEnum):
    HOLD = "hold"
    ROLLBACK = "rollback"
    PROMOTE = "promote"
    AWAITING_APPROVAL = "awaiting_approval"


@dataclass(frozen=True, slots=True)
class Step:
    action: Action
    report: GateReport
    consecutive_failures: int
    passing_s: float

    @property
    def reason(self) -> str:
        if self.action is Action.ROLLBACK:
            gates = ", ".join(
                f"{f.gate} {f.value:.4g} > {f.threshold:.4g}" for f in self.report.failures
            )
            return (
                f"rolled back: {gates} in {self.consecutive_failures} consecutive windows "
                f"(last: {self.report.sample} observations)"
            )
        if self.action is Action.PROMOTE:
            return f"promoted: gates passed for {self.passing_s:.0f}s"
        if self.action is Action.AWAITING_APPROVAL:
            return f"gates passed for {self.passing_s:.0f}s; activation awaits a quorum"
        return f"holding: last window {self.report.outcome.value}"


@dataclass(frozen=True, slots=True)
class CanaryState:
    """One canary's progress; immutable (each observation makes a new one)."""

    tally: Tally
    consecutive_failures: int = 0
    passing_s: float = 0.0
    last_tick: float | None = None
    finished: Action | None = None
    behind: int = 0  # observations since the last tick that did not move the clock

    @classmethod
    def start(cls, thresholds: Thresholds) -> CanaryState:
        return cls(Tally(thresholds.window_s))


def observe(
    state: CanaryState, observation: Observation, severity: str, thresholds: Thresholds,
    step_s: float | None = None,
) -> tuple[CanaryState, Step | None]:  # fmt: skip
    """Add one observation; a :class:`Step` when it crossed a tick boundary."""
    if state.finished is not None:
        return state, None
    state = replace(state, tally=state.tally.add(observation))
    if state.last_tick is None:
        return replace(state, last_tick=observation.ts), None
    # Ticks follow the newest time seen (a watermark): an older observation (another
    # partition's) is counted in its own second but never moves the clock back. When
    # a backlog is read partition by partition, the later partitions' observations all
    # lie behind the clock; a window's worth of them (minSample) is judged then too.
    every = step_s if step_s is not None else thresholds.window_s / 5
    if observation.ts - state.last_tick >= every:
        return tick(state, observation.ts, severity, thresholds)
    if observation.ts < state.last_tick:
        if state.behind + 1 >= thresholds.min_sample:
            return tick(state, state.last_tick, severity, thresholds)
        return replace(state, behind=state.behind + 1), None
    return state, None


def tick(
    state: CanaryState, now: float, severity: str, thresholds: Thresholds
) -> tuple[CanaryState, Step]:
    """Judge the window as of ``now`` and say what it means."""
    elapsed = 0.0 if state.last_tick is None else max(0.0, now - state.last_tick)
    tally = state.tally.expire(now)
    report = judge(tally, thresholds)
    failures, passing = state.consecutive_failures, state.passing_s
    if report.outcome is Outcome.FAIL:
        failures, passing = failures + 1, 0.0
    elif report.outcome is Outcome.PASS:
        failures, passing = 0, passing + elapsed
    action = Action.HOLD
    if failures >= thresholds.consecutive_failures:
        action = Action.ROLLBACK
    elif passing >= thresholds.promote_after_s:
        action = Action.PROMOTE if severity in AUTO_PROMOTED else Action.AWAITING_APPROVAL
    finished = action if action in (Action.ROLLBACK, Action.PROMOTE) else None
    new = CanaryState(tally, failures, passing, now, finished)
    return new, Step(action, report, failures, passing)


class CanaryController:
    """A mutable holder of one :class:`CanaryState`, for drivers that keep one canary."""

    def __init__(
        self, severity: str, thresholds: Thresholds | None = None, *, step_s: float | None = None
    ) -> None:
        self.severity = severity
        self.thresholds = thresholds or Thresholds()
        self.step_s = step_s
        self.state = CanaryState.start(self.thresholds)

    @property
    def passing_s(self) -> float:
        return self.state.passing_s

    def observe(self, observation: Observation) -> Step | None:
        self.state, step = observe(
            self.state, observation, self.severity, self.thresholds, self.step_s
        )
        return step

    def tick(self, now: float) -> Step:
        self.state, step = tick(self.state, now, self.severity, self.thresholds)
        return step
