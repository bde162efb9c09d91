"""Streaming verification of audit chains: the pure core of ``kernel audit-verify``.

:class:`ChainVerifier` is fed stored audit rows ordered by ``(chain, seq)``
and keeps O(chains) state -- per chain its head, its length and an RFC 6962
compact range -- so a million rows verify in constant memory. Per row, in this
order (the first failure of a chain is its verdict; other chains go on):

1. ``seq`` continues the chain (0 first): a gap is a deleted row;
2. ``prev_hash`` is the previous row's ``hash`` ("" first): swapped or inserted rows;
3. ``hash == SHA-256(JCS(payload) || prev_hash bytes)``: an edited payload or hash;
4. ``signer_id`` is in signers.json and ``signature`` verifies under its key;
5. ``id``, ``event_type``, ``ts`` and ``metadata`` agree with the payload (they
   are query copies; an edit there would mislead readers without breaking 1-4).

A row that passes all five can still be signed by a key that had no right to
sign it: after the key's revocation, or outside its validity window
(``signers.json``, :mod:`streams.chain.windows`). Such a row is *flagged*, per
row, and the chain goes on (the links are intact; what is void is the key's
word for them), so a report lists every such row, not just the first; a flagged
row fails the verification as a failure does.

Signed checkpoints pin what rows cannot: a chain shorter than a checkpoint
(a truncated tail), or whose Merkle root or head at the checkpoint's size
differs, fails. Where rows come from is the adapter's business
(``replay/audit_postgres.py``).
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from schemas.errors import KernelError, ValidationError
from schemas.events import parse_ts
from streams.chain.errors import CanonicalizationError
from streams.chain.links import link_digest
from streams.chain.merkle import CompactRange
from streams.chain.note import ChainCheckpoint
from streams.chain.signing import Verifier, unb64
from streams.chain.windows import window_flag

__all__ = [
    "AuditRow",
    "ChainSummary",
    "ChainVerifier",
    "CheckedLink",
    "Failure",
    "VerificationReport",
    "link_failure",
]

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class AuditRow:
    id: str
    chain: str
    seq: int
    event_type: str
    payload: Any
    prev_hash: str
    hash: str
    signature: str
    signer_id: str
    ts_ms: int
    metadata: Any


# A link whose checks 3-5 ran elsewhere: (chain, seq, id, prev_hash, hash, their
# verdict, signerId -- None: not known, no window check). A plain tuple: it
# crosses process boundaries by the thousand.
CheckedLink = tuple[str, int, str, str, str, str | None, str | None]


@dataclass(frozen=True, slots=True)
class Failure:
    chain: str
    seq: int | None
    id: str | None
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"chain": self.chain, "seq": self.seq, "id": self.id, "reason": self.reason}


@dataclass(slots=True)
class ChainSummary:
    chain: str
    length: int = 0
    head_hash: str = ""
    tree: CompactRange = field(default_factory=CompactRange)
    failure: Failure | None = None
    flagged: int = 0  # rows signed by a key outside its window or after its revocation

    def to_json(self) -> dict[str, Any]:
        return {
            "chain": self.chain,
            "length": self.length,
            "headHash": self.head_hash,
            "merkleRoot": self.tree.root().hex(),
            "verified": self.failure is None and not self.flagged,
            "flagged": self.flagged,
        }


@dataclass(frozen=True, slots=True)
class VerificationReport:
    chains: list[ChainSummary]
    failures: list[Failure]
    flagged: list[Failure] = field(default_factory=list)  # per row: its key could not sign it

    @property
    def ok(self) -> bool:
        return not self.failures and not self.flagged

    @property
    def total(self) -> int:
        return sum(c.length for c in self.chains)

    def to_json(self) -> dict[str, Any]:
        return {
            "verified": self.ok,
            "total": self.total,
            "chains": [c.to_json() for c in self.chains],
            "failures": [f.to_json() for f in self.failures],
            "flagged": [f.to_json() for f in self.flagged],
        }


class ChainVerifier:
    def __init__(
        self,
        verifiers: Mapping[str, Verifier],
        checkpoints: Iterable[ChainCheckpoint] = (),
    ) -> None:
        self._verifiers = dict(verifiers)
        self._pins: dict[str, dict[int, ChainCheckpoint]] = {}
        for cp in checkpoints:
            self._pins.setdefault(cp.chain, {})[cp.size] = cp
        self._chains: dict[str, ChainSummary] = {}
        self._current: ChainSummary | None = None
        self._flagged: list[Failure] = []

    def continue_chain(self, summary: ChainSummary) -> None:
        """Rows fed next extend ``summary``, a chain verified by an earlier pass.

        Incremental verification (the auditor worker) keeps each chain's summary
        between rounds and feeds only the rows appended since (replay's
        ``_ResumableVerifier`` starts mid-chain the same way).
        """
        self._chains[summary.chain] = summary
        self._current = summary

    @property
    def flagged(self) -> list[Failure]:
        """The rows flagged so far (signed outside their key's window or after its revocation)."""
        return list(self._flagged)

    def feed(self, row: AuditRow) -> Failure | None:
        """Check one row; returns the chain's failure if this row is its first."""
        link = (row.chain, row.seq, row.id, row.prev_hash, row.hash, None, row.signer_id)
        return self._advance(link, row)

    def feed_checked(self, link: CheckedLink) -> Failure | None:
        """:meth:`feed` for a link whose checks 3-5 already ran (:func:`link_failure`)."""
        return self._advance(link, link[5])

    def _advance(self, link: CheckedLink, rest: AuditRow | str | None) -> Failure | None:
        """Checks 1-2 here, in order; then 3-5 (``rest``: the row, or their verdict)."""
        chain, seq, id_, prev_hash, hash_, _, signer_id = link
        cur = self._current
        if cur is None or cur.chain != chain:
            if chain in self._chains:
                return self._fail(self._chains[chain], seq, id_, "rows are not ordered by chain")
            cur = self._current = self._chains[chain] = ChainSummary(chain)
            self._check_pin(cur)  # a checkpoint of size 0
        if cur.failure is not None:
            return None
        reason = _check_order(cur, seq, prev_hash)
        if reason is None:
            reason = link_failure(rest, self._verifiers) if isinstance(rest, AuditRow) else rest
        if reason is not None:
            return self._fail(cur, seq, id_, reason)
        if signer_id is not None:
            verifier = self._verifiers.get(signer_id)
            window = None if verifier is None else verifier.window
            flag = window_flag(signer_id, window, chain, seq)
            if flag is not None:
                cur.flagged += 1
                self._flagged.append(Failure(chain, seq, id_, flag))
        cur.length += 1
        cur.head_hash = hash_
        cur.tree.append(bytes.fromhex(hash_))
        return self._check_pin(cur)

    def feed_all(self, rows: Iterable[AuditRow]) -> VerificationReport:
        for row in rows:
            self.feed(row)
        return self.finish()

    def finish(self) -> VerificationReport:
        for chain, pins in self._pins.items():
            summary = self._chains.get(chain)
            if summary is None:
                summary = self._chains[chain] = ChainSummary(chain)
            if summary.failure is None and max(pins) > summary.length:
                summary.failure = Failure(
                    chain,
                    summary.length,
                    None,
                    f"chain has {summary.length} records but a signed checkpoint covers "
                    f"{max(pins)}: records were removed from its tail",
                )
        chains = sorted(self._chains.values(), key=lambda c: c.chain)
        failures = [c.failure for c in chains if c.failure]
        return VerificationReport(chains, failures, list(self._flagged))

    def _check_pin(self, cur: ChainSummary) -> Failure | None:
        pin = self._pins.get(cur.chain, {}).get(cur.length)
        if pin is None:
            return None
        if cur.tree.root() != pin.root or cur.head_hash != pin.head_hash:
            cur.failure = Failure(
                cur.chain,
                cur.length - 1 if cur.length else None,
                None,
                f"the first {cur.length} records do not match the signed checkpoint of that "
                "size (Merkle root or head differs): the chain was rewritten",
            )
            return cur.failure
        return None

    def _fail(self, cur: ChainSummary, seq: int, id_: str, reason: str) -> Failure:
        cur.failure = Failure(cur.chain, seq, id_, reason)
        return cur.failure


def _check_order(cur: ChainSummary, seq: int, prev_hash: str) -> str | None:
    """Checks 1 and 2: what a row cannot tell about itself, only its chain can."""
    if seq != cur.length:
        if seq > cur.length:
            return f"seq {cur.length} is missing: the chain jumps to {seq} (deleted row)"
        return f"seq {seq} repeats or goes back (expected {cur.length})"
    if prev_hash != cur.head_hash:
        return (
            f"prev_hash {prev_hash[:16]}... does not link to the previous record's hash "
            f"{cur.head_hash[:16] or '(none)'}... (rows inserted, swapped or re-linked)"
        )
    return None


def link_failure(row: AuditRow, verifiers: Mapping[str, Verifier]) -> str | None:
    """Checks 3-5 of one row, which depend on nothing but the row and the keys.

    Replay runs them in a pool of processes (:mod:`replay.verify_pool`) and
    feeds the verdicts through :meth:`ChainVerifier.feed_checked`.
    """
    if not _HEX64.match(row.hash):
        return "hash is not 64 lowercase hex digits"
    try:
        digest = link_digest(row.payload, row.prev_hash)
    except (CanonicalizationError, KernelError) as exc:
        return f"payload cannot be canonicalized: {exc}"
    if digest.hex() != row.hash:
        return "hash does not match SHA-256(JCS(payload) || prev_hash): payload or hash edited"
    verifier = verifiers.get(row.signer_id)
    if verifier is None:
        return f"signer {row.signer_id!r} is not in signers.json"
    try:
        signature = unb64(row.signature)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return "signature is not base64"
    if not verifier.verify(digest, signature):
        return f"signature does not verify under {row.signer_id!r}'s key"
    return _check_copies(row)


def _check_copies(row: AuditRow) -> str | None:
    p = row.payload
    if not isinstance(p, dict):
        return "payload is not a JSON object"
    if p.get("eventId") != row.id:
        return "column id disagrees with payload.eventId"
    if p.get("eventType") != row.event_type:
        return "column event_type disagrees with payload.eventType"
    ts = p.get("ts")
    try:
        if not isinstance(ts, str) or parse_ts(ts) != row.ts_ms:
            return "column ts disagrees with payload.ts"
    except ValidationError:
        return "payload.ts is not a timestamp"
    if p.get("metadata", {}) != row.metadata:
        return "column metadata disagrees with payload.metadata"
    return None
