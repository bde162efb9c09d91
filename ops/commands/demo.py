"""``kernel demo``: bring the stack up and show the pipeline working end to end.

Each stage prints what happened. The stages are the product's promises in
order: the log takes events durably; (as they land) the chain signs them,
SentinelNet decides on them, the projections make them queryable, and
verification proves the chain.
"""

from __future__ import annotations

import argparse

from ops.bootstrap import Kernel
from ops.commands import Subparsers
from ops.demo import demo_actions
from projections.migrate import migrate
from schemas.events import Event

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    p = sub.add_parser("demo", help="start the stack and run a demo stream through Kernel")
    p.set_defaults(func=_demo)


def _stage(title: str) -> None:
    print(f"\n== {title}")


def _demo(_args: argparse.Namespace, kernel: Kernel) -> int:
    _stage("local stack")
    status = kernel.stack().up()
    print(f"kafka    {status.kafka.address} ({status.kafka.detail})")
    print(f"postgres {status.postgres.address} ({status.postgres.detail})")

    _stage("topics")
    for report in kernel.topic_admin().ensure():
        print(f"{report.action:<8} {report.topic}")

    _stage("database migrations")
    ran = migrate(kernel.settings.database_url)
    print(f"applied {len(ran)} migration(s)")

    _stage("publish kernel actions (Avro, idempotent, acks=all)")
    events = [Event.from_json(a) for a in demo_actions()]
    positions = kernel.producer().publish_batch(events)
    for event, pos in zip(events, positions, strict=True):
        print(f"{event.actor:<14} {event.body['action']:<20} -> {pos}")
    print(f"\n{len(events)} actions are on the log. Read them back with: kernel tail actions")
    return 0
