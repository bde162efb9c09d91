"""The remediation state machine: pure folds and decisions over ``remediation`` events.

One remediation is one idempotency key, ``{decisionId}:{action}`` (the
policyCheck id, or the id an operator's request names). Its steps are
``remediation`` events on the one-partition remediations topic::

    requested -> approved -> started -> applied | failed
    requested -> rejected                (a human said no)

Statuses only move forward (:data:`RANK`); folding an event twice, or an
event older than what is known, changes nothing, so the worker can fold the
*whole* topic on start -- including the records after its committed offset
that it will consume again -- and consuming them again decides nothing twice.
That is what makes a remediation take effect at most once across restarts,
redeliveries and a reset consumer group: a ``started`` whose ``applied`` or
``failed`` is anywhere on the log is never executed again; one whose outcome
is not (the worker died between the call and the commit) is executed again
with the same idempotency key, which the receiver deduplicates.

The worker (:mod:`ops.remediation.worker`) calls :func:`observe` then
:func:`react` for each record of the topic, :func:`on_policy_check` for each
decision, and :func:`finish` with an action's outcome. Event ids the worker
derives are name-based (``{key}/{status}``), so a replay reproduces them.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from schemas.events import Event
from schemas.ids import uuid5_text
from streams.remediation.actions import ActionSpec
from streams.remediation.approval import HumanDecision, approval

__all__ = [
    "RANK",
    "TERMINAL",
    "WORKER",
    "Remediation",
    "RemediationBook",
    "decision_event",
    "finish",
    "observe",
    "on_policy_check",
    "quorum_decision_event",
    "react",
    "remediation_id",
    "remediation_key",
    "request_event",
]

WORKER = "kernel-remediation"
NAMESPACE = uuid.UUID("5f0c7a52-8d1e-4b8a-9a51-2b8f4c1e0d23")
RANK = {"requested": 1, "approved": 2, "started": 3, "rejected": 4, "applied": 4, "failed": 4}
TERMINAL = frozenset({"rejected", "applied", "failed"})
_HIGH = frozenset({"HIGH", "CRITICAL"})
_UNSTARTED = frozenset({"requested", "approved"})


def remediation_key(decision_id: str, action: str) -> str:
    """The idempotency key: one decision, one action, one effect."""
    return f"{decision_id}:{action}"


def remediation_id(key: str) -> str:
    """The remediation's id (what ``kernel remediation approve`` takes): a UUID of its key."""
    return uuid5_text(NAMESPACE, key)


@dataclass(frozen=True, slots=True)
class Remediation:
    key: str
    remediation_id: str
    action: str
    subject: str
    policy_check_id: str | None
    request_event_id: str
    high_risk: bool
    requested_by: str
    reason: str
    status: str = "requested"
    decisions: tuple[HumanDecision, ...] = ()
    started_event_id: str | None = None
    outcome: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "remediationId": self.remediation_id,
            "idempotencyKey": self.key,
            "action": self.action,
            "subject": self.subject,
            "policyCheckId": self.policy_check_id,
            "status": self.status,
            "highRisk": self.high_risk,
            "requestedBy": self.requested_by,
            "reason": self.reason,
            "decisions": [
                {"actor": d.actor, "approve": d.approve, "reason": d.reason} for d in self.decisions
            ],
            "outcome": self.outcome,
        }


@dataclass(frozen=True, slots=True)
class RemediationBook:
    """Every remediation known, by idempotency key (and by id)."""

    items: Mapping[str, Remediation] = field(default_factory=dict)
    ids: Mapping[str, str] = field(default_factory=dict)

    def get(self, key: str) -> Remediation | None:
        return self.items.get(key)

    def by_id(self, rid: str) -> Remediation | None:
        key = self.ids.get(rid)
        return None if key is None else self.items[key]

    def put(self, item: Remediation) -> RemediationBook:
        ids = (
            self.ids
            if item.remediation_id in self.ids
            else {**self.ids, item.remediation_id: item.key}
        )
        return RemediationBook({**self.items, item.key: item}, ids)


