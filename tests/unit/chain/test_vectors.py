"""Our implementation against the published fixed vectors (tests/vectors/audit_chain_v1.json)."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from replay.verify import AuditRow, ChainVerifier
from schemas.events import parse_ts
from schemas.positions import LogPosition
from streams.chain.canonical import canonicalize, canonicalize_reference
from streams.chain.links import ChainStep
from streams.chain.merkle import CompactRange
from streams.chain.signing import LocalEd25519Signer, Verifier

VECTORS = json.loads(
    (Path(__file__).parents[2] / "vectors" / "audit_chain_v1.json").read_text(encoding="utf-8")
)


@pytest.fixture
def signer() -> LocalEd25519Signer:
    seed = hashlib.sha256(VECTORS["seedText"].encode()).digest()
    assert base64.b64encode(seed).decode() == VECTORS["seed"]
    return LocalEd25519Signer(seed, VECTORS["signerId"])


def test_public_key(signer: LocalEd25519Signer) -> None:
    assert base64.b64encode(signer.public_key).decode() == VECTORS["publicKey"]


@pytest.mark.parametrize("record", VECTORS["records"], ids=lambda r: f"seq{r['seq']}")
def test_jcs_bytes(record: dict[str, Any]) -> None:
    expected = record["jcs"].encode()
    assert canonicalize(record["payload"]) == expected
    assert canonicalize_reference(record["payload"]) == expected


def test_chain_step_reproduces_the_vectors(signer: LocalEd25519Signer) -> None:
    step = ChainStep(signer)
    head = None
    for i, rec in enumerate(VECTORS["records"]):
        head, body = step(head, rec["payload"], LogPosition("kernel.actions", 0, i))
        assert body["chain"] == VECTORS["chain"]
        assert (body["seq"], body["prevHash"], body["hash"], body["signature"]) == (
            rec["seq"], rec["prevHash"], rec["hash"], rec["signature"],
        )  # fmt: skip


def test_merkle_roots() -> None:
    rng = CompactRange()
    assert base64.b64encode(rng.root()).decode() == VECTORS["merkleRoots"]["0"]
    for rec in VECTORS["records"]:
        rng.append(bytes.fromhex(rec["hash"]))
        assert base64.b64encode(rng.root()).decode() == VECTORS["merkleRoots"][str(rng.size)]


def _rows() -> list[AuditRow]:
    return [
        AuditRow(
            r["payload"]["eventId"],
            VECTORS["chain"],
            r["seq"],
            r["payload"]["eventType"],
            r["payload"],
            r["prevHash"],
            r["hash"],
            r["signature"],
            VECTORS["signerId"],
            parse_ts(r["payload"]["ts"]),
            r["payload"]["metadata"],
        )
        for r in VECTORS["records"]
    ]


def test_streaming_verifier_accepts_the_vectors() -> None:
    verifiers = {VECTORS["signerId"]: Verifier(base64.b64decode(VECTORS["publicKey"]))}
    report = ChainVerifier(verifiers).feed_all(_rows())
    assert report.ok and report.total == len(VECTORS["records"])
    assert report.chains[0].head_hash == VECTORS["records"][-1]["hash"]


def test_streaming_verifier_rejects_a_single_edit() -> None:
    verifiers = {VECTORS["signerId"]: Verifier(base64.b64decode(VECTORS["publicKey"]))}
    rows = _rows()
    payload = json.loads(json.dumps(rows[1].payload))
    payload["body"]["context"]["ratio"] = 0.2
    rows[1] = dataclasses.replace(rows[1], payload=payload)
    report = ChainVerifier(verifiers).feed_all(rows)
    assert [(f.seq, "payload or hash edited" in f.reason) for f in report.failures] == [(1, True)]
