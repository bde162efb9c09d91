"""The end checks: every published event exactly once, every action decided once.

Exactly-once is judged against the log, read ``read_committed`` from the
beginning, and against Postgres:

* every acked event is on the actions topic (a miss there is lost at the door);
* every kernelAction on the log has exactly one row in ``audit_events``, and so
  has every policyCheck on the log (the signer chains the policy-checks topic);
* every kernelAction on the log has exactly one enforced (non-simulated)
  stream decision on the policy-checks topic -- counted on the log, because
  ``policy_checks`` keys on the deterministic id and would hide a repeat --
  and every policyCheck on the log is a row of ``policy_checks``;
* every sync check answered 200 is on the log and in ``policy_checks``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import psycopg

from ops.bootstrap import Kernel
from streams.kafka.log_reader import KafkaLogReader

__all__ = ["Ledger", "read_ledger", "tally"]


@dataclass
class Ledger:
    acked: int = 0
    uncertain: int = 0
    uncertain_on_log: int = 0
    actions_on_log: int = 0
    producer_duplicates: int = 0  # one event id twice on the actions topic
    lost_at_door: list[str] = field(default_factory=list)
    audit_missing: list[str] = field(default_factory=list)
    audit_duplicated: list[str] = field(default_factory=list)
    undecided: list[str] = field(default_factory=list)
    decided_twice: list[str] = field(default_factory=list)
    checks_on_log: int = 0
    check_ids_repeated: list[str] = field(default_factory=list)
    checks_missing_in_table: list[str] = field(default_factory=list)
    sync_ok: int = 0
    sync_missing: list[str] = field(default_factory=list)

    @property
    def missing(self) -> int:
        return (
            len(self.lost_at_door) + len(self.audit_missing) + len(self.undecided)
            + len(self.checks_missing_in_table) + len(self.sync_missing)
        )  # fmt: skip

    @property
    def duplicated(self) -> int:
        return len(self.audit_duplicated) + len(self.decided_twice) + len(self.check_ids_repeated)

    def summary(self) -> dict[str, object]:
        def few(xs: list[str]) -> object:
            return {"count": len(xs), "first": xs[:3]} if xs else 0

        return {
            "acked": self.acked, "uncertain": self.uncertain,
            "uncertain_on_log": self.uncertain_on_log, "actions_on_log": self.actions_on_log,
            "producer_duplicates": self.producer_duplicates,
            "lost_at_door": few(self.lost_at_door), "audit_missing": few(self.audit_missing),
            "audit_duplicated": few(self.audit_duplicated), "undecided": few(self.undecided),
            "decided_twice": few(self.decided_twice), "checks_on_log": self.checks_on_log,
            "check_ids_repeated": few(self.check_ids_repeated),
            "checks_missing_in_table": few(self.checks_missing_in_table),
            "sync_ok": self.sync_ok, "sync_missing": few(self.sync_missing),
        }  # fmt: skip


def _read_topic(reader: KafkaLogReader, topic: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for p in reader.partitions(topic):
        for rec in reader.iter(topic, p, 0):
            out.append((rec.event.event_id, rec.event.body))
    return out


def read_ledger(
    kernel: Kernel, acked: list[str], uncertain: list[str], sync_ok: dict[str, str]
) -> Ledger:
    names = kernel.names
    reader = KafkaLogReader(kernel.settings.kafka_bootstrap, kernel.codec, 30)
    try:
        actions = Counter(eid for eid, _ in _read_topic(reader, names.actions))
        checks = _read_topic(reader, names.policy_checks)
    finally:
        reader.close()
    with psycopg.connect(kernel.settings.database_url) as conn:
        audit = Counter(str(r[0]) for r in conn.execute("SELECT id FROM audit_events").fetchall())
        table = {str(r[0]) for r in conn.execute("SELECT policy_check_id FROM policy_checks")}
    return tally(actions, checks, audit, table, acked, uncertain, sync_ok)


def tally(
    actions: Counter[str],
    checks: list[tuple[str, dict[str, Any]]],
    audit: Counter[str],
    table: set[str],
    acked: list[str],
    uncertain: list[str],
    sync_ok: dict[str, str],
) -> Ledger:
    """What the log and the tables hold, against what was published and answered."""
    led = Ledger(acked=len(acked), uncertain=len(uncertain), actions_on_log=len(actions))
    led.uncertain_on_log = sum(1 for e in uncertain if e in actions)
    led.producer_duplicates = sum(1 for n in actions.values() if n > 1)
    led.lost_at_door = [e for e in acked if e not in actions]
    check_envelopes = [eid for eid, _ in checks]
    for eid in [*actions, *check_envelopes]:
        n = audit.get(eid, 0)
        if n == 0:
            led.audit_missing.append(eid)
        elif n > 1:
            led.audit_duplicated.append(eid)
    check_ids = Counter(str(b["policyCheckId"]) for _, b in checks)
    led.checks_on_log = len(checks)
    led.check_ids_repeated = [c for c, n in check_ids.items() if n > 1]
    led.checks_missing_in_table = [c for c in check_ids if c not in table]
    decisions = Counter(
        str(b["subjectEventId"]) for _, b in checks if b["mode"] == "stream" and not b["simMode"]
    )
    for eid in actions:
        n = decisions.get(eid, 0)
        if n == 0:
            led.undecided.append(eid)
        elif n > 1:
            led.decided_twice.append(eid)
    led.sync_ok = len(sync_ok)
    led.sync_missing = [c for c in sync_ok.values() if c not in check_ids or c not in table]
    return led