# -- building events (one way, for the worker and the CLI alike) ---------------
def _event(
    item: Remediation, status: str, details: dict[str, Any], *, actor: str, ts_ms: int,
    event_id: str | None = None,
) -> Event:  # fmt: skip
    return Event(
        event_id=event_id or uuid5_text(NAMESPACE, f"{item.key}/{status}"),
        event_type="remediation",
        ts_ms=ts_ms,
        actor=actor,
        subject=item.subject,
        body={
            "remediationId": item.remediation_id,
            "policyCheckId": item.policy_check_id,
            "action": item.action,
            "status": status,
            "idempotencyKey": item.key,
            "details": details,
        },
    )


def request_event(
    *, decision_id: str, action: str, subject: str, actor: str, reason: str, high_risk: bool,
    ts_ms: int, policy_check_id: str | None = None, event_id: str | None = None,
) -> Event:  # fmt: skip
    """A ``requested`` event (from a decision, or an operator's ``kernel remediation request``)."""
    key = remediation_key(decision_id, action)
    item = Remediation(
        key, remediation_id(key), action, subject, policy_check_id, "", high_risk, actor, reason
    )
    details = {"reason": reason, "highRisk": high_risk, "requestedBy": actor}
    return _event(item, "requested", details, actor=actor, ts_ms=ts_ms, event_id=event_id)


QUORUM_PREFIX = "quorum:"


def quorum_decision_event(
    key: str, action: str, *, request_id: str, quorum_event_id: str,
    approvers: Sequence[str], actor: str, ts_ms: int,
) -> Event:  # fmt: skip
    """``approved`` by a k-of-n quorum (``streams/approvals``): published with the
    quorum event that reached it, by whoever submitted the completing approval.
    Its id derives from the key and the request, so a second publication is the same."""
    return Event(
        event_id=uuid5_text(NAMESPACE, f"{key}/quorum/{request_id}"),
        event_type="remediation",
        ts_ms=ts_ms,
        actor=actor,
        subject=f"remediation:{key}",
        body={
            "remediationId": remediation_id(key),
            "policyCheckId": None,
            "action": action,
            "status": "approved",
            "idempotencyKey": key,
            "details": {
                "by": "quorum",
                "requestId": request_id,
                "quorumEventId": quorum_event_id,
                "approvers": list(approvers),
                "reason": f"k-of-n quorum of approval request {request_id}",
            },
        },
    )


def decision_event(
    item: Remediation, *, approve: bool, actor: str, reason: str, ts_ms: int
) -> Event:
    """A human's ``approved`` / ``rejected`` (a fresh event id: each decision is its own)."""
    status = "approved" if approve else "rejected"
    details = {"by": "human", "reason": reason}
    return _event(item, status, details, actor=actor, ts_ms=ts_ms, event_id=str(uuid.uuid4()))


# -- folding -------------------------------------------------------------------
def observe(book: RemediationBook, event: Event) -> RemediationBook:
    """Fold one remediation event; idempotent, and statuses never move back."""
    if event.event_type != "remediation":
        return book
    body = event.body
    key, status = str(body["idempotencyKey"]), str(body["status"])
    details = body.get("details") or {}
    details = details if isinstance(details, dict) else {}
    item = book.get(key)
    if item is None:
        if status != "requested":
            return book  # a step of a request never seen: nothing to attach it to
        item = Remediation(
            key, str(body["remediationId"]), str(body["action"]), event.subject,
            body.get("policyCheckId"), event.event_id, bool(details.get("highRisk", False)),
            str(details.get("requestedBy", event.actor)), str(details.get("reason", "")),
        )  # fmt: skip
        return book.put(item)
    if status in ("approved", "rejected") and details.get("by") in ("human", "quorum"):
        # A decision moves nothing by itself: the first one wins (the approval seam),
        # so a fold decides the same whatever happened to be consumed when. A quorum
        # (k-of-n signatures, checked when it was reached) only ever approves.
        if all(d.event_id != event.event_id for d in item.decisions):
            by_quorum = details.get("by") == "quorum"
            who = f"{QUORUM_PREFIX}{details.get('requestId')}" if by_quorum else event.actor
            decision = HumanDecision(
                event.event_id, who, status == "approved" or by_quorum,
                str(details.get("reason", "")),
            )  # fmt: skip
            item = replace(item, decisions=(*item.decisions, decision))
            if item.status in _UNSTARTED and approval(True, item.decisions) == "rejected":
                item = replace(item, status="rejected")
        return book.put(item)
    if RANK.get(status, 0) > RANK[item.status] and item.status not in TERMINAL:
        item = replace(item, status=status)
        if status == "started":
            item = replace(item, started_event_id=event.event_id)
        if status in ("applied", "failed"):
            item = replace(item, outcome=dict(details))
    return book.put(item)


