"""The approvals topic as a pure fold, and the gate the policy lifecycle consults.

Every step is one ``approval`` event (schema v2, field ``kind``) on the
audited approvals topic, so the chain signer signs each into the audit chain:

- ``genesis`` -- the initial registry (first one wins; a later one is refused);
- ``request`` -- something needs approving (``requestId``, target, action, version);
- ``approval`` -- one approver's signature over the statement, with the
  authenticated principal that submitted it (``submittedBy``);
- ``quorum`` -- the request reached k: it lists the approvals it rests on
  (each with its statement and signature), the threshold, the registry
  version and its time, so it can be re-checked offline.

:class:`ApprovalsLog` folds them. A quorum event is re-judged by
:func:`~streams.approvals.quorum.check_quorum` against the registry at that
point of the log and at the event's own time; one that does not hold (it can
only reach the log by bypassing the CLI and the API) is skipped and reported,
as the policy fold does with illegal changes. A quorum over the ``approvers``
subject applies its change to the registry.

:class:`ActivationGate` answers the lifecycle's question "may this HIGH or
CRITICAL version become active?": only with a quorum for ``policy:<id>
activate v<N>`` that is on the log no later than the change. It is enforced
for changes made after the registry's genesis (so an activation made before
there was a registry stays legal on replay), or always when ``required``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from schemas.errors import ValidationError
from schemas.events import Event, new_event
from streams.approvals.errors import ApprovalError, RegistryError
from streams.approvals.quorum import (
    TARGET_TYPES,
    ApprovalRequest,
    QuorumResult,
    check_quorum,
    judge,
)
from streams.approvals.registry import APPROVERS_SUBJECT, ApproverRegistry, parse_registry
from streams.approvals.statement import (
    ACTIVATE,
    Approval,
    Statement,
    activation_subject,
    remediation_subject,
)
from streams.remediation.machine import quorum_decision_event
from streams.sentinel.lifecycle import PolicyChange, needs_approvals

__all__ = [
    "ActivationGate",
    "ApprovalRefusedError",
    "ApprovalsLog",
    "QuorumRecord",
    "Submission",
    "activation_request",
    "approval_event",
    "genesis_event",
    "plan_submission",
    "quorum_event",
    "remediation_request",
    "request_event",
]


@dataclass(frozen=True, slots=True)
class QuorumRecord:
    """A quorum as the log (and an exported file) holds it."""

    request: ApprovalRequest
    threshold: int
    registry_version: int
    at_ms: int
    approvals: tuple[Approval, ...]
    event_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "request": self.request.to_json(),
            "threshold": self.threshold,
            "registryVersion": self.registry_version,
            "at": self.at_ms,
            "approvals": [a.to_json() for a in self.approvals],
            "eventId": self.event_id,
        }

    @classmethod
    def from_json(cls, doc: Any) -> QuorumRecord:
        try:
            r = doc["request"]
            request = ApprovalRequest(
                str(r["requestId"]),
                str(r["targetType"]),
                str(r["subject"]),
                str(r["action"]),
                int(r["version"]),
                str(r.get("requestedBy", "")),
                int(r.get("ts", 0)),
                r.get("reason"),
                r.get("detail"),
            )
            return cls(
                request,
                int(doc["threshold"]),
                int(doc["registryVersion"]),
                int(doc["at"]),
                tuple(Approval.from_json(a) for a in doc["approvals"]),
                doc.get("eventId"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ApprovalError(f"not a quorum document: {exc!r}") from exc


# -- events --------------------------------------------------------------------------


def _body(kind: str, target_type: str, subject: str, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "targetType": target_type,
        "targetId": subject,
        "approverId": None,
        "decision": None,
        "signature": None,
        "reason": None,
        "kind": kind,
        "requestId": None,
        "action": None,
        "version": None,
        "expiresAt": None,
        "submittedBy": None,
        "detail": None,
    }
    body.update(fields)
    return body


def genesis_event(registry: ApproverRegistry, actor: str) -> Event:
    body = _body("genesis", "approvers", APPROVERS_SUBJECT, version=registry.version)
    body["detail"] = registry.to_json()
    body["submittedBy"] = actor
    return new_event("approval", actor, APPROVERS_SUBJECT, body)


def activation_request(
    policy_id: str, version: int, actor: str, reason: str | None = None
) -> ApprovalRequest:
    return ApprovalRequest(
        str(uuid.uuid4()), "policyActivation", activation_subject(policy_id), ACTIVATE, version,
        actor, 0, reason,
    )  # fmt: skip


def remediation_request(
    idempotency_key: str, action: str, actor: str, reason: str | None = None, detail: Any = None
) -> ApprovalRequest:
    """A high-risk remediation's request (the remediation worker's): judge its
    approvals with :func:`~streams.approvals.quorum.check_quorum`."""
    return ApprovalRequest(
        str(uuid.uuid4()), "remediation", remediation_subject(idempotency_key), action, 1,
        actor, 0, reason, detail,
    )  # fmt: skip


def request_event(request: ApprovalRequest) -> Event:
    body = _body(
        "request",
        request.target_type,
        request.subject,
        requestId=request.request_id,
        action=request.action,
        version=request.version,
        reason=request.reason,
        submittedBy=request.requested_by,
        detail=request.detail,
    )
    return new_event("approval", request.requested_by, request.subject, body)


def approval_event(
    request_id: str, target_type: str, approval: Approval, submitted_by: str
) -> Event:
    s = approval.statement
    body = _body(
        "approval",
        target_type,
        s.subject,
        approverId=approval.approver_id,
        decision="approve",
        signature=approval.signature,
        requestId=request_id,
        action=s.action,
        version=s.version,
        expiresAt=s.expires_at_ms,
        submittedBy=submitted_by,
    )
    return new_event("approval", submitted_by, s.subject, body)


def quorum_event(result: QuorumResult, actor: str) -> Event:
    """The quorum event of a reached ``result``, stamped with the result's time."""
    if not result.reached:
        raise ApprovalError(result.explain())
    r = result.request
    record = QuorumRecord(
        r, result.threshold, result.registry_version, result.at_ms, result.counted
    )
    detail = record.to_json()
    del detail["eventId"]
    body = _body(
        "quorum", r.target_type, r.subject, requestId=r.request_id, action=r.action,
        version=r.version, submittedBy=actor, detail=detail,
    )  # fmt: skip
    return new_event("approval", actor, r.subject, body, ts_ms=result.at_ms)


