"""Readiness of a service: consumer lag under threshold (the lag part of ``/ready``).

``/ready`` already checks Kafka metadata and Postgres migrations
(:mod:`ops.http.operations`); this module adds the lag check. One :class:`LagReadiness`
lives as long as the app and keeps its :class:`~ops.lag.monitor.LagMonitor`,
so successive probes (Kubernetes probes every few seconds) build the sliding
window the Burrow-style status needs: a single sample can only judge lag in
seconds, a window also sees STALL and STOP.

Not ready means: some watched group is STALL, STOP, NO_MEMBER (lag and no
live member) or NEVER_COMMITTED (a backlog its worker never started on), or its oldest
unconsumed record is older than ``KERNEL_READY_MAX_LAG_S`` (default: the lag
window, ``KERNEL_LAG_WINDOW_S``, 300 s). WARN and REWIND are reported in the
detail but do not fail readiness: a slow consumer or an operator's reset is
worth an alert, not taking the service out of rotation.

:func:`judge_lag` is pure and is also what ``kernel doctor`` uses.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping

from ops.lag.monitor import LagMonitor, LagSnapshot
from ops.lag.status import Status
from schemas.errors import ConfigError, KernelError

__all__ = ["HEALTH_ENV_VARS", "LagReadiness", "judge_lag", "lag_check", "max_lag_seconds"]

# Read here, like LAG_ENV_VARS, so the readiness knob lives with the check.
HEALTH_ENV_VARS: dict[str, str] = {
    "KERNEL_READY_MAX_LAG_S": "readiness fails when a group's lag in seconds exceeds this "
    "(default: KERNEL_LAG_WINDOW_S)",
}

UNREADY = (Status.STALL, Status.STOP, Status.NO_MEMBER, Status.NEVER_COMMITTED)


def max_lag_seconds(env: Mapping[str, str] | None = None) -> float:
    e = os.environ if env is None else env
    raw = e.get("KERNEL_READY_MAX_LAG_S") or e.get("KERNEL_LAG_WINDOW_S") or "300"
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"KERNEL_READY_MAX_LAG_S must be a number of seconds: {exc}") from exc


def judge_lag(snapshot: LagSnapshot, max_lag_s: float) -> tuple[bool, str]:
    """``(ok, detail)``: the groups that are too far behind or stuck, by name."""
    problems: list[str] = []
    notes: list[str] = []
    for g in snapshot.groups:
        if g.status in UNREADY:
            worst = max(g.partitions, key=lambda p: p.status)
            behind = f", {g.lag_seconds:.0f}s behind" if g.lag > 0 else ""
            problems.append(f"{g.group} is {g.status.name} ({worst.reason}{behind})")
        elif g.lag_seconds > max_lag_s and g.lag > 0:
            problems.append(f"{g.group} is {g.lag_seconds:.0f}s behind (limit {max_lag_s:.0f}s)")
        elif g.status is not Status.OK:
            notes.append(f"{g.group} is {g.status.name}")
    if problems:
        return False, "; ".join(problems) + " (see `kernel lag`)"
    watched = len(snapshot.groups)
    detail = f"{watched} consumer group(s) under {max_lag_s:.0f}s of lag"
    return True, detail + (f"; {'; '.join(notes)}" if notes else "")


class LagReadiness:
    """The ``lag`` readiness check; samples once per call, keeps the window."""

    def __init__(self, monitor: Callable[[], LagMonitor], max_lag_s: float) -> None:
        self._make_monitor = monitor
        self._monitor: LagMonitor | None = None
        self.max_lag_s = max_lag_s
        # Concurrent probes must not interleave samples of one window.
        self._lock = threading.Lock()

    def __call__(self) -> tuple[bool, str]:
        with self._lock:
            try:
                if self._monitor is None:
                    self._monitor = self._make_monitor()
                snapshot = self._monitor.sample()
            except KernelError as exc:
                return False, f"lag unknown: {exc}"
        return judge_lag(snapshot, self.max_lag_s)


def lag_check(monitor: Callable[[], LagMonitor], max_lag_s: float | None = None) -> LagReadiness:
    """The readiness check the API registers as ``lag``; ``monitor`` is built on first use."""
    limit = max_lag_seconds() if max_lag_s is None else max_lag_s
    return LagReadiness(monitor, limit)
