"""The quorum rule: does a set of approvals reach k of the registry for one request?

:func:`check_quorum` is the one judge, called by ``kernel approve`` and the
HTTP route before they publish (to answer at once with the reason), by the
fold when it replays a quorum event, by the offline verifier, and by the
remediation worker for high-risk remediations (build an
:class:`ApprovalRequest` with :func:`~streams.approvals.statement.remediation_subject`).
Each approval is judged in log order and either counted or refused with its
reason:

- the approver is not in the registry;
- the signature does not verify over the approval's own statement (forged,
  or altered after signing);
- the statement names another subject, action or version than the request;
- the statement has expired at the quorum's time (``expiresAt <= at``);
- the approver was already counted (a duplicate counts once).

The quorum is reached when at least ``k`` distinct approvers are counted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from streams.approvals.registry import ApproverRegistry
from streams.approvals.statement import Approval, Statement

__all__ = ["TARGET_TYPES", "ApprovalRequest", "QuorumResult", "Rejection", "check_quorum"]

TARGET_TYPES = ("policyActivation", "remediation", "approvers")


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    """What needs approving: the statement's target, minus its expiry."""

    request_id: str
    target_type: str  # one of TARGET_TYPES
    subject: str
    action: str
    version: int
    requested_by: str = ""
    ts_ms: int = 0
    reason: str | None = None
    detail: Any = None

    def statement(self, expires_at_ms: int) -> Statement:
        return Statement(self.subject, self.action, self.version, expires_at_ms)

    def to_json(self) -> dict[str, Any]:
        return {
            "requestId": self.request_id,
            "targetType": self.target_type,
            "subject": self.subject,
            "action": self.action,
            "version": self.version,
            "requestedBy": self.requested_by,
            "ts": self.ts_ms,
            "reason": self.reason,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class Rejection:
    approval: Approval
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"approverId": self.approval.approver_id, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class QuorumResult:
    request: ApprovalRequest
    threshold: int
    registry_version: int
    at_ms: int
    counted: tuple[Approval, ...]
    rejected: tuple[Rejection, ...]

    @property
    def reached(self) -> bool:
        return len(self.counted) >= self.threshold

    def explain(self) -> str:
        head = (
            f"request {self.request.request_id} ({self.request.subject} "
            f"{self.request.action} v{self.request.version}): "
            f"{len(self.counted)} valid distinct approval(s) of the {self.threshold} needed "
            f"(registry v{self.registry_version})"
        )
        verdict = "quorum reached" if self.reached else "no quorum"
        why = "; ".join(r.reason for r in self.rejected)
        return f"{verdict}: {head}" + (f"; refused: {why}" if why else "")

    def to_json(self) -> dict[str, Any]:
        return {
            "requestId": self.request.request_id,
            "reached": self.reached,
            "threshold": self.threshold,
            "registryVersion": self.registry_version,
            "at": self.at_ms,
            "counted": [a.approver_id for a in self.counted],
            "rejected": [r.to_json() for r in self.rejected],
        }


def judge(
    request: ApprovalRequest,
    approval: Approval,
    registry: ApproverRegistry,
    at_ms: int,
    counted: frozenset[str] = frozenset(),
) -> str | None:
    """Why ``approval`` does not count towards ``request`` (None: it counts)."""
    who = approval.approver_id
    verifier = registry.verifier(who)
    if verifier is None:
        return f"{who}: not in the approvers registry (v{registry.version})"
    if not approval.verifies(verifier):
        return (
            f"{who}: the signature does not verify against {who}'s key "
            "(forged, altered, or made over another statement)"
        )
    s = approval.statement
    if not s.same_target(request.statement(s.expires_at_ms)):
        return (
            f"{who}: signed {s.subject} {s.action} v{s.version}, not this request's "
            f"{request.subject} {request.action} v{request.version}"
        )
    if s.expires_at_ms <= at_ms:
        return f"{who}: the approval expired at {s.expires_at_ms} (checked at {at_ms})"
    if who in counted:
        return f"{who}: duplicate approval (an approver counts once)"
    return None


def check_quorum(
    request: ApprovalRequest,
    approvals: Iterable[Approval],
    registry: ApproverRegistry,
    at_ms: int,
) -> QuorumResult:
    """Judge ``approvals`` (in order) for ``request`` against ``registry`` at ``at_ms``."""
    counted: list[Approval] = []
    seen: set[str] = set()
    rejected: list[Rejection] = []
    for approval in approvals:
        why = judge(request, approval, registry, at_ms, frozenset(seen))
        if why is None:
            counted.append(approval)
            seen.add(approval.approver_id)
        else:
            rejected.append(Rejection(approval, why))
    return QuorumResult(
        request, registry.threshold, registry.version, at_ms, tuple(counted), tuple(rejected)
    )
