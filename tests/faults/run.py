"""One fault run: workers under a supervisor, traffic, the schedule, drain, end checks.

Everything a run measures lands in a :class:`RunResult`; :mod:`tests.faults.report`
turns it into the table and the verdict.
"""

from __future__ import annotations

import logging
import os
import random
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from ops.bootstrap import Kernel
from tests.e2e.conftest import settings_env
from tests.faults.fault_stack import FaultStack
from tests.faults.ledger import Ledger, read_ledger
from tests.faults.progress import Arrivals, Progress
from tests.faults.schedule import Fault, Plan, schedule
from tests.faults.scrape import WorkerMetrics
from tests.faults.supervisor import Exit, Supervisor, free_port, supports_instance_flag
from tests.faults.traffic import CheckTraffic, Publisher, probe_subjects

__all__ = ["FaultRecord", "RunResult", "run_plan"]

REPO = Path(__file__).resolve().parents[2]
PIPELINE = ("signer", "checkpointer", "audit-projector", "sentinel", "sentinel-projector")
# A second instance of every pipeline worker joins (scale-out) and later leaves for
# good (scale-in); both must have done work. Two auditors verify independently
# (the auditor reads Postgres, not a partition: its instances are redundant, not shared).
SCALED = PIPELINE
AUDITORS = ("0", "1")


@dataclass
class FaultRecord:
    fault: Fault
    started: float  # monotonic
    ended: float  # the fault is over (killed and restarting / broker or Postgres back)
    target: str = ""
    instance: str = ""
    drain_s: float | None = None  # probes after the fault on every partition, projected
    probes_acked: bool = True
    done: bool = True  # False: a kill found its target already down (restarting)


@dataclass
class RunResult:
    plan: Plan
    faults: list[FaultRecord] = field(default_factory=list)
    exits: list[Exit] = field(default_factory=list)
    term: dict[str, tuple[int, float]] = field(default_factory=dict)  # final SIGTERM: code, s
    starts: dict[str, int] = field(default_factory=dict)
    ledger: Ledger | None = None
    verify: dict[str, tuple[int, str]] = field(default_factory=dict)
    aborts: int = 0  # aborts the runners completed and went on from (their metric)
    aborts_by: dict[str, int] = field(default_factory=dict)
    abort_lines: int = 0  # "aborting transaction" log lines (also counts aborts that failed)
    abort_failed_lines: int = 0  # "abort failed" log lines
    projector_retries: int = 0  # "retrying in" lines of the projectors
    processed: dict[str, int] = field(default_factory=dict)  # worker#instance -> records finished
    verifications: dict[str, dict[str, int]] = field(default_factory=dict)  # auditor#i -> result
    recovery: dict[str, list[float | None]] = field(default_factory=dict)  # kill -9 -> served
    not_counted: dict[str, int] = field(default_factory=dict)  # kills inside an infra fault
    broker_recovery: dict[str, float | None] = field(default_factory=dict)  # per fault kind
    broker_blame: dict[str, dict[str, float | None]] = field(default_factory=dict)
    final_drain_s: float | None = None
    harness_errors: list[str] = field(default_factory=list)
    ignored_sigterm: list[str] = field(default_factory=list)
    instance_flag: bool = False
    wall_s: float = 0.0
    publish_failures: int = 0
    checks: CheckTraffic | None = None
    timeline: dict[str, Any] = field(default_factory=dict)  # to audit the figures after a run


def worker_env(kernel: Kernel, api_port: int, signers: Path | None = None) -> dict[str, str]:
    env = settings_env(kernel.settings)
    path = os.environ.get("PYTHONPATH", "")
    env.update(
        PYTHONPATH=f"{REPO}{os.pathsep}{path}" if path else str(REPO),
        KERNEL_SIGNING_KEY=str(kernel.settings.signing_key),
        KERNEL_SIGNER_ID=kernel.settings.signer_id,
        KERNEL_METRICS_PORT="0",
        KERNEL_CHECKPOINT_EVERY="50",
        KERNEL_CHECKPOINT_INTERVAL_S="5",
        KERNEL_API_PORT=str(api_port),
        KERNEL_AUDITOR_INTERVAL_S="5",
        KERNEL_AUDITOR_FULL_EVERY="12",
    )
    if signers is not None:
        env["KERNEL_SIGNERS_FILE"] = str(signers)
    return env


