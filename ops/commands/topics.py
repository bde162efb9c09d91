"""``kernel topics ensure | list``: the declared topics on the broker."""

from __future__ import annotations

import argparse

from ops.bootstrap import Kernel
from ops.commands import Subparsers
from schemas.topics import TOPICS

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    topics = sub.add_parser("topics", help="create the declared topics, report drift")
    verbs = topics.add_subparsers(dest="verb", required=True)
    verbs.add_parser("ensure", help="create missing topics; exit 1 on drift").set_defaults(
        func=_ensure
    )
    verbs.add_parser("list", help="the declared topics").set_defaults(func=_list)


def _ensure(_args: argparse.Namespace, kernel: Kernel) -> int:
    reports = kernel.topic_admin().ensure()
    for r in reports:
        print(f"{r.action:<8} {r.topic}")
        for d in r.drift:
            print(f"         drift: {d}")
    return 1 if any(r.action == "drift" for r in reports) else 0


def _list(_args: argparse.Namespace, kernel: Kernel) -> int:
    for spec in TOPICS:
        cfg = ", ".join(f"{k}={v}" for k, v in sorted(spec.config.items()))
        print(f"{kernel.names.name(spec.name):<32} partitions={spec.partitions} {cfg}")
    return 0
