"""kill -9 of every worker type, broker restarts, a Postgres outage, a rebalance: nothing lost.

The CI form runs in the default suite (~3 minutes); the full run is
``make test-faults`` (marker ``slow``). Both print the figures table (run
pytest with ``-s`` to see it on success; on failure it is the assertion message).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from pathlib import Path

import pytest

from ops.bootstrap import Kernel
from tests.faults.fault_stack import FaultStack
from tests.faults.report import table, verdict
from tests.faults.run import run_plan
from tests.faults.schedule import CI, FULL, Plan


def _plan(plan: Plan) -> Plan:
    seed = os.environ.get("KERNEL_FAULTS_SEED")
    return replace(plan, seed=int(seed)) if seed else plan


def _run(stack: FaultStack, kernel: Kernel, signers: Path, plan: Plan) -> None:
    # Kept after the run (pytest's tmp_path rotates away): the table and every worker's log.
    base = Path(os.environ.get("KERNEL_FAULTS_RUNS", "/var/tmp/kernel-faults-runs"))
    run_dir = base / f"{time.strftime('%Y%m%dT%H%M%S')}-{plan.name}"
    logs = run_dir / "logs"
    logs.mkdir(parents=True)
    result = run_plan(stack, kernel, signers, logs, _plan(plan))
    text = table(result) + f"\n  worker logs: {logs}"
    (run_dir / "report.txt").write_text(text + "\n")
    (run_dir / "timeline.json").write_text(json.dumps(result.timeline))
    print("\n" + text)
    assert not verdict(result), text


@pytest.mark.timeout(900)  # pyproject's 300 s is for ordinary tests; this one is a run
def test_faults_ci_form(fault_stack: FaultStack, fault_kernel: Kernel, signers: Path) -> None:
    _run(fault_stack, fault_kernel, signers, CI)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_faults_full_run(fault_stack: FaultStack, fault_kernel: Kernel, signers: Path) -> None:
    _run(fault_stack, fault_kernel, signers, FULL)
