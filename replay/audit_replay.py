"""``kernel replay audit``: rebuild the audit projection from the log, verified.

The replay captures the end offsets of the checkpoint topic, then of the chain
topic (in that order: a checkpoint committed before its capture only covers
links committed before theirs), creates a shadow schema (:mod:`replay.shadow`)
and reads each partition by offset up to those ends, from the beginning or
from the first record at or after ``--from-timestamp``
(:mod:`replay.audit_rebuild`). Each link is checked on the way by a
:class:`ChainVerifier` of its chain (linkage, hash, signature, query copies),
the per-link half of it in a pool of ``workers`` processes
(:mod:`replay.verify_pool`, decision 0005), and COPYed into the shadow with
the values the live projector's :meth:`AuditProjection.write` writes, so the
shadow is what the projector would have written. Each checkpoint note's
signature is verified and pins its chain (a log whose chain is shorter than a
signed checkpoint fails).

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

import os
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from projections.audit import AuditProjection
from projections.postgres import Database
from replay.audit_rebuild import ChainChecks, ShadowRebuild
from replay.raw_log import RawLogReader
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
from replay.verify import VerificationReport
from replay.verify_pool import VerifyPool
from schemas.catalog import catalog
from schemas.errors import ConfigError, KernelError
from streams.chain.signing import Verifier
from streams.kafka.clients import KafkaClients
from streams.kafka.log_reader import KafkaLogReader
from streams.kafka.offsets import KafkaOffsets

__all__ = [
    "AUDIT_CHECKPOINTS",
    "AUDIT_EVENTS",
    "MIN_POOLED_LINKS",
    "AuditReplay",
    "ReplayReport",
]

Conn = psycopg.Connection[tuple[Any, ...]]

AUDIT_EVENTS = TableSpec("audit_events", ("chain", "seq"), None, "hash")
AUDIT_CHECKPOINTS = TableSpec(
    "audit_checkpoints",
    ("chain", "size"),
    ("chain", "size", "root_hash", "head_hash", "signer_id", "note"),  # not created_at
    "head_hash",
)
_TABLES = (AUDIT_EVENTS, AUDIT_CHECKPOINTS)
# Below this many links in the log, the default is to check them in process.
MIN_POOLED_LINKS = 20_000


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
    steps: dict[str, float] = field(default_factory=dict)  # seconds of each step
    workers: int = 0  # processes that verified links (0: this one)
    _last: float = field(default_factory=time.monotonic, init=False, repr=False, compare=False)

    def step(self, name: str, since: float | None = None) -> None:
        """Record the time since ``since`` (default: the previous step) as ``name``."""
        now = time.monotonic()
        start = self._last if since is None else since
        self.steps[name] = self.steps.get(name, 0.0) + now - start
        self._last = now

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
            "steps": {name: round(t, 3) for name, t in self.steps.items()},
            "workers": self.workers,
            "failures": [] if v is None else [f.to_json() for f in v.failures],
            "flagged": [] if v is None else [f.to_json() for f in v.flagged],
            "firstDifference": None if self.difference is None else self.difference.to_json(),
            "chains": [c.to_json() for c in self.chains],
        }


class AuditReplay:
    """One verified rebuild of the audit projection (see the module docstring).

    ``reader`` reads checkpoints and odd records, decoded; chain links are read
    raw from ``kafka`` and checked by ``workers`` processes (0 or 1: in
    this process, same results) in batches of ``batch_size`` records, which
    are also the COPY batches. By default ``os.cpu_count()`` workers, or none
    for a log of fewer than ``MIN_POOLED_LINKS`` links, where starting the
    processes (0.3-0.6 s) costs more than they save.
    """

    def __init__(
        self,
        *,
        reader: KafkaLogReader,
        database_url: str,
        projection: AuditProjection,
        verifiers: Mapping[str, Verifier],
        kafka: KafkaClients | str | None = None,
        batch_size: int = 5000,
        workers: int | None = None,
    ) -> None:
        self.reader = reader
        self.database_url = database_url
        self.projection = projection
        self.verifiers = dict(verifiers)
        self.kafka = None if not kafka else KafkaClients.of(kafka)
        self.batch_size = batch_size
        self.workers = workers

    def _connect(self) -> Conn:
        return Database(self.database_url).connect()

    # -- the whole run ---------------------------------------------------
    def run(self, *, from_ts_ms: int | None = None, verify_only: bool = False) -> ReplayReport:
        if self.kafka is None:
            raise ConfigError(
                "AuditReplay needs kafka= (the Kafka bootstrap servers): "
                "it reads the chain topic with its own consumer"
            )
        started = time.monotonic()
        topics = [self.projection.checkpoint_topic, self.projection.chain_topic]
        ends = {
            (t, p): self.reader.end_offset(t, p) for t in topics for p in self.reader.partitions(t)
        }
        workers = self.workers
        if workers is None:
            links = sum(e for (t, _), e in ends.items() if t == self.projection.chain_topic)
            workers = (os.cpu_count() or 1) if links >= MIN_POOLED_LINKS else 0
        # The workers start (a forkserver, imports) while the shadow is migrated.
        with VerifyPool(catalog(), self.verifiers, workers) as pool:
            report = self._run(pool, started, ends, from_ts_ms, verify_only)
        report.workers = workers if workers > 1 else 0
        report.seconds = time.monotonic() - started
        return report

    def _run(
        self,
        pool: VerifyPool,
        started: float,
        ends: Mapping[tuple[str, int], int],
        from_ts_ms: int | None,
        verify_only: bool,
    ) -> ReplayReport:
        starts = self._starts(ends, from_ts_ms)
        shadow = create_shadow(self.database_url)
        report = ReplayReport(
            shadow,
            "every row of audit_events and audit_checkpoints"
            if from_ts_ms is None
            else "per rebuilt chain, rows from its first link at or after --from-timestamp",
        )
        report.step("capture ends, create shadow", since=started)
        checks = ChainChecks(self.verifiers, resume=from_ts_ms is not None)
        positions = dict(starts)
        keep = False
        rebuild: ShadowRebuild | None = None
        try:
            assert self.kafka is not None  # checked by run()
            with RawLogReader(self.kafka) as log, self._connect() as writer:
                writer.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(shadow)))
                # The shadow is dropped, or swapped in by a later synchronous commit
                # (which flushes the WAL before it): its own commits need not wait.
                writer.execute("SET synchronous_commit TO off")
                if verify_only:
                    _bare_shadow(writer, shadow)
                writer.commit()
                rebuild = ShadowRebuild(
                    writer=writer,
                    reader=self.reader,
                    log=log,
                    pool=pool,
                    projection=self.projection,
                    checks=checks,
                    verifiers=self.verifiers,
                    positions=positions,
                    batch_size=self.batch_size,
                )
                rebuild.extend(ends)
                report.step("rebuild (read, verify, COPY)")
                if checks.failures:
                    report.verification = checks.finish()
                    return report
                if verify_only:
                    with self._connect() as live:
                        live.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
                        rebuild.catch_up(live)
                        report.verification = checks.finish()
                        if report.verified:
                            self._compare(live, writer, shadow, report, from_ts_ms is not None)
                    return report
                with self._connect() as live:
                    self._lock_live(live)
                    rebuild.catch_up(live)
                    report.verification = checks.finish()
                    if not report.verified:
                        live.rollback()
                        return report
                    self._compare(live, writer, shadow, report, from_ts_ms is not None)
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
                    report.step("swap")
        finally:
            if rebuild is not None:
                report.records, report.checkpoints = rebuild.records, rebuild.checkpoints
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
        assert self.kafka is not None  # checked by run()
        offsets = KafkaOffsets(self.kafka)
        out: dict[tuple[str, int], int] = {}
        for topic in {t for t, _ in ends}:
            parts = {p: e for (t, p), e in ends.items() if t == topic}
            found = offsets.offsets_for_time(topic, parts, from_ts_ms, ends=parts)
            out.update({(topic, p): min(o, parts[p]) for p, o in found.items()})
        return out

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
        report.step("catch up")
        try:
            self._compare_tables(live, shadow_conn, shadow, report, partial)
        finally:
            shadow_conn.commit()  # its read locks on the shadow would block the swap
        report.step("compare")

    def _compare_tables(
        self, live: Conn, shadow_conn: Conn, shadow: str, report: ReplayReport, partial: bool
    ) -> None:
        for spec in _TABLES:
            since = _starts_in_shadow(shadow_conn, shadow, spec) if partial else None
            # Two connections, two backends: both digests at once, on two cores.
            with ThreadPoolExecutor(1) as other:
                shadow_digests = other.submit(chain_digests, shadow_conn, shadow, spec, since)
                theirs = chain_digests(live, "public", spec, since)
                ours = shadow_digests.result()
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


def _bare_shadow(conn: Conn, shadow: str) -> None:
    """A shadow only to be digested and dropped: no WAL, and no indexes on
    ``audit_events`` (8 of them: most of COPY's cost; the digests sort anyway,
    and the ordered checks already guarantee what its unique key would)."""
    for spec in _TABLES:
        conn.execute(sql.SQL("ALTER TABLE {} SET UNLOGGED").format(sql.Identifier(spec.name)))
    table = sql.Identifier(shadow, AUDIT_EVENTS.name)
    for (name,) in conn.execute(
        "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype IN ('p', 'u')",
        (f'"{shadow}"."{AUDIT_EVENTS.name}"',),
    ).fetchall():
        drop = sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}")
        conn.execute(drop.format(table, sql.Identifier(name)))
    for (name,) in conn.execute(
        "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " WHERE i.indrelid = %s::regclass",
        (f'"{shadow}"."{AUDIT_EVENTS.name}"',),
    ).fetchall():
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(shadow, name)))


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
