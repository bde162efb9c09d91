"""The ``policyCheck`` event, built from one :class:`~streams.sentinel.evaluator.Evaluation`.

Pure: the caller supplies where the evaluated event sits on the log and, if it
wants replay to reproduce ids, the ``policyCheckId``. Two views of the same
evaluation can be published:

- the **enforced** check (``simMode=false``): the decision the kernel acts on;
- the **simulation** check (``simMode=true``): the candidate view including
  ``test`` policies (only when one was in scope), or -- for a synchronous check
  that ran past its budget -- the full evaluation completing asynchronously.

``evidence`` (I-JSON)::

    {"event": {"topic": ..., "partition": ..., "offset": ..., "eventId": ...},
     "chain": null,                      # the audit chain position, filled once chained
     "valuesRead": {"context.amount": 25000, "actor": "agent:7"},
     "missing": ["context.limit"],
     "deciding": {"policyId": ..., "version": ..., "valuesRead": {...}} | null}

The evaluation path -- every policy considered, with its result -- is split
in three (schema v2; ``docs/decisions/0003`` has the measurements):

- ``evaluations``: a full entry (state, role, severity, result, effect,
  error, values read, missing, why it won or lost) for the deciding policy
  and every policy that errored or is not an enforced ``active`` version;
- ``notMatched``: ``["id@version", ...]``, the enforced active policies whose
  rule was false. Their entries are all alike -- result ``not_matched``, no
  effect, no error, reason ``not matched``;
- ``outranked``: ``["id@version", ...]``, the enforced active policies whose
  rule matched but did not decide. Their entries follow from the version and
  the record's decision -- result ``matched``, the version's effect, no error,
  the reason :func:`~streams.sentinel.evaluator.lost_reason` renders against
  ``decision`` / ``policyId`` / ``policyVersion``.

The values a named policy read are in ``evidence.valuesRead`` (every value any
policy in scope read), at the paths its version's rule and rationale read, so
:func:`expand_path` (given each version's definition) rebuilds exactly the
entries they stand for. With 100 policies in scope this is the difference
between a 30 KB record and 1-2 KB. A simulation view (``simMode`` with a
``test`` policy in scope) decides differently from the enforced evaluation the
reasons were written against, so it carries its outranked entries in full.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from schemas.catalog import catalog
from schemas.events import Event
from schemas.ids import uuid5_text
from schemas.positions import LogPosition
from streams.sentinel.evaluator import Evaluation, PolicyResult, lost_reason, policy_paths
from streams.sentinel.policy import Effect, Policy
from streams.sentinel.rules import format_path

__all__ = [
    "SENTINEL_ACTOR",
    "EvaluatedEvent",
    "build_policy_check",
    "build_policy_checks",
    "check_id_for",
    "expand_path",
]

SENTINEL_ACTOR = "sentinelnet"
_NAMESPACE = uuid.UUID("5b0c3f0e-4f1d-4a43-9d55-6a2f6c1e0b44")

_SCHEMA_VERSION = catalog().newest("policyCheck").version

Mode = Literal["sync", "stream"]


@dataclass(frozen=True, slots=True)
class EvaluatedEvent:
    """Where the evaluated action is: its log position (None before it is written)."""

    event_id: str
    subject: str
    position: LogPosition | None = None

    def to_json(self) -> dict[str, Any]:
        pos = self.position
        return {
            "topic": None if pos is None else pos.topic,
            "partition": None if pos is None else pos.partition,
            "offset": None if pos is None else pos.offset,
            "eventId": self.event_id,
        }


def check_id_for(event_id: str, mode: Mode, sim_mode: bool) -> str:
    """A deterministic policyCheckId: replaying the same action reproduces it."""
    return uuid5_text(_NAMESPACE, f"{event_id}/{mode}/{int(sim_mode)}")


def build_policy_check(
    evaluation: Evaluation,
    evaluated: EvaluatedEvent,
    *,
    mode: Mode,
    request_id: str | None = None,
    sim_mode: bool = False,
    policy_check_id: str | None = None,
    ts_ms: int | None = None,
    event_id: str | None = None,
    path: list[dict[str, Any]] | None = None,
) -> Event:
    """One policyCheck; ``sim_mode`` picks the simulation view when there is one.

    ``path`` is the enforced view's evaluations JSON when the caller already
    built it; ``event_id`` the envelope id (default random).
    """
    outranked = evaluation.outranked
    if sim_mode and evaluation.sim_decision is not None:
        decision, deciding = evaluation.sim_decision, evaluation.sim_deciding
        rationale = evaluation.sim_rationale or ""
        # the outranked reasons name the enforced decider, which this view does not
        path, outranked = evaluation.path_json(with_outranked=True), ()
    else:
        decision, deciding, rationale = (
            evaluation.decision,
            evaluation.deciding,
            evaluation.rationale,
        )
    body = {
        "policyCheckId": policy_check_id or str(uuid.uuid4()),
        "requestId": request_id,
        "decision": decision.value,
        "allowed": decision is Effect.ALLOW,
        "policyId": None if deciding is None else deciding.policy_id,
        "policyVersion": None if deciding is None else deciding.version,
        "rationale": rationale,
        "evidence": _evidence(evaluation, evaluated, deciding),
        "evaluations": evaluation.path_json() if path is None else path,
        "notMatched": list(evaluation.not_matched),
        "outranked": list(outranked),
        "simMode": sim_mode,
        "mode": mode,
        "subjectEventId": evaluated.event_id,
    }
    # Built directly, not through new_event's JSON validation: every value here
    # comes from a validated action or from this module, and the deep I-JSON walk
    # over the evaluation path cost more than the evaluation itself (bench).
    return Event(
        event_id=event_id or str(uuid.uuid4()),
        event_type="policyCheck",
        ts_ms=ts_ms if ts_ms is not None else time.time_ns() // 1_000_000,
        actor=SENTINEL_ACTOR,
        subject=evaluated.subject,
        body=body,
        schema_version=_SCHEMA_VERSION,
    )


def build_policy_checks(
    evaluation: Evaluation,
    evaluated: EvaluatedEvent,
    *,
    mode: Mode,
    request_id: str | None = None,
    deterministic_ids: bool = False,
    ts_ms: int | None = None,
    event_id_for: Callable[[str], str] | None = None,
) -> list[Event]:
    """The enforced check, then a simMode check if a simulated policy was in scope.

    ``event_id_for`` derives each envelope id from its ``policyCheckId``.
    """
    views = [False] + ([True] if evaluation.sim_decision is not None else [])
    path = evaluation.path_json()
    out = []
    for sim in views:
        check_id = (
            check_id_for(evaluated.event_id, mode, sim) if deterministic_ids else str(uuid.uuid4())
        )
        out.append(
            build_policy_check(
                evaluation,
                evaluated,
                mode=mode,
                request_id=request_id,
                sim_mode=sim,
                policy_check_id=check_id,
                ts_ms=ts_ms,
                event_id=None if event_id_for is None else event_id_for(check_id),
                path=path,
            )
        )
    return out


def _evidence(
    evaluation: Evaluation, evaluated: EvaluatedEvent, deciding: PolicyResult | None
) -> dict[str, Any]:
    return {
        "event": evaluated.to_json(),
        "chain": None,
        "valuesRead": evaluation.values_read,
        "missing": list(evaluation.missing),
        "deciding": None
        if deciding is None
        else {
            "policyId": deciding.policy_id,
            "version": deciding.version,
            "result": deciding.outcome.value,
            "error": deciding.error,
            "valuesRead": deciding.values,
        },
    }


def expand_path(
    body: Mapping[str, Any], definitions: Mapping[tuple[str, int], Policy]
) -> list[dict[str, Any]]:
    """The full evaluation path of a policyCheck body: the named policies as full entries.

    ``body`` needs ``evaluations``, ``evidence``, ``decision``, ``policyId`` and
    ``policyVersion``; ``notMatched`` and ``outranked`` default to empty (v1).
    ``definitions`` holds the policy versions they name (the registry
    projection); a version it lacks gets null ``severity``, ``valuesRead`` and
    ``missing`` (and, if outranked, null ``effect`` and ``reason``) rather than
    guesses. Entries come back in key order (policy id, version), the
    evaluator's order.
    """
    evaluations: list[dict[str, Any]] = body["evaluations"]
    not_matched = _labels(body.get("notMatched"))
    outranked = _labels(body.get("outranked"))
    if not not_matched and not outranked:
        return evaluations
    evidence = body["evidence"]
    read = evidence.get("valuesRead") or {}
    absent = set(evidence.get("missing") or ())
    decision = Effect(body["decision"])
    decider_id, decider_version = str(body.get("policyId")), int(body.get("policyVersion") or 0)
    out = list(evaluations)
    for matched, labels in ((False, not_matched), (True, outranked)):
        for label in labels:
            policy_id, _, version_text = label.rpartition("@")
            version = int(version_text)
            policy = definitions.get((policy_id, version))
            values: dict[str, Any] | None = None
            missing: list[str] | None = None
            effect = reason = None
            if policy is not None:
                paths = [format_path(p) for p in policy_paths(policy)]
                values = {p: read[p] for p in paths if p in read}
                missing = [p for p in paths if p in absent]
                if matched:
                    effect = policy.effect.value
                    reason = lost_reason(policy.effect, decision, decider_id, decider_version)
            out.append(
                {
                    "policyId": policy_id,
                    "version": version,
                    "state": "active",
                    "role": "enforced",
                    "severity": None if policy is None else policy.severity.value,
                    "result": "matched" if matched else "not_matched",
                    "effect": effect,
                    "error": None,
                    "valuesRead": values,
                    "missing": missing,
                    "reason": reason if matched else "not matched",
                }
            )
    out.sort(key=lambda e: (e["policyId"], e["version"]))
    return out


def _labels(value: Any) -> list[str]:
    """An ``id@version`` list field; absent (v1), or -- read as the default -- JSON text."""
    if isinstance(value, str):
        value = json.loads(value)
    return value if isinstance(value, list) else []
