"""The approvals' settings: TTL, and whether a registry is required (production: yes)."""

from __future__ import annotations

from pathlib import Path

from ops.config import Settings


def test_defaults_and_production(tmp_path: Path) -> None:
    dev = Settings.from_env({"KERNEL_STATE_DIR": str(tmp_path)})
    assert (dev.approval_ttl_days, dev.approvals_required) == (14, False)
    prod = Settings.from_env(
        {
            "KERNEL_STATE_DIR": str(tmp_path),
            "KERNEL_ENV": "production",
            "KERNEL_APPROVAL_TTL_DAYS": "7",
        }
    )
    assert (prod.approval_ttl_days, prod.approvals_required) == (7, True)
    off = Settings.from_env(
        {
            "KERNEL_STATE_DIR": str(tmp_path),
            "KERNEL_ENV": "production",
            "KERNEL_APPROVALS_REQUIRED": "0",
        }
    )
    assert not off.approvals_required
