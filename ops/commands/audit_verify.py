"""``kernel audit-verify``: the runbook's chain check, and offline proof checks.

Database mode (default): stream ``audit_events`` and verify every chain (or
``--chain``), pinned to any ``--checkpoint`` notes given (which catches a
truncated tail). Offline mode (``--proof FILE``): verify inclusion or
consistency proofs from ``kernel audit-prove`` against signed checkpoints,
needing only ``--signers``. Exit 0 all verified, 1 a check failed, 2 error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ops.bootstrap import Kernel
from ops.commands import Subparsers
from replay.proofs import ProofError, verify_document
from replay.verify import ChainVerifier, VerificationReport
from schemas.errors import ValidationError
from schemas.ijson import loads_ijson
from streams.chain.keys import load_signers_file
from streams.chain.note import ChainCheckpoint, NoteError
from streams.chain.signing import Verifier

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    p = sub.add_parser("audit-verify", help="verify the signed audit chains, checkpoints, proofs")
    p.add_argument("--database-url", help="default: POSTGRES_URL or the local stack")
    p.add_argument("--signers", type=Path, required=True, help="signers.json")
    p.add_argument("--chain", help="verify only this chain (topic/partition)")
    p.add_argument(
        "--checkpoint", type=Path, action="append", default=[], help="a signed checkpoint note"
    )
    p.add_argument(
        "--proof", type=Path, action="append", default=[], help="a proof from kernel audit-prove"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace, kernel: Kernel) -> int:
    verifiers = load_signers_file(args.signers)
    try:
        pins = [_read_checkpoint(path, verifiers) for path in args.checkpoint]
    except NoteError as exc:
        return _report_failure(args, {"reason": str(exc)})
    if args.proof:
        return _verify_proofs(args, verifiers, pins)
    from replay.audit_postgres import connect, iter_rows  # noqa: PLC0415

    if args.chain:
        pins = [cp for cp in pins if cp.chain == args.chain]
    with connect(args.database_url or kernel.settings.database_url) as conn:
        report = ChainVerifier(verifiers, pins).feed_all(iter_rows(conn, args.chain))
    _print_report(args, report)
    return 0 if report.ok else 1


def _read_checkpoint(path: Path, verifiers: dict[str, Verifier]) -> ChainCheckpoint:
    text = path.read_text(encoding="utf-8")
    return ChainCheckpoint.open(text, verifiers)[0]


def _verify_proofs(
    args: argparse.Namespace, verifiers: dict[str, Verifier], pins: list[ChainCheckpoint]
) -> int:
    results: list[dict[str, Any]] = []
    for path in args.proof:
        try:
            doc = loads_ijson(path.read_bytes())
            results.append(
                {
                    "proof": str(path),
                    "verified": True,
                    "what": verify_document(doc, verifiers, pins),
                }
            )
        except (ProofError, ValidationError) as exc:
            results.append({"proof": str(path), "verified": False, "reason": str(exc)})
    ok = all(r["verified"] for r in results)
    if args.json:
        print(json.dumps({"verified": ok, "proofs": results}, indent=2))
    else:
        for r in results:
            if r["verified"]:
                print(f"ok {r['proof']}: {r['what']}")
            else:
                print(f"FAILED {r['proof']}: {r['reason']}")
    return 0 if ok else 1


def _print_report(args: argparse.Namespace, report: VerificationReport) -> None:
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
        return
    for c in report.chains:
        status = "verified" if c.failure is None else "FAILED"
        if c.flagged:
            status += f", {c.flagged} FLAGGED"
        print(f"chain {c.chain}: {c.length} records, head {c.head_hash or '(empty)'}, {status}")
    for f in report.failures:
        print(f"FAILED chain {f.chain} seq {f.seq} id {f.id}: {f.reason}", file=sys.stderr)
    for f in report.flagged:
        print(f"FLAGGED chain {f.chain} seq {f.seq} id {f.id}: {f.reason}", file=sys.stderr)
    verdict = "verified"
    if report.failures:
        verdict = f"{len(report.failures)} chain(s) FAILED"
    if report.flagged:
        flagged = f"{len(report.flagged)} record(s) FLAGGED (signed by a key that may not)"
        verdict = flagged if verdict == "verified" else f"{verdict}, {flagged}"
    print(f"total: {len(report.chains)} chains, {report.total} records, {verdict}")


def _report_failure(args: argparse.Namespace, failure: dict[str, Any]) -> int:
    if args.json:
        print(json.dumps({"verified": False, "failures": [failure]}))
    else:
        print(f"FAILED: {failure['reason']}", file=sys.stderr)
    return 1
