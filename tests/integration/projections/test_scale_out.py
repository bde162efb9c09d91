"""Two audit projector processes in one consumer group: shared, stalled, killed.

Real processes on the test stack. They split the partitions; one is frozen
(SIGSTOP) long enough for the group to hand its partitions to the other and
then thawed -- a zombie that may still hold a batch it read before -- and later
the other is killed with SIGKILL. Every link must be in ``audit_events``
exactly once, nothing dead-lettered (a second write of a link would be a
unique violation, hence a dead letter), and each checkpoint at its log end.
"""

from __future__ import annotations

import ast
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import Producer

from ops.bootstrap import Kernel
from projections.migrate import migrate
from tests.e2e.conftest import settings_env
from tests.integration.core.test_producer import read_all
from tests.integration.projections.records import link, raw_encode

Assignment = list[tuple[str, int]]


class Instance:
    def __init__(self, kernel: Kernel, instance_id: str, log: Path) -> None:
        env = settings_env(kernel.settings) | {"KERNEL_METRICS_PORT": "0"}
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.integration.projections.projector_instance",
                 instance_id],
                env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def assignment(self) -> Assignment | None:
        found = re.findall(r"assigned (\[.*\])", self.log.read_text(errors="replace"))
        return ast.literal_eval(found[-1]) if found else None

    def signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def _wait(what: str, check: object, timeout_s: float, logs: list[Path]) -> float:
    t0 = time.monotonic()
    while not check():  # type: ignore[operator]
        if time.monotonic() - t0 > timeout_s:
            tails = "\n".join(f"--- {p.name}\n{p.read_text()[-1500:]}" for p in logs)
            pytest.fail(f"{what} not within {timeout_s}s; logs:\n{tails}")
        time.sleep(0.1)
    return time.monotonic() - t0


def test_two_instances_share_a_stall_and_a_kill_and_project_each_link_once(
    db_kernel: Kernel, tmp_path: Path
) -> None:
    kernel, url = db_kernel, db_kernel.settings.database_url
    migrate(url)
    topic = kernel.names.chain
    producer = Producer({"bootstrap.servers": kernel.settings.kafka_bootstrap})
    seqs = dict.fromkeys(range(3), 0)

    def publish(n: int) -> None:
        for i in range(n):
            p = i % 3
            event = link(f"{topic}/{p}", seqs[p])
            seqs[p] += 1
            producer.produce(topic, raw_encode(kernel.codec, event), b"k", partition=p)
        assert producer.flush(30) == 0

    def rows() -> int:
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT count(*) FROM audit_events").fetchone()
        return int(str(row[0])) if row else 0

    total = 0
    instances = [Instance(kernel, str(i), tmp_path / f"instance-{i}.log") for i in range(2)]
    logs = [i.log for i in instances]
    everything = {(topic, p) for p in range(3)} | {(kernel.names.checkpoints, 0)}
    try:
        a, b = instances
        _wait(
            "both instances assigned a share",
            lambda: all(i.assignment() for i in instances)
            and set(a.assignment() or []) | set(b.assignment() or []) == everything,
            90, logs,
        )  # fmt: skip
        publish(60)
        total += 60
        _wait("first rows", lambda: rows() == total, 60, logs)

        b.signal(signal.SIGSTOP)  # stalled: its partitions move after the session timeout
        publish(60)
        total += 60
        stalled = _wait("a's takeover", lambda: rows() == total, 90, logs)
        assert set(a.assignment() or []) == everything
        b.signal(signal.SIGCONT)  # a zombie for a moment, then a member again
        _wait("b rejoined", lambda: b.assignment() and a.assignment() != sorted(everything),
              90, logs)  # fmt: skip
        publish(60)
        total += 60
        _wait("shared rows", lambda: rows() == total, 60, logs)

        a.signal(signal.SIGKILL)
        a.proc.wait(timeout=10)
        publish(60)
        total += 60
        killed = _wait("b's takeover", lambda: rows() == total, 90, logs)
        print(f"\nall rows {stalled:.1f}s after a stall, {killed:.1f}s after a kill -9")
    finally:
        for instance in instances:
            instance.stop()

    with psycopg.connect(url) as conn:
        got = conn.execute("SELECT chain, seq FROM audit_events").fetchall()
        checkpoints = conn.execute(
            "SELECT topic, partition, next_offset FROM projection_checkpoints"
        ).fetchall()
    want = {(f"{topic}/{p}", s) for p in range(3) for s in range(seqs[p])}
    assert len(got) == total and set(got) == want  # each link exactly once
    assert read_all(kernel, kernel.names.dlq) == []  # no second write was even tried
    assert sorted(checkpoints) == [(topic, p, seqs[p]) for p in range(3)]
