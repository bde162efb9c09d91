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
"""

from __future__ import annotations

import hashlib
import uuid
import zlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from schemas.errors import KernelError, ValidationError
from schemas.events import Event
from streams.chain.canonical import canonicalize
from streams.chain.links import ChainHead, ChainStep, chain_id
from streams.chain.signing import Signer, b64
from streams.processor import InputRecord, LogReader, OutputRecord, StepResult

__all__ = ["ChainSigner", "chain_partition", "record_id"]

_NAMESPACE = uuid.UUID("5b1c7e56-58a4-4c6c-9a51-6f2f3c0c1d2e")
_NAMESPACE_BYTES = _NAMESPACE.bytes
_NUL_ESCAPED = b"\\u0000"  # how JCS writes U+0000 inside a string
_CHUNK = 256  # digests per signing task: ~5 ms of work, amortizing the handoff

Heads = Mapping[str, ChainHead]


def chain_partition(chain: str, partitions: int) -> int:
    return zlib.crc32(chain.encode()) % partitions


def record_id(chain: str, seq: int) -> str:
    """A stable id for link ``seq`` of ``chain``: replay yields the same event.

    ``uuid.uuid5(namespace, f"{chain}#{seq}")``, computed without building
    ``UUID`` objects (once per link, it showed in the signer's profile).
    """
    name = _NAMESPACE_BYTES + f"{chain}#{seq}".encode()
    raw = bytearray(hashlib.sha1(name, usedforsecurity=False).digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50  # version 5
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass
class ChainSigner:
    """The signer processor (:class:`~streams.processor.BatchProcessor`).

    A batch is linked in order in the calling thread (canonical JSON, digest,
    head: each hash needs only the previous hash) and its digests are signed in
    chunks by ``signing_threads`` helper threads as they become ready, the
    calling thread taking back the chunks no helper has started. Ed25519 in
    libsodium releases the GIL, so signing runs on the second core; ``step``
    is ``step_batch`` of one record, so both paths are the same code.
    """

    signer: Signer
    input_topics: Sequence[str]
    chain_topic: str
    chain_partitions: int
    name: str = "chain-signer"
    signing_threads: int = 1
    _pool: ThreadPoolExecutor | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._step = ChainStep(self.signer)
        if self.signing_threads > 0:
            self._pool = ThreadPoolExecutor(self.signing_threads, thread_name_prefix="chain-sign")

    def recover(self, assigned: Sequence[tuple[str, int]], reader: LogReader) -> Heads:
        wanted: dict[int, set[str]] = {}
        for topic, partition in assigned:
            chain = chain_id(topic, partition)
            wanted.setdefault(chain_partition(chain, self.chain_partitions), set()).add(chain)
        heads: dict[str, ChainHead] = {}
        for part, chains in wanted.items():
            heads.update(_find_heads(reader, self.chain_topic, part, chains))
        return heads

    def step(self, state: Heads, record: InputRecord) -> tuple[Heads, list[OutputRecord]]:
        new_state, (result,) = self.step_batch(state, [record])
        if isinstance(result, KernelError):
            raise result
        return new_state, list(result)

    def step_batch(
        self, state: Heads, records: Sequence[InputRecord]
    ) -> tuple[Heads, list[StepResult]]:
        heads = dict(state)
        results: list[StepResult] = []
        links: list[tuple[int, InputRecord, dict[str, Any]]] = []
        chunks: list[list[bytes]] = [[]]
        for record in records:
            try:
                chain, head, body, digest = self._link(heads.get(_chain_of(record)), record)
            except KernelError as exc:
                results.append(exc)  # refused: dead-lettered, the chain does not move
                continue
            heads[chain] = head
            links.append((len(results), record, body))
            results.append([])
            chunks[-1].append(digest)
            if len(chunks[-1]) == _CHUNK:
                chunks.append([])
        signatures = self._sign_chunks(chunks)
        for (index, record, body), signature in zip(links, signatures, strict=True):
            body["signature"] = b64(signature)
            results[index] = [self._output(record, body)]
        return heads, results

    def _link(
        self, head: ChainHead | None, record: InputRecord
    ) -> tuple[str, ChainHead, dict[str, Any], bytes]:
        payload = record.event.to_json()
        canonical = canonicalize(payload)
        # JCS writes every U+0000 as the escape \u0000, so its absence from the
        # canonical bytes proves there is none; its presence needs the exact walk
        # (the text "\\u0000" is an escaped backslash, not a NUL).
        if _NUL_ESCAPED in canonical and _has_nul(payload):
            # A foreign producer can put on the log what `kernel publish` rejects; a NUL
            # cannot be stored by the projection, so it is dead-lettered, never chained.
            raise ValidationError("NUL (U+0000) in the event: it cannot be stored, so not chained")
        new_head, body, digest = self._step.unsigned(head, payload, record.position, canonical)
        return new_head.chain, new_head, body, digest

    def _sign_chunks(self, chunks: list[list[bytes]]) -> list[bytes]:
        """Signatures of every digest, in order; full chunks go to the helper threads.

        A signer failure (a KMS/HSM backend down) is not the record's fault:
        it propagates and fails the batch, which the runner then retries from
        its committed offsets instead of dead-lettering events.
        """
        sign = self.signer.sign
        if self._pool is None or len(chunks) == 1:
            return [sign(d) for chunk in chunks for d in chunk]
        futures = [self._pool.submit(_sign_all, sign, chunk) for chunk in chunks[:-1]]
        done: list[list[bytes] | None] = [None] * len(futures)
        done.append([sign(d) for d in chunks[-1]])
        # Take back, from the end, the chunks no helper has started, while the
        # helpers work from the front.
        for i in range(len(futures) - 1, -1, -1):
            if futures[i].cancel():
                done[i] = [sign(d) for d in chunks[i]]
        out: list[bytes] = []
        for i, chunk_sigs in enumerate(done):
            out.extend(chunk_sigs if chunk_sigs is not None else futures[i].result())
        return out

    def _output(self, record: InputRecord, body: dict[str, Any]) -> OutputRecord:
        chain = body["chain"]
        link = Event(
            event_id=record_id(chain, body["seq"]),
            event_type="auditRecord",
            ts_ms=record.event.ts_ms,
            actor=self.signer.signer_id,
            subject=chain,
            body=body,
        )
        return OutputRecord(
            self.chain_topic,
            chain.encode(),
            link,
            partition=chain_partition(chain, self.chain_partitions),
        )


def _chain_of(record: InputRecord) -> str:
    return chain_id(record.topic, record.partition)


def _sign_all(sign: Callable[[bytes], bytes], digests: list[bytes]) -> list[bytes]:
    return [sign(d) for d in digests]


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
) -> dict[str, ChainHead]:
    """The last link of each chain in ``chains`` stored in ``topic``/``partition``."""
    end = reader.end_offset(topic, partition)
    found: dict[str, ChainHead] = {}
    window, stop = 256, end
    while stop > 0 and len(found) < len(chains):
        start = max(0, stop - window)
        latest: dict[str, ChainHead] = {}  # within a window, later records overwrite earlier
        for rec in reader.read(topic, partition, start, stop):
            body = rec.event.body
            if body["chain"] in chains and body["chain"] not in found:
                latest[body["chain"]] = ChainHead.of_record(body)
        found.update(latest)
        stop = start
        window *= 4
    return found
