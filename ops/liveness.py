"""Worker liveness: a heartbeat per worker thread, and the judgement of ``/health``.

A worker is alive when its loop keeps turning. ``kernel run`` hands each
worker a ``should_stop`` wrapped by :meth:`Heartbeats.ticking`: the runners
call ``should_stop()`` before every poll -- idle or not -- so each call is a
heartbeat. A loop blocked inside Kafka or Postgres stops calling it, and its
heartbeat ages; a worker that died has its thread marked dead.

Each beat sets ``kernel_worker_heartbeat_timestamp_seconds{worker,instance}``
(the age is ``time() - x`` in PromQL, like every other ``*_timestamp_seconds``)
and the in-process table that :meth:`Heartbeats.health` judges for the
``/health`` endpoint of the worker's metrics port (:mod:`ops.worker_http`).
Pure apart from the clock and the gauge: unit-testable with a fake clock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ops import metrics

__all__ = ["Heartbeats", "WorkerHealth"]


@dataclass(frozen=True)
class WorkerHealth:
    worker: str
    instance: str
    alive: bool
    age_s: float | None  # seconds since the last beat; None: never beat
    cause: str  # why it is dead ("" while alive)


class Heartbeats:
    """The heartbeats of the workers of this process."""

    def __init__(
        self, instance: str, *, max_age_s: float = 60.0, clock: Callable[[], float] = time.time
    ) -> None:
        self.instance = instance
        self.max_age_s = max_age_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, float | None] = {}
        self._dead: dict[str, str] = {}

    def register(self, worker: str) -> None:
        """Expect ``worker``: it is unhealthy until its first beat is fresh."""
        with self._lock:
            self._last.setdefault(worker, None)
        metrics.WORKER_HEARTBEAT_TIMESTAMP.labels(worker, self.instance)

    def beat(self, worker: str) -> None:
        now = self._clock()
        with self._lock:
            self._last[worker] = now
        metrics.WORKER_HEARTBEAT_TIMESTAMP.labels(worker, self.instance).set(now)

    def dead(self, worker: str, cause: str) -> None:
        """The worker's thread ended (``cause``: why); it stays unhealthy."""
        with self._lock:
            self._last.setdefault(worker, None)
            self._dead[worker] = cause or "stopped"

    def ticking(self, worker: str, should_stop: Callable[[], bool]) -> Callable[[], bool]:
        """``should_stop`` that beats on every call (the runners call it every poll)."""
        self.register(worker)

        def tick() -> bool:
            self.beat(worker)
            return should_stop()

        return tick

    def workers(self) -> list[WorkerHealth]:
        now = self._clock()
        with self._lock:
            last, dead = dict(self._last), dict(self._dead)
        out = []
        for worker, at in sorted(last.items()):
            age = None if at is None else max(0.0, now - at)
            if worker in dead:
                out.append(WorkerHealth(worker, self.instance, False, age, dead[worker]))
            elif age is None or age > self.max_age_s:
                seen = "never beat" if age is None else f"no heartbeat for {age:.0f}s"
                cause = f"{seen} (limit {self.max_age_s:.0f}s)"
                out.append(WorkerHealth(worker, self.instance, False, age, cause))
            else:
                out.append(WorkerHealth(worker, self.instance, True, age, ""))
        return out

    def health(self) -> tuple[bool, dict[str, Any]]:
        """``(healthy, body)``: healthy when every registered worker beat recently."""
        rows = self.workers()
        ok = bool(rows) and all(w.alive for w in rows)
        body: dict[str, Any] = {
            "healthy": ok,
            "instance": self.instance,
            "maxAgeSeconds": self.max_age_s,
            "workers": [
                {
                    "worker": w.worker,
                    "alive": w.alive,
                    "heartbeatAgeSeconds": None if w.age_s is None else round(w.age_s, 3),
                    **({"cause": w.cause} if w.cause else {}),
                }
                for w in rows
            ],
        }
        if not ok:
            bad = [f"{w.worker}: {w.cause}" for w in rows if not w.alive]
            body["reason"] = "; ".join(bad) or "no workers"
        return ok, body
