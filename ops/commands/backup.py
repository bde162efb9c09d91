"""``kernel backup --out DIR`` and ``kernel restore --from DIR``: see :mod:`ops.backup`.

Restore prints, per projection, how many records lie between the restored
checkpoint and the log's end: what the projectors redo when started.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from ops.backup import RestoreReport, backup, restore
from ops.bootstrap import Kernel
from ops.commands import Subparsers

__all__ = ["register", "render_restore"]


def register(sub: Subparsers) -> None:
    b = sub.add_parser("backup", help="pg_dump the projections + a manifest of log offsets")
    b.add_argument("--out", type=Path, required=True, help="a new (or empty) directory")
    b.set_defaults(func=_backup)
    r = sub.add_parser("restore", help="restore a backup into an empty database")
    r.add_argument("--from", dest="src", type=Path, required=True, help="a `kernel backup` dir")
    r.add_argument("--database-url", help="target (empty) database; default: POSTGRES_URL")
    r.add_argument("--json", action="store_true", help="machine-readable report")
    r.set_defaults(func=_restore)


def _backup(args: argparse.Namespace, kernel: Kernel) -> int:
    manifest = backup(
        kernel.settings.database_url, kernel.offsets(quiet=True), kernel.names, args.out
    )
    rows = sum(len(p) for t in manifest.checkpoints.values() for p in t.values())
    partitions = sum(len(p) for p in manifest.end_offsets.values())
    migrations = ", ".join(manifest.migrations) or "none"
    print(
        f"backup in {args.out}: {manifest.dump_bytes} bytes dumped, "
        f"{len(manifest.checkpoints)} projection(s) with {rows} checkpoint(s), "
        f"end offsets of {partitions} partition(s), migrations: {migrations}"
    )
    return 0


def render_restore(report: RestoreReport) -> str:
    lines = [
        f"restored {report.tables} table(s) into {report.database} in {report.seconds:.1f}s",
    ]
    if report.log_unavailable:
        lines.append(f"warning: log end unknown ({report.log_unavailable}); using the manifest's")
    if not report.behind:
        lines.append("no projection checkpoints: projectors start from the beginning of the log")
    for b in report.behind:
        lines.append(
            f"  {b.projection:<24} {b.topic}[{b.partition}]  checkpoint {b.checkpoint}"
            f"  end {b.end_now if b.end_now is not None else b.end_at_backup}"
            f"  to replay {b.to_replay if b.to_replay is not None else '?'}"
        )
    for projection, count in sorted(report.to_replay().items()):
        lines.append(f"{projection}: {count} record(s) to replay (start its projector)")
    return "\n".join(lines)


def _restore(args: argparse.Namespace, kernel: Kernel) -> int:
    url = args.database_url or kernel.settings.database_url
    report = restore(kernel.offsets(quiet=True), args.src, url)
    if args.json:
        doc = asdict(report)
        doc["toReplay"] = report.to_replay()
        print(json.dumps(doc, indent=2))
    else:
        print(render_restore(report))
    return 0
