"""Writes tests/vectors/audit_chain_v1.json from first principles (hashlib, rfc8785, PyNaCl).

Deliberately independent of streams/chain and replay/: the vectors are the
contract, and tests/unit/chain/test_vectors.py checks our code against them.
Run: .venv/bin/python tests/vectors/generate_audit_chain_v1.py
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import rfc8785
from nacl.signing import SigningKey

SEED_TEXT = "kernel audit chain v1 TEST KEY - never use in production"
SIGNER_ID = "kernel-test-signer"

EVENTS = [
    {
        "eventId": "0b0e6a5c-5b8e-4c7e-9a55-0c1d2e3f4a5b", "eventType": "kernelAction",
        "ts": "2026-01-31T12:00:00.123Z", "actor": "svc-payments", "subject": "acct-42",
        "schemaVersion": 1, "metadata": {"traceId": "4bf92f3577b34da6"},
        "body": {"action": "payments.transfer", "resource": "acct-42/transfers",
                 "requestId": "req-1", "context": {"amount": 125000, "currency": "EUR"}},
    },
    {
        "eventId": "1c1f7b6d-6c9f-4d8f-8b66-1d2e3f4a5b6c", "eventType": "kernelAction",
        "ts": "2026-01-31T12:00:01.000Z", "actor": "agent-\u00e9\u00e8", "subject": "acct-42",
        "schemaVersion": 1, "metadata": {},
        "body": {"action": "payments.refund", "resource": None, "requestId": None,
                 "context": {"ratio": 0.1, "big": 1e21, "small": 1e-7, "one": 1.0,
                             "\U0001f600": "astral key", "\ue000": "private use key",
                             "ctl": "tab\there \u001f \"quoted\" \\ /"}},
    },
    {
        "eventId": "2d2a8c7e-7daf-4e9a-9c77-2e3f4a5b6c7d", "eventType": "kernelAction",
        "ts": "2026-01-31T12:00:02.999Z", "actor": "svc-payments", "subject": "acct-7",
        "schemaVersion": 1, "metadata": {"source": "api"},
        "body": {"action": "payments.transfer", "resource": "acct-7", "requestId": "req-3",
                 "context": {"nested": {"b": [1, 2, {"z": None, "a": True}], "a": False}}},
    },
]  # fmt: skip


def main() -> None:
    seed = hashlib.sha256(SEED_TEXT.encode()).digest()
    key = SigningKey(seed)
    chain, prev = [], ""
    leaves = []
    for i, event in enumerate(EVENTS):
        jcs = rfc8785.dumps(event)
        digest = hashlib.sha256(jcs + bytes.fromhex(prev)).digest()
        sig = key.sign(digest).signature
        chain.append({
            "seq": i, "payload": event, "jcs": jcs.decode(), "prevHash": prev,
            "hash": digest.hex(), "signature": base64.b64encode(sig).decode(),
        })  # fmt: skip
        prev = digest.hex()
        leaves.append(hashlib.sha256(b"\x00" + digest).digest())

    def mth(d: list[bytes]) -> bytes:
        if len(d) == 1:
            return d[0]
        k = 1
        while k * 2 < len(d):
            k *= 2
        return hashlib.sha256(b"\x01" + mth(d[:k]) + mth(d[k:])).digest()

    roots = {str(n): base64.b64encode(mth(leaves[:n])).decode() for n in range(1, len(leaves) + 1)}
    roots["0"] = base64.b64encode(hashlib.sha256(b"").digest()).decode()
    doc = {
        "description": (
            "Kernel audit chain v1 test vectors. hash = SHA-256(JCS(payload) || "
            "bytes.fromhex(prevHash)), prevHash of seq 0 is ''; signature = "
            "base64(Ed25519(raw 32-byte hash)); Merkle roots per RFC 6962 over leaf "
            "data = raw record hashes. The key is a PUBLISHED TEST KEY: seed = "
            "SHA-256(UTF-8 seedText)."
        ),
        "chain": "kernel.actions/0",
        "signerId": SIGNER_ID,
        "seedText": SEED_TEXT,
        "seed": base64.b64encode(seed).decode(),
        "publicKey": base64.b64encode(bytes(key.verify_key)).decode(),
        "records": chain,
        "merkleRoots": roots,
    }
    out = Path(__file__).with_name("audit_chain_v1.json")
    out.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
