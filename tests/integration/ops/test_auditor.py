"""The auditor on a real pipeline: incremental rounds, a tampered row, the real alert.

The pipeline (signer -> checkpointer -> audit projector) runs in-process on the
test stack with uuid topics and a database of the test's own. Tampering is
done as the database superuser with the append-only trigger disabled -- the
attack the auditor exists to catch.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from prometheus_client import REGISTRY

from ops.bootstrap import Kernel
from ops.workers.auditor import Auditor
from projections.migrate import migrate
from replay.audit_postgres import insert_checkpoint
from streams.chain.keys import generate_key
from streams.chain.note import ChainCheckpoint
from tests.e2e.conftest import settings_env
from tests.integration.core.test_producer import _actions

ROOT = Path(__file__).resolve().parents[3]
KERNEL = str(Path(sys.executable).with_name("kernel"))


@pytest.fixture
def audited(db_kernel: Kernel, tmp_path: Path) -> Kernel:
    key = generate_key(tmp_path / "keys", "auditor-test")
    migrate(db_kernel.settings.database_url)
    return Kernel(
        replace(
            db_kernel.settings,
            signing_key=key,
            signer_id="auditor-test",
            checkpoint_every=5,
            state_dir=tmp_path,
        )
    )


def _pipeline(kernel: Kernel, n: int) -> None:
    kernel.producer().publish_batch(_actions(n, "acct-a"))
    for runner in (kernel.chain_signer(), kernel.checkpointer(), kernel.audit_projector()):
        try:
            runner.run_until_idle(idle_s=1.0)
        finally:
            runner.close()


def _tamper(kernel: Kernel) -> str:
    """Edit the payload of one stored row behind the trigger's back; its chain."""
    with psycopg.connect(kernel.settings.database_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only")
        row = conn.execute(
            "UPDATE audit_events SET payload = jsonb_set(payload, '{actor}', '\"mallory\"')"
            " WHERE seq = 1 RETURNING chain"
        ).fetchone()
        conn.execute("ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only")
    assert row is not None
    return str(row[0])


def _sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_rounds_are_incremental_and_a_full_round_catches_an_old_edited_row(
    audited: Kernel,
) -> None:
    kernel = audited
    _pipeline(kernel, 12)
    auditor = Auditor(kernel.verifiers(), full_every=3)
    failed_before = _sample("kernel_audit_verifications_total", result="failed") or 0.0
    with psycopg.connect(kernel.settings.database_url) as conn:
        first = auditor.round(conn)
        assert first.ok and first.full
        assert first.rows == 12
        assert first.checkpoints >= 2  # every 5 links
        (chain,) = {
            str(c) for (c,) in conn.execute("SELECT DISTINCT chain FROM audit_events").fetchall()
        }
        topic, _, partition = chain.rpartition("/")
        assert _sample("kernel_chain_length", topic=topic, partition=partition) == 12.0
        head = _sample("kernel_chain_head_timestamp_seconds", topic=topic, partition=partition)
        assert head is not None and abs(head - time.time()) < 3600
        assert _sample(
            "kernel_chain_checkpoint_timestamp_seconds", topic=topic, partition=partition
        )

        _pipeline(kernel, 4)
        second = auditor.round(conn)
        assert second.ok and not second.full
        assert second.rows == 4  # only what was appended
        assert _sample("kernel_chain_length", topic=topic, partition=partition) == 16.0

        assert _tamper(kernel) == chain
        third = auditor.round(conn)  # incremental: the edited row was verified already
        assert third.ok and third.rows == 0
        fourth = auditor.round(conn)  # full: every row again
        assert fourth.full and not fourth.ok
        (failure,) = fourth.failures
        assert (failure.chain, failure.seq) == (chain, 1)
        assert "payload or hash edited" in failure.reason
        assert not auditor.round(conn).ok  # a failed chain stays failed
    failed_after = _sample("kernel_audit_verifications_total", result="failed") or 0.0
    assert failed_after - failed_before == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get_json(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return json.loads(resp.read())
    except OSError:
        return None


def _query(prom: str, expr: str) -> list[Any]:
    doc = _get_json(f"{prom}/api/v1/query?query={urllib.parse.quote(expr)}")
    return [] if doc is None else list(doc["data"]["result"])


def _alert_state(prom: str, name: str) -> str | None:
    doc = _get_json(f"{prom}/api/v1/alerts")
    for alert in [] if doc is None else doc["data"]["alerts"]:
        if alert["labels"]["alertname"] == name:
            return str(alert["state"])
    return None


def _until(check: Any, what: str, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="needs prometheus (ops/install.sh)")
def test_a_tampered_row_makes_the_shipped_audit_alert_fire_in_prometheus(
    audited: Kernel, tmp_path: Path
) -> None:
    kernel = audited
    _pipeline(kernel, 8)
    metrics_port, prom_port = _free_port(), _free_port()
    env = settings_env(kernel.settings)
    env.update(
        KERNEL_STATE_DIR=str(tmp_path),
        KERNEL_SIGNING_KEY=str(kernel.settings.signing_key),
        KERNEL_METRICS_PORT=str(metrics_port),
        KERNEL_AUDITOR_INTERVAL_S="1",
        KERNEL_AUDITOR_FULL_EVERY="1",
    )
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: ['{ROOT / 'ops' / 'prometheus' / 'alerts.yml'}']\n"
        "scrape_configs:\n"
        "  - job_name: auditor\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{metrics_port}']}}]\n"
    )
    logs = tmp_path / "logs"
    logs.mkdir()
    with (logs / "auditor.log").open("wb") as a_log, (logs / "prom.log").open("wb") as p_log:
        auditor = subprocess.Popen([KERNEL, "run", "auditor"], env=env, stdout=a_log, stderr=a_log)
        prom = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            stdout=p_log,
            stderr=p_log,
        )
    url = f"http://127.0.0.1:{prom_port}"
    try:
        _until(lambda: _query(url, 'kernel_audit_verifications_total{result="ok"} > 0'), "ok")
        assert _alert_state(url, "KernelAuditVerificationFailed") is None
        assert _query(url, "kernel_chain_length > 0"), "chain length scraped"
        _tamper(kernel)
        state = _until(
            lambda: _alert_state(url, "KernelAuditVerificationFailed") == "firing",
            "KernelAuditVerificationFailed firing",
        )
        assert state
        assert auditor.poll() is None, "the auditor keeps running after a failure"
    finally:
        for proc in (auditor, prom):
            proc.terminate()
        assert auditor.wait(timeout=30) == 0, (logs / "auditor.log").read_text()
        prom.wait(timeout=30)
    assert "failed verification at seq 1" in (logs / "auditor.log").read_text()


