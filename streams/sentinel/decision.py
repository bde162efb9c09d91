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
in two (schema v2; ``docs/decisions/0003`` has the measurements):

- ``evaluations``: a full entry (state, role, severity, result, effect,
  error, values read, missing, why it won or lost) for every policy that
  matched, errored, or is not an enforced ``active`` version;
- ``notMatched``: ``["id@version", ...]``, the enforced active policies whose
  rule was false. Their entries are all alike -- result ``not_matched``, no
  effect, no error, reason ``not matched`` -- and the values they read are in
  ``evidence.valuesRead``, so :func:`expand_path` (given each version's
  definition) rebuilds exactly the entries they stand for. With 100 policies in
  scope this is the difference between a 30 KB record and a few KB.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from schemas.catalog import catalog
from schemas.events import Event
from schemas.positions import LogPosition
from streams.sentinel.evaluator import Evaluation, PolicyResult, policy_paths
from streams.sentinel.policy import Effect, Policy
from streams.sentinel.rules import format_path

__all__ = [
    "SENTINEL_ACTOR",
    "EvaluatedEvent",
    "build_policy_check",
    "build_policy_checks",
    "check_id_for",
    "expand_path",
    "uuid5_text",
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


def uuid5_text(namespace: uuid.UUID, name: str) -> str:
    """``str(uuid.uuid5(namespace, name))`` without the ``UUID`` objects (twice per check)."""
    raw = bytearray(hashlib.sha1(namespace.bytes + name.encode(), usedforsecurity=False).digest())
    raw[6] = (raw[6] & 0x0F) | 0x50  # version 5
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw[:16].hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


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

    ``path`` is the evaluations JSON when the caller already built it (both views
    of one evaluation share it); ``event_id`` the envelope id (default random).
    """
    if sim_mode and evaluation.sim_decision is not None:
        decision, deciding = evaluation.sim_decision, evaluation.sim_deciding
        rationale = evaluation.sim_rationale or ""
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
    evaluations: list[dict[str, Any]],
    not_matched: list[str],
    evidence: dict[str, Any],
    definitions: Mapping[tuple[str, int], Policy],
) -> list[dict[str, Any]]:
    """The full evaluation path of a policyCheck body: ``notMatched`` as full entries.

    ``definitions`` holds the policy versions named in ``not_matched`` (the
    registry projection); a version it lacks gets null ``severity``,
    ``valuesRead`` and ``missing`` rather than guesses. Entries come back in key
    order (policy id, version), the evaluator's order.
    """
    if not not_matched:
        return evaluations
    read = evidence.get("valuesRead") or {}
    absent = set(evidence.get("missing") or ())
    out = list(evaluations)
    for label in not_matched:
        policy_id, _, version_text = label.rpartition("@")
        version = int(version_text)
        policy = definitions.get((policy_id, version))
        values: dict[str, Any] | None = None
        missing: list[str] | None = None
        if policy is not None:
            paths = [format_path(p) for p in policy_paths(policy)]
            values = {p: read[p] for p in paths if p in read}
            missing = [p for p in paths if p in absent]
        out.append(
            {
                "policyId": policy_id,
                "version": version,
                "state": "active",
                "role": "enforced",
                "severity": None if policy is None else policy.severity.value,
                "result": "not_matched",
                "effect": None,
                "error": None,
                "valuesRead": values,
                "missing": missing,
                "reason": "not matched",
            }
        )
    out.sort(key=lambda e: (e["policyId"], e["version"]))
    return out
