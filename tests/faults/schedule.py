"""A run's plan and its fault schedule (seeded, so a failing run can be repeated)."""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["CI", "FULL", "WORKERS", "Fault", "Plan", "schedule"]

# Every worker type the suite kills (the API is ``kernel api``, the rest ``kernel run``).
WORKERS = ("signer", "checkpointer", "audit-projector", "sentinel", "sentinel-projector", "api")


@dataclass(frozen=True)
class Plan:
    name: str
    events: int
    rate: float  # events per second
    check_rate: float  # sync checks per second
    kills: int
    pg_outage_s: float
    drain_deadline_s: float
    seed: int = 9

    @property
    def traffic_s(self) -> float:
        return self.events / self.rate


CI = Plan("ci", events=1200, rate=15, check_rate=2, kills=10, pg_outage_s=10, drain_deadline_s=120)
FULL = Plan(
    "full", events=20_000, rate=50, check_rate=5, kills=60, pg_outage_s=30, drain_deadline_s=600
)


@dataclass(frozen=True)
class Fault:
    at_s: float  # seconds after traffic starts
    kind: str  # kill9 | broker-kill9 | broker-graceful | pg-outage | scale-out | scale-in
    target: str = ""


def schedule(plan: Plan) -> list[Fault]:
    """Infrastructure faults at fixed fractions of the run; kills at seeded random points.

    Every worker type is killed at least once (round robin first, then at
    random), so even the short form covers each one.
    """
    rng = random.Random(plan.seed)
    t = plan.traffic_s
    faults = [
        Fault(0.10 * t, "scale-out"),
        Fault(0.30 * t, "broker-kill9"),
        Fault(0.55 * t, "broker-graceful"),
        Fault(0.75 * t, "pg-outage"),
        Fault(0.90 * t, "scale-in"),
    ]
    targets = list(WORKERS) + [rng.choice(WORKERS) for _ in range(plan.kills - len(WORKERS))]
    rng.shuffle(targets)
    times = sorted(rng.uniform(0.05 * t, 0.95 * t) for _ in targets)
    faults += [Fault(at, "kill9", w) for at, w in zip(times, targets, strict=True)]
    return sorted(faults, key=lambda f: f.at_s)
