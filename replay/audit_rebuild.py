"""Read the chain and checkpoint topics into a shadow schema, checking every link.

:class:`ChainChecks` keeps one :class:`~replay.verify.ChainVerifier` per chain
(chains interleave within a chain-topic partition) and the checkpoint pins.
:class:`ShadowRebuild` reads each partition by offset up to the captured ends,
checkpoints first (they pin the chains), and writes the records into the
shadow in batches, each batch with the replay's positions in one transaction.

Chain partitions are pipelined (decision 0005): raw record batches go to a
:class:`~replay.verify_pool.VerifyPool`, which decodes them and runs each
link's own checks (hash, signature, query copies) and COPY encoding in worker
processes; this process takes the results back **in submission order**, feeds
each link to its chain's verifier (seq continuity, linkage, pins: what needs
the previous link) and COPYs the batch -- while the pool already works on the
next ones. A chain lives in one partition, in order, so reading partition
after partition neither reorders nor duplicates a chain's links, whatever the
interleaving of chains inside a partition. The first failure stops the
rebuild; the failing batch is not written.

Records the pool does not take as plain links (another event type, an
undecodable or malformed record) come back as offsets and go the in-process
way: decoded by the log reader (which skips what it cannot decode), checked
and written by the projector's own :meth:`AuditProjection.write`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator, Mapping, Sequence
from concurrent.futures import Future
from typing import Any

import psycopg

from projections.audit import AuditProjection
from projections.projector import read_checkpoints
from replay.raw_log import RawLogReader
from replay.verify import (
    AuditRow,
    ChainSummary,
    ChainVerifier,
    CheckedLink,
    Failure,
    VerificationReport,
)
from replay.verify_pool import COPY_COLUMNS, CheckedBatch, VerifyPool, audit_row
from streams.chain.note import ChainCheckpoint, NoteError
from streams.chain.signing import Verifier
from streams.kafka.log_reader import KafkaLogReader
from streams.processor import InputRecord

__all__ = ["ChainChecks", "ShadowRebuild"]

Conn = psycopg.Connection[tuple[Any, ...]]
Position = tuple[str, int]


class _ResumableVerifier(ChainVerifier):
    """A chain verifier that can start mid-chain (``--from-timestamp``)."""

    def resume(self, chain: str, length: int, head_hash: str) -> None:
        summary = ChainSummary(chain, length=length, head_hash=head_hash)
        self._chains[chain] = summary
        self._current = summary


class ChainChecks:
    """One verifier per chain: chains interleave within a chain-topic partition."""

    def __init__(self, verifiers: Mapping[str, Verifier], resume: bool) -> None:
        self._keys = dict(verifiers)
        self._resume = resume
        self._pins: dict[str, list[ChainCheckpoint]] = {}
        self._chains: dict[str, _ResumableVerifier] = {}
        self.failures: list[Failure] = []

    def pin(self, cp: ChainCheckpoint) -> None:
        if not self._resume:
            self._pins.setdefault(cp.chain, []).append(cp)

    def fail(self, failure: Failure) -> None:
        self.failures.append(failure)

    def link(self, row: AuditRow) -> Failure | None:
        return self._record(self._verifier(row.chain, row.seq, row.prev_hash).feed(row))

    def link_checked(self, link: CheckedLink) -> Failure | None:
        return self._record(self._verifier(link[0], link[1], link[3]).feed_checked(link))

    def _record(self, failure: Failure | None) -> Failure | None:
        if failure is not None:
            self.failures.append(failure)
        return failure

    def _verifier(self, chain: str, seq: int, prev_hash: str) -> _ResumableVerifier:
        v = self._chains.get(chain)
        if v is None:
            v = self._chains[chain] = _ResumableVerifier(self._keys, self._pins.get(chain, ()))
            if self._resume:
                v.resume(chain, seq, prev_hash)
        return v

    def finish(self) -> VerificationReport:
        chains: list[ChainSummary] = []
        failures = list(self.failures)
        flagged: list[Failure] = []
        for chain in self._pins.keys() - self._chains.keys():  # pinned chains never seen
            self._chains[chain] = _ResumableVerifier(self._keys, self._pins[chain])
        for v in self._chains.values():
            report = v.finish()
            chains += report.chains
            failures += [f for f in report.failures if f not in failures]
            flagged += report.flagged
        flagged.sort(key=lambda f: (f.chain, f.seq or 0))
        return VerificationReport(sorted(chains, key=lambda c: c.chain), failures, flagged)


class ShadowRebuild:
    """One run's reading, checking and writing; ``writer``'s search_path is the shadow."""

    def __init__(
        self,
        *,
        writer: Conn,
        reader: KafkaLogReader,
        log: RawLogReader,
        pool: VerifyPool,
        projection: AuditProjection,
        checks: ChainChecks,
        verifiers: Mapping[str, Verifier],
        positions: dict[Position, int],
        batch_size: int,
    ) -> None:
        self.writer = writer
        self.reader = reader
        self.log = log
        self.pool = pool
        self.projection = projection
        self.checks = checks
        self.verifiers = dict(verifiers)
        self.positions = positions
        self.batch_size = max(batch_size, 1)
        self.records = 0
        self.checkpoints = 0

    def extend(self, until: Mapping[Position, int]) -> None:
        """Read every partition from ``positions`` to ``until`` into the shadow."""
        todo = sorted(tp for tp in until if until[tp] > self.positions[tp])
        pins = [tp for tp in todo if tp[0] == self.projection.checkpoint_topic]
        for tp in pins:  # checkpoints first: they pin the chains
            if not self._extend_decoded(tp, until[tp]):
                return
        self._extend_links([tp for tp in todo if tp not in pins], until)

    def catch_up(self, live: Conn) -> None:
        """If live's projector went past the captured ends, extend the shadow to it."""
        positions = self.positions
        stored = read_checkpoints(live, self.projection.name)
        ahead = {
            tp: max(off, positions.get(tp, 0))
            for tp, off in stored.items()
            if tp in positions and off > positions[tp]
        }
        if ahead:
            self.extend({**positions, **ahead})

    # -- checkpoints (and anything else), in this process ---------------------
    def _extend_decoded(self, tp: Position, end: int) -> bool:
        batch: list[InputRecord] = []
        for record in self.reader.iter(*tp, self.positions[tp], end=end):
            if not self._check(record):
                return False
            batch.append(record)
            self.positions[tp] = record.offset + 1
            if len(batch) >= self.batch_size:
                self._write(batch)
                batch = []
        self.positions[tp] = end
        self._write(batch)
        return True

    def _check(self, record: InputRecord) -> bool:
        event = record.event
        if event.event_type == "auditRecord":
            return self.checks.link(audit_row(event.body)) is None
        if event.event_type == "chainCheckpoint":
            b = event.body
            try:
                cp, _ = ChainCheckpoint.open(b["note"], self.verifiers)
            except NoteError as exc:
                self.checks.fail(Failure(b["chain"], b["size"], None, f"checkpoint note: {exc}"))
                return False
            if (cp.chain, cp.size, cp.head_hash) != (b["chain"], b["size"], b["headHash"]):
                self.checks.fail(
                    Failure(b["chain"], b["size"], None, "checkpoint fields disagree with its note")
                )
                return False
            self.checks.pin(cp)
        return True

    # -- chain links, pipelined through the pool -------------------------------
    def _extend_links(self, partitions: Sequence[Position], until: Mapping[Position, int]) -> None:
        pending: deque[tuple[Future[CheckedBatch], Position, int]] = deque()
        depth = self.pool.workers + 1  # every worker busy while this process COPYs
        batches = self._batches(partitions, until)
        try:
            for tp, offsets, values, after in batches:
                pending.append((self.pool.submit(offsets, values), tp, after))
                while len(pending) > depth or (pending and pending[0][0].done()):
                    if not self._apply(*pending.popleft()):
                        return
            while pending:
                if not self._apply(*pending.popleft()):
                    return
        finally:
            batches.close()  # a failure stops mid-partition: release its assignment now
            for future, _, _ in pending:
                future.cancel()

    def _batches(
        self, partitions: Sequence[Position], until: Mapping[Position, int]
    ) -> Generator[tuple[Position, list[int], list[bytes], int], None, None]:
        """(partition, offsets, values, position after) of ``batch_size`` records;
        a partition's last batch (possibly empty) ends at its end."""
        size = self.batch_size
        for tp in partitions:
            end = until[tp]
            offsets: list[int] = []
            values: list[bytes] = []
            for chunk_offsets, chunk_values in self.log.chunks(*tp, self.positions[tp], end):
                offsets += chunk_offsets
                values += chunk_values
                while len(offsets) >= size:
                    yield tp, offsets[:size], values[:size], offsets[size - 1] + 1
                    offsets, values = offsets[size:], values[size:]
            yield tp, offsets, values, end

    def _apply(self, future: Future[CheckedBatch], tp: Position, after: int) -> bool:
        """Feed one checked batch to its chains in log order; write it if all hold."""
        entries, copy_text = future.result()
        others = self._decoded(tp, [e for e in entries if isinstance(e, int)])
        records: list[InputRecord] = []
        links = 0
        for entry in entries:
            if isinstance(entry, int):  # not a plain link: the in-process way
                record = others.get(entry)
                if record is None:
                    continue  # undecodable: the log reader skips it too
                if not self._check(record):
                    return False
                records.append(record)
            elif self.checks.link_checked(entry) is not None:
                return False
            else:
                links += 1
        self.positions[tp] = after
        self._write(records, copy_text, links)
        return True

    def _decoded(self, tp: Position, offsets: list[int]) -> dict[int, InputRecord]:
        if not offsets:
            return {}
        wanted = set(offsets)
        records = self.reader.iter(*tp, min(offsets), end=max(offsets) + 1)
        return {r.offset: r for r in records if r.offset in wanted}

    def _write(self, batch: Sequence[InputRecord], copy_text: bytes = b"", links: int = 0) -> None:
        """One transaction: the links' COPY text, other records, the positions."""
        with self.writer.transaction(), self.writer.cursor() as cur:
            if copy_text:
                with cur.copy(f"COPY audit_events ({COPY_COLUMNS}) FROM STDIN") as copy:
                    copy.write(copy_text)
            if batch:
                self.projection.write(cur, batch)
            cur.executemany(
                "INSERT INTO projection_checkpoints (projection, topic, partition, next_offset)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (projection, topic, partition)"
                " DO UPDATE SET next_offset = EXCLUDED.next_offset",
                [(self.projection.name, t, p, o) for (t, p), o in self.positions.items()],
            )
        self.records += links
        for r in batch:
            if r.event.event_type == "auditRecord":
                self.records += 1
            elif r.event.event_type == "chainCheckpoint":
                self.checkpoints += 1
