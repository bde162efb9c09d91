"""The link contract and the pure chain step."""

from __future__ import annotations

import base64
import hashlib
import itertools
from typing import Any

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from schemas.positions import LogPosition
from streams.chain.errors import ChainError, SignerError
from streams.chain.links import ChainHead, ChainStep, link_digest
from streams.chain.signing import LocalEd25519Signer, Signer, Verifier

SEED = hashlib.sha256(b"kernel unit test key").digest()


def _event(i: int) -> dict[str, Any]:
    return {
        "eventId": f"00000000-0000-4000-8000-{i:012d}",
        "eventType": "kernelAction",
        "ts": "2026-01-31T12:00:00.123Z",
        "actor": "svc",
        "subject": f"s{i}",
        "schemaVersion": 1,
        "metadata": {},
        "body": {"action": "a.b", "resource": None, "requestId": None, "context": {"n": i}},
    }


def test_digest_is_sha256_of_jcs_then_prev_hash_bytes() -> None:
    payload = _event(1)
    prev = "ab" * 32
    expected = hashlib.sha256(rfc8785.dumps(payload) + bytes.fromhex(prev)).digest()
    assert link_digest(payload, prev) == expected
    assert link_digest(payload, "") == hashlib.sha256(rfc8785.dumps(payload)).digest()


def test_bad_prev_hash_is_rejected() -> None:
    with pytest.raises(ChainError):
        link_digest({}, "zz")


def test_step_builds_a_linked_signed_chain() -> None:
    signer = LocalEd25519Signer(SEED, "test-signer")
    assert isinstance(signer, Signer)
    step = ChainStep(signer)
    verifier = Verifier(signer.public_key)
    head = None
    records = []
    for i in range(5):
        head, body = step(head, _event(i), LogPosition("kernel.actions", 3, 10 + 2 * i))
        records.append(body)
    assert [r["seq"] for r in records] == [0, 1, 2, 3, 4]
    assert records[0]["prevHash"] == ""
    for prev, cur in itertools.pairwise(records):
        assert cur["prevHash"] == prev["hash"]
    for r in records:
        assert r["chain"] == "kernel.actions/3"
        assert r["hash"] == link_digest(r["payload"], r["prevHash"]).hex()
        assert verifier.verify(bytes.fromhex(r["hash"]), base64.b64decode(r["signature"]))
        assert r["signerId"] == "test-signer"
    assert head == ChainHead("kernel.actions/3", 4, records[-1]["hash"], 18)
    assert ChainHead.of_record(records[-1]) == head
    assert set(records[0]) == {
        "chain", "seq", "prevHash", "hash", "signature", "signerId",
        "sourceTopic", "sourcePartition", "sourceOffset", "payload",
    }  # fmt: skip


def test_step_refuses_another_chains_head_and_old_offsets() -> None:
    step = ChainStep(LocalEd25519Signer(SEED, "t"))
    head, _ = step(None, _event(0), LogPosition("t", 0, 5))
    with pytest.raises(ChainError, match="given a record of"):
        step(head, _event(1), LogPosition("t", 1, 6))
    with pytest.raises(ChainError, match="already chained"):
        step(head, _event(1), LogPosition("t", 0, 5))


@given(st.lists(st.integers(0, 3), min_size=1, max_size=8))
def test_chain_is_a_pure_function_of_its_input(offset_gaps: list[int]) -> None:
    def run() -> list[dict[str, Any]]:
        step = ChainStep(LocalEd25519Signer(SEED, "t"))
        head, out, offset = None, [], 0
        for i, gap in enumerate(offset_gaps):
            offset += gap + 1
            head, body = step(head, _event(i), LogPosition("t", 0, offset))
            out.append(body)
        return out

    assert run() == run()


def test_signer_and_verifier_reject_bad_sizes() -> None:
    with pytest.raises(SignerError):
        LocalEd25519Signer(b"short", "t")
    with pytest.raises(SignerError):
        LocalEd25519Signer(SEED, "")
    with pytest.raises(SignerError):
        Verifier(b"x" * 31)
    signer = LocalEd25519Signer(SEED, "t")
    assert not Verifier(signer.public_key).verify(b"d" * 32, b"s" * 63)
    assert "seed" not in repr(signer)