def test_a_checkpoint_arriving_after_its_rows_is_checked_and_a_forged_one_fails(
    audited: Kernel,
) -> None:
    kernel = audited
    kernel.producer().publish_batch(_actions(11, "acct-a"))
    for runner in (kernel.chain_signer(), kernel.audit_projector()):  # no checkpointer yet
        try:
            runner.run_until_idle(idle_s=1.0)
        finally:
            runner.close()
    auditor = Auditor(kernel.verifiers(), full_every=100)
    with psycopg.connect(kernel.settings.database_url) as conn:
        first = auditor.round(conn)
        assert first.ok and (first.rows, first.checkpoints) == (11, 0)
        for runner in (kernel.checkpointer(), kernel.audit_projector()):
            try:
                runner.run_until_idle(idle_s=1.0)
            finally:
                runner.close()
        late = auditor.round(conn)
        assert late.ok and late.rows == 0
        assert late.checkpoints >= 2  # sizes 5 and 10, both behind the verified head

        (chain,) = {str(c) for (c,) in conn.execute("SELECT chain FROM audit_events").fetchall()}
        forged = ChainCheckpoint(chain, 7, b"\x01" * 32, "ab" * 32)
        insert_checkpoint(conn, forged, kernel.settings.signer_id, forged.sign(kernel.signer()))
        conn.commit()
        caught = auditor.round(conn)
        assert not caught.ok
        (failure,) = caught.failures
        assert failure.chain == chain
        assert "do not match the signed checkpoint" in failure.reason
