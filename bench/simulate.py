"""Simulation over history: events/s for one candidate beside 100 active policies.

Run: ``.venv/bin/python -m bench.simulate [--events 100000] [--workload typical|worst]``
(on the stack the environment names, e.g. ``KERNEL_STATE_DIR=/var/tmp/kt-simulate
KERNEL_KAFKA_PORT=29640 KERNEL_PG_PORT=25640``).

A fresh topic prefix; 100 policies taken to ``active`` (all 100 in scope of
every action: every rule runs for every action; ``bench.stream_eval``'s
shapes, behind its one-in-twelve guard in the *typical* workload), one
candidate created as a ``draft`` (a deny rule in scope of every action), and
N actions published to the 3-partition actions topic. Then, over the same
window (``--last N``), rows that split the cost:

- consume: the range read in consume batches, no decoding (one process);
- consume + decode: and every record decoded (one process);
- evaluate: the evaluation and tally over the decoded events in memory (one
  process, no Kafka): the CPU ceiling of one core;
- simulate, 1 / 2 processes: ``simulate_history`` end to end (spawn, read,
  decode, evaluate, merge), what ``kernel policy simulate`` runs.

Columns: events/s (wall clock), seconds, CPU µs/event (this process's threads
and, for the split run, its reaped children) and events per CPU-second. On a
machine shared with other work the wall-clock rates move with the load; the
CPU cost does much less, and 2 / (CPU s per event) of the split run is what two
idle cores would give (printed below the table).
"""

from __future__ import annotations

import argparse
import functools
import os
import resource
import time
from collections.abc import Callable
from typing import Any, TypeVar

from bench._table import table
from bench.stream_eval import action_events, bench_kernel, lifecycle_events, policies
from ops.bootstrap import bootstrap
from ops.config import Settings
from schemas.codec import EventCodec
from schemas.events import now_ms
from streams.kafka.log_reader import committed_batches, reader_consumer
from streams.sentinel.kafka_history import HistoryJob, simulate_history, window_ranges
from streams.sentinel.kafka_registry import load_registry
from streams.sentinel.lifecycle import PolicyChange, RegistryState, apply_change, plan_create
from streams.sentinel.policy import Effect, Policy, Scope, Severity, State
from streams.sentinel.simulation import SimulationTally, Window, simulation_set

__all__ = ["main"]

CANDIDATE = Policy(
    policy_id="bench-candidate",
    version=1,
    name="deny large transfers to IR",
    severity=Severity.HIGH,
    scope=Scope(("kernelAction",), actions=("payments.*",)),
    rule='context.amount > 30000 && context.country == "IR"',
    effect=Effect.DENY,
    rationale="{actor} moved {context.amount} to {context.country}",
    state=State.DRAFT,
)


def codec_of(settings: Settings) -> EventCodec:
    """Each simulation process's codec (picklable through functools.partial)."""
    return bootstrap(settings).codec


def main() -> None:
    ap = argparse.ArgumentParser(prog="bench.simulate")
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--workload", choices=["typical", "worst"], default="typical")
    args = ap.parse_args([] if __name__ != "__main__" else None)
    n = args.events
    kernel = bench_kernel("simulate")
    producer = kernel.producer()
    active = policies(100, 100, typical=args.workload == "typical")
    changes = lifecycle_events(active)
    changes.append(plan_create(_folded(active), CANDIDATE, "bench").to_event())
    producer.publish_batch(changes)
    t0 = time.perf_counter()
    actions = action_events(n)
    for start in range(0, n, 5000):
        producer.publish_batch(actions[start : start + 5000])
    publish_s = time.perf_counter() - t0

    topic = kernel.names.actions
    registry = load_registry(kernel.kafka, kernel.codec, kernel.names.policies)
    live = registry.state.live()
    candidate = registry.state.policies[CANDIDATE.policy_id].latest
    ranges = window_ranges(kernel.offsets(), topic, Window(last=n), now_ms())
    assert sum(e - s for s, e in ranges.values()) == n
    job = HistoryJob(kernel.kafka, functools.partial(codec_of, kernel.settings), topic, live,
                     candidate)  # fmt: skip

    consume = _timed(lambda: _consume(job, ranges, decode=False))
    decode = _timed(lambda: _consume(job, ranges, decode=True))
    events = decode[2]
    sets = simulation_set(live, candidate)
    tally = SimulationTally(candidate.policy_id, candidate.version)
    evaluate = _timed(lambda: tally.run(sets, events))
    one = _timed(lambda: simulate_history(job, ranges, workers=1))
    two = _timed(lambda: simulate_history(job, ranges, workers=2))
    assert one[2].to_json() == two[2].to_json() == tally.to_json(), "split changed the report"
    report = one[2].to_json()
    stages = [
        ("consume", consume),
        ("consume + decode", decode),
        ("evaluate (in memory)", evaluate),
        ("simulate, 1 process", one),
        ("simulate, 2 processes", two),
    ]
    rows: list[list[object]] = [
        [name, f"{n / wall:,.0f}", f"{wall:.2f}", f"{cpu / n * 1e6:.0f}", f"{n / cpu:,.0f}"]
        for name, (wall, cpu, _) in stages
    ]
    table(
        f"simulation over {n} actions, 1 candidate + 100 active policies in scope "
        f"({args.workload}; published in {publish_s:.1f}s; load {os.getloadavg()[0]:.1f}, "
        f"{os.cpu_count()} cores)",
        ["stage", "events/s", "seconds", "CPU µs/event", "events per CPU-s"],
        rows,
    )
    two_cpu = two[1] / n
    print(
        f"2 processes: {two[1] / two[0]:.2f} cores busy on average; on 2 idle cores the split "
        f"run's CPU cost ({two_cpu * 1e6:.0f} µs/event) is {2 / two_cpu:,.0f} events/s"
    )
    changed = report["changes"]
    print(
        f"candidate matched {report['candidateMatched']} ({report['matchRate']:.2%}), "
        f"newly denied {changed['newlyDenied']['count']}, changed {changed['total']}, "
        f"errors {report['errors']}"
    )


def _folded(items: list[Policy]) -> RegistryState:
    state = RegistryState()
    for e in lifecycle_events(items):
        state = apply_change(state, PolicyChange.from_event(e))
    return state


T = TypeVar("T")


def _timed(fn: Callable[[], T]) -> tuple[float, float, T]:
    """Wall seconds, CPU seconds (this process's threads and the children it reaped), result."""
    start, cpu = time.perf_counter(), _cpu()
    out = fn()
    return time.perf_counter() - start, _cpu() - cpu, out


def _cpu() -> float:
    mine = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return mine.ru_utime + mine.ru_stime + children.ru_utime + children.ru_stime


def _consume(job: HistoryJob, ranges: dict[int, tuple[int, int]], *, decode: bool) -> list[Any]:
    codec = job.codec()
    consumer = reader_consumer(job.kafka, "bench-simulate")
    out: list[Any] = []
    try:
        for p, (start, end) in sorted(ranges.items()):
            for msgs in committed_batches(consumer, job.topic, p, start, end, timeout_s=10,
                                          batch=5000):  # fmt: skip
                if decode:
                    out.extend(
                        (p, int(m.offset() or 0), codec.decode(m.value() or b"")) for m in msgs
                    )
                else:
                    out.extend(msgs)
    finally:
        consumer.close()
    return out if decode else []


if __name__ == "__main__":
    main()
