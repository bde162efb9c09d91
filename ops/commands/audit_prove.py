"""``kernel audit-prove``: an inclusion or consistency proof, as JSON, for offline checks.

``kernel audit-prove EVENT_ID`` proves the event is in the latest signed
checkpoint of its chain; ``kernel audit-prove --chain C --old-size M
[--new-size N]`` proves checkpoint N extends checkpoint M. Check either with
``kernel audit-verify --signers signers.json --proof FILE``.
"""

from __future__ import annotations

import argparse
import json

from ops.bootstrap import Kernel
from ops.commands import Subparsers
from streams.chain.errors import ChainError
from streams.chain.keys import load_signers_file
from streams.chain.note import ChainCheckpoint

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    p = sub.add_parser("audit-prove", help="print an inclusion or consistency proof (JSON)")
    p.add_argument("event_id", nargs="?", help="the event to prove included")
    p.add_argument("--database-url", help="default: POSTGRES_URL or the local stack")
    p.add_argument("--chain", help="consistency: the chain (topic/partition)")
    p.add_argument("--old-size", type=int, help="consistency: size of the older checkpoint")
    p.add_argument("--new-size", type=int, help="consistency: newer checkpoint (default: latest)")
    p.add_argument("--signers", help="also check the checkpoint's signature before printing")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace, kernel: Kernel) -> int:
    from replay import audit_postgres as pg  # noqa: PLC0415
    from replay.proofs import consistency_document, inclusion_document  # noqa: PLC0415

    url = args.database_url or kernel.settings.database_url
    verifiers = load_signers_file(args.signers) if args.signers else None

    def parse(note: str) -> ChainCheckpoint:
        if verifiers is not None:
            return ChainCheckpoint.open(note, verifiers)[0]
        return ChainCheckpoint.parse(note.split("\n\n", 1)[0] + "\n")

    with pg.connect(url) as conn:
        if args.event_id:
            row = pg.find_event(conn, args.event_id)
            if row is None:
                raise ChainError(f"event {args.event_id} is not in audit_events")
            note = pg.latest_checkpoint_note(conn, row.chain, row.seq + 1)
            if note is None:
                raise ChainError(
                    f"no signed checkpoint of {row.chain} covers seq {row.seq} yet; "
                    "retry after the signer's next checkpoint"
                )
            cp = parse(note)
            doc = inclusion_document(row, cp, note, list(pg.chain_hashes(conn, row.chain, cp.size)))
        else:
            if not args.chain or args.old_size is None:
                raise ChainError("give EVENT_ID, or --chain and --old-size for consistency")
            notes = {parse(n).size: n for n in pg.checkpoint_notes(conn, args.chain)}
            new_size = args.new_size if args.new_size is not None else max(notes, default=-1)
            if args.old_size not in notes or new_size not in notes:
                raise ChainError(f"{args.chain} has signed checkpoints of sizes {sorted(notes)}")
            old, new = notes[args.old_size], notes[new_size]
            hashes = list(pg.chain_hashes(conn, args.chain, new_size))
            doc = consistency_document((parse(old), old), (parse(new), new), hashes)
    print(json.dumps(doc, indent=2))
    return 0
