"""Helpers: a migrated audit database holding valid signed chains (see conftest.py)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from replay.audit_postgres import insert_checkpoint
from schemas.positions import LogPosition
from streams.chain.links import ChainStep
from streams.chain.merkle import CompactRange
from streams.chain.note import ChainCheckpoint
from streams.chain.signing import LocalEd25519Signer

SIGNER = LocalEd25519Signer(hashlib.sha256(b"integration signer").digest(), "kernel-signer")
ATTACKER = LocalEd25519Signer(hashlib.sha256(b"attacker").digest(), "attacker")


def event(i: int, chain_tag: str = "") -> dict[str, Any]:
    return {
        "eventId": f"00000000-0000-4000-8000-{i:012d}",
        "eventType": "kernelAction",
        "ts": f"2026-01-31T12:00:{i % 60:02d}.{i % 1000:03d}Z",
        "actor": "svc-payments",
        "subject": f"acct-{i % 7}{chain_tag}",
        "schemaVersion": 1,
        "metadata": {"traceId": f"t{i}"},
        "body": {
            "action": "payments.transfer",
            "resource": None,
            "requestId": f"req-{i}",
            "context": {"amount": i * 10, "ratio": i / 8, "tags": ["a", "é", "\U0001f600"]},
        },
    }


INSERT = (
    "INSERT INTO audit_events (id, chain, seq, event_type, payload, prev_hash, hash, signature,"
    " signer_id, ts, metadata, source_topic, source_partition, source_offset)"
    " VALUES (%s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s::timestamptz, %s::jsonb, %s, %s, %s)"
)


def row_params(body: dict[str, Any]) -> tuple[Any, ...]:
    p = body["payload"]
    return (
        p["eventId"], body["chain"], body["seq"], p["eventType"], json.dumps(p),
        body["prevHash"], body["hash"], body["signature"], body["signerId"], p["ts"],
        json.dumps(p["metadata"]), body["sourceTopic"], body["sourcePartition"],
        body["sourceOffset"],
    )  # fmt: skip


@dataclass
class AuditDb:
    url: str
    signers_path: Path
    bodies: dict[str, list[dict[str, Any]]]

    def connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        return psycopg.connect(self.url, autocommit=True)

    def add_chain(self, topic: str, partition: int, n: int, start: int = 0) -> list[dict[str, Any]]:
        step = ChainStep(SIGNER)
        out = []
        head = None
        with self.connect() as conn, conn.cursor() as cur:
            for i in range(n):
                head, body = step(head, event(start + i), LogPosition(topic, partition, i * 2))
                cur.execute(INSERT, row_params(body))
                out.append(body)
        self.bodies[f"{topic}/{partition}"] = out
        return out

    def checkpoint(self, chain: str, size: int, tmp: Path) -> tuple[ChainCheckpoint, Path]:
        rng = CompactRange()
        for b in self.bodies[chain][:size]:
            rng.append(bytes.fromhex(b["hash"]))
        head = self.bodies[chain][size - 1]["hash"] if size else ""
        cp = ChainCheckpoint(chain, size, rng.root(), head)
        note = cp.sign(SIGNER)
        with self.connect() as conn:
            insert_checkpoint(conn, cp, SIGNER.signer_id, note)
        path = tmp / f"cp-{chain.replace('/', '_')}-{size}.note"
        path.write_text(note)
        return cp, path

    @contextmanager
    def tampering(self) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
        """A superuser with the append-only trigger disabled: what verification must catch."""
        with self.connect() as conn:
            conn.execute("ALTER TABLE audit_events DISABLE TRIGGER USER")
            try:
                yield conn
            finally:
                conn.execute("ALTER TABLE audit_events ENABLE TRIGGER USER")
