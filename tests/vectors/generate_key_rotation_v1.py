"""Writes tests/vectors/key_rotation_v1.json from first principles (hashlib, rfc8785, PyNaCl).

Deliberately independent of streams/chain and replay/ (decision 0018): a chain of
two records signed by key A, A's rotation link to key B, two records signed by
B; the keyRotation and revocation records (signature = Ed25519(SHA-256(JCS(body
without signature)))); the signers.json windows they imply; and the records a
verifier must flag once A is revoked from seq 1. tests/unit/chain/test_vectors.py
checks our code against them.
Run: .venv/bin/python tests/vectors/generate_key_rotation_v1.py
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import rfc8785
from nacl.signing import SigningKey

CHAIN = "kernel.actions/0"
KEYS = {
    "kernel-test-signer-a": "kernel key rotation v1 TEST KEY A - never use in production",
    "kernel-test-signer-b": "kernel key rotation v1 TEST KEY B - never use in production",
}
A, B = KEYS


DESCRIPTION = (
    "Kernel key rotation v1 test vectors (decision 0018). Links follow audit_chain_v1; "
    "the rotation link's payload is the keyRotation event, signed by the outgoing "
    "key, its sourceOffset the previous link's. keyRotation signature = "
    "base64(Ed25519(SHA-256(JCS(body without 'signature')))). Flag reasons: "
    "'revoked' = signed at or after its key's revokedFrom; 'outside' = outside "
    "validFrom..validUntil. The keys are PUBLISHED TEST KEYS: "
    "seed = SHA-256(UTF-8 seedText)."
)


def _key(signer_id: str) -> SigningKey:
    return SigningKey(hashlib.sha256(KEYS[signer_id].encode()).digest())


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _action(i: int) -> dict[str, Any]:
    return {
        "eventId": f"00000000-0000-4000-8000-00000000000{i}", "eventType": "kernelAction",
        "ts": f"2026-02-01T12:00:0{i}.000Z", "actor": "svc", "subject": "acct-1",
        "schemaVersion": 1, "metadata": {},
        "body": {"action": f"a{i}", "resource": None, "requestId": None, "context": {"i": i}},
    }  # fmt: skip


def _signed_body(signer: str, body: dict[str, Any]) -> dict[str, Any]:
    digest = hashlib.sha256(rfc8785.dumps(body)).digest()
    return {**body, "signature": _b64(_key(signer).sign(digest).signature)}


def _key_event(i: int, actor: str, subject: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "eventId": f"00000000-0000-4000-8000-0000000000a{i}", "eventType": "keyRotation",
        "ts": f"2026-02-01T12:01:0{i}.000Z", "actor": actor, "subject": subject,
        "schemaVersion": 2, "metadata": {}, "body": body,
    }  # fmt: skip


def main() -> None:
    public = {sid: _b64(bytes(_key(sid).verify_key)) for sid in KEYS}
    # Rotation after seq 1: the link is seq 2, signed by A; B signs from seq 3.
    rotation = _key_event(0, A, B, _signed_body(A, {
        "oldSignerId": A, "newSignerId": B, "newPublicKey": public[B], "reason": "scheduled",
        "action": "rotate", "positions": {CHAIN: 3},
    }))  # fmt: skip
    revocation = _key_event(1, B, A, _signed_body(B, {
        "oldSignerId": A, "newSignerId": B, "newPublicKey": public[B], "reason": "compromised",
        "action": "revoke", "positions": {CHAIN: 1},
    }))  # fmt: skip
    # seq 5: the old key signs after its window (a leaked key, or a signer not switched)
    plan = [(_action(0), A, 0), (_action(1), A, 1), (rotation, A, 1), (_action(2), B, 2),
            (_action(3), B, 3), (_action(4), A, 4)]  # fmt: skip
    records, prev = [], ""
    for seq, (payload, signer, offset) in enumerate(plan):
        digest = hashlib.sha256(rfc8785.dumps(payload) + bytes.fromhex(prev)).digest()
        records.append({
            "seq": seq, "signerId": signer, "sourceOffset": offset, "payload": payload,
            "prevHash": prev, "hash": digest.hex(),
            "signature": _b64(_key(signer).sign(digest).signature),
        })  # fmt: skip
        prev = digest.hex()
    rotated = {"signers": [
        {"signerId": A, "publicKey": public[A], "validUntil": {CHAIN: 3}},
        {"signerId": B, "publicKey": public[B], "validFrom": {CHAIN: 3}},
    ]}  # fmt: skip
    signers = {"signers": [
        {"signerId": A, "publicKey": public[A], "validUntil": {CHAIN: 3},
         "revokedFrom": {CHAIN: 1}},
        {"signerId": B, "publicKey": public[B], "validFrom": {CHAIN: 3}},
    ]}  # fmt: skip
    doc = {
        "description": DESCRIPTION,
        "chain": CHAIN,
        "keys": [
            {"signerId": sid, "seedText": KEYS[sid], "publicKey": public[sid]} for sid in KEYS
        ],
        "rotation": rotation,
        "revocation": revocation,
        "records": records,
        "signersAfterRotation": rotated,
        "flaggedAfterRotation": [{"seq": 5, "reason": "outside"}],
        "signersAfterRevocation": signers,
        "flaggedAfterRevocation": [
            {"seq": 1, "reason": "revoked"},
            {"seq": 2, "reason": "revoked"},
            {"seq": 5, "reason": "revoked"},
        ],
    }
    out = Path(__file__).with_name("key_rotation_v1.json")
    out.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
