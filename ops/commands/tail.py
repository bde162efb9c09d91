"""``kernel tail TOPIC``: print committed records of a topic as JSON lines."""

from __future__ import annotations

import argparse

import orjson

from ops.bootstrap import Kernel
from ops.commands import Subparsers

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    p = sub.add_parser("tail", help="print the last records of a topic as JSON lines")
    p.add_argument("topic", help="short name (actions, policy-checks, dlq, ...) or full name")
    p.add_argument("-n", type=int, default=20, help="records per partition (default 20)")
    p.set_defaults(func=_tail)


def _tail(args: argparse.Namespace, kernel: Kernel) -> int:
    topic = (
        args.topic if args.topic.startswith(kernel.names.prefix) else kernel.names.name(args.topic)
    )
    reader = kernel.log_reader()
    try:
        for partition in reader.partitions(topic):
            start = max(0, reader.end_offset(topic, partition) - args.n)
            for record in reader.read(topic, partition, start):
                line = {"position": str(record.position), "event": record.event.to_json()}
                print(orjson.dumps(line, default=_bytes).decode())
    finally:
        reader.close()
    return 0


def _bytes(value: object) -> str:
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(type(value).__name__)
