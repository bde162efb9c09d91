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

from dataclasses import dataclass
from enum import StrEnum

from streams.rollout.gates import GateReport, Observation, Outcome, Thresholds, Window, judge

__all__ = ["Action", "CanaryController", "Step"]

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


class CanaryController:
    def __init__(
        self,
        severity: str,
        thresholds: Thresholds | None = None,
        *,
        step_s: float | None = None,
    ) -> None:
        self.severity = severity
        self.thresholds = thresholds or Thresholds()
        self.step_s = step_s if step_s is not None else self.thresholds.window_s / 5
        self.window = Window(self.thresholds.window_s)
        self.consecutive_failures = 0
        self.passing_s = 0.0
        self.finished: Action | None = None
        self._last_tick: float | None = None

    def observe(self, observation: Observation) -> Step | None:
        """Add one observation; a :class:`Step` when it crossed a tick boundary."""
        if self.finished is not None:
            return None
        self.window.add(observation)
        if self._last_tick is None:
            self._last_tick = observation.ts
            return None
        if observation.ts - self._last_tick >= self.step_s:
            return self.tick(observation.ts)
        return None

    def tick(self, now: float) -> Step:
        elapsed = 0.0 if self._last_tick is None else max(0.0, now - self._last_tick)
        self._last_tick = now
        self.window.expire(now)
        report = judge(self.window, self.thresholds)
        if report.outcome is Outcome.FAIL:
            self.consecutive_failures += 1
            self.passing_s = 0.0
        elif report.outcome is Outcome.PASS:
            self.consecutive_failures = 0
            self.passing_s += elapsed
        action = Action.HOLD
        if self.consecutive_failures >= self.thresholds.consecutive_failures:
            action = Action.ROLLBACK
        elif self.passing_s >= self.thresholds.promote_after_s:
            action = Action.PROMOTE if self.severity in AUTO_PROMOTED else Action.AWAITING_APPROVAL
        if action in (Action.ROLLBACK, Action.PROMOTE):
            self.finished = action
        return Step(action, report, self.consecutive_failures, self.passing_s)