class _Probes:
    """One kernelAction per actions partition; drained when each is chained and decided.

    One watcher thread with one Postgres connection checks every pending probe
    set each 0.5 s (a connection per check would load the server it measures).
    """

    def __init__(self, kernel: Kernel, publisher: Publisher, deadline_s: float) -> None:
        self.kernel = kernel
        self.publisher = publisher
        self.deadline_s = deadline_s
        self.subjects = probe_subjects(3)
        self._pending: list[tuple[list[str], float, Callable[[float | None], None]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="probes", daemon=True)
        self._conn: psycopg.Connection[Any] | None = None
        self.errors: list[str] = []

    def start(self) -> None:
        self._thread.start()

    def after(self, record: FaultRecord) -> None:
        ids = self.publisher.publish_probes(self.subjects)
        if not ids:
            record.probes_acked = False
            return

        def done(v: float | None) -> None:
            record.drain_s = v

        with self._lock:
            self._pending.append((ids, record.ended, done))

    def wait(self, ids: list[str], since: float) -> float | None:
        got: list[float | None] = []
        ended = threading.Event()

        def done(v: float | None) -> None:
            got.append(v)
            ended.set()

        with self._lock:
            self._pending.append((ids, since, done))
        ended.wait(self.deadline_s + 30)
        return got[0] if got else None

    def join(self) -> None:
        """Until every pending probe set is seen or past its deadline."""
        while True:
            with self._lock:
                if not self._pending:
                    return
            time.sleep(0.5)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _visible(self, ids: list[str]) -> tuple[set[str], set[str]]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                self.kernel.settings.database_url, connect_timeout=3, autocommit=True
            )
        chained = {
            str(r[0])
            for r in self._conn.execute(
                "SELECT id FROM audit_events WHERE id = ANY(%s::uuid[])", (ids,)
            )
        }
        decided = {
            str(r[0])
            for r in self._conn.execute(
                "SELECT DISTINCT subject_event_id FROM policy_checks"
                " WHERE subject_event_id = ANY(%s) AND mode = 'stream' AND NOT sim_mode",
                (ids,),
            )
        }
        return chained, decided

    def _run(self) -> None:
        try:
            while not self._stop.wait(0.5):
                with self._lock:
                    pending = list(self._pending)
                if not pending:
                    continue
                try:
                    chained, decided = self._visible([i for ids, _, _ in pending for i in ids])
                except psycopg.Error:
                    self._conn = None  # Postgres is down: try again next round
                    chained, decided = set(), set()
                now = time.monotonic()
                for item in pending:
                    ids, since, done = item
                    if all(i in chained and i in decided for i in ids):
                        done(now - since)
                    elif now - since > self.deadline_s:
                        done(None)
                    else:
                        continue
                    with self._lock:
                        self._pending.remove(item)
        except Exception as exc:
            self.errors.append(f"probes: {exc!r}")
        finally:
            if self._conn is not None:
                self._conn.close()


class _Faults:
    def __init__(self, stack: FaultStack, sup: Supervisor, plan: Plan) -> None:
        self.stack, self.sup, self.plan = stack, sup, plan
        self.rng = random.Random(plan.seed + 1)

    def fire(self, fault: Fault) -> FaultRecord:
        started = time.monotonic()
        target, instance, done = fault.target, "", True
        if fault.kind == "kill9":
            # A target that is down (restarting, crash-looping) is waited for, up to
            # 20 s, so that the schedule's kills are kills and not no-ops.
            instances = [i for w, i in self.sup.members() if w == target]
            instance = self.rng.choice(instances)
            deadline = time.monotonic() + 20
            while not (done := self.sup.kill9(target, instance)) and time.monotonic() < deadline:
                time.sleep(0.5)
        elif fault.kind == "broker-kill9":
            self.stack.kill9_broker()
            time.sleep(2)
            self.stack.start_broker()
        elif fault.kind == "broker-graceful":
            self.stack.stop_broker()
            time.sleep(2)
            self.stack.start_broker()
        elif fault.kind == "pg-outage":
            self.stack.stop_postgres()
            time.sleep(self.plan.pg_outage_s)
            self.stack.start_postgres()
        elif fault.kind == "scale-out":
            for w in SCALED:
                self.sup.add_worker(w, "1")
        elif fault.kind == "scale-in":
            for w in SCALED:  # one of the two instances leaves for good
                self.sup.kill9(w, "1", restart=False)
        return FaultRecord(fault, started, time.monotonic(), target, instance, done=done)


