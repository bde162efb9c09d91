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

    _audit(kernel)
    return 0


def _audit(kernel: Kernel) -> None:
    from replay.audit_postgres import iter_rows  # noqa: PLC0415
    from replay.verify import ChainVerifier  # noqa: PLC0415
    from streams.chain.keys import generate_key, key_path  # noqa: PLC0415
    from streams.chain.signing import Verifier  # noqa: PLC0415

    _stage("signing key (development key file, outside the repository)")
    path = kernel.settings.signing_key or key_path(
        kernel.settings.keys_dir, kernel.settings.signer_id
    )
    if not path.exists():
        generate_key(path.parent, kernel.settings.signer_id)
        print(f"generated {path}")
    else:
        print(f"using {path}")
    signer = kernel.signer()

    _stage("chain signer -> checkpointer -> audit projection (exactly-once)")
    for name, runner in (
        ("signer", kernel.chain_signer()),
        ("checkpointer", kernel.checkpointer()),
        ("audit-projector", kernel.audit_projector()),
    ):
        try:
            n = runner.run_until_idle(idle_s=1.5)
        finally:
            runner.close()
        print(f"{name:<16} processed {n} record(s)")

    _stage("audit-verify: recompute every hash, check every link and signature")
    with kernel.connect() as conn:
        verifiers = {signer.signer_id: Verifier(signer.public_key)}
        report = ChainVerifier(verifiers).feed_all(iter_rows(conn))
    for chain in report.chains:
        print(f"{chain.chain:<28} length {chain.length:>5}  head {chain.head_hash[:16]}...")
    print("verified: every chain" if report.ok else f"FAILED: {report.to_json()}")
    print(
        "\nRun the runbook's check yourself:\n"
        "  kernel keys export-signers > signers.json\n"
        f"  kernel audit-verify --database-url {kernel.settings.database_url} "
        "--signers signers.json"
    )
