"""Offline proofs: one event is in a signed checkpoint; a checkpoint extends another.

``kernel audit-prove`` writes these JSON documents; ``kernel audit-verify
--proof`` checks them with nothing but ``signers.json`` (and, optionally, the
checkpoints the auditor already trusts, ``--checkpoint``)::

    {"type": "inclusion", "chain": C, "seq": m, "treeSize": n,
     "record": {"id", "payload", "prevHash", "hash", "signature", "signerId"},
     "proof": [base64 hash, ...], "checkpoint": "<signed note>"}

    {"type": "consistency", "chain": C, "oldSize": m, "newSize": n,
     "proof": [...], "oldCheckpoint": "<note>", "newCheckpoint": "<note>"}

An inclusion check recomputes the record's hash from its payload (so the
proof is about the event's content, not an opaque hash), checks its
signature, and the RFC 9162 path to the checkpoint's signed root.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from typing import Any

from replay.verify import AuditRow
from schemas.errors import KernelError
from streams.chain.errors import ChainError
from streams.chain.links import link_digest
from streams.chain.merkle import (
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from streams.chain.note import ChainCheckpoint, NoteError
from streams.chain.signing import Verifier, unb64

__all__ = [
    "ProofError",
    "consistency_document",
    "inclusion_document",
    "verify_document",
]

_INCLUSION_KEYS = {"type", "chain", "seq", "treeSize", "record", "proof", "checkpoint"}
_RECORD_KEYS = {"id", "payload", "prevHash", "hash", "signature", "signerId"}
_CONSISTENCY_KEYS = {
    "type",
    "chain",
    "oldSize",
    "newSize",
    "proof",
    "oldCheckpoint",
    "newCheckpoint",
}


class ProofError(KernelError):
    """A proof document is malformed or does not prove what it claims."""


def _b64s(hashes: Sequence[bytes]) -> list[str]:
    return [base64.b64encode(h).decode() for h in hashes]


def inclusion_document(
    row: AuditRow, checkpoint: ChainCheckpoint, note: str, record_hashes: Sequence[bytes]
) -> dict[str, Any]:
    """``record_hashes``: the raw hashes of seq 0..checkpoint.size-1 of the row's chain."""
    leaves = [leaf_hash(h) for h in record_hashes]
    return {
        "type": "inclusion",
        "chain": row.chain,
        "seq": row.seq,
        "treeSize": checkpoint.size,
        "record": {
            "id": row.id,
            "payload": row.payload,
            "prevHash": row.prev_hash,
            "hash": row.hash,
            "signature": row.signature,
            "signerId": row.signer_id,
        },
        "proof": _b64s(inclusion_proof(row.seq, leaves)),
        "checkpoint": note,
    }


def consistency_document(
    old: tuple[ChainCheckpoint, str],
    new: tuple[ChainCheckpoint, str],
    record_hashes: Sequence[bytes],
) -> dict[str, Any]:
    """``record_hashes``: the raw hashes of seq 0..new.size-1."""
    leaves = [leaf_hash(h) for h in record_hashes]
    return {
        "type": "consistency",
        "chain": new[0].chain,
        "oldSize": old[0].size,
        "newSize": new[0].size,
        "proof": _b64s(consistency_proof(old[0].size, leaves)),
        "oldCheckpoint": old[1],
        "newCheckpoint": new[1],
    }


def verify_document(
    doc: Any, verifiers: Mapping[str, Verifier], pinned: Sequence[ChainCheckpoint] = ()
) -> str:
    """A one-line description of what was proven; ProofError otherwise."""
    if not isinstance(doc, dict):
        raise ProofError("a proof is a JSON object")
    kind = doc.get("type")
    if kind == "inclusion":
        return _verify_inclusion(doc, verifiers, pinned)
    if kind == "consistency":
        return _verify_consistency(doc, verifiers, pinned)
    raise ProofError(f"unknown proof type {kind!r}")


