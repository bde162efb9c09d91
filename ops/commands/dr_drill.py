"""``kernel dr-drill``: drop the projection database, rebuild it from the log, compare.

Destructive by design: run it on staging, or on production during a planned
drill. ``--yes`` is required. Exit 0 when every table and chain head after the
rebuild equals what it was before; 1 when anything differs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ops.bootstrap import Kernel
from ops.commands import Subparsers
from schemas.errors import ConfigError

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    p = sub.add_parser("dr-drill", help="drop projections, rebuild from the log, prove equal")
    p.add_argument("--signers", type=Path, required=True, help="signers.json (replay verifies)")
    p.add_argument("--database-url", help="default: POSTGRES_URL or the local stack")
    p.add_argument("--yes", action="store_true", help="confirm: the database is dropped")
    p.add_argument(
        "--workers", type=int, default=None, help="replay's verifying processes (see kernel replay)"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_drill)


def _drill(args: argparse.Namespace, kernel: Kernel) -> int:
    from dataclasses import replace  # noqa: PLC0415

    from ops.commands.replay import REBUILDERS  # noqa: PLC0415
    from ops.dr_drill import DrillError, run_drill  # noqa: PLC0415
    from projections.migrate import migrate  # noqa: PLC0415

    if not args.yes:
        raise ConfigError("dr-drill drops the projection database; pass --yes to confirm")
    url = args.database_url or kernel.settings.database_url
    kernel = Kernel(replace(kernel.settings, postgres_url=url))
    replay_args = argparse.Namespace(
        signers=args.signers,
        database_url=url,
        from_ts_ms=None,
        verify_only=False,
        workers=args.workers,
    )

    def replay_audit() -> None:
        report = REBUILDERS["audit"](replay_args, kernel)
        if not (report.verified and report.swapped):
            raise DrillError(f"audit replay did not verify and swap: {report.to_json()}")

    def migrate_db() -> None:
        migrate(url)

    def sentinel() -> None:
        for runner in kernel.sentinel_projectors():
            try:
                runner.run_until_idle(idle_s=1.0, max_s=3600)
            finally:
                runner.close()

    report = run_drill(
        url,
        [
            ("migrate", migrate_db),
            ("replay audit (verified)", replay_audit),
            ("sentinel projections", sentinel),
        ],
    )
    if args.json:
        print(json.dumps(report.to_json()))
    else:
        for name, seconds in report.steps:
            print(f"{name:<28} {seconds:8.2f}s")
        for table, digest in sorted(report.after.items()):
            print(f"{table:<28} {digest.rows:>9} rows  md5 {digest.md5[:12]}")
        print(f"recovery time: {report.seconds:.2f}s")
        for line in report.differences():
            print(f"DIFFERS {line}")
        print("identical: every table and chain head" if report.identical else "NOT identical")
    return 0 if report.identical else 1