# -- the fold ------------------------------------------------------------------------


@dataclass
class ApprovalsLog:
    """The approvals topic folded: registry history, requests, approvals, quorums."""

    registry: ApproverRegistry | None = None
    registries: dict[int, ApproverRegistry] = field(default_factory=dict)
    requests: dict[str, ApprovalRequest] = field(default_factory=dict)
    approvals: dict[str, list[Approval]] = field(default_factory=dict)
    quorums: dict[str, QuorumRecord] = field(default_factory=dict)
    rejected: list[tuple[str | None, str]] = field(default_factory=list)  # (event id, reason)
    genesis_ts_ms: int | None = None  # since when approvals are enforced

    def copy(self) -> ApprovalsLog:
        """An independent copy (a processor's state is never mutated in place)."""
        return ApprovalsLog(
            self.registry, dict(self.registries), dict(self.requests),
            {k: list(v) for k, v in self.approvals.items()}, dict(self.quorums),
            list(self.rejected), self.genesis_ts_ms,
        )  # fmt: skip

    @classmethod
    def of(cls, events: Iterable[Event]) -> ApprovalsLog:
        log = cls()
        for event in events:
            log.apply(event)
        return log

    def apply(self, event: Event) -> bool:
        """Fold one event; False (and recorded in :attr:`rejected`) if it was refused."""
        if event.event_type != "approval":
            return False
        try:
            self._apply(event)
        except (ApprovalError, ValidationError, KeyError, TypeError, ValueError) as exc:
            self.rejected.append((event.event_id, f"{event.body.get('kind')}: {exc}"))
            return False
        return True

    def pending(self) -> list[ApprovalRequest]:
        return [r for rid, r in self.requests.items() if rid not in self.quorums]

    def check(self, request_id: str, at_ms: int, extra: Iterable[Approval] = ()) -> QuorumResult:
        """The quorum check of ``request_id`` now, over its approvals on the log (+ ``extra``)."""
        request = self.requests.get(request_id)
        if request is None:
            raise ApprovalError(f"no approval request {request_id!r} on the log")
        if self.registry is None:
            raise ApprovalError("no approvers registry on the log; run `kernel approvers genesis`")
        approvals = [*self.approvals.get(request_id, []), *extra]
        return check_quorum(request, approvals, self.registry, at_ms)

    def quorum_for(self, subject: str, action: str, version: int) -> QuorumRecord | None:
        for q in self.quorums.values():
            r = q.request
            if (r.subject, r.action, r.version) == (subject, action, version):
                return q
        return None

    def _apply(self, event: Event) -> None:
        body = event.body
        kind = body.get("kind", "approval")
        if kind == "genesis":
            if self.registry is not None:
                raise RegistryError("the approvers registry already has its genesis")
            registry = parse_registry(body["detail"])
            if registry.version != 1:
                raise RegistryError("a genesis registry starts at version 1")
            self._set_registry(registry)
            self.genesis_ts_ms = event.ts_ms
        elif kind == "request":
            self._request(event)
        elif kind == "approval":
            self._approval(event)
        elif kind == "quorum":
            self._quorum(event)
        else:
            raise ApprovalError(f"unknown kind {kind!r}")

    def _request(self, event: Event) -> None:
        b = event.body
        rid = _need(b, "requestId")
        if rid in self.requests:
            raise ApprovalError(f"request {rid} already exists")
        if b["targetType"] not in TARGET_TYPES:
            raise ApprovalError(f"unknown targetType {b['targetType']!r}")
        self.requests[rid] = ApprovalRequest(
            rid, str(b["targetType"]), str(b["targetId"]), _need(b, "action"),
            int(_need(b, "version")), event.actor, event.ts_ms, b.get("reason"), b.get("detail"),
        )  # fmt: skip

    def _approval(self, event: Event) -> None:
        b = event.body
        rid = _need(b, "requestId")
        if rid not in self.requests:
            raise ApprovalError(f"approval for unknown request {rid}")
        if b.get("decision", "approve") != "approve":
            return  # a rejection is recorded on the log; it does not count towards k
        statement = Statement(
            str(b["targetId"]), _need(b, "action"), int(_need(b, "version")),
            int(_need(b, "expiresAt")),
        )  # fmt: skip
        approval = Approval(
            _need(b, "approverId"), statement, _need(b, "signature"), event.event_id
        )
        self.approvals.setdefault(rid, []).append(approval)

    def _quorum(self, event: Event) -> None:
        rid = _need(event.body, "requestId")
        request = self.requests.get(rid)
        if request is None:
            raise ApprovalError(f"quorum for unknown request {rid}")
        if rid in self.quorums:
            raise ApprovalError(f"request {rid} already has its quorum")
        if self.registry is None:
            raise ApprovalError("quorum before any approvers registry")
        claimed = QuorumRecord.from_json({**event.body["detail"], "request": request.to_json()})
        if claimed.registry_version != self.registry.version:
            raise ApprovalError(
                f"quorum names registry v{claimed.registry_version}, the registry is "
                f"v{self.registry.version}"
            )
        result = check_quorum(request, claimed.approvals, self.registry, event.ts_ms)
        if not result.reached:
            raise ApprovalError(result.explain())
        if request.subject == APPROVERS_SUBJECT:
            if request.version != self.registry.version:
                raise RegistryError(
                    f"the change was approved for registry v{request.version}, "
                    f"the registry is v{self.registry.version}"
                )
            self._set_registry(self.registry.apply(request.action))
        self.quorums[rid] = QuorumRecord(
            request, result.threshold, result.registry_version, event.ts_ms, result.counted,
            event.event_id,
        )  # fmt: skip

    def _set_registry(self, registry: ApproverRegistry) -> None:
        self.registry = registry
        self.registries[registry.version] = registry


