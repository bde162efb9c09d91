"""``kernel demo``: bring the stack up and show the pipeline working end to end.

Each stage prints what happened, in the order of the product's promises: the
log takes events durably; SentinelNet decides on each of them with a rationale;
the chain signs every event and decision; the projections make them
queryable; verification proves the chain; explain says why.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ops.bootstrap import Kernel
from ops.commands import Subparsers
from ops.demo import demo_actions
from projections.migrate import migrate
from projections.postgres import redacted
from schemas.events import Event

__all__ = ["register"]

POLICIES = Path(__file__).resolve().parents[2] / "docs" / "examples" / "policies"


def register(sub: Subparsers) -> None:
    p = sub.add_parser("demo", help="start the stack and run a demo stream through Kernel")
    p.set_defaults(func=_demo)


def _stage(title: str) -> None:
    print(f"\n== {title}")


def _drain(name: str, runner: Any) -> None:
    try:
        n = runner.run_until_idle(idle_s=1.0)
    finally:
        runner.close()
    print(f"{name:<20} processed {n} record(s)")


def _demo(_args: argparse.Namespace, kernel: Kernel) -> int:
    _stage("local stack")
    status = kernel.stack().up()
    print(f"kafka    {status.kafka.address} ({status.kafka.detail})")
    print(f"postgres {status.postgres.address} ({status.postgres.detail})")

    _stage("topics")
    for report in kernel.topic_admin().ensure():
        print(f"{report.action:<8} {report.topic}")

    _stage("database migrations")
    ran = migrate(kernel.settings.database_url_for("migrate"))
    print(f"applied {len(ran)} migration(s)")

    _policies(kernel)

    _stage("publish kernel actions (Avro, idempotent, acks=all)")
    events = [Event.from_json(a) for a in demo_actions()]
    positions = kernel.producer().publish_batch(events)
    for event, pos in zip(events, positions, strict=True):
        print(f"{event.actor:<14} {event.body['action']:<20} -> {pos}")

    denied = _decisions(kernel, events)
    _audit(kernel)
    if denied is not None:
        from projections.sentinel_queries import explain  # noqa: PLC0415

        _stage(f"GET /sentinel/explain/{denied}  (why, with evidence and chain position)")
        with kernel.connect() as conn:
            print(json.dumps(explain(conn, denied), indent=2, default=str))
    _next_steps(kernel)
    return 0


def _policies(kernel: Kernel) -> None:
    from streams.sentinel.kafka_registry import load_registry  # noqa: PLC0415
    from streams.sentinel.lifecycle import plan_create, plan_transition  # noqa: PLC0415
    from streams.sentinel.policy import State, loads_policy  # noqa: PLC0415

    _stage("SentinelNet policies (every change is an event on the log)")
    registry = load_registry(kernel.kafka, kernel.codec, kernel.names.policies)
    producer = kernel.producer()
    for path in sorted(POLICIES.glob("*.json")):
        policy = loads_policy(path.read_text())
        record = registry.state.get(policy.policy_id)
        if record is not None and record.in_state(State.ACTIVE) is not None:
            print(f"{policy.policy_id:<18} already active")
            continue
        # Fold each change into the registry read once, rather than re-reading the
        # policies topic after every publish: the demo is its only writer here.
        change = plan_create(registry.state, policy, "demo")
        for target, percent in (
            (None, None),
            (State.TEST, None),
            (State.CANARY, 100.0),
            (State.ACTIVE, None),
        ):
            if target is not None:
                change = plan_transition(
                    registry.state,
                    policy.policy_id,
                    policy.version,
                    target,
                    "demo",
                    canary_percent=percent,
                )
            event = change.to_event()
            producer.publish(event)
            registry.apply_event(event)
        print(f"{policy.policy_id:<18} {policy.effect.value:<9} {policy.rule}")
    _drain("sentinel", kernel.sentinel())  # the stream takes the new policy set in


def _decisions(kernel: Kernel, events: list[Event]) -> str | None:

    _stage("SentinelNet streaming evaluation (exactly-once) and the explain projection")
    _drain("sentinel", kernel.sentinel())
    for runner in kernel.sentinel_projectors():
        _drain(f"{runner.projection.name}", runner)
    ids = [e.event_id for e in events]
    with kernel.connect() as conn:
        rows = conn.execute(
            "SELECT subject_event_id, policy_check_id, decision, rationale FROM policy_checks "
            "WHERE subject_event_id = ANY(%s) AND NOT sim_mode",
            (ids,),
        ).fetchall()
        by_event = {str(r[0]): r for r in rows}
        denied = None
        for event in events:
            row = by_event.get(event.event_id)
            if row is None:
                print(f"{event.body['action']:<20} (no decision yet)")
                continue
            print(f"{event.body['action']:<20} {row[2]:<9} {row[3]}")
            if row[2] == "deny" and denied is None:
                denied = str(row[1])
    return denied


def _audit(kernel: Kernel) -> None:
    from replay.audit_postgres import iter_rows  # noqa: PLC0415
    from replay.verify import ChainVerifier  # noqa: PLC0415
    from streams.chain.keys import generate_key, key_path  # noqa: PLC0415
    from streams.chain.signing import Verifier  # noqa: PLC0415

    if kernel.settings.signer_backend == "pkcs11":
        _token_key(kernel)
    else:
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
    _drain("signer", kernel.chain_signer())
    _drain("checkpointer", kernel.checkpointer())
    _drain("audit-projector", kernel.audit_projector())

    _stage("audit-verify: recompute every hash, check every link and signature")
    with kernel.connect() as conn:
        verifiers = {signer.signer_id: Verifier(signer.public_key)}
        report = ChainVerifier(verifiers).feed_all(iter_rows(conn))
    for chain in report.chains:
        print(f"{chain.chain:<30} length {chain.length:>5}  head {chain.head_hash[:16]}...")
    print("verified: every chain" if report.ok else f"FAILED: {report.to_json()}")


def _token_key(kernel: Kernel) -> None:
    from ops.pkcs11_config import token_config  # noqa: PLC0415
    from streams.chain.pkcs11_signer import generate_token_key  # noqa: PLC0415

    config = token_config(kernel.settings)
    _stage(f"signing key (inside PKCS#11 token {config.token_label!r}, not extractable)")
    _public, created = generate_token_key(config, if_missing=True)
    print(f"{'generated' if created else 'using'} key {config.key_label!r} in {config.module}")


def _next_steps(kernel: Kernel) -> None:
    print(
        "\nNext: run the runbook's check yourself, and ask the API why:\n"
        "  kernel keys export-signers > signers.json\n"
        "  kernel audit-verify --signers signers.json"
        f"   # the database of POSTGRES_URL: {redacted(kernel.settings.database_url)}\n"
        "  kernel api &\n"
        "  TOKEN=$(kernel tokens create demo-$$ --role checker)\n"
        '  curl -H "Authorization: Bearer $TOKEN" localhost:8080/sentinel/explain/<policyCheckId>'
    )
