"""``kernel replay``: rebuild projections from the log, verified, and swap them in.

``kernel replay audit`` rebuilds the audit projection (``replay/audit_replay.py``);
``kernel replay --all`` is the DR drill's entry point: every projection that
has a rebuilder, in order. Exit 0 when every projection verified (and was
swapped in, or, with ``--verify-only``, was identical); 1 when a chain failed
verification (live untouched) or ``--verify-only`` found a difference; 2 on
errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from ops.bootstrap import Kernel
from ops.commands import Subparsers
from replay.audit_replay import ReplayReport
from schemas.errors import ConfigError
from schemas.events import parse_ts

__all__ = ["REBUILDERS", "register"]

Rebuilder = Callable[[argparse.Namespace, Kernel], ReplayReport]


def _replay_audit(args: argparse.Namespace, kernel: Kernel) -> ReplayReport:
    from projections.audit import AuditProjection  # noqa: PLC0415
    from replay.audit_replay import AuditReplay  # noqa: PLC0415
    from streams.chain.keys import load_signers_file  # noqa: PLC0415

    if args.signers is None:
        raise ConfigError("replay audit verifies every signature: pass --signers signers.json")
    reader = kernel.log_reader()
    try:
        return AuditReplay(
            reader=reader,
            database_url=args.database_url or kernel.settings.database_url,
            projection=AuditProjection(kernel.names.chain, kernel.names.checkpoints),
            verifiers=load_signers_file(args.signers),
            kafka=kernel.kafka,
            workers=getattr(args, "workers", None),
        ).run(from_ts_ms=args.from_ts_ms, verify_only=args.verify_only)
    finally:
        reader.close()


# The projections `kernel replay --all` rebuilds, in order. SentinelNet's
# projections plug in here: a function (args, kernel) -> report with
# ``verified``, ``identical``, ``swapped`` and ``to_json()``.
REBUILDERS: dict[str, Rebuilder] = {"audit": _replay_audit}


def register(sub: Subparsers) -> None:
    p = sub.add_parser("replay", help="rebuild projections from the log, verify, compare, swap")
    p.add_argument("projection", nargs="?", choices=sorted(REBUILDERS), help="what to rebuild")
    p.add_argument("--all", action="store_true", help="every projection (the DR drill)")
    p.add_argument("--signers", type=Path, help="signers.json (required for audit)")
    p.add_argument("--database-url", help="default: POSTGRES_URL or the local stack")
    p.add_argument("--from-timestamp", help="RFC 3339: rebuild only records from this time")
    p.add_argument("--verify-only", action="store_true", help="compare, never swap")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes verifying links (default: one per CPU for 20,000 links or more; "
        "0 = in this process)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace, kernel: Kernel) -> int:
    if args.all == (args.projection is not None):
        raise ConfigError("name one projection (e.g. `kernel replay audit`) or pass --all")
    args.from_ts_ms = None if args.from_timestamp is None else parse_ts(args.from_timestamp)
    names = sorted(REBUILDERS) if args.all else [args.projection]
    reports = {name: REBUILDERS[name](args, kernel) for name in names}
    ok = all(r.verified and (r.swapped or r.identical) for r in reports.values())
    if args.json:
        print(json.dumps({"ok": ok, "projections": {n: r.to_json() for n, r in reports.items()}}))
    else:
        for name, report in reports.items():
            _print(name, report)
    return 0 if ok else 1


def _print(name: str, r: ReplayReport) -> None:
    print(f"{name}: replayed {r.records} records, {r.checkpoints} checkpoints in {r.seconds:.1f}s")
    print(f"{name}: compared {r.compared}")
    for c in r.chains:
        live = "(none)" if c.live is None else f"{c.live.length} records, head {c.live.head[:16]}"
        ours = (
            "(none)"
            if c.replay is None
            else f"{c.replay.length} records, head {c.replay.head[:16]}"
        )
        mark = "identical" if c.identical else "DIFFERS"
        print(f"  chain {c.chain}: live {live} / replay {ours}: {mark}")
    if r.verification is not None:
        for f in r.verification.failures:
            print(f"FAILED chain {f.chain} seq {f.seq} id {f.id}: {f.reason}", file=sys.stderr)
        for f in r.verification.flagged:
            print(f"FLAGGED chain {f.chain} seq {f.seq} id {f.id}: {f.reason}", file=sys.stderr)
    if not r.verified:
        print(f"{name}: verification FAILED; live left untouched", file=sys.stderr)
        return
    if r.difference is not None:
        print(f"{name}: first difference: {r.difference}")
    elif r.identical:
        print(f"{name}: identical")
    if r.swapped:
        print(f"{name}: swapped in; the previous tables are in schema {r.backup}")
    else:
        print(f"{name}: not swapped (--verify-only); live left untouched")
