"""``kernel lag`` and ``kernel lag-exporter``: consumer lag for people and Prometheus.

``kernel lag`` samples once (or ``--samples`` times) and prints a table or
JSON; ``--watch`` keeps sampling, so the Burrow-style status has a window to
judge. Exit code 1 when a watched group is REWIND, STALL, STOP, NO_MEMBER
(lag and no live member) or NEVER_COMMITTED (a backlog its worker never
started on: lag is the whole log; the table shows ``-`` as committed).
``kernel lag-exporter --port N`` serves ``/metrics`` and samples every
``KERNEL_LAG_INTERVAL_S`` seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from ops.bootstrap import Kernel
from ops.commands import Subparsers
from ops.lag.exporter import LagExporter
from ops.lag.monitor import CheckpointSource, LagMonitor, LagSnapshot
from ops.lag.status import Status
from schemas.errors import KernelError

__all__ = ["build_monitor", "register", "render_table", "snapshot_json"]


def register(sub: Subparsers) -> None:
    lag = sub.add_parser("lag", help="consumer lag per group/topic/partition, with status")
    lag.add_argument("--json", action="store_true", help="one JSON document per sample")
    lag.add_argument("--watch", action="store_true", help="sample until interrupted")
    lag.add_argument("--group", action="append", default=None, help="only this group (repeat)")
    lag.add_argument("--samples", type=int, default=1, help="samples before printing")
    lag.add_argument("--interval", type=float, default=None, help="seconds between samples")
    lag.add_argument("--no-projections", action="store_true", help="skip Postgres checkpoints")
    lag.set_defaults(func=_lag)

    exp = sub.add_parser("lag-exporter", help="serve lag as Prometheus metrics")
    exp.add_argument("--port", type=int, required=True)
    exp.add_argument("--host", default="127.0.0.1")
    exp.add_argument("--no-projections", action="store_true", help="skip Postgres checkpoints")
    exp.set_defaults(func=_exporter)


class _TolerantCheckpoints:
    """Projection checkpoints when Postgres answers; a warning when not (the monitor
    then leaves projections out of the sample instead of failing it)."""

    def __init__(self, inner: CheckpointSource) -> None:
        self.inner = inner

    def checkpoints(self) -> dict[str, dict[tuple[str, int], int]]:
        try:
            return self.inner.checkpoints()
        except KernelError as exc:
            print(f"kernel lag: warning: projections left out: {exc}", file=sys.stderr)
            raise  # the monitor leaves projections out of this sample


def build_monitor(kernel: Kernel, *, projections: bool = True) -> LagMonitor:
    """The deployment's lag monitor; a Postgres that does not answer leaves the
    projections out of a sample, with a warning, instead of failing it."""
    # The projections' positions are read with the read-only role of the read
    # models (KERNEL_DATABASE_URL_API; unset: POSTGRES_URL): a lag exporter writes nothing.
    return kernel.lag_monitor(projections=projections, wrap=_TolerantCheckpoints, role="api")


def snapshot_json(snapshot: LagSnapshot) -> dict[str, Any]:
    return {
        "ts": snapshot.ts,
        "groups": [
            {
                "group": g.group,
                "status": g.status.name,
                "lag": g.lag,
                "lagSeconds": round(g.lag_seconds, 3),
                "members": g.members,
                "partitions": [
                    {
                        "topic": p.topic,
                        "partition": p.partition,
                        "committed": None if p.committed < 0 else p.committed,
                        "logEnd": p.log_end,
                        "lastStable": p.last_stable,
                        "lag": p.lag,
                        "lagSeconds": round(p.lag_seconds, 3),
                        "lagSecondsSource": p.lag_seconds_source,
                        "status": p.status.name,
                        "reason": p.reason,
                    }
                    for p in g.partitions
                ],
            }
            for g in snapshot.groups
        ],
    }


def render_table(snapshot: LagSnapshot) -> str:
    head = ("GROUP", "TOPIC", "PART", "COMMITTED", "END", "STABLE", "LAG", "LAG_S", "STATUS")
    rows: list[tuple[str, ...]] = [head]
    for g in snapshot.groups:
        for p in g.partitions:
            rows.append(
                (
                    g.group,
                    p.topic,
                    str(p.partition),
                    "-" if p.committed < 0 else str(p.committed),
                    str(p.log_end),
                    str(p.last_stable),
                    str(p.lag),
                    f"{p.lag_seconds:.1f}",
                    p.status.name,
                )
            )
        rows.append(
            (g.group, "*", "", "", "", "", str(g.lag), f"{g.lag_seconds:.1f}", g.status.name)
        )
    if len(rows) == 1:
        return "no consumer groups to watch"
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    numeric = {2, 3, 4, 5, 6, 7}
    return "\n".join(
        "  ".join(
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()
        for r in rows
    )


def _worst(snapshot: LagSnapshot) -> Status:
    return max((g.status for g in snapshot.groups), default=Status.OK)


def _lag(args: argparse.Namespace, kernel: Kernel) -> int:
    monitor = build_monitor(kernel, projections=not args.no_projections)
    interval = args.interval if args.interval is not None else monitor.config.interval_s
    snapshot = monitor.sample(args.group)
    for _ in range(max(0, args.samples - 1)):
        time.sleep(interval)
        snapshot = monitor.sample(args.group)
    while True:
        if args.json:
            print(json.dumps(snapshot_json(snapshot)), flush=True)
        else:
            print(render_table(snapshot), flush=True)
        if not args.watch:
            return 1 if _worst(snapshot) >= Status.REWIND else 0
        time.sleep(interval)
        snapshot = monitor.sample(args.group)
        if not args.json:
            print()


def _exporter(args: argparse.Namespace, kernel: Kernel) -> int:
    exporter = LagExporter(build_monitor(kernel, projections=not args.no_projections))
    print(f"kernel lag-exporter: serving http://{args.host}:{args.port}/metrics", flush=True)
    exporter.serve(
        args.port,
        args.host,
        on_error=lambda exc: print(f"kernel lag-exporter: {exc}", file=sys.stderr, flush=True),
    )
    return 0
