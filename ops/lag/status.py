"""Burrow-style consumer status over a sliding window of offset observations.

The monitor samples, for each ``(group, topic, partition)``, the committed
offset and the end of the log at a point in time (an :class:`Observation`).
:class:`PartitionHistory` keeps the observations of the last ``window_s``
seconds and :func:`evaluate` turns them into a :class:`Status`:

* ``REWIND``: the committed offset moved backwards inside the window (a reset).
* ``STALL``: the committed offset has not moved for ``stall_after_s`` while the
  lag stayed above ``allowed_lag`` -- the consumer is stuck on something.
* ``STOP``: the same, for longer than the whole window: nobody is committing.
* ``WARN``: offsets advance but the lag rose at every step of the window (the
  consumer is alive and slower than its producers).
* ``OK``: otherwise; in particular a consumer whose lag is within the allowance.

The stall clock starts at the first observation where the partition is stuck
(same offset, lag above allowance), not at the last commit: an idle consumer
with nothing to read must not jump straight to STOP when input resumes.

Lag in offsets counts from the end a consumer can actually read: the last
stable offset for ``read_committed`` consumers (records of open transactions
are not readable yet), and when the monitor probed the partition and found no
visible record between the committed offset and that end -- only transaction
markers -- the lag is 0: a marker is not work left to do.

Severity orders the statuses (a group is as bad as its worst partition):
OK < WARN < REWIND < STALL < STOP < NO_MEMBER < NEVER_COMMITTED. The numeric
code is what the exporter publishes and what the alert rules compare against.

The last two are not judged from the offset window but from facts the
monitor adds on the first sample (:mod:`ops.lag.monitor`): ``NO_MEMBER`` --
lag above the allowance and no live member in the group (the worker is dead,
waiting for it to stall would cost a whole window); ``NEVER_COMMITTED`` --
the same for a partition the group never committed (a worker that died
before its first commit; its lag is the whole log).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

from streams.kafka.offsets import HeadProbe

__all__ = [
    "HeadProbe",
    "LagPolicy",
    "Observation",
    "PartitionHistory",
    "PartitionStatus",
    "Status",
    "evaluate",
    "group_status",
    "lag_offsets",
]


class Status(IntEnum):
    """Partition/group status; the value is the exported ``status code``."""

    OK = 0
    WARN = 1
    REWIND = 2
    STALL = 3
    STOP = 4
    NO_MEMBER = 5
    NEVER_COMMITTED = 6


@dataclass(frozen=True)
class LagPolicy:
    """How patient the evaluator is. Defaults suit production; tests shorten them."""

    window_s: float = 300.0  # sliding window; STOP after this long stuck
    stall_after_s: float = 60.0  # STALL after this long stuck (> auto-commit interval)
    allowed_lag: int = 0  # lag at or below this is never a problem
    min_samples: int = 3  # observations in the window needed to call WARN

    def __post_init__(self) -> None:
        if not 0 < self.stall_after_s <= self.window_s:
            raise ValueError("LagPolicy needs 0 < stall_after_s <= window_s")
        if self.allowed_lag < 0 or self.min_samples < 2:
            raise ValueError("LagPolicy needs allowed_lag >= 0 and min_samples >= 2")


@dataclass(frozen=True)
class Observation:
    """One sample of a partition as seen by one consumer group."""

    ts: float  # when it was observed, epoch seconds
    committed: int
    log_end: int  # high watermark
    last_stable: int | None = None  # LSO; set for read_committed consumers
    head: HeadProbe | None = None  # None: not probed

    @property
    def readable_end(self) -> int:
        return self.log_end if self.last_stable is None else self.last_stable


def lag_offsets(obs: Observation) -> int:
    """Records the consumer still has to read (never negative)."""
    start = obs.committed
    if obs.head is not None:
        if obs.head.offset is None:
            return 0
        start = max(start, obs.head.offset)
    return max(0, obs.readable_end - start)


@dataclass(frozen=True)
class PartitionStatus:
    status: Status
    lag: int
    stuck_for_s: float
    reason: str


class PartitionHistory:
    """The observations of one partition inside the window, and the stall clock."""

    def __init__(self, policy: LagPolicy) -> None:
        self.policy = policy
        self.window: deque[Observation] = deque()
        self.stuck_since: float | None = None

    def observe(self, obs: Observation) -> None:
        last = self.window[-1] if self.window else None
        if last is not None and obs.ts < last.ts:
            raise ValueError(f"observation at {obs.ts} is older than the last one ({last.ts})")
        stuck = lag_offsets(obs) > self.policy.allowed_lag
        if not stuck or last is None or obs.committed != last.committed:
            self.stuck_since = obs.ts if stuck else None
        elif self.stuck_since is None:
            self.stuck_since = obs.ts
        self.window.append(obs)
        horizon = obs.ts - self.policy.window_s
        while len(self.window) > 1 and self.window[0].ts < horizon:
            self.window.popleft()

    @property
    def latest(self) -> Observation | None:
        return self.window[-1] if self.window else None


def evaluate(history: PartitionHistory) -> PartitionStatus:
    """The worst condition that holds now (see the module docstring)."""
    policy = history.policy
    obs = list(history.window)
    if not obs:
        return PartitionStatus(Status.OK, 0, 0.0, "no observations yet")
    last = obs[-1]
    lag = lag_offsets(last)
    stuck_for = 0.0 if history.stuck_since is None else last.ts - history.stuck_since
    if history.stuck_since is not None and stuck_for > policy.window_s:
        return PartitionStatus(
            Status.STOP, lag, stuck_for, f"no commit for {stuck_for:.0f}s with lag {lag}"
        )
    if history.stuck_since is not None and stuck_for >= policy.stall_after_s:
        return PartitionStatus(
            Status.STALL, lag, stuck_for, f"offset {last.committed} unchanged for {stuck_for:.0f}s"
        )
    pairs = list(itertools.pairwise(obs))
    rewinds = [b for a, b in pairs if b.committed < a.committed]
    if rewinds:
        at = rewinds[-1]
        return PartitionStatus(
            Status.REWIND, lag, stuck_for, f"committed offset moved back to {at.committed}"
        )
    lags = [lag_offsets(o) for o in obs]
    rising = (
        len(obs) >= policy.min_samples
        and min(lags) > policy.allowed_lag
        and last.committed > obs[0].committed
        and all(b >= a for a, b in itertools.pairwise(lags))
        and lags[-1] > lags[0]
    )
    if rising:
        return PartitionStatus(
            Status.WARN, lag, stuck_for, f"lag rose from {lags[0]} to {lags[-1]} in the window"
        )
    return PartitionStatus(Status.OK, lag, stuck_for, "ok")


def group_status(statuses: Iterable[Status]) -> Status:
    """A group is as bad as its worst partition (OK when it has none)."""
    return max(statuses, default=Status.OK)
