"""Read side of SentinelNet's projections: explain one decision, list and show policies.

Postgres adapter for the query API. Explain fills the evidence's ``chain``
pointer at query time: the audit chain links the evaluated action (and the
policyCheck record itself) asynchronously, so the position is looked up in
``audit_events`` by the log position the evidence names, and is ``null`` until
the chain signer and audit projector have caught up. The stored evidence is
never rewritten -- it is what the decision saw.

A policyCheck v2 names the enforced, active policies that did not match
(``not_matched``) or matched and lost to the decider (``outranked``) only by
``id@version``; explain returns the full evaluation path, those entries rebuilt
by :func:`~streams.sentinel.decision.expand_path` from each version's
definition in ``policy_registry``, the record's decision and its own evidence.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from schemas.events import format_ts
from streams.sentinel.decision import expand_path
from streams.sentinel.policy import Policy

__all__ = ["explain", "get_policy", "get_simulation", "list_policies", "list_simulations"]

Conn = psycopg.Connection[tuple[object, ...]]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_CHAIN = """
LEFT JOIN LATERAL (
    SELECT a.id, a.chain, a.seq, a.hash FROM audit_events a
    WHERE a.source_topic = {t} AND a.source_partition = {p} AND a.source_offset = {o}
    ORDER BY a.chain, a.seq LIMIT 1
) {alias} ON true
"""
_EXPLAIN = (
    "SELECT pc.policy_check_id, pc.decision, pc.allowed, pc.policy_id, pc.policy_version, "
    "pc.rationale, pc.evidence, pc.evaluations, pc.not_matched, pc.outranked, pc.rollout, "
    "pc.sim_mode, pc.mode, "
    "pc.request_id, pc.subject, pc.subject_event_id, pc.ts, pc.source_topic, pc.source_partition, "
    "pc.source_offset, ev.id, ev.chain, ev.seq, ev.hash, own.id, own.chain, own.seq, own.hash "
    "FROM policy_checks pc"
    + _CHAIN.format(t="pc.action_topic", p="pc.action_partition", o="pc.action_offset", alias="ev")
    + _CHAIN.format(t="pc.source_topic", p="pc.source_partition", o="pc.source_offset", alias="own")
    + " WHERE pc.policy_check_id = %s"
)


def _chain(audit_id: object, chain: object, seq: object, hsh: object) -> dict[str, Any] | None:
    if chain is None:
        return None
    return {"auditId": str(audit_id), "chain": chain, "seq": seq, "hash": hsh}


def explain(conn: Conn, policy_check_id: str) -> dict[str, Any] | None:
    """The decision, rationale, evidence (chain filled in) and evaluation path; None if unknown."""
    row = conn.execute(_EXPLAIN, (policy_check_id,)).fetchone()
    if row is None:
        return None
    (check_id, decision, allowed, policy_id, version, rationale, evidence, evaluations,
     not_matched, outranked, rollout, sim, mode, request_id, subject, subject_event_id, ts, topic,
     partition, offset, *links) = row  # fmt: skip
    assert isinstance(evidence, dict)
    assert isinstance(evaluations, list)
    assert isinstance(not_matched, list)
    assert isinstance(outranked, list)
    assert isinstance(rollout, list)
    record = {
        "evaluations": evaluations,
        "notMatched": not_matched,
        "outranked": outranked,
        "evidence": evidence,
        "decision": decision,
        "policyId": policy_id,
        "policyVersion": version,
    }
    path = expand_path(record, _definitions(conn, [*not_matched, *outranked]))
    evidence = {**evidence, "chain": _chain(*links[:4])}
    return {
        "policyCheckId": str(check_id),
        "decision": decision,
        "allowed": allowed,
        "policyId": policy_id,
        "policyVersion": version,
        "rationale": rationale,
        "simMode": sim,
        "mode": mode,
        "requestId": request_id,
        "subject": subject,
        "subjectEventId": subject_event_id,
        "ts": format_ts(_ms(ts)),
        "evidence": evidence,
        "evaluations": path,
        "rollout": rollout,
        "record": {
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "chain": _chain(*links[4:]),
        },
    }


def _definitions(conn: Conn, labels: list[str]) -> dict[tuple[str, int], Policy]:
    """The registry's definitions of the ``id@version`` labels."""
    if not labels:
        return {}
    keys = [label.rpartition("@") for label in labels]
    rows = conn.execute(
        "SELECT definition FROM policy_registry "
        "WHERE (policy_id, version) IN (SELECT * FROM unnest(%s::text[], %s::int[]))",
        ([k[0] for k in keys], [int(k[2]) for k in keys]),
    ).fetchall()
    out = {}
    for (definition,) in rows:
        policy = Policy.from_json(definition)
        out[policy.key] = policy
    return out


