"""Lag in seconds: how old the oldest record a consumer has not read yet is.

Preferred source: the timestamp of that record itself (the monitor reads the
record at the committed offset). When it cannot be read -- the probe timed out,
the record was deleted, the topic uses no timestamps -- the age is interpolated
from the monitor's own recent ``(time, log end)`` samples: the record at offset
``o`` was appended between the last sample whose end was ``<= o`` and the first
whose end was ``> o``; within that interval appends are assumed evenly spread.
A record older than every sample gets the age of the oldest sample: a lower
bound, flagged as such, because the truth is "at least this old".
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass

from ops.lag.status import Observation, lag_offsets

__all__ = ["EndHistory", "LagAge", "lag_seconds"]


@dataclass(frozen=True)
class LagAge:
    seconds: float
    source: str  # "none" (no lag) | "timestamp" | "interpolated" | "lower-bound"


class EndHistory:
    """Recent ``(time, readable end)`` samples of one partition, for interpolation.

    Of a run of samples with the same end only the first and the last are kept:
    the first dates the records below it, the last bounds when the next record
    arrived. A quiet partition thus keeps a long memory in few points.
    """

    def __init__(self, max_points: int = 256) -> None:
        self.points: deque[tuple[float, int]] = deque(maxlen=max_points)

    def add(self, ts: float, end: int) -> None:
        if self.points and end < self.points[-1][1]:
            self.points.clear()  # the topic was recreated or truncated: history is void
        if len(self.points) >= 2 and self.points[-1][1] == end == self.points[-2][1]:
            self.points[-1] = (ts, end)
            return
        self.points.append((ts, end))

    def appended_at(self, offset: int) -> tuple[float, bool] | None:
        """When the record at ``offset`` was appended; ``(time, exact_or_interpolated)``.

        The boolean is False when the record predates every sample (a lower bound).
        None when the record is not appended yet (at or beyond the last end).
        """
        if not self.points:
            return None
        ends = [end for _, end in self.points]
        if offset >= ends[-1]:
            return None
        i = bisect.bisect_right(ends, offset)  # first sample whose end > offset
        if i == 0:
            return self.points[0][0], False
        (t0, e0), (t1, e1) = self.points[i - 1], self.points[i]
        fraction = (offset - e0 + 1) / (e1 - e0)
        return t0 + fraction * (t1 - t0), True


def lag_seconds(obs: Observation, ends: EndHistory) -> LagAge:
    """Age at ``obs.ts`` of the oldest unconsumed record of ``obs``."""
    if lag_offsets(obs) == 0:
        return LagAge(0.0, "none")
    head = obs.head
    if head is not None and head.timestamp_s is not None:
        return LagAge(max(0.0, obs.ts - head.timestamp_s), "timestamp")
    offset = head.offset if head is not None and head.offset is not None else obs.committed
    found = ends.appended_at(offset)
    if found is None:
        return LagAge(0.0, "interpolated")
    when, exact = found
    return LagAge(max(0.0, obs.ts - when), "interpolated" if exact else "lower-bound")
