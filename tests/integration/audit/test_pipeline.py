"""Signer -> checkpointer -> audit projection on real Kafka and Postgres."""

from __future__ import annotations

from pathlib import Path

import psycopg

from ops.bootstrap import Kernel
from replay.audit_postgres import iter_rows
from replay.verify import ChainVerifier
from streams.chain.keys import parse_signers
from tests.integration.core.test_producer import _actions, read_all


def _run_pipeline(kernel: Kernel) -> tuple[int, int, int]:
    signer, checkpointer, projector = (
        kernel.chain_signer(),
        kernel.checkpointer(),
        kernel.audit_projector(),
    )
    try:
        signed = signer.run_until_idle(idle_s=1.0)
        checkpointed = checkpointer.run_until_idle(idle_s=1.0)
        projected = projector.run_until_idle(idle_s=1.0)
    finally:
        signer.close()
        checkpointer.close()
        projector.close()
    return signed, checkpointed, projected


def _verify(kernel: Kernel, signers: Path) -> object:
    import json

    verifiers = parse_signers(json.loads(signers.read_text()))
    with psycopg.connect(kernel.settings.database_url) as conn:
        return ChainVerifier(verifiers).feed_all(iter_rows(conn))


def test_every_audited_event_is_chained_signed_projected_and_verifies(
    audit_kernel: Kernel, signers_file: Path
) -> None:
    kernel = audit_kernel
    producer = kernel.producer()
    events = _actions(15, "acct-a") + _actions(12, "acct-b")
    producer.publish_batch(events)
    producer.publish_encoded([(kernel.names.actions, b"acct-a", b"not avro")])

    signed, _, projected = _run_pipeline(kernel)
    assert signed == 28  # 27 chained + 1 dead letter
    assert projected >= 27
    links = [e for _, e, _ in read_all(kernel, kernel.names.chain)]
    assert len(links) == 27
    dead = [e for _, e, _ in read_all(kernel, kernel.names.dlq)]
    assert len(dead) == 1
    assert dead[0].body["processor"] == "chain-signer"

    with psycopg.connect(kernel.settings.database_url) as conn:
        rows = conn.execute(
            "SELECT chain, count(*), min(seq), max(seq) FROM audit_events GROUP BY chain"
        ).fetchall()
        ids = {str(r[0]) for r in conn.execute("SELECT id FROM audit_events")}
        cps = conn.execute(
            "SELECT chain, size FROM audit_checkpoints ORDER BY chain, size"
        ).fetchall()
    assert ids == {e.event_id for e in events}
    for chain, count, lo, hi in rows:
        assert chain.startswith(kernel.names.actions + "/")
        assert (lo, hi) == (0, count - 1)
    assert sum(r[1] for r in rows) == 27
    assert cps  # every 10 links a signed checkpoint
    assert all(size % 10 == 0 for _, size in cps)

    report = _verify(kernel, signers_file)
    assert report.ok, report.to_json()  # type: ignore[attr-defined]
    assert report.total == 27  # type: ignore[attr-defined]


def test_restarted_signer_continues_each_chain_without_fork_or_duplicate(
    audit_kernel: Kernel, signers_file: Path
) -> None:
    kernel = audit_kernel
    producer = kernel.producer()
    producer.publish_batch(_actions(8, "s1"))
    _run_pipeline(kernel)
    producer.publish_batch(_actions(5, "s1") + _actions(4, "s2"))
    _run_pipeline(kernel)  # fresh runners: heads recovered from the chain topic
    report = _verify(kernel, signers_file)
    assert report.ok, report.to_json()  # type: ignore[attr-defined]
    assert report.total == 17  # type: ignore[attr-defined]
    links = [e for _, e, _ in read_all(kernel, kernel.names.chain)]
    seqs: dict[str, list[int]] = {}
    for link in links:
        seqs.setdefault(link.body["chain"], []).append(link.body["seq"])
    for chain_seqs in seqs.values():
        assert sorted(chain_seqs) == list(range(len(chain_seqs)))