def _count_lines(paths: list[Path], pattern: str) -> int:
    rx = re.compile(pattern)
    return sum(len(rx.findall(p.read_text(errors="replace"))) for p in paths)


def _cli(env: dict[str, str], *args: str) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "ops.cli", *args],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
    return done.returncode, " | ".join(tail)


def _settled(kernel: Kernel, quiet_s: float, deadline: float) -> None:
    """Wait until neither table grows for ``quiet_s`` (the policyChecks' chain links too)."""
    last, since = (-1, -1), time.monotonic()
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(kernel.settings.database_url, connect_timeout=3) as conn:
                row = conn.execute(
                    "SELECT (SELECT count(*) FROM audit_events),"
                    " (SELECT count(*) FROM policy_checks)"
                ).fetchone()
            now = (int(row[0]), int(row[1])) if row else (-1, -1)
        except psycopg.Error:
            now = (-1, -1)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
        time.sleep(0.5)


@contextmanager
def _quiet_sdk() -> Iterator[None]:
    """The SDK producers' librdkafka log (connection refused while the broker is down)."""
    sdk = logging.getLogger("kernel.librdkafka")
    level = sdk.level
    sdk.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        sdk.setLevel(level)


def run_plan(
    stack: FaultStack, kernel: Kernel, signers: Path, log_dir: Path, plan: Plan
) -> RunResult:
    wall = time.monotonic()
    api_port = free_port()
    env = worker_env(kernel, api_port, signers)
    result = RunResult(plan, instance_flag=supports_instance_flag(env))
    sup = Supervisor(env, log_dir, instance_flag=result.instance_flag)
    for w in PIPELINE:
        sup.add_worker(w)
    for i in AUDITORS:
        sup.add_worker("auditor", i)
    sup.add_api(api_port)
    sup.start()
    publisher = Publisher(kernel, plan.events, plan.rate)
    checks = CheckTraffic(api_port, plan.check_rate)
    progress = Progress(kernel)
    scraper = WorkerMetrics(sup.metrics_targets)
    probes = _Probes(kernel, publisher, plan.drain_deadline_s)
    faults = _Faults(stack, sup, plan)
    try:
        # Ready: one probe per partition all the way through before the clock starts.
        progress.start()
        scraper.start()
        probes.start()
        warm = publisher.publish_probes(probes.subjects)
        if probes.wait(warm, time.monotonic()) is None:
            result.harness_errors.append("the pipeline never processed the warm-up probes")
        checks.start()
        publisher.start()
        t_start = time.monotonic()
        for fault in schedule(plan):
            delay = t_start + fault.at_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            record = faults.fire(fault)
            result.faults.append(record)
            probes.after(record)
        publisher.join(timeout=plan.traffic_s * 4 + 600)
        checks.stop()
        # Drain: the last probes through every partition, then both tables quiet.
        final = publisher.publish_probes(probes.subjects)
        t_final = time.monotonic()
        result.final_drain_s = probes.wait(final, t_final) if final else None
        _settled(kernel, 5.0, t_final + plan.drain_deadline_s)
        probes.join()
        progress.stop()
        scraper.scrape_once()  # the survivors' last counts, before the final SIGTERM
        result.ledger = read_ledger(kernel, publisher.acked, publisher.uncertain, checks.ok)
        result.verify["audit-verify"] = _cli(env, "audit-verify", "--signers", str(signers))
        result.verify["replay audit --verify-only"] = _cli(
            env, "replay", "audit", "--verify-only", "--signers", str(signers)
        )
    finally:
        checks.stop()
        progress.stop()
        scraper.stop()
        probes.stop()
        sup.stop_all()
    result.exits = list(sup.exits)
    result.term = dict(sup.term)
    result.ignored_sigterm = list(sup.ignored_sigterm)
    result.starts = {f"{w}#{i}": sup.starts(w, i) for w, i in sup.all_members()}
    result.checks = checks
    result.publish_failures = publisher.failures
    result.harness_errors += (
        sup.errors
        + publisher.errors
        + checks.errors
        + progress.errors
        + scraper.errors
        + probes.errors
    )
    runners = [p for w in ("signer", "sentinel", "checkpointer") for p in sup.logs(w)]
    projectors = [p for w in ("audit-projector", "sentinel-projector") for p in sup.logs(w)]
    result.aborts, result.aborts_by = scraper.total(), scraper.by_processor()
    result.processed = scraper.processed_by_instance()
    result.verifications = {
        k: v for k, v in scraper.verifications_by_instance().items() if k.startswith("auditor#")
    }
    result.abort_lines = _count_lines(runners, r"aborting transaction")
    result.abort_failed_lines = _count_lines(runners, r"abort failed")
    result.projector_retries = _count_lines(projectors, r"retrying in")
    arrivals = Arrivals.read(kernel.settings.kafka_bootstrap, progress.topics)
    _figures(result, progress, checks, arrivals)
    result.timeline = _timeline(result, progress, wall)
    result.wall_s = time.monotonic() - wall
    return result


