"""``kernel publish FILE|-``: JSON lines -> validated -> Avro -> Kafka.

``--atomic`` (the default) validates the whole input first and publishes it in
one Kafka transaction: a bad line, or a broker failure mid-way, publishes
nothing. ``--skip-invalid`` publishes the good lines and writes the bad ones,
with their reasons, to a rejects file.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from pathlib import Path

import orjson

from ops.bootstrap import Kernel
from ops.commands import Subparsers
from streams.jsonlines import Reject, parse_lines, split_lines

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    p = sub.add_parser("publish", help="publish JSON-lines events to the log")
    p.add_argument("file", help="a JSON-lines file, or - for standard input")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--atomic",
        action="store_true",
        default=True,
        help="all lines or none, in one transaction (default)",
    )
    mode.add_argument(
        "--skip-invalid",
        action="store_true",
        help="publish the valid lines; write the others to --rejects",
    )
    p.add_argument("--rejects", type=Path, help="where --skip-invalid writes rejected lines")
    p.add_argument("--verbose", "-v", action="store_true", help="print every record's position")
    p.set_defaults(func=_publish)


def _write_rejects(path: Path, rejects: list[Reject]) -> None:
    with path.open("wb") as out:
        for r in rejects:
            out.write(
                orjson.dumps({"line": r.line, "field": r.field, "reason": r.reason, "text": r.text})
                + b"\n"
            )


def _publish(args: argparse.Namespace, kernel: Kernel) -> int:
    # Bytes, split on \n only: a raw U+2028 inside a JSON string is not a line break,
    # and invalid UTF-8 is one line's reject, not a traceback.
    try:
        data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        print(f"cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    parsed = parse_lines(split_lines(data), kernel.codec)
    for r in parsed.rejects:
        print(f"rejected {r.describe()}", file=sys.stderr)
    if parsed.rejects and not args.skip_invalid:
        print(
            f"nothing published: {len(parsed.rejects)} invalid line(s) "
            "(use --skip-invalid to publish the valid ones)",
            file=sys.stderr,
        )
        return 2
    if parsed.rejects:
        target = args.rejects or Path(
            "rejects.jsonl" if args.file == "-" else f"{args.file}.rejects.jsonl"
        )
        _write_rejects(target, parsed.rejects)
        print(f"{len(parsed.rejects)} rejected line(s) written to {target}", file=sys.stderr)
    if not parsed.events:
        print("published 0 events")
        return 0
    records = [
        (kernel.names.for_event_type(e.event_type), e.subject.encode(), data)
        for _, e, data in parsed.events
    ]
    producer = kernel.producer(transactional_id=f"kernel-publish-{uuid.uuid4()}")
    positions = producer.publish_encoded_atomic(records)
    if args.verbose or len(positions) <= 20:
        for (line, event, _), pos in zip(parsed.events, positions, strict=True):
            print(f"line {line}: {event.event_type} {event.event_id} -> {pos}")
    print(f"published {len(positions)} events in one transaction")
    return 0
