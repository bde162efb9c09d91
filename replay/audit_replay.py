"""``kernel replay audit``: rebuild the audit projection from the log, verified.

The replay captures the end offsets of the checkpoint topic, then of the chain
topic (in that order: a checkpoint committed before its capture only covers
links committed before theirs), creates a shadow schema (:mod:`replay.shadow`)
and reads each partition by offset up to those ends, from the beginning or
from the first record at or after ``--from-timestamp``. Records go through
the live projector's own :meth:`AuditProjection.write` (COPY, in batches), so
the shadow is what the projector would have written; each link is checked on
the way by a :class:`ChainVerifier` of its chain (linkage, hash, signature,
query copies), and each checkpoint note's signature is verified and pins its
chain (a log whose chain is shorter than a signed checkpoint fails).

A chain lives in one chain-topic partition, in order, so reading partition
after partition neither reorders nor duplicates a chain's links, whatever the
interleaving of chains inside a partition.

Then the shadow is compared with live (per chain: length, head, a digest of
every column of every row; the first difference is named), and, unless
``verify_only``, swapped in atomically. Never after a verification failure:
the shadow is dropped and live is left untouched. If live's projector had gone
past the captured ends, the shadow first catches up to live's checkpoints, so
the comparison covers the same records and the swap loses none.

``--from-timestamp`` rebuilds only the links at or after that time: each
rebuilt chain starts mid-way (its first rebuilt link's ``prevHash`` is taken
as the anchor), checkpoint pins are not used, and the comparison covers, per
chain present in the rebuilt range, the rows with ``seq`` at or after its
first rebuilt ``seq`` (and checkpoints with ``size`` at or after its first
rebuilt size); earlier rows and chains with no rebuilt link are not compared.
A swap then first copies those earlier live rows into the shadow.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from projections.audit import AuditProjection
from projections.projector import read_checkpoints
from replay.note import ChainCheckpoint, NoteError
from replay.shadow import (
    ChainDigest,
    RowDifference,
    TableSpec,
    chain_digests,
    create_shadow,
    drop_shadow,
    first_difference,
    swap,
)
from replay.verify import AuditRow, ChainSummary, ChainVerifier, Failure, VerificationReport
from schemas.errors import KernelError, StoreUnavailableError
from schemas.events import parse_ts
from streams.chain.signing import Verifier
from streams.kafka.log_reader import KafkaLogReader
from streams.processor import InputRecord

__all__ = ["AUDIT_CHECKPOINTS", "AUDIT_EVENTS", "AuditReplay", "ReplayReport"]

Conn = psycopg.Connection[tuple[Any, ...]]

AUDIT_EVENTS = TableSpec("audit_events", ("chain", "seq"), None, "hash")
AUDIT_CHECKPOINTS = TableSpec(
    "audit_checkpoints",
    ("chain", "size"),
    ("chain", "size", "root_hash", "head_hash", "signer_id", "note"),  # not created_at
    "head_hash",
)
_TABLES = (AUDIT_EVENTS, AUDIT_CHECKPOINTS)


@dataclass
class ChainComparison:
    chain: str
    live: ChainDigest | None
    replay: ChainDigest | None

    @property
    def identical(self) -> bool:
        return self.live is not None and self.replay is not None and self.live == self.replay

    def to_json(self) -> dict[str, Any]:
        return {
            "chain": self.chain,
            "identical": self.identical,
            "live": None if self.live is None else self.live.to_json(),
            "replay": None if self.replay is None else self.replay.to_json(),
        }


@dataclass
class ReplayReport:
    shadow: str
    compared: str
    records: int = 0
    checkpoints: int = 0
    verification: VerificationReport | None = None
    chains: list[ChainComparison] = field(default_factory=list)
    difference: RowDifference | None = None
    swapped: bool = False
    backup: str | None = None
    seconds: float = 0.0

    @property
    def verified(self) -> bool:
        return self.verification is not None and self.verification.ok

    @property
    def identical(self) -> bool:
        return self.verified and self.difference is None and all(c.identical for c in self.chains)

    def to_json(self) -> dict[str, Any]:
        v = self.verification
        return {
            "projection": "audit",
            "verified": self.verified,
            "identical": self.identical,
            "swapped": self.swapped,
            "backupSchema": self.backup,
            "compared": self.compared,
            "records": self.records,
            "checkpoints": self.checkpoints,
            "seconds": round(self.seconds, 3),
            "failures": [] if v is None else [f.to_json() for f in v.failures],
            "firstDifference": None if self.difference is None else self.difference.to_json(),
            "chains": [c.to_json() for c in self.chains],
        }


class _ResumableVerifier(ChainVerifier):
    """A chain verifier that can start mid-chain (``--from-timestamp``)."""

    def resume(self, chain: str, length: int, head_hash: str) -> None:
        summary = ChainSummary(chain, length=length, head_hash=head_hash)
        self._chains[chain] = summary
        self._current = summary


class _Checks:
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
        v = self._chains.get(row.chain)
        if v is None:
            v = self._chains[row.chain] = _ResumableVerifier(
                self._keys, self._pins.get(row.chain, ())
            )
            if self._resume:
                v.resume(row.chain, row.seq, row.prev_hash)
        failure = v.feed(row)
        if failure is not None:
            self.failures.append(failure)
        return failure

    def finish(self) -> VerificationReport:
        chains: list[ChainSummary] = []
        failures = list(self.failures)
        for chain in self._pins.keys() - self._chains.keys():  # pinned chains never seen
            self._chains[chain] = _ResumableVerifier(self._keys, self._pins[chain])
        for v in self._chains.values():
            report = v.finish()
            chains += report.chains
            failures += [f for f in report.failures if f not in failures]
        return VerificationReport(sorted(chains, key=lambda c: c.chain), failures)


def _audit_row(record: InputRecord) -> AuditRow:
    b = record.event.body
    p = b["payload"]
    return AuditRow(
        str(p.get("eventId")),
        b["chain"],
        b["seq"],
        str(p.get("eventType")),
        p,
        b["prevHash"],
        b["hash"],
        b["signature"],
        b["signerId"],
        parse_ts(p["ts"]) if isinstance(p.get("ts"), str) else -1,
        p.get("metadata", {}),
    )


class AuditReplay:
    def __init__(
        self,
        *,
        reader: KafkaLogReader,
        database_url: str,
        projection: AuditProjection,
        verifiers: Mapping[str, Verifier],
        bootstrap: str = "",
        batch_size: int = 5000,
    ) -> None:
        self.reader = reader
        self.database_url = database_url
        self.projection = projection
        self.verifiers = dict(verifiers)
        self.bootstrap = bootstrap
        self.batch_size = batch_size

    def _connect(self) -> Conn:
        try:
            return psycopg.connect(self.database_url, connect_timeout=10)
        except psycopg.OperationalError as exc:
            raise StoreUnavailableError(
                f"Postgres at {self.database_url} did not answer: {exc}"
            ) from exc

    # -- the whole run ---------------------------------------------------
    def run(self, *, from_ts_ms: int | None = None, verify_only: bool = False) -> ReplayReport:
        started = time.monotonic()
        topics = [self.projection.checkpoint_topic, self.projection.chain_topic]
        ends = {
            (t, p): self.reader.end_offset(t, p) for t in topics for p in self.reader.partitions(t)
        }
        starts = self._starts(ends, from_ts_ms)
        shadow = create_shadow(self.database_url)
        report = ReplayReport(
            shadow,
            "every row of audit_events and audit_checkpoints"
            if from_ts_ms is None
            else "per rebuilt chain, rows from its first link at or after --from-timestamp",
        )
        checks = _Checks(self.verifiers, resume=from_ts_ms is not None)
        positions = dict(starts)
        keep = False
        try:
            with self._connect() as writer:
                writer.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(shadow)))
                writer.commit()
                self._extend(writer, checks, positions, ends, report)
                if checks.failures:
                    report.verification = checks.finish()
                    return report
                if verify_only:
                    with self._connect() as live:
                        live.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
                        self._catch_up(live, writer, checks, positions, report)
                        report.verification = checks.finish()
                        if report.verified:
                            self._compare(live, writer, shadow, report, from_ts_ms is not None)
                    return report
                with self._connect() as live:
                    self._lock_live(live)
                    self._catch_up(live, writer, checks, positions, report)
                    report.verification = checks.finish()
                    if not report.verified:
                        live.rollback()
                        return report
                    self._compare(live, live, shadow, report, from_ts_ms is not None)
                    if from_ts_ms is not None:
                        _copy_earlier_rows(live, shadow)
                    report.backup = swap(
                        live,
                        shadow,
                        [t.name for t in _TABLES],
                        projection=self.projection.name,
                        positions=positions,
                    )
                    live.commit()
                    report.swapped = keep = True
        finally:
            if not keep:
                with self._connect() as conn:
                    drop_shadow(conn, shadow)
            report.seconds = time.monotonic() - started
        return report

    def _starts(
        self, ends: Mapping[tuple[str, int], int], from_ts_ms: int | None
    ) -> dict[tuple[str, int], int]:
        if from_ts_ms is None:
            return dict.fromkeys(ends, 0)
        from replay.log_offsets import offsets_for_time  # noqa: PLC0415

        out: dict[tuple[str, int], int] = {}
        for topic in {t for t, _ in ends}:
            parts = {p: e for (t, p), e in ends.items() if t == topic}
            found = offsets_for_time(self.bootstrap, topic, list(parts), from_ts_ms, ends=parts)
            out.update({(topic, p): min(o, parts[p]) for p, o in found.items()})
        return out

    # -- rebuilding ------------------------------------------------------
    def _extend(
        self,
        writer: Conn,
        checks: _Checks,
        positions: dict[tuple[str, int], int],
        until: Mapping[tuple[str, int], int],
        report: ReplayReport,
    ) -> None:
        """Read every partition from ``positions`` to ``until`` into the shadow."""
        order = sorted(until, key=lambda tp: (tp[0] != self.projection.checkpoint_topic, tp))
        for topic, partition in order:  # checkpoints first: they pin the chains
            start, end = positions[(topic, partition)], until[(topic, partition)]
            if end <= start:
                continue
            batch: list[InputRecord] = []
            for record in self.reader.iter(topic, partition, start, end=end):
                if not self._check(record, checks):
                    return
                batch.append(record)
                positions[(topic, partition)] = record.offset + 1
                if len(batch) >= self.batch_size:
                    self._write(writer, batch, positions, report)
                    batch = []
            positions[(topic, partition)] = end
            self._write(writer, batch, positions, report)

    def _check(self, record: InputRecord, checks: _Checks) -> bool:
        event = record.event
        if event.event_type == "auditRecord":
            return checks.link(_audit_row(record)) is None
        if event.event_type == "chainCheckpoint":
            b = event.body
            try:
                cp, _ = ChainCheckpoint.open(b["note"], self.verifiers)
            except NoteError as exc:
                checks.fail(Failure(b["chain"], b["size"], None, f"checkpoint note: {exc}"))
                return False
            if (cp.chain, cp.size, cp.head_hash) != (b["chain"], b["size"], b["headHash"]):
                checks.fail(
                    Failure(b["chain"], b["size"], None, "checkpoint fields disagree with its note")
                )
                return False
            checks.pin(cp)
        return True

    def _write(
        self,
        writer: Conn,
        batch: Sequence[InputRecord],
        positions: Mapping[tuple[str, int], int],
        report: ReplayReport,
    ) -> None:
        with writer.transaction(), writer.cursor() as cur:
            if batch:
                self.projection.write(cur, batch)
            cur.executemany(
                "INSERT INTO projection_checkpoints (projection, topic, partition, next_offset)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (projection, topic, partition)"
                " DO UPDATE SET next_offset = EXCLUDED.next_offset",
                [(self.projection.name, t, p, o) for (t, p), o in positions.items()],
            )
        for r in batch:
            if r.event.event_type == "auditRecord":
                report.records += 1
            elif r.event.event_type == "chainCheckpoint":
                report.checkpoints += 1

    def _catch_up(
        self,
        live: Conn,
        writer: Conn,
        checks: _Checks,
        positions: dict[tuple[str, int], int],
        report: ReplayReport,
    ) -> None:
        """If live's projector went past the captured ends, extend the shadow to it."""
        stored = read_checkpoints(live, self.projection.name)
        ahead = {
            tp: max(off, positions.get(tp, 0))
            for tp, off in stored.items()
            if tp in positions and off > positions[tp]
        }
        if ahead:
            self._extend(writer, checks, positions, {**positions, **ahead}, report)

    def _lock_live(self, live: Conn) -> None:
        for spec in _TABLES:
            live.execute(
                sql.SQL("LOCK TABLE public.{} IN ACCESS EXCLUSIVE MODE").format(
                    sql.Identifier(spec.name)
                )
            )

    # -- comparing ---------------------------------------------------------
    def _compare(
        self, live: Conn, shadow_conn: Conn, shadow: str, report: ReplayReport, partial: bool
    ) -> None:
        for spec in _TABLES:
            since = _starts_in_shadow(shadow_conn, shadow, spec) if partial else None
            ours = chain_digests(shadow_conn, shadow, spec, since)
            theirs = chain_digests(live, "public", spec, since)
            if spec is AUDIT_EVENTS:
                report.chains = [
                    ChainComparison(c, theirs.get(c), ours.get(c))
                    for c in sorted(ours.keys() | theirs.keys())
                ]
            if report.difference is None:
                for chain in sorted(ours.keys() | theirs.keys()):
                    if ours.get(chain) != theirs.get(chain):
                        start = (since or {}).get(chain, 0)
                        report.difference = first_difference(
                            (live, "public"), (shadow_conn, shadow), spec, chain, start
                        )
                        if report.difference is not None:
                            break


