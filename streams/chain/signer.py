"""The chain signer: every audited event becomes the next signed link of its chain.

A chain is one input partition (``topic/partition``), so it is a pure function
of that partition: the same input always yields the same links, and replay
reproduces them byte for byte (Ed25519 signatures are deterministic, and the
auditRecord's own id and timestamp derive from the link, not from the clock).

Chain records go to the chain topic keyed by chain id, on a partition chosen
from the chain id (CRC-32 mod the partition count), so all links of a chain
are in one partition, in order. On start (``recover``) the signer finds each
assigned chain's head by scanning that partition backwards in growing windows:
the runner commits input offsets in the same transaction as the links, so the
last committed link is exactly where the chain stands.

What the signer refuses (the runner dead-letters the record, the chain goes
on without it), and why the sentinel refuses the same actions
(``docs/decisions/0010``):

- a **duplicate** eventId within the dedup window of its partition
  (:mod:`streams.dedup`), checked first, by the sentinel alike;
- a **NUL** anywhere in the event, or a value with no JCS form: the codec's
  input contract refuses both on decode, for every worker, so for a decoded
  record these checks cannot fire. They stay as defence: a chain must never
  hold what the projection cannot store.
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from schemas.errors import ValidationError
from schemas.events import Event
from schemas.ids import uuid5_text
from streams.chain.canonical import canonicalize
from streams.chain.errors import SignerError
from streams.chain.links import ChainHead, ChainStep, chain_id
from streams.chain.rotation import is_rotation_link, rotation_link
from streams.chain.signing import Signer
from streams.dedup import DEFAULT_WINDOW, DuplicateCheck
from streams.processor import InputRecord, LogReader, OutputRecord

__all__ = ["ChainSigner", "SignerState", "chain_partition", "record_id"]

_NAMESPACE = uuid.UUID("5b1c7e56-58a4-4c6c-9a51-6f2f3c0c1d2e")
_NUL_ESCAPED = b"\\u0000"  # how JCS writes U+0000 inside a string

Heads = Mapping[str, ChainHead]


@dataclass(frozen=True, slots=True)
class SignerState:
    """Each assigned chain's head, and the recent eventIds of each input partition."""

    heads: Heads
    seen: DuplicateCheck


def chain_partition(chain: str, partitions: int) -> int:
    return zlib.crc32(chain.encode()) % partitions


def record_id(chain: str, seq: int) -> str:
    """A stable id for link ``seq`` of ``chain``: replay yields the same event."""
    return uuid5_text(_NAMESPACE, f"{chain}#{seq}")


@dataclass
class ChainSigner:
    signer: Signer
    input_topics: Sequence[str]
    chain_topic: str
    chain_partitions: int
    name: str = "chain-signer"
    dedup_window: int = DEFAULT_WINDOW

    def __post_init__(self) -> None:
        self._step = ChainStep(self.signer)

    def recover(self, assigned: Sequence[tuple[str, int]], reader: LogReader) -> SignerState:
        wanted: dict[int, set[str]] = {}
        for topic, partition in assigned:
            chain = chain_id(topic, partition)
            wanted.setdefault(chain_partition(chain, self.chain_partitions), set()).add(chain)
        heads: dict[str, ChainHead] = {}
        for part, chains in wanted.items():
            found = _find_heads(reader, self.chain_topic, part, chains)
            for chain, (head, rotated_to) in found.items():
                if rotated_to is not None and rotated_to != self.signer.signer_id:
                    # The outgoing key signed its last record there: signing on with
                    # anything but the incoming key would put records outside every window.
                    raise SignerError(
                        f"chain {chain} was rotated to key {rotated_to!r}, but this signer "
                        f"is {self.signer.signer_id!r}: point KERNEL_SIGNING_KEY (or "
                        f"KERNEL_SIGNER_ID with PKCS#11) at {rotated_to!r}"
                    )
                heads[chain] = head
        return SignerState(heads, DuplicateCheck.recover(assigned, reader, self.dedup_window))

    def initial(self) -> SignerState:
        """The state of a signer whose chains are all empty (pure drivers, tests)."""
        return SignerState({}, DuplicateCheck(self.dedup_window))

    def step(
        self, state: SignerState, record: InputRecord
    ) -> tuple[SignerState, list[OutputRecord]]:
        state.seen.check(record)  # first: every record counts in the window (streams.dedup)
        chain = chain_id(record.topic, record.partition)
        payload = record.event.to_json()
        canonical = canonicalize(payload)
        # JCS writes every U+0000 as the escape \u0000, so its absence from the
        # canonical bytes proves there is none; its presence needs the exact walk
        # (the text "\\u0000" is an escaped backslash, not a NUL).
        if _NUL_ESCAPED in canonical and _has_nul(payload):
            # A foreign producer can put on the log what `kernel publish` rejects; a NUL
            # cannot be stored by the projection, so it is dead-lettered, never chained.
            raise ValidationError("NUL (U+0000) in the event: it cannot be stored, so not chained")
        head, body = self._step(state.heads.get(chain), payload, record.position, canonical)
        heads = dict(state.heads)
        heads[chain] = head
        return SignerState(heads, state.seen), [self._output(head, record.event.ts_ms, body)]

    def rotate(self, state: SignerState, rotation: Event) -> tuple[SignerState, list[OutputRecord]]:
        """The rotation link of every chain with a head, signed by this (outgoing) signer.

        ``rotation`` is the keyRotation event (:func:`~streams.chain.rotation.rotation_body`)
        whose positions name each chain's seq after the link. Pure: the same heads and
        event give the same links; the caller publishes event and links atomically.
        """
        heads = dict(state.heads)
        out = []
        for chain in sorted(heads):
            head, body = rotation_link(heads[chain], rotation, self.signer)
            heads[chain] = head
            out.append(self._output(head, rotation.ts_ms, body))
        return SignerState(heads, state.seen), out

    def _output(self, head: ChainHead, ts_ms: int, body: dict[str, Any]) -> OutputRecord:
        link = Event(
            event_id=record_id(head.chain, head.seq),
            event_type="auditRecord",
            ts_ms=ts_ms,
            actor=self.signer.signer_id,
            subject=head.chain,
            body=body,
        )
        return OutputRecord(
            self.chain_topic,
            head.chain.encode(),
            link,
            partition=chain_partition(head.chain, self.chain_partitions),
        )


def _has_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _find_heads(
    reader: LogReader, topic: str, partition: int, chains: set[str]
) -> dict[str, tuple[ChainHead, str | None]]:
    """The last link of each chain in ``chains`` stored in ``topic``/``partition``,
    and the incoming key's signerId when that link is a key rotation."""
    end = reader.end_offset(topic, partition)
    found: dict[str, tuple[ChainHead, str | None]] = {}
    window, stop = 256, end
    while stop > 0 and len(found) < len(chains):
        start = max(0, stop - window)
        # A link's Kafka key is its chain: only the chains still sought are decoded, so a
        # chain with no recent link (or none at all) costs a read back, not a decode back.
        wanted = frozenset(c.encode() for c in chains if c not in found)
        # within a window, later records overwrite earlier
        latest: dict[str, tuple[ChainHead, str | None]] = {}
        for rec in reader.read_keyed(topic, partition, start, stop, wanted):
            body = rec.event.body
            if body["chain"] in chains and body["chain"] not in found:
                rotated_to = (
                    body["payload"]["body"]["newSignerId"] if is_rotation_link(body) else None
                )
                latest[body["chain"]] = (ChainHead.of_record(body), rotated_to)
        found.update(latest)
        stop = start
        window *= 4
    return found