def _need(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if value is None:
        raise ApprovalError(f"{name} is required")
    return str(value)


# -- the gate ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActivationGate:
    """Refuses a HIGH/CRITICAL activation without a quorum on the log (the lifecycle's hook)."""

    log: ApprovalsLog
    required: bool = False
    now_ms: int = 0  # the time a planned change (ts 0, not yet on the log) is judged at

    def refusal(self, change: PolicyChange) -> str | None:
        policy = change.policy
        if not needs_approvals(change):
            return None
        registry = self.log.registry
        genesis = self.log.genesis_ts_ms
        # enforced from the genesis on: an activation made before it stays legal on replay
        enforced = registry is not None and (
            change.ts_ms == 0 or genesis is None or genesis <= change.ts_ms
        )
        if not enforced and not self.required:
            return None
        where = f"policy {policy.policy_id!r} v{policy.version} is {policy.severity.value}"
        if registry is None:
            return f"{where}: activating it needs k-of-n approvals and no approvers registry exists"
        subject = activation_subject(policy.policy_id)
        quorum = self.log.quorum_for(subject, ACTIVATE, policy.version)
        if quorum is not None and (change.ts_ms == 0 or quorum.at_ms <= change.ts_ms):
            return None
        need = f"a quorum of {registry.threshold} of {registry.size} approvers"
        target = (subject, ACTIVATE, policy.version)
        pending = [r for r in self.log.pending() if (r.subject, r.action, r.version) == target]
        if not pending:
            return (
                f"{where}: activating it needs {need}; no approval request is on the log "
                f"(kernel approvals request {policy.policy_id} {policy.version})"
            )
        at = change.ts_ms or self.now_ms
        counts = []
        for r in pending:
            result = check_quorum(r, self.log.approvals.get(r.request_id, []), registry, at)
            counts.append(f"request {r.request_id} has {len(result.counted)} valid")
        return f"{where}: activating it needs {need}; no quorum yet ({', '.join(counts)})"


# -- submitting an approval ----------------------------------------------------------


class ApprovalRefusedError(ApprovalError):
    """An approval that would not count (forged, expired, wrong subject, duplicate, ...)."""


@dataclass(frozen=True, slots=True)
class Submission:
    """What to publish for one submitted approval, and the quorum it leads to."""

    events: tuple[Event, ...]  # the approval, then the quorum event if it is reached
    result: QuorumResult


def plan_submission(
    log: ApprovalsLog, request_id: str, approval: Approval, submitted_by: str, now_ms: int
) -> Submission:
    """Judge ``approval`` now; raise with the reason if it would not count.

    The CLI and the HTTP route both call this before they publish anything, so
    a refused approval never reaches the log and the caller learns why at once.
    """
    request = log.requests.get(request_id)
    if request is None:
        raise ApprovalError(f"no approval request {request_id!r} on the log")
    if request_id in log.quorums:
        raise ApprovalRefusedError(f"request {request_id} already has its quorum")
    before = log.check(request_id, now_ms)
    counted = frozenset(a.approver_id for a in before.counted)
    registry = log.registry
    assert registry is not None  # log.check refused otherwise
    why = judge(request, approval, registry, now_ms, counted)
    if why is not None:
        raise ApprovalRefusedError(why)
    event = approval_event(request_id, request.target_type, approval, submitted_by)
    result = log.check(request_id, now_ms, extra=[replace(approval, event_id=event.event_id)])
    events = [event]
    if result.reached:
        reached = quorum_event(result, submitted_by)
        events.append(reached)
        if request.target_type == "remediation":
            # the remediation's own log hears it too: its worker waits for an
            # ``approved`` step, here one by the quorum (streams/remediation)
            events.append(
                quorum_decision_event(
                    request.subject.removeprefix("remediation:"), request.action,
                    request_id=request_id, quorum_event_id=reached.event_id,
                    approvers=[a.approver_id for a in result.counted],
                    actor=submitted_by, ts_ms=reached.ts_ms,
                )
            )  # fmt: skip
    return Submission(tuple(events), result)