def _starts_in_shadow(conn: Conn, shadow: str, spec: TableSpec) -> dict[str, int]:
    group, order = spec.key
    rows = conn.execute(
        sql.SQL("SELECT {g}, min({o}) FROM {s}.{t} GROUP BY {g}").format(
            g=sql.Identifier(group),
            o=sql.Identifier(order),
            s=sql.Identifier(shadow),
            t=sql.Identifier(spec.name),
        )
    ).fetchall()
    return {str(c): int(m) for c, m in rows}


def _copy_earlier_rows(conn: Conn, shadow: str) -> None:
    """Live rows before the rebuilt range (``--from-timestamp``), into the shadow."""
    for spec in _TABLES:
        group, order = spec.key
        cols = sql.SQL(", ").join(
            sql.Identifier(c) for c in (spec.columns or list(_columns(conn, spec.name)))
        )
        conn.execute(
            sql.SQL(
                "INSERT INTO {s}.{t} ({cols}) SELECT {cols} FROM public.{t} l"
                " WHERE l.{o} < coalesce((SELECT min(x.{o}) FROM {s}.{t} x"
                " WHERE x.{g} = l.{g}), 9223372036854775807)"
            ).format(
                s=sql.Identifier(shadow),
                t=sql.Identifier(spec.name),
                cols=cols,
                g=sql.Identifier(group),
                o=sql.Identifier(order),
            )
        )


def _columns(conn: Conn, table: str) -> Iterable[str]:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = 'public' AND table_name = %s ORDER BY ordinal_position",
        (table,),
    ).fetchall()
    if not rows:
        raise KernelError(f"public.{table} does not exist; run `kernel db migrate`")
    return [str(c) for (c,) in rows]
