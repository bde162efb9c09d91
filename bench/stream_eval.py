"""Streaming SentinelNet evaluation: kernel actions per second with 100 active policies.

Run: ``.venv/bin/python -m bench.stream_eval [--actions 20000]`` (on the stack the
environment names, e.g. ``KERNEL_STATE_DIR=/var/lib/kernel-test
KERNEL_KAFKA_PORT=29092 KERNEL_PG_PORT=25432``).

Per case, a fresh topic prefix: 100 policies are taken through their lifecycle
to ``active`` on the policies topic (400 policyChange events) and read by the
runner, N actions are published to the 3-partition actions topic, then the real
worker runner --
:class:`~streams.kafka.transactional_runner.TransactionalRunner` driving
:class:`~streams.sentinel.stream.SentinelProcessor`, one Kafka transaction per
poll batch -- evaluates them all and commits one policyCheck per action.

How many of the 100 policies are *in scope* of each action is what the cost
depends on (the index skips the others), so two cases are reported: all 100 in
scope (every policy's rule runs for every action) and 10 in scope (90 scoped
to other actions). Rules cycle through the shapes of ``bench.rule_engines``.

How many rules *match* each action is the other half of the cost (every
matched policy is in the record), so each case runs two workloads (column
``workload``):

- **worst**: the shapes as they are, which the bench's actions mostly
  satisfy: ≈ 60 of the 100 rules match every action;
- **typical**: each rule behind a guard one action in twelve passes
  (``bench.evaluation.guarded``), the way guard rules fire on a small fraction
  of actions: ≈ 5 of the 100 match an action (≈ 0.5 of 10).

Columns:

- end to end: N / (last commit - start of the run over the N actions); the
  group has joined and folded the 400 policy changes (a broadcast input)
  before the actions are published, so every action is evaluated against all
  100 policies;
- steady: actions / (last commit - first commit);
- matched/action: the mean number of policies whose rule matched, from the
  checks the step emitted;
- step only: the pure ``step`` over the same records, no Kafka (the CPU ceiling);
- check bytes: the mean encoded size of the policyChecks the step emitted;
- CPU µs/action: the runner process's CPU time (user + system, librdkafka's
  threads included) per action over the end-to-end run; step CPU µs: the
  step's CPU time per action. On a shared machine these move less than the
  rates do.

``--rounds N`` runs every case N times (alternating) and reports medians;
``--workload worst|typical`` runs one workload only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from dataclasses import replace

from bench._table import table
from bench.evaluation import guarded, policy
from bench.rule_engines import SHAPES
from ops.bootstrap import Kernel, bootstrap
from schemas.events import Event, new_event
from streams.kafka.transactional_runner import RunnerStats, TransactionalRunner
from streams.processor import InputRecord
from streams.sentinel.lifecycle import RegistryState, apply_change, plan_create, plan_transition
from streams.sentinel.policy import Policy, Scope, State
from streams.sentinel.stream import SentinelProcessor

__all__ = ["action_events", "bench_kernel", "lifecycle_events", "policies"]


def policies(total: int, in_scope: int, *, typical: bool = False) -> list[Policy]:
    """``total`` policies, ``in_scope`` of them scoped to ``payments.*`` actions;
    ``typical``: each rule behind a guard (few match an action)."""
    rules = [rule for rule, _ in SHAPES.values()]
    near = Scope(("kernelAction",), actions=("payments.*",))
    out = []
    for i in range(total):
        scope = near if i < in_scope else Scope(("kernelAction",), actions=(f"svc{i}.op",))
        rule = rules[i % len(rules)]
        if typical:
            rule = guarded(rule, i)
        out.append(replace(policy(i, rule, scope), state=State.DRAFT))
    return out


def lifecycle_events(items: list[Policy]) -> list[Event]:
    """create -> test -> canary (10%) -> active, for each policy."""
    state = RegistryState()
    events = []
    for p in items:
        change = plan_create(state, p, "bench")
        state = apply_change(state, change)
        events.append(change.to_event())
        for target in (State.TEST, State.CANARY, State.ACTIVE):
            change = plan_transition(state, p.policy_id, 1, target, "bench", canary_percent=10.0)
            state = apply_change(state, change)
            events.append(change.to_event())
    return events


def action_events(n: int) -> list[Event]:
    return [
        new_event(
            "kernelAction",
            f"agent:billing-{i % 50}",
            f"acct:{i % 500}",
            {
                "action": "payments.transfer",
                "resource": "prod/ledger/eu" if i % 2 else "dev/ledger",
                "requestId": f"req-{i}",
                "context": {
                    "amount": (i * 7919) % 40_000,
                    "currency": "EUR" if i % 3 else "USD",
                    "riskScore": (i % 100) / 100,
                    "country": ["FR", "DE", "IR", "US"][i % 4],
                    "tags": ["batch"] if i % 5 else ["manual"],
                },
            },
        )
        for i in range(n)
    ]


def bench_kernel(tag: str) -> Kernel:
    base = bootstrap()
    kernel = Kernel(replace(base.settings, topic_prefix=f"bench-{tag}-{uuid.uuid4().hex[:8]}."))
    kernel.topic_admin().ensure()
    return kernel


def _case(n: int, in_scope: int, typical: bool, actions: list[Event]) -> list[float]:
    kernel = bench_kernel("stream")
    producer = kernel.producer()
    producer.publish_batch(lifecycle_events(policies(100, in_scope, typical=typical)))
    processor = SentinelProcessor(
        kernel.names.actions, kernel.names.policies, kernel.names.policy_checks
    )
    commits: list[tuple[float, int]] = []

    def on_batch(stats: RunnerStats) -> None:
        commits.append((time.perf_counter(), stats.processed))

    runner = TransactionalRunner(
        processor,
        kafka=kernel.kafka,
        codec=kernel.codec,
        names=kernel.names,
        on_batch=on_batch,
    )
    # The policies first: a broadcast input, folded when the group assigns the
    # actions partitions (before any action is read), so no action is evaluated
    # against fewer than the 100 policies.
    runner.run_until_idle(idle_s=1.0, max_s=120)
    folded = runner._state  # the runner's state: the policy set it folded
    assert folded is not None
    assert len(folded.registry.policy_set) == 100
    commits.clear()
    for start in range(0, n, 5000):
        producer.publish_batch(actions[start : start + 5000])
    cpu0, t0 = os.times(), time.perf_counter()
    runner.run_until_idle(idle_s=2.0, max_s=600)
    cpu1 = os.times()
    outputs = runner.stats.outputs
    runner.close()
    total = n  # policy changes are absorbed, not counted as processed
    done = [t for t, processed in commits if processed >= total]
    last = done[0] if done else commits[-1][0]
    first_t, first_n = commits[0]
    end_to_end = n / (last - t0)
    steady = (total - first_n) / (last - first_t) if last > first_t else float("nan")
    cpu_s = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)

    # The pure step over the same records, no Kafka.
    state = processor.initial()
    for i, e in enumerate(lifecycle_events(policies(100, in_scope, typical=typical))):
        state = processor.absorb(state, InputRecord(kernel.names.policies, 0, i, 0, None, e))
    records = [InputRecord(kernel.names.actions, 0, i, 0, None, e) for i, e in enumerate(actions)]
    s0, c0 = time.perf_counter(), time.process_time()
    emitted = [processor.step(state, r)[1] for r in records]
    step_rate = n / (time.perf_counter() - s0)
    step_cpu_us = (time.process_time() - c0) / n * 1e6
    sample = [o.event for out in emitted[:1000] for o in out]
    check_bytes = statistics.mean(len(kernel.codec.encode(e)) for e in sample)
    runner_cpu = cpu_s / (last - t0) * 100
    matched = statistics.mean(_matched(out[0].event.body) for out in emitted[:1000])
    return [end_to_end, steady, step_rate, check_bytes, cpu_s / n * 1e6, step_cpu_us, runner_cpu,
            outputs, matched]  # fmt: skip


def _matched(body: dict[str, object]) -> int:
    """Policies whose rule matched, in full entries or named as outranked (v2)."""
    entries = body["evaluations"]
    assert isinstance(entries, list)
    outranked = body.get("outranked") or []
    assert isinstance(outranked, list)
    return sum(e["result"] == "matched" for e in entries) + len(outranked)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--actions", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--workload", choices=["worst", "typical"], action="append")
    args = ap.parse_args([] if __name__ != "__main__" else None)
    actions = action_events(args.actions)
    workloads = args.workload or ["worst", "typical"]
    runs: dict[tuple[str, int], list[list[float]]] = {
        (w, scoped): [] for w in workloads for scoped in (100, 10)
    }
    for _ in range(args.rounds):
        for (workload, scoped), found in runs.items():
            found.append(_case(args.actions, scoped, workload == "typical", actions))
    rows = []
    for (workload, scoped), found in runs.items():
        med = [statistics.median(col) for col in zip(*found, strict=True)]
        label = "worst (most rules match)" if workload == "worst" else "typical (few match)"
        rows.append([label, f"{scoped} of 100", f"{med[8]:.1f}", args.actions, int(med[7]),
                     *med[:6], f"{med[6]:.0f}%"])  # fmt: skip
    table(
        f"Streaming evaluation, TransactionalRunner + SentinelProcessor, 100 active policies "
        f"(median of {args.rounds})",
        ["workload", "in scope/action", "matched/action", "actions", "checks", "end-to-end/s",
         "steady/s", "step only/s", "check bytes", "CPU µs/action", "step CPU µs", "runner CPU"],
        rows,
    )  # fmt: skip


if __name__ == "__main__":
    main()
