"""``kernel doctor``: run the health-check procedure, print what is wrong and what to do.

Exit 0 when every check passes (warnings allowed), 1 when any fails. Kafka
or Postgres being down is a finding (exit 1), not an error: diagnosing that
is the doctor's job.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from ops.bootstrap import Kernel
from ops.commands import Subparsers
from ops.doctor import Facts, Finding, diagnose, gather, healthy

__all__ = ["register", "render"]

_MARK = {"ok": "ok", "warn": "WARN", "fail": "FAIL"}


def register(sub: Subparsers) -> None:
    p = sub.add_parser("doctor", help="check Kafka, Postgres, migrations, topics, lag, DLQ")
    p.add_argument("--json", action="store_true", help="machine-readable findings")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for Kafka")
    p.add_argument(
        "--lag-samples",
        type=int,
        default=1,
        help="lag samples KERNEL_LAG_INTERVAL_S apart (more samples can see STALL/STOP)",
    )
    p.set_defaults(func=_doctor)


def render(findings: list[Finding]) -> str:
    width = max(len(f.check) for f in findings)
    lines = []
    for f in findings:
        lines.append(f"{_MARK[f.status]:<4}  {f.check:<{width}}  {f.detail}")
        if f.fix:
            lines.append(f"{'':<4}  {'':<{width}}  -> {f.fix}")
    verdict = "healthy" if healthy(findings) else "UNHEALTHY"
    lines.append(f"kernel doctor: {verdict}")
    return "\n".join(lines)


def facts(kernel: Kernel, *, timeout_s: float = 5.0, lag_samples: int = 1) -> Facts:
    """The deployment's facts, read through the composition root's adapters."""
    offsets = kernel.offsets(timeout_s=timeout_s, quiet=True)
    return gather(
        offsets, kernel.database(), kernel.lag_monitor, kernel.names, lag_samples=lag_samples
    )


def _doctor(args: argparse.Namespace, kernel: Kernel) -> int:
    findings = diagnose(facts(kernel, timeout_s=args.timeout, lag_samples=args.lag_samples))
    ok = healthy(findings)
    if args.json:
        print(json.dumps({"healthy": ok, "findings": [asdict(f) for f in findings]}, indent=2))
    else:
        print(render(findings))
    return 0 if ok else 1