def list_policies(conn: Conn) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT policy_id, version, name, severity, state, canary_percent, updated_at "
        "FROM policy_registry ORDER BY policy_id, version"
    ).fetchall()
    out: dict[str, dict[str, Any]] = {}
    for pid, version, name, severity, state, percent, updated in rows:
        entry = out.setdefault(
            str(pid), {"id": pid, "name": name, "severity": severity, "versions": {}}
        )
        entry.update(name=name, severity=severity, updatedAt=format_ts(_ms(updated)))
        entry["versions"][str(version)] = {"state": state, "canaryPercent": percent}
    return list(out.values())


def get_policy(conn: Conn, policy_id: str) -> dict[str, Any] | None:
    versions = conn.execute(
        "SELECT definition FROM policy_registry WHERE policy_id = %s ORDER BY version",
        (policy_id,),
    ).fetchall()
    if not versions:
        return None
    history = conn.execute(
        "SELECT seq, version, change, from_state, to_state, actor, ts, reason, event_id "
        "FROM policy_history WHERE policy_id = %s ORDER BY seq",
        (policy_id,),
    ).fetchall()
    return {
        "id": policy_id,
        "versions": [v for (v,) in versions],
        "history": [
            {"seq": seq, "version": version, "change": change, "fromState": from_state,
             "toState": to_state, "actor": actor, "ts": format_ts(_ms(ts)), "reason": reason,
             "eventId": None if event_id is None else str(event_id)}
            for seq, version, change, from_state, to_state, actor, ts, reason, event_id in history
        ],
    }  # fmt: skip


def _ms(ts: object) -> int:
    assert isinstance(ts, datetime)
    return (ts - _EPOCH) // timedelta(milliseconds=1)


_SIMULATION_SUMMARY = (
    "SELECT simulation_id, event_id, policy_id, version, actor, ts, actions_topic, sim_window, "
    "report->'eventsEvaluated', report->'matchRate', report->'errors', "
    "report->'changes'->'newlyDenied'->'count', report->'changes'->'newlyAllowed'->'count', "
    "report->'changes'->'total' FROM policy_simulations"
)


def list_simulations(
    conn: Conn, policy_id: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """The newest simulation reports first, summarised; of one policy if ``policy_id``."""
    where, args = ("", ()) if policy_id is None else (" WHERE policy_id = %s", (policy_id,))
    rows = conn.execute(
        f"{_SIMULATION_SUMMARY}{where} ORDER BY ts DESC, simulation_id LIMIT %s", (*args, limit)
    ).fetchall()
    return [
        {"simulationId": str(sid), "eventId": str(eid), "policyId": pid, "version": version,
         "actor": actor, "ts": format_ts(_ms(ts)), "actionsTopic": topic, "window": window,
         "eventsEvaluated": n, "matchRate": rate, "errors": errors, "newlyDenied": denied,
         "newlyAllowed": allowed, "changed": total}
        for sid, eid, pid, version, actor, ts, topic, window, n, rate, errors, denied, allowed,
        total in rows
    ]  # fmt: skip


def get_simulation(conn: Conn, simulation_id: str) -> dict[str, Any] | None:
    """One simulation report in full, with where its event is on the log."""
    row = conn.execute(
        "SELECT simulation_id, event_id, policy_id, version, actor, ts, actions_topic, "
        "sim_window, ranges, active_set, report, source_topic, source_partition, source_offset "
        "FROM policy_simulations WHERE simulation_id = %s",
        (simulation_id,),
    ).fetchone()
    if row is None:
        return None
    sid, eid, pid, version, actor, ts, topic, window, ranges, active, report, st, sp, so = row
    return {
        "simulationId": str(sid), "eventId": str(eid), "policyId": pid, "version": version,
        "actor": actor, "ts": format_ts(_ms(ts)), "actionsTopic": topic, "window": window,
        "ranges": ranges, "activeSet": active, "report": report,
        "event": {"topic": st, "partition": sp, "offset": so},
    }  # fmt: skip