def _open(
    note: Any, verifiers: Mapping[str, Verifier], pinned: Sequence[ChainCheckpoint]
) -> ChainCheckpoint:
    if not isinstance(note, str):
        raise ProofError("a checkpoint is a signed note string")
    try:
        cp, _ = ChainCheckpoint.open(note, verifiers)
    except NoteError as exc:
        raise ProofError(f"checkpoint: {exc}") from exc
    if pinned and cp not in pinned:
        raise ProofError(f"checkpoint {cp.chain}@{cp.size} is not one of the given --checkpoint")
    return cp


def _hashes(value: Any) -> list[bytes]:
    if not isinstance(value, list) or len(value) > 64:
        raise ProofError("proof must be a list of at most 64 base64 hashes")
    try:
        out = [unb64(v) for v in value]
    except (binascii.Error, ValueError, TypeError, AttributeError) as exc:
        raise ProofError("proof hashes must be base64") from exc
    if any(len(h) != 32 for h in out):
        raise ProofError("proof hashes must be 32 bytes")
    return out


def _int(doc: Mapping[str, Any], key: str) -> int:
    v = doc.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise ProofError(f"{key} must be a non-negative integer")
    return v


def _verify_inclusion(
    doc: dict[str, Any], verifiers: Mapping[str, Verifier], pinned: Sequence[ChainCheckpoint]
) -> str:
    if set(doc) != _INCLUSION_KEYS:
        raise ProofError(f"an inclusion proof has exactly the fields {sorted(_INCLUSION_KEYS)}")
    rec = doc["record"]
    if not isinstance(rec, dict) or set(rec) != _RECORD_KEYS:
        raise ProofError(f"record has exactly the fields {sorted(_RECORD_KEYS)}")
    cp = _open(doc["checkpoint"], verifiers, pinned)
    seq, size = _int(doc, "seq"), _int(doc, "treeSize")
    if doc["chain"] != cp.chain or size != cp.size:
        raise ProofError("chain or treeSize differs from the signed checkpoint")
    try:
        digest = link_digest(rec["payload"], str(rec["prevHash"]))
    except ChainError as exc:
        raise ProofError(f"record: {exc}") from exc
    if digest.hex() != rec["hash"]:
        raise ProofError("record hash does not match its payload and prevHash")
    verifier = verifiers.get(str(rec["signerId"]))
    try:
        sig = unb64(str(rec["signature"]))
    except (binascii.Error, ValueError) as exc:
        raise ProofError("record signature is not base64") from exc
    if verifier is None or not verifier.verify(digest, sig):
        raise ProofError("record signature does not verify under signers.json")
    if not verify_inclusion(leaf_hash(digest), seq, size, _hashes(doc["proof"]), cp.root):
        raise ProofError(f"inclusion proof of seq {seq} in {cp.chain}@{size} does not verify")
    return (
        f"event {rec['id']} is record {seq} of {cp.chain}, in its signed checkpoint of size {size}"
    )


def _verify_consistency(
    doc: dict[str, Any], verifiers: Mapping[str, Verifier], pinned: Sequence[ChainCheckpoint]
) -> str:
    if set(doc) != _CONSISTENCY_KEYS:
        raise ProofError(f"a consistency proof has exactly the fields {sorted(_CONSISTENCY_KEYS)}")
    old = _open(doc["oldCheckpoint"], verifiers, pinned)
    new = _open(doc["newCheckpoint"], verifiers, pinned)
    m, n = _int(doc, "oldSize"), _int(doc, "newSize")
    if not (doc["chain"] == old.chain == new.chain) or (m, n) != (old.size, new.size):
        raise ProofError("chain or sizes differ from the signed checkpoints")
    if not verify_consistency(m, n, old.root, new.root, _hashes(doc["proof"])):
        raise ProofError(f"{old.chain}@{n} does not extend {old.chain}@{m}")
    return f"{new.chain}: the signed checkpoint of size {n} extends the one of size {m}"
