"""Our rotation, revocation and windows against tests/vectors/key_rotation_v1.json.

The vectors are written by an independent implementation
(tests/vectors/generate_key_rotation_v1.py: hashlib, rfc8785, PyNaCl only).
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from replay.verify import AuditRow, ChainVerifier
from schemas.events import Event, parse_ts
from schemas.positions import LogPosition
from streams.chain.keys import parse_signers, signers_document
from streams.chain.links import ChainHead, ChainStep
from streams.chain.rotation import (
    revocation_body,
    rotation_body,
    rotation_link,
    windows_from_log,
)
from streams.chain.signing import LocalEd25519Signer

VECTORS = json.loads(
    (Path(__file__).parents[2] / "vectors" / "key_rotation_v1.json").read_text(encoding="utf-8")
)
CHAIN = VECTORS["chain"]
SIGNERS = {
    k["signerId"]: LocalEd25519Signer(
        hashlib.sha256(k["seedText"].encode()).digest(), k["signerId"]
    )
    for k in VECTORS["keys"]
}
A, B = (k["signerId"] for k in VECTORS["keys"])


def _event(doc: dict[str, Any]) -> Event:
    return Event.from_json(doc)


def test_public_keys() -> None:
    for k in VECTORS["keys"]:
        assert base64.b64encode(SIGNERS[k["signerId"]].public_key).decode() == k["publicKey"]


def test_rotation_and_revocation_bodies_are_the_published_ones() -> None:
    rot, rev = VECTORS["rotation"]["body"], VECTORS["revocation"]["body"]
    ours = rotation_body(SIGNERS[A], B, SIGNERS[B].public_key, rot["positions"], rot["reason"])
    assert ours == rot
    assert revocation_body(SIGNERS[B], A, rev["positions"], rev["reason"]) == rev


def test_links_including_the_rotation_link_are_the_published_ones() -> None:
    rotation = _event(VECTORS["rotation"])
    head: ChainHead | None = None
    for rec in VECTORS["records"]:
        signer = SIGNERS[rec["signerId"]]
        if rec["payload"]["eventType"] == "keyRotation":
            assert head is not None
            head, body = rotation_link(head, rotation, signer)
        else:
            source = LogPosition("kernel.actions", 0, rec["sourceOffset"])
            head, body = ChainStep(signer)(head, rec["payload"], source)
        assert (body["seq"], body["prevHash"], body["hash"]) == (
            rec["seq"],
            rec["prevHash"],
            rec["hash"],
        )
        assert (body["signature"], body["signerId"]) == (rec["signature"], rec["signerId"])
        assert body["sourceOffset"] == rec["sourceOffset"]


def _rows() -> list[AuditRow]:
    return [
        AuditRow(
            r["payload"]["eventId"],
            CHAIN,
            r["seq"],
            r["payload"]["eventType"],
            r["payload"],
            r["prevHash"],
            r["hash"],
            r["signature"],
            r["signerId"],
            parse_ts(r["payload"]["ts"]),
            r["payload"]["metadata"],
        )
        for r in VECTORS["records"]
    ]


@pytest.mark.parametrize("stage", ["AfterRotation", "AfterRevocation"])
def test_windows_from_the_log_and_the_records_flagged(stage: str) -> None:
    records = [_event(VECTORS["rotation"])]
    if stage == "AfterRevocation":
        records.append(_event(VECTORS["revocation"]))
    history = windows_from_log({A: SIGNERS[A].public_key}, records)
    assert signers_document(history.signers(), history.windows) == VECTORS[f"signers{stage}"]
    report = ChainVerifier(parse_signers(VECTORS[f"signers{stage}"])).feed_all(_rows())
    assert report.failures == []
    kinds = {"revoked": "signed by revoked key", "outside": "signed outside key"}
    got = [(f.seq, f.reason) for f in report.flagged]
    expected = VECTORS[f"flagged{stage}"]
    assert [seq for seq, _ in got] == [e["seq"] for e in expected]
    for (_, reason), e in zip(got, expected, strict=True):
        assert reason.startswith(kinds[e["reason"]]), reason
