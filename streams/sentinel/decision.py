"""The ``policyCheck`` event, built from one :class:`~streams.sentinel.evaluation.Evaluation`.

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
  the reason :func:`~streams.sentinel.verdict.lost_reason` renders against
  ``decision`` / ``policyId`` / ``policyVersion``.

The values a named policy read are in ``evidence.valuesRead`` (every value any
policy in scope read), at the paths its version's rule and rationale read, so
:func:`expand_path` (given each version's definition) rebuilds exactly the
entries they stand for. With 100 policies in scope this is the difference
between a 30 KB record and 1-2 KB. A simulation view (``simMode`` with a
``test`` policy in scope) decides differently from the enforced evaluation the
reasons were written against, so it carries its outranked entries in full.

**Bounded.** A record quotes values of the action, and an action may be
256 KiB (``schemas/contract.py``); quoted once per policy that read it, one
such value made a decision record of several MiB, which Kafka refuses. So
the record quotes a value only when its canonical JSON (RFC 8785) is at most
:data:`VALUE_INLINE_BYTES` and fits in what is left of
:data:`VALUES_INLINE_BUDGET` for the record (strings and containers count;
numbers, booleans and null are always quoted); any other value is recorded
as a reference::

    {"truncated": true, "bytes": <its JCS length>, "sha256": "<hex of its JCS>"}

and its path is listed in ``evidence.truncated`` (absent when none is), so a
reader never mistakes an action's own value of that shape for a reference.
A path has one form throughout a record -- in ``evidence.valuesRead``, in
``evidence.deciding`` and in every entry -- so :func:`expand_path` rebuilds
the entries exactly as recorded, and an auditor checks a reference against
the action's payload on the audit chain (``evidence.event`` says where it
is). Rule errors (the engine may quote a value in its message) are cut at
:data:`ERROR_CHARS` characters and the rationale at :data:`RATIONALE_CHARS`,
each with its full length and the SHA-256 of its UTF-8 text. With ``p``
policies in full entries, each reading ``k`` paths, a record is then at most
about ``p * (400 + 110 k + 6 ERROR_CHARS + VALUES_INLINE_BUDGET) + 6
RATIONALE_CHARS`` bytes (6: the longest JSON escape of one character),
whatever the action: 100 policies reading the values of a 256 KiB action
make a record, and its chain link, of well under Kafka's 1,000,000 bytes
(``tests/unit/sentinel/test_decision_bounds.py``). The policy count is the
operator's; the action cannot grow the record past that.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from schemas.catalog import catalog
from schemas.events import Event
from schemas.ids import uuid5_text
from schemas.positions import LogPosition
from streams.chain.canonical import canonicalize
from streams.chain.errors import CanonicalizationError
from streams.sentinel.evaluation import Evaluation, PolicyResult
from streams.sentinel.policy import Effect, Policy
from streams.sentinel.policy_index import policy_paths
from streams.sentinel.rules import format_path
from streams.sentinel.verdict import NOT_MATCHED, lost_reason

__all__ = [
    "ERROR_CHARS",
    "RATIONALE_CHARS",
    "SENTINEL_ACTOR",
    "VALUES_INLINE_BUDGET",
    "VALUE_INLINE_BYTES",
    "EvaluatedEvent",
    "RecordedValues",
    "build_policy_check",
    "build_policy_checks",
    "check_id_for",
    "cut_text",
    "expand_path",
    "record_path",
    "record_values",
    "value_reference",
]

SENTINEL_ACTOR = "sentinelnet"
_NAMESPACE = uuid.UUID("5b0c3f0e-4f1d-4a43-9d55-6a2f6c1e0b44")

_SCHEMA_VERSION = catalog().newest("policyCheck").version

Mode = Literal["sync", "stream"]

VALUE_INLINE_BYTES = 1024  # a value whose JCS is longer is recorded by reference
VALUES_INLINE_BUDGET = 2048  # JCS bytes of strings and containers quoted per record
ERROR_CHARS = 256  # a rule error's text, as recorded
RATIONALE_CHARS = 2000  # the rendered rationale, as recorded


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
    recorded: RecordedValues | None = None,
) -> Event:
    """One policyCheck; ``sim_mode`` picks the simulation view when there is one.

    ``path`` is the enforced view's evaluations JSON when the caller already
    built it; ``event_id`` the envelope id (default random); ``recorded`` the
    evaluation's values as recorded (:func:`record_values`), if already known.
    Every policyCheck -- stream, sync, a sync check's late completion -- is
    built here, so every one is bounded the same way (module docstring).
    """
    if recorded is None:
        recorded = record_values(evaluation.values_read)
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
        "rationale": cut_text(rationale, RATIONALE_CHARS),
        "evidence": _evidence(evaluation, evaluated, deciding, recorded),
        "evaluations": record_path(evaluation.path_json() if path is None else path, recorded),
        "notMatched": list(evaluation.not_matched),
        "outranked": list(outranked),
        "rollout": [view.to_json() for view in evaluation.canaries],
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
    recorded = record_values(evaluation.values_read)
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
                recorded=recorded,
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class RecordedValues:
    """The values an evaluation read, as a record quotes them.

    ``values``: by path, each value itself or its :func:`value_reference`;
    ``truncated``: the paths recorded by reference, in path order.
    """

    values: Mapping[str, Any]
    truncated: tuple[str, ...] = ()


def record_values(values: Mapping[str, Any]) -> RecordedValues:
    """Which values a record quotes and which it references (module docstring).

    ``values`` is the evaluation's evidence, every path any policy in scope
    read, in the evaluator's order; the budget is spent in that order.
    """
    recorded: dict[str, Any] | None = None
    truncated: list[str] = []
    budget = VALUES_INLINE_BUDGET
    for path, value in values.items():
        kind = type(value)
        if kind is str:
            # printable ASCII without a quote or backslash is its own JSON, quoted
            if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
                size = len(value) + 2
                if size <= VALUE_INLINE_BYTES and size <= budget:
                    budget -= size
                    continue
        elif value is None or kind is bool or kind is int or kind is float:
            continue
        data = _jcs(value)
        if data is not None and len(data) <= VALUE_INLINE_BYTES and len(data) <= budget:
            budget -= len(data)
            continue
        if recorded is None:
            recorded = dict(values)  # the evaluator's dict is shared: never written to
        recorded[path] = value_reference(value, data)
        truncated.append(path)
    if recorded is None:
        return RecordedValues(values)
    return RecordedValues(recorded, tuple(truncated))


def value_reference(value: Any, data: bytes | None = None) -> dict[str, Any]:
    """``{"truncated": true, "bytes": n, "sha256": hex}`` of ``value``'s canonical JSON.

    ``data``: that JSON if the caller has it. A value with no canonical form
    (not I-JSON; the input contract refuses those at every door) is hashed in
    Python's sorted JSON instead, so the record is still written.
    """
    if data is None:
        data = _jcs(value)
    if data is None:
        data = json.dumps(value, sort_keys=True, default=repr).encode("utf-8", "surrogatepass")
    return {"truncated": True, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _jcs(value: Any) -> bytes | None:
    if type(value) is str:
        try:
            return orjson.dumps(value)  # a string's JCS form is orjson's
        except orjson.JSONEncodeError:  # a lone surrogate
            return None
    try:
        return canonicalize(value)
    except CanonicalizationError:
        return None


def record_path(
    entries: Sequence[dict[str, Any]], recorded: RecordedValues
) -> list[dict[str, Any]]:
    """Evaluation entries as recorded: referenced values swapped in, long errors cut.

    An entry that needs neither is the evaluator's own dict (not copied).
    """
    truncated = set(recorded.truncated)
    values = recorded.values
    out = []
    for entry in entries:
        read = entry["valuesRead"]
        error = entry["error"]
        swap = bool(truncated) and read is not None and not truncated.isdisjoint(read)
        cut = error is not None and len(error) > ERROR_CHARS
        if not swap and not cut:
            out.append(entry)
            continue
        copy = dict(entry)
        if swap:
            copy["valuesRead"] = {p: values[p] for p in read}
        if cut:
            copy["error"] = cut_text(error, ERROR_CHARS)
        out.append(copy)
    return out


def cut_text(text: str, limit: int) -> str:
    """``text`` if at most ``limit`` characters; else its head, its length and SHA-256."""
    if len(text) <= limit:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{text[:limit]}... [cut: {len(text)} characters, sha256 {digest}]"


def _evidence(
    evaluation: Evaluation,
    evaluated: EvaluatedEvent,
    deciding: PolicyResult | None,
    recorded: RecordedValues,
) -> dict[str, Any]:
    evidence = {
        "event": evaluated.to_json(),
        "chain": None,
        "valuesRead": recorded.values,
        "missing": list(evaluation.missing),
        "deciding": None
        if deciding is None
        else {
            "policyId": deciding.policy_id,
            "version": deciding.version,
            "result": deciding.outcome.value,
            "error": None if deciding.error is None else cut_text(deciding.error, ERROR_CHARS),
            "valuesRead": _recorded_subset(deciding.values, recorded),
        },
    }
    if recorded.truncated:
        evidence["truncated"] = list(recorded.truncated)
    return evidence


def _recorded_subset(read: Mapping[str, Any], recorded: RecordedValues) -> Mapping[str, Any]:
    if not recorded.truncated or set(recorded.truncated).isdisjoint(read):
        return read
    return {p: recorded.values[p] for p in read}


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
    evaluator's order. Values come from ``evidence.valuesRead`` as recorded, so
    a value the record holds by reference is that reference here too.
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
                    "reason": reason if matched else NOT_MATCHED,
                }
            )
    out.sort(key=lambda e: (e["policyId"], e["version"]))
    return out


def _labels(value: Any) -> list[str]:
    """An ``id@version`` list field; absent (v1), or -- read as the default -- JSON text."""
    if isinstance(value, str):
        value = json.loads(value)
    return value if isinstance(value, list) else []
