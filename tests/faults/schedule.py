"""A run's plan and its fault schedule (seeded, so a failing run can be repeated)."""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["CI", "FULL", "WORKERS", "Fault", "Plan", "schedule"]

# Every worker type the suite kills (the API is ``kernel api``, the rest ``kernel run``).
WORKERS = ("signer", "checkpointer", "audit-projector", "sentinel", "sentinel-projector", "api")


_BROKER_S = 25.0  # a broker restart's usual length here (stop or kill, start, ready)


@dataclass(frozen=True)
class Plan:
    name: str
    events: int
    rate: float  # events per second
    check_rate: float  # sync checks per second
    kills: int
    pg_outage_s: float
    drain_deadline_s: float
    # Recovery bounds the verdict holds the run to. The full run holds issue 9's
    # (30 s after a broker restart, 15 s after a kill -9, medians); the CI form
    # only catches a worker that does not come back, with room for a loaded machine.
    broker_bound_s: float = 30.0
    kill_bound_s: float = 15.0
    # The CI form packs ten kills, two broker restarts and an outage into ~75 s
    # on a loaded machine, so faults overlap and recovery times mix them: there
    # they are figures; the full run holds them to the bounds of issue 9.
    enforce_recovery: bool = True
    seed: int = 9

    @property
    def traffic_s(self) -> float:
        return self.events / self.rate


CI = Plan(
    "ci", events=900, rate=12, check_rate=2, kills=10, pg_outage_s=10, drain_deadline_s=90,
    broker_bound_s=60, kill_bound_s=45, enforce_recovery=False,
)  # fmt: skip
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
    random), so even the short form covers each one. Kills avoid the windows
    of the broker and Postgres faults (their own duration plus 10 s), of the
    scale-in, and the 15 s after the scale-out (the second instances joining) when
    there is room, so that each recovery figure measures one fault.
    """
    rng = random.Random(plan.seed)
    t = plan.traffic_s
    infra = [
        Fault(0.45 * t, "broker-kill9"),
        Fault(0.65 * t, "broker-graceful"),
        Fault(0.82 * t, "pg-outage"),
    ]
    busy = [(f.at_s - 2, f.at_s + _BROKER_S + 10) for f in infra[:2]]
    busy.append((infra[2].at_s - 2, infra[2].at_s + plan.pg_outage_s + 10))
    # The second instances join at once and leave well before the broker's kill, so
    # that the takeover of their partitions (~10 s) is measured alone.
    scale_in = Fault(0.25 * t, "scale-in")
    busy.append((scale_in.at_s - 5, scale_in.at_s + 15))
    # Nor do kills land while the second instances join and take their share: a
    # kill of one before it has done any work measures nothing and leaves the
    # load-sharing verdict to chance (on a loaded machine a join takes ~7 s).
    scale_out = Fault(0.02 * t, "scale-out")
    busy.append((scale_out.at_s, scale_out.at_s + 15))
    faults = [scale_out, *infra, scale_in]
    targets = list(WORKERS) + [rng.choice(WORKERS) for _ in range(plan.kills - len(WORKERS))]
    rng.shuffle(targets)
    times = []
    for _ in targets:
        at = rng.uniform(0.03 * t, 0.95 * t)
        for _try in range(1000):
            if not any(lo <= at <= hi for lo, hi in busy):
                break
            at = rng.uniform(0.03 * t, 0.95 * t)
        times.append(at)
    faults += [Fault(at, "kill9", w) for at, w in zip(sorted(times), targets, strict=True)]
    return sorted(faults, key=lambda f: f.at_s)
