"""``kernel demo`` (README's first command) runs end to end on the test stack."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.conftest import KernelCLI


def test_demo_decides_signs_projects_verifies_and_explains(
    db_cli: KernelCLI, tmp_path: Path
) -> None:
    done = db_cli("demo", timeout=300, extra_env={"KERNEL_STATE_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "db.drop_table        deny      agent-ops tried db.drop_table in prod" in out
    assert "payments.transfer    escalate" in out
    assert "verified: every chain" in out
    assert '"chain": "' in out.split("GET /sentinel/explain/")[1]  # explain names the chain link
    second = db_cli("demo", timeout=300, extra_env={"KERNEL_STATE_DIR": str(tmp_path)})
    assert second.returncode == 0, second.stderr[-3000:]
    assert "already active" in second.stdout
