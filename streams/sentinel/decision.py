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

``evaluations`` is the full path: every policy considered, its role, result,
error, values read and why it won or lost.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from schemas.catalog import catalog
from schemas.events import Event
from schemas.positions import LogPosition
from streams.sentinel.evaluator import Evaluation, PolicyResult
from streams.sentinel.policy import Effect

__all__ = [
    "SENTINEL_ACTOR",
    "EvaluatedEvent",
    "build_policy_check",
    "build_policy_checks",
    "check_id_for",
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
    return str(uuid.uuid5(_NAMESPACE, f"{event_id}/{mode}/{int(sim_mode)}"))


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
        "evaluations": [r.to_json() for r in evaluation.results] if path is None else path,
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
    path = [r.to_json() for r in evaluation.results]
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
    values: dict[str, Any] = {}
    missing: dict[str, None] = {}
    seen: set[int] = set()  # results of one evaluation share their values-read objects
    for r in evaluation.results:
        if id(r.values) not in seen:
            seen.add(id(r.values))
            values.update(r.values)
        if r.missing and id(r.missing) not in seen:
            seen.add(id(r.missing))
            missing.update(dict.fromkeys(r.missing))
    return {
        "event": evaluated.to_json(),
        "chain": None,
        "valuesRead": values,
        "missing": list(missing),
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