def _timeline(result: RunResult, progress: Progress, t0: float) -> dict[str, Any]:
    """Faults and samples in seconds from the run's start (``timeline.json``)."""
    return {
        "faults": [
            {"kind": r.fault.kind, "target": r.target, "instance": r.instance,
             "started": round(r.started - t0, 2), "ended": round(r.ended - t0, 2),
             "drain_s": r.drain_s, "done": r.done}
            for r in result.faults
        ],
        "exits": [
            {"worker": e.worker, "instance": e.instance, "code": e.code, "asked": e.asked,
             "at": round(e.at - t0, 2), "uptime_s": round(e.uptime_s, 2), "cause": e.last_line}
            for e in result.exits
        ],
        "samples": [
            {"at": round(s.at - t0, 2),
             "positions": {f"{w} {t}/{p}": v for (w, t, p), v in s.positions.items()},
             "ends": {f"{t}/{p}": v for (t, p), v in s.ends.items()}}
            for s in progress.samples
        ],
    }  # fmt: skip


def _figures(
    result: RunResult, progress: Progress, checks: CheckTraffic, arrivals: Arrivals
) -> None:
    infra = [
        r for r in result.faults if r.fault.kind in ("broker-kill9", "broker-graceful", "pg-outage")
    ]
    for r in result.faults:
        if r.fault.kind == "kill9" and r.done:
            # A kill right after an infrastructure fault measures that fault, not the kill.
            if any(
                0 <= r.started - i.ended < 20 or i.started <= r.started <= i.ended for i in infra
            ):
                continue
            if r.target == "api":
                ok = checks.first_ok_after(r.ended)
                served = None if ok is None else ok - r.ended
            else:
                served = progress.served_again(r.target, r.ended, arrivals)
            result.recovery.setdefault(r.target, []).append(served)
        elif r.fault.kind in ("broker-kill9", "broker-graceful"):
            blame: dict[str, float | None] = {
                w: progress.served_again(w, r.ended, arrivals) for w in PIPELINE
            }
            ok = checks.first_ok_after(r.ended)
            blame["api"] = None if ok is None else ok - r.ended
            result.broker_blame[r.fault.kind] = blame
            values = list(blame.values())
            result.broker_recovery[r.fault.kind] = (
                None if any(v is None for v in values) else max(v for v in values if v is not None)
            )
        elif r.fault.kind == "scale-in":
            for w in SCALED:
                result.recovery.setdefault(f"{w} (scale-in)", []).append(
                    progress.served_again(w, r.ended, arrivals)
                )
