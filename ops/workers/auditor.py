"""``kernel run auditor``: verify the audit projection continuously; feed the alerts.

Every ``KERNEL_AUDITOR_INTERVAL_S`` the auditor verifies what was appended to
``audit_events`` and ``audit_checkpoints`` since its last round, with the
checks of :mod:`replay.verify` (the same :class:`~replay.verify.ChainVerifier`
``kernel audit-verify`` uses -- there is no second verifier): per chain it
keeps the verifier's :class:`~replay.verify.ChainSummary` (length, head, Merkle
compact range) and feeds only the rows after it (``ChainVerifier.continue_chain``).

Checkpoints: each new signed note is opened with the signers' keys; one whose
size the chain has not reached yet pins the verifier for when it gets there;
one that arrives after its rows were verified (the projector writes the two
topics in separate batches) is checked by a fresh verifier over the links
(hashes, not payloads) of the chain's first ``size`` rows.

Incremental rounds cannot see an *old* row edited in place (the stored hash
chain still links); every ``KERNEL_AUDITOR_FULL_EVERY``-th round therefore
re-verifies everything from seq 0. A chain that failed stays failed until the
process restarts (and the first round, a full one, finds it again).

Metrics (:mod:`ops.metrics`), set after every round: ``kernel_audit_verifications
{result}`` (+1 ``ok`` or ``failed`` -- failed while any chain is failed),
``kernel_chain_length`` (rows stored), ``kernel_chain_head_timestamp_seconds``
(event time of the head row) and ``kernel_chain_checkpoint_timestamp_seconds``
(when the latest checkpoint was projected), per ``topic, partition`` of the
chain. Postgres being down pauses the auditor (logged, retried next interval).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ops import metrics
from replay.audit_postgres import iter_rows
from replay.verify import ChainSummary, ChainVerifier, Failure
from schemas.errors import KernelError, StoreUnavailableError
from streams.chain.note import ChainCheckpoint
from streams.chain.signing import Verifier

if TYPE_CHECKING:
    from projections.postgres import Database

__all__ = ["Auditor", "AuditorLoop", "RoundResult"]


log = logging.getLogger(__name__)

Conn = Any  # psycopg.Connection; kept loose so this module stays import-light


class _StoppedError(Exception):
    """should_stop() became true in the middle of a round."""


@dataclass
class _Chain:
    summary: ChainSummary
    pending: dict[int, ChainCheckpoint] = field(default_factory=dict)  # size > verified
    seen: set[int] = field(default_factory=set)  # checkpoint sizes already handled


@dataclass(frozen=True)
class RoundResult:
    full: bool
    rows: int  # rows verified this round
    checkpoints: int  # checkpoint notes verified this round
    failures: tuple[Failure, ...]  # every failed chain so far (sticky)

    @property
    def ok(self) -> bool:
        return not self.failures


def _labels(chain: str) -> tuple[str, str]:
    topic, _, partition = chain.rpartition("/")
    return (topic, partition) if topic else (chain, "")


class Auditor:
    def __init__(self, verifiers: Mapping[str, Verifier], *, full_every: int = 10) -> None:
        self._verifiers = dict(verifiers)
        self.full_every = max(1, full_every)
        self.rounds = 0
        self._chains: dict[str, _Chain] = {}
        self._failed: dict[str, Failure] = {}

    def round(self, conn: Conn, should_stop: Callable[[], bool] = lambda: False) -> RoundResult:
        """One verification round over ``conn`` (a non-autocommit connection)."""
        full = self.rounds % self.full_every == 0
        if full:
            self._chains = {}
        try:
            heads = conn.execute(
                "SELECT DISTINCT ON (chain) chain, seq + 1, extract(epoch FROM ts)::float8"
                " FROM audit_events ORDER BY chain, seq DESC"
            ).fetchall()
            notes = conn.execute(
                "SELECT chain, size, note, extract(epoch FROM created_at)::float8"
                " FROM audit_checkpoints ORDER BY chain, size"
            ).fetchall()
            checked = sum(self._checkpoint(conn, str(c), int(s), str(n)) for c, s, n, _ in notes)
            rows = 0
            for chain, length, _ in heads:
                rows += self._extend(conn, str(chain), int(length), should_stop)
        finally:
            conn.rollback()  # a read-only round; end its snapshot
        self.rounds += 1
        self._publish(heads, notes)
        return RoundResult(full, rows, checked, tuple(self._failed.values()))

    # -- checks -----------------------------------------------------------------
    def _state(self, chain: str) -> _Chain:
        return self._chains.setdefault(chain, _Chain(ChainSummary(chain)))

    def _checkpoint(self, conn: Conn, chain: str, size: int, note: str) -> int:
        state = self._state(chain)
        if size in state.seen or chain in self._failed:
            return 0
        state.seen.add(size)
        try:
            cp, _ = ChainCheckpoint.open(note, self._verifiers)
        except KernelError as exc:
            self._fail(Failure(chain, None, None, f"checkpoint at size {size} is invalid: {exc}"))
            return 1
        if (cp.chain, cp.size) != (chain, size):
            reason = f"checkpoint row ({chain}, {size}) holds a note for ({cp.chain}, {cp.size})"
            self._fail(Failure(chain, None, None, reason))
        elif size > state.summary.length:
            state.pending[size] = cp  # checked by the verifier when the chain gets there
        else:  # late: its rows were verified before the note arrived
            self._late_checkpoint(conn, cp)
        return 1

    def _late_checkpoint(self, conn: Conn, cp: ChainCheckpoint) -> None:
        """Pin ``cp`` over rows already verified: only their links are re-read.

        Checks 3-5 (hash, signature, copies) passed when the rows were verified,
        so the links go through ``feed_checked`` with no verdict: the verifier
        redoes the order checks and compares its Merkle root and head at the
        checkpoint's size -- hashes only, no payloads, no signatures.
        """
        verifier = ChainVerifier(self._verifiers, [cp])
        with conn.cursor(name="auditor_links") as cur:
            cur.itersize = 20000
            cur.execute(
                "SELECT seq, id::text, prev_hash, hash FROM audit_events"
                " WHERE chain = %s AND seq < %s ORDER BY seq",
                (cp.chain, cp.size),
            )
            for seq, id_, prev_hash, hash_ in cur:
                if verifier.feed_checked(
                    (cp.chain, int(seq), str(id_), prev_hash, hash_, None, None)
                ):
                    break
        for failure in verifier.finish().failures:
            self._fail(failure)

    def _extend(self, conn: Conn, chain: str, length: int, should_stop: Callable[[], bool]) -> int:
        state = self._state(chain)
        if chain in self._failed or length <= state.summary.length:
            return 0
        verifier = ChainVerifier(self._verifiers, list(state.pending.values()))
        verifier.continue_chain(state.summary)
        fed = 0
        for row in iter_rows(conn, chain, from_seq=state.summary.length):
            failure = verifier.feed(row)
            fed += 1
            if failure is not None:
                self._fail(failure)
                break
            if fed % 5000 == 0 and should_stop():
                raise _StoppedError
        flagged = verifier.flagged  # a key signed where it may not (window, revocation)
        if flagged:
            self._fail(flagged[0])
        reached = state.summary.length
        state.pending = {s: cp for s, cp in state.pending.items() if s > reached}
        return fed

    def _fail(self, failure: Failure) -> None:
        if failure.chain in self._failed:
            return
        self._failed[failure.chain] = failure
        at = "" if failure.seq is None else f" at seq {failure.seq}"
        log.error("audit chain %s failed verification%s: %s", failure.chain, at, failure.reason)

    # -- metrics -------------------------------------------------------------------
    def _publish(self, heads: list[tuple[Any, ...]], notes: list[tuple[Any, ...]]) -> None:
        metrics.AUDIT_VERIFICATIONS.labels("failed" if self._failed else "ok").inc()
        for chain, length, head_ts in heads:
            topic, partition = _labels(str(chain))
            metrics.CHAIN_LENGTH.labels(topic, partition).set(int(length))
            metrics.CHAIN_HEAD_TIMESTAMP.labels(topic, partition).set(float(head_ts))
        latest: dict[str, float] = {}
        for chain, _, _, created in notes:
            latest[str(chain)] = max(latest.get(str(chain), 0.0), float(created))
        for chain, created in latest.items():
            metrics.CHAIN_CHECKPOINT_TIMESTAMP.labels(*_labels(chain)).set(created)


class AuditorLoop:
    """``kernel run auditor``: an :class:`Auditor` round every ``interval_s``, on a
    connection of its own from ``db``; Postgres away pauses it, never ends it."""

    def __init__(self, auditor: Auditor, db: Database, *, interval_s: float) -> None:
        self.auditor = auditor
        self._db = db
        self._interval_s = interval_s
        self._conn: Conn | None = None

    def run(self, should_stop: Callable[[], bool]) -> None:
        import psycopg  # noqa: PLC0415

        while not should_stop():
            began = time.monotonic()
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = self._db.connect()
                result = self.auditor.round(self._conn, should_stop)
                log.info(
                    "audit round: %d rows, %d checkpoints verified%s; %s",
                    result.rows, result.checkpoints, " (full)" if result.full else "",
                    "ok" if result.ok else f"{len(result.failures)} chain(s) FAILED",
                )  # fmt: skip
            except _StoppedError:
                break
            except (StoreUnavailableError, psycopg.OperationalError) as exc:
                log.warning("auditor paused: Postgres unavailable: %s", exc)
                self.close()
            except psycopg.errors.UndefinedTable as exc:
                log.warning(
                    "auditor waiting: the audit tables do not exist (kernel db migrate): %s", exc
                )
                if self._conn is not None:
                    self._conn.rollback()
            while not should_stop() and time.monotonic() - began < self._interval_s:
                time.sleep(min(0.5, self._interval_s))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
