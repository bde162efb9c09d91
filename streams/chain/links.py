"""The link contract and the pure chain step.

A chain is the sequence of one input partition, named ``topic/partition``.
Record ``seq`` (0, 1, 2, ...) links to the one before it::

    digest    = SHA-256( JCS(payload) || bytes.fromhex(prevHash) )
    hash      = lowercase hex(digest)         prevHash of seq 0 is ""
    signature = base64( Ed25519(digest) )     over the raw 32 bytes

``payload`` is the whole event JSON (envelope and body,
:meth:`schemas.events.Event.to_json`), so no field escapes the hash. This is
the contract of ``audit-verify`` and of ``tests/vectors/audit_chain_v1.json``;
changing a byte of it is a new chain version, not a refactoring.

:class:`ChainStep` is the signer's pure step: ``(head, event JSON, source
position) -> (new head, auditRecord body)``. The runner owns Kafka; recovery
rebuilds the head from the chain topic with :meth:`ChainHead.of_record`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from schemas.positions import LogPosition
from streams.chain.canonical import canonicalize
from streams.chain.errors import ChainError
from streams.chain.signing import Signer, b64

__all__ = [
    "ChainHead",
    "ChainStep",
    "canonical_digest",
    "chain_id",
    "link_body",
    "link_digest",
]


def chain_id(topic: str, partition: int) -> str:
    return f"{topic}/{partition}"


def link_digest(payload: Any, prev_hash: str) -> bytes:
    """The raw 32-byte SHA-256 of a link; ``prev_hash`` is hex ("" for the first)."""
    return canonical_digest(canonicalize(payload), prev_hash)


def canonical_digest(canonical: bytes, prev_hash: str) -> bytes:
    """:func:`link_digest` of a payload already in its JCS form."""
    try:
        prev = bytes.fromhex(prev_hash)
    except ValueError as exc:
        raise ChainError(f"prevHash {prev_hash!r} is not hex") from exc
    return hashlib.sha256(canonical + prev).digest()


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The last record of a chain: what the next link needs."""

    chain: str
    seq: int
    hash: str
    source_offset: int

    @classmethod
    def of_record(cls, body: Mapping[str, Any]) -> ChainHead:
        """The head a stored auditRecord body leaves behind (used on recovery)."""
        return cls(body["chain"], body["seq"], body["hash"], body["sourceOffset"])


@dataclass(frozen=True, slots=True)
class ChainStep:
    """Appends one event to its chain. Pure apart from the signer's computation."""

    signer: Signer

    def __call__(
        self,
        head: ChainHead | None,
        payload: Mapping[str, Any],
        source: LogPosition,
        canonical: bytes | None = None,
    ) -> tuple[ChainHead, dict[str, Any]]:
        """``canonical``: ``payload`` already canonicalized (JCS), if the caller has it."""
        chain = chain_id(source.topic, source.partition)
        if head is None:
            seq, prev_hash = 0, ""
        else:
            if head.chain != chain:
                raise ChainError(f"head of chain {head.chain} given a record of {chain}")
            if source.offset <= head.source_offset:
                # Chaining it again would fork the chain: the runner replayed input
                # it had already committed. Refuse rather than guess.
                raise ChainError(
                    f"{source} is at or before the chain head's source offset "
                    f"{head.source_offset}; it is already chained"
                )
            seq, prev_hash = head.seq + 1, head.hash
        if canonical is None:
            canonical = canonicalize(payload)
        return _link(self.signer, chain, seq, prev_hash, canonical, payload=payload, source=source)


def link_body(
    head: ChainHead, payload: Mapping[str, Any], *, source: LogPosition, signer: Signer
) -> tuple[ChainHead, dict[str, Any]]:
    """The link after ``head`` with ``payload``, naming the source position given.

    For links that are not one input record (a key rotation,
    :mod:`streams.chain.rotation`): no check that the source moves on.
    """
    canonical = canonicalize(payload)
    return _link(
        signer, head.chain, head.seq + 1, head.hash, canonical, payload=payload, source=source
    )


def _link(
    signer: Signer,
    chain: str,
    seq: int,
    prev_hash: str,
    canonical: bytes,
    *,
    payload: Mapping[str, Any],
    source: LogPosition,
) -> tuple[ChainHead, dict[str, Any]]:
    digest = canonical_digest(canonical, prev_hash)
    hex_hash = digest.hex()
    body = {
        "chain": chain,
        "seq": seq,
        "prevHash": prev_hash,
        "hash": hex_hash,
        "signature": b64(signer.sign(digest)),
        "signerId": signer.signer_id,
        "sourceTopic": source.topic,
        "sourcePartition": source.partition,
        "sourceOffset": source.offset,
        "payload": dict(payload),
    }
    return ChainHead(chain, seq, hex_hash, source.offset), body
