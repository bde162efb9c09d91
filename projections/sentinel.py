"""SentinelNet's Postgres projections: the policy registry and the explain table.

Both are :class:`~projections.projector.Projection` adapters: the
``ProjectorRunner`` calls ``write`` inside the batch's transaction together
with the checkpoint, so each table is exactly the committed log.

- :class:`PolicyRegistryProjection` folds ``policyChange`` events with
  :func:`~streams.sentinel.lifecycle.apply_change` -- the rule that validated
  each change before it was published and that every evaluator folds -- so the
  table cannot disagree with the live set. It keeps no memory between batches:
  each batch loads the records of the policies it touches from the table it
  writes (changes are rare), so a rolled-back batch leaves nothing stale behind.
  Illegal changes (operators raced) go to ``policy_change_rejections``. The
  same topic's ``policySimulation`` reports become ``policy_simulations`` rows
  (``INSERT ... ON CONFLICT DO NOTHING``: a report is a fact, replayed onto itself).
- :class:`PolicyCheckProjection` writes one ``policy_checks`` row per
  ``policyCheck`` by COPY into a per-session staging table and one
  ``INSERT ... ON CONFLICT DO NOTHING``: a replayed check (deterministic id)
  or a retried sync request lands on its existing row. The row keeps the
  record's compact form (``not_matched``, ``outranked``: schema v2); explain
  expands it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg

from schemas.errors import ValidationError
from streams.processor import InputRecord
from streams.sentinel.errors import TransitionError
from streams.sentinel.lifecycle import (
    ActivationApprovals,
    HistoryEntry,
    PolicyChange,
    PolicyRecord,
    RegistryState,
    apply_change,
    needs_approvals,
)
from streams.sentinel.policy import Policy, State

__all__ = ["PolicyCheckProjection", "PolicyRegistryProjection", "load_records"]

log = logging.getLogger(__name__)
Cursor = psycopg.Cursor[tuple[object, ...]]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def _ts(ms: int) -> datetime:
    return _EPOCH + ms * _MS


def load_records(cur: Cursor, policy_ids: Sequence[str]) -> RegistryState:
    """The registry records of ``policy_ids`` as the table holds them."""
    versions: dict[str, list[Policy]] = {}
    for pid, definition in cur.execute(
        "SELECT policy_id, definition FROM policy_registry WHERE policy_id = ANY(%s) "
        "ORDER BY policy_id, version",
        (list(policy_ids),),
    ).fetchall():
        versions.setdefault(str(pid), []).append(Policy.from_json(definition))
    history: dict[str, list[HistoryEntry]] = {}
    for row in cur.execute(
        "SELECT policy_id, version, change, from_state, to_state, actor, ts, reason, event_id "
        "FROM policy_history WHERE policy_id = ANY(%s) ORDER BY policy_id, seq",
        (list(policy_ids),),
    ).fetchall():
        pid, version, change, from_state, to_state, actor, ts, reason, event_id = row
        assert isinstance(ts, datetime)
        history.setdefault(str(pid), []).append(
            HistoryEntry(
                int(str(version)),
                str(change),
                None if from_state is None else State(str(from_state)),
                State(str(to_state)),
                str(actor),
                (ts - _EPOCH) // _MS,
                None if reason is None else str(reason),
                None if event_id is None else str(event_id),
            )
        )
    return RegistryState(
        {
            pid: PolicyRecord(pid, tuple(vs), tuple(history.get(pid, ())))
            for pid, vs in versions.items()
        }
    )


@dataclass
class PolicyRegistryProjection:
    """``approvals`` builds the k-of-n rule (it reads the approvals topic): called only
    for a batch with a HIGH/CRITICAL activation, which it refuses without a quorum."""

    policies_topic: str
    name: str = "policy_registry"
    approvals: Callable[[], ActivationApprovals] | None = None
    topics: Sequence[str] = field(init=False)

    def __post_init__(self) -> None:
        self.topics = [self.policies_topic]

    def write(self, cur: Cursor, batch: Sequence[InputRecord]) -> None:
        _write_simulations(cur, [r for r in batch if r.event.event_type == "policySimulation"])
        records = [r for r in batch if r.event.event_type == "policyChange"]
        if not records:
            return
        ids = sorted({str(r.event.body.get("policyId")) for r in records})
        before = load_records(cur, ids)
        state = before
        rejected = []
        gate: ActivationApprovals | None = None
        for r in records:
            try:
                change = PolicyChange.from_event(r.event)
                if gate is None and self.approvals is not None and needs_approvals(change):
                    gate = self.approvals()  # once per batch, only for such a batch
                state = apply_change(state, change, gate)
            except (TransitionError, ValidationError, KeyError) as exc:
                log.warning("policy_registry: skipped change %s: %s", r.event.event_id, exc)
                rejected.append((r, str(exc)))
        for pid in ids:
            record = state.get(pid)
            if record is not None:
                self._write_record(cur, record, before.get(pid))
        if rejected:
            cur.executemany(
                "INSERT INTO policy_change_rejections (event_id, policy_id, reason, ts, "
                "source_topic, source_partition, source_offset) VALUES (%s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT DO NOTHING",
                [
                    (r.event.event_id, r.event.body.get("policyId"), why, _ts(r.event.ts_ms),
                     r.topic, r.partition, r.offset)
                    for r, why in rejected
                ],
            )  # fmt: skip

    def _write_record(self, cur: Cursor, record: PolicyRecord, old: PolicyRecord | None) -> None:
        created: dict[int, int] = {}
        updated: dict[int, int] = {}
        for h in record.history:
            created.setdefault(h.version, h.ts_ms)
            updated[h.version] = h.ts_ms
        cur.executemany(
            "INSERT INTO policy_registry (policy_id, version, name, severity, state, "
            "canary_percent, definition, created_at, updated_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s) "
            "ON CONFLICT (policy_id, version) DO UPDATE SET state = EXCLUDED.state, "
            "canary_percent = EXCLUDED.canary_percent, definition = EXCLUDED.definition, "
            "updated_at = EXCLUDED.updated_at",
            [
                (p.policy_id, p.version, p.name, p.severity.value, p.state.value,
                 p.canary_percent, orjson.dumps(p.to_json()).decode(),
                 _ts(created.get(p.version, 0)), _ts(updated.get(p.version, 0)))
                for p in record.versions
            ],
        )  # fmt: skip
        start = 0 if old is None else len(old.history)
        cur.executemany(
            "INSERT INTO policy_history (policy_id, seq, version, change, from_state, to_state, "
            "actor, ts, reason, event_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (record.policy_id, seq, h.version, h.change,
                 None if h.from_state is None else h.from_state.value, h.to_state.value,
                 h.actor, _ts(h.ts_ms), h.reason, h.event_id)
                for seq, h in enumerate(record.history) if seq >= start
            ],
        )  # fmt: skip


def _write_simulations(cur: Cursor, records: Sequence[InputRecord]) -> None:
    if not records:
        return
    cur.executemany(
        "INSERT INTO policy_simulations (simulation_id, event_id, policy_id, version, actor, ts, "
        "actions_topic, sim_window, ranges, active_set, report, source_topic, source_partition, "
        "source_offset) VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s::jsonb, "
        "%s::jsonb, %s, %s, %s) ON CONFLICT (simulation_id) DO NOTHING",
        [
            (b["simulationId"], r.event.event_id, b["policyId"], b["version"], r.event.actor,
             _ts(r.event.ts_ms), b["actionsTopic"], _json(b["window"]), _json(b["ranges"]),
             _json(b["activeSet"]), _json(b["report"]), r.topic, r.partition, r.offset)
            for r in records
            for b in (r.event.body,)
        ],
    )  # fmt: skip


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


_CHECK_COLUMNS = (
    "policy_check_id", "event_id", "request_id", "decision", "allowed", "policy_id",
    "policy_version", "rationale", "evidence", "evaluations", "not_matched", "outranked",
    "rollout", "sim_mode", "mode",
    "subject", "subject_event_id", "action_topic", "action_partition", "action_offset", "ts",
    "source_topic", "source_partition", "source_offset",
)  # fmt: skip
_COLS = ", ".join(_CHECK_COLUMNS)


@dataclass
class PolicyCheckProjection:
    checks_topic: str
    name: str = "policy_checks"
    topics: Sequence[str] = field(init=False)

    def __post_init__(self) -> None:
        self.topics = [self.checks_topic]

    def write(self, cur: Cursor, batch: Sequence[InputRecord]) -> None:
        rows = [_check_row(r) for r in batch if r.event.event_type == "policyCheck"]
        if not rows:
            return
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS policy_checks_in "
            "(LIKE policy_checks INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        with cur.copy(f"COPY policy_checks_in ({_COLS}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cur.execute(
            f"INSERT INTO policy_checks ({_COLS}) SELECT {_COLS} FROM policy_checks_in "
            "ON CONFLICT (policy_check_id) DO NOTHING"
        )
        # Empty now, not at commit: the runner may call write again in this
        # transaction (on the halves of a batch Postgres refused part of).
        cur.execute("TRUNCATE policy_checks_in")


def _check_row(r: InputRecord) -> tuple[Any, ...]:
    b = r.event.body
    evidence = b["evidence"] if isinstance(b["evidence"], dict) else {}
    where = evidence.get("event") or {}
    return (
        b["policyCheckId"], r.event.event_id, b.get("requestId"), b["decision"], b["allowed"],
        b.get("policyId"), b.get("policyVersion"), b["rationale"],
        orjson.dumps(b["evidence"]).decode(), orjson.dumps(b["evaluations"]).decode(),
        orjson.dumps(b.get("notMatched", [])).decode(),
        orjson.dumps(b.get("outranked", [])).decode(),
        orjson.dumps(b.get("rollout", [])).decode(), b["simMode"], b["mode"],
        r.event.subject, b.get("subjectEventId"),
        where.get("topic"), where.get("partition"), where.get("offset"),
        _ts(r.event.ts_ms), r.topic, r.partition, r.offset,
    )  # fmt: skip
