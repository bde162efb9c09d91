"""kill -9 of every worker type, broker restarts, a Postgres outage, a rebalance: nothing lost.

The CI form runs in the default suite (~3 minutes); the full run is
``make test-faults`` (marker ``slow``). Both print the figures table (run
pytest with ``-s`` to see it on success; on failure it is the assertion message).
"""

from __future__ import annotations

import os
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


def _run(stack: FaultStack, kernel: Kernel, signers: Path, tmp_path: Path, plan: Plan) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    result = run_plan(stack, kernel, signers, logs, _plan(plan))
    text = table(result) + f"\n  worker logs: {logs}"
    print("\n" + text)
    out = os.environ.get("KERNEL_FAULTS_REPORT")
    if out:
        Path(out).write_text(text + "\n")
    assert not verdict(result), text


def test_faults_ci_form(
    fault_stack: FaultStack, fault_kernel: Kernel, signers: Path, tmp_path: Path
) -> None:
    _run(fault_stack, fault_kernel, signers, tmp_path, CI)


@pytest.mark.slow
def test_faults_full_run(
    fault_stack: FaultStack, fault_kernel: Kernel, signers: Path, tmp_path: Path
) -> None:
    _run(fault_stack, fault_kernel, signers, tmp_path, FULL)