# -- deciding ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Reaction:
    book: RemediationBook
    events: Sequence[Event] = ()
    execute: Remediation | None = None  # call this remediation's action now


def react(
    book: RemediationBook, event: Event, actions: Mapping[str, ActionSpec], ts_ms: int
) -> Reaction:
    """What the worker does about one remediation event it consumed (after :func:`observe`)."""
    if event.event_type != "remediation":
        return Reaction(book)
    body = event.body
    item = book.get(str(body["idempotencyKey"]))
    status = str(body["status"])
    if item is None:
        return Reaction(book)
    if status == "started":
        if item.status == "started" and item.started_event_id == event.event_id:
            return Reaction(book, execute=item)
        return Reaction(book)
    if item.status not in _UNSTARTED:
        return Reaction(book)  # already rejected, started or finished
    if status == "requested" and event.event_id != item.request_event_id:
        return Reaction(book)  # a second request of a known key: the first one counts
    spec = actions.get(item.action)
    if spec is None:
        return _fail(book, item, f"no action {item.action!r} in KERNEL_REMEDIATION_ACTIONS", ts_ms)
    verdict = approval(item.high_risk or spec.high_risk, item.decisions)
    if verdict == "pending":
        return Reaction(book)
    if verdict == "rejected":
        return Reaction(book.put(replace(item, status="rejected")))
    out: list[Event] = []
    if not item.decisions:  # approved as it arrived: say so, then start
        why = "not high-risk: approved on arrival"
        out.append(
            _event(item, "approved", {"by": "auto", "reason": why}, actor=WORKER, ts_ms=ts_ms)
        )
    started = _event(item, "started", {"attempt": 1}, actor=WORKER, ts_ms=ts_ms)
    out.append(started)
    item = replace(item, status="started", started_event_id=started.event_id)
    return Reaction(book.put(item), out)


def finish(
    book: RemediationBook, item: Remediation, *, ok: bool, details: dict[str, Any], ts_ms: int
) -> tuple[RemediationBook, Event]:
    """The ``applied`` (or ``failed``, ``details['reason']`` saying why) of an executed action."""
    status = "applied" if ok else "failed"
    event = _event(item, status, details, actor=WORKER, ts_ms=ts_ms)
    return book.put(replace(item, status=status, outcome=dict(details))), event


def _fail(book: RemediationBook, item: Remediation, reason: str, ts_ms: int) -> Reaction:
    new, event = finish(book, item, ok=False, details={"reason": reason}, ts_ms=ts_ms)
    return Reaction(new, [event])


def on_policy_check(
    book: RemediationBook, event: Event, actions: Mapping[str, ActionSpec], ts_ms: int
) -> tuple[RemediationBook, list[Event]]:
    """The ``requested`` events of an enforced ``remediate`` decision: one per matching action."""
    body = event.body
    if event.event_type != "policyCheck" or body.get("decision") != "remediate":
        return book, []
    if body.get("simMode"):
        return book, []  # a simulation or a late view never remediates
    check_id, policy_id = str(body["policyCheckId"]), body.get("policyId")
    severe = _severity(body) in _HIGH
    out: list[Event] = []
    for spec in actions.values():
        if not spec.remediates(policy_id):
            continue
        key = remediation_key(check_id, spec.name)
        if book.get(key) is not None:
            continue
        requested = request_event(
            decision_id=check_id, action=spec.name, subject=event.subject, actor=WORKER,
            reason=f"policy {policy_id} v{body.get('policyVersion')} decided remediate",
            high_risk=spec.high_risk or severe, ts_ms=ts_ms, policy_check_id=check_id,
        )  # fmt: skip
        book = observe(book, requested)
        out.append(requested)
    return book, out


def _severity(body: Mapping[str, Any]) -> str | None:
    """The deciding policy's severity, from the decision's evaluation path."""
    for entry in body.get("evaluations") or ():
        if (
            isinstance(entry, dict)
            and entry.get("policyId") == body.get("policyId")
            and entry.get("version") == body.get("policyVersion")
        ):
            severity = entry.get("severity")
            return severity if isinstance(severity, str) else None
    return None
