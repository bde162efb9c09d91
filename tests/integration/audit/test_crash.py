"""kill -9 of the chain signer or the audit projector, at a random point.

Both run as real ``kernel run`` subprocesses on the test stack. After the kill
and a restart, the chains and the projection must equal those of an
uninterrupted run: the pure fold of :class:`ChainStep` over the input topic
(Ed25519 is deterministic, so the fold predicts every hash and signature), with
no gap, no duplicate, and every chain verifying.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ops.bootstrap import Kernel
from replay.audit_postgres import iter_rows
from replay.verify import ChainVerifier
from schemas.events import new_event
from streams.chain.keys import load_signer, load_signers_file
from streams.chain.links import ChainHead, ChainStep
from streams.kafka.log_reader import KafkaLogReader
from tests.e2e.conftest import settings_env
from tests.integration.core.test_producer import read_all

KERNEL = str(Path(sys.executable).with_name("kernel"))


def _env(kernel: Kernel) -> dict[str, str]:
    env = settings_env(kernel.settings)
    env.update(
        KERNEL_SIGNING_KEY=str(kernel.settings.signing_key),
        KERNEL_SIGNER_ID=kernel.settings.signer_id,
        KERNEL_METRICS_PORT="0",
        KERNEL_CHECKPOINT_EVERY=str(kernel.settings.checkpoint_every),
    )
    return env


class Workers:
    """``kernel run signer`` and ``kernel run audit-projector``, killable one by one."""

    def __init__(self, kernel: Kernel, log_dir: Path) -> None:
        self.env = _env(kernel)
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.starts = 0

    def start(self, worker: str) -> None:
        self.starts += 1
        log = (self.log_dir / f"{worker}-{self.starts}.log").open("wb")
        self.procs[worker] = subprocess.Popen(
            [KERNEL, "run", worker], env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()  # the child holds its own descriptor

    def kill9(self, worker: str) -> None:
        proc = self.procs.pop(worker)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self.procs.clear()


@contextmanager
def workers(kernel: Kernel, log_dir: Path) -> Iterator[Workers]:
    w = Workers(kernel, log_dir)
    try:
        yield w
    finally:
        w.stop_all()


def _count(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM audit_events").fetchone()
    return int(row[0]) if row else 0


def _wait_rows(url: str, at_least: int, timeout_s: float, logs: Path) -> int:
    deadline = time.monotonic() + timeout_s
    while (n := _count(url)) < at_least:
        if time.monotonic() > deadline:
            tails = "\n".join(p.read_text()[-800:] for p in sorted(logs.glob("*.log")))
            pytest.fail(f"{n} of {at_least} rows after {timeout_s}s; worker logs:\n{tails}")
        time.sleep(0.02)
    return n


def expected_rows(kernel: Kernel) -> dict[tuple[str, int], dict[str, Any]]:
    """The uninterrupted run: ChainStep folded over every input partition, in order."""
    step = ChainStep(load_signer(kernel.settings.signing_key))  # type: ignore[arg-type]
    reader = KafkaLogReader(kernel.settings.kafka_bootstrap, kernel.codec)
    out: dict[tuple[str, int], dict[str, Any]] = {}
    try:
        for topic in kernel.names.audited():
            for partition in reader.partitions(topic):
                head: ChainHead | None = None
                for rec in reader.iter(topic, partition, 0):
                    head, body = step(head, rec.event.to_json(), rec.position)
                    out[(body["chain"], body["seq"])] = body
    finally:
        reader.close()
    return out


def check_against_fold(kernel: Kernel, signers: Path) -> None:
    expected = expected_rows(kernel)
    with psycopg.connect(kernel.settings.database_url) as conn:
        rows = conn.execute(
            "SELECT chain, seq, prev_hash, hash, signature, source_offset, payload::text"
            " FROM audit_events ORDER BY chain, seq"
        ).fetchall()
        report = ChainVerifier(load_signers_file(signers)).feed_all(iter_rows(conn))
    got = {
        (c, s): (p, h, sig, off, orjson.loads(payload)) for c, s, p, h, sig, off, payload in rows
    }
    assert len(got) == len(rows)  # no duplicate (chain, seq)
    want = {
        key: (b["prevHash"], b["hash"], b["signature"], b["sourceOffset"], b["payload"])
        for key, b in expected.items()
    }
    assert got == want  # no gap, no extra, every link byte-identical to the fold
    assert report.ok, report.to_json()
    links = [e for _, e, _ in read_all(kernel, kernel.names.chain)]
    assert len(links) == len(expected)  # the chain topic holds each link once (committed)


def crash_and_recover(
    kernel: Kernel, signers: Path, log_dir: Path, rounds: list[tuple[list[int], str, float]]
) -> None:
    url = kernel.settings.database_url
    producer = kernel.producer()
    total = _count(url)
    with workers(kernel, log_dir) as w:
        w.start("signer")
        w.start("audit-projector")
        for sizes, victim, at in rounds:
            events = [
                new_event("kernelAction", "svc", f"acct-{s}", {"action": f"a{i}", "context": {}})
                for s, n in enumerate(sizes)
                for i in range(n)
            ]
            producer.publish_batch(events)
            kill_at = total + max(1, int(len(events) * at))
            _wait_rows(url, kill_at, 60, log_dir)
            w.kill9(victim)
            w.start(victim)
            total += len(events)
            _wait_rows(url, total, 90, log_dir)
    assert _count(url) == total
    check_against_fold(kernel, signers)


_rounds = st.lists(
    st.tuples(
        st.lists(st.integers(1, 40), min_size=1, max_size=4),
        st.sampled_from(["signer", "audit-projector"]),
        st.floats(0.0, 0.95),
    ),
    min_size=1,
    max_size=2,
)


@settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rounds=_rounds)
def test_kill9_signer_or_projector_then_restart_equals_an_uninterrupted_run(
    audit_kernel: Kernel, signers_file: Path, tmp_path: Path, rounds: Any
) -> None:
    crash_and_recover(audit_kernel, signers_file, tmp_path, rounds)


@pytest.mark.slow
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rounds=_rounds)
def test_kill9_many_points_slow(
    audit_kernel: Kernel, signers_file: Path, tmp_path: Path, rounds: Any
) -> None:
    crash_and_recover(audit_kernel, signers_file, tmp_path, rounds)
