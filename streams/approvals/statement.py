"""The signed statement of an approval, and one approval.

An approver signs, with Ed25519, the RFC 8785 canonical JSON (JCS) of exactly::

    {"action": "activate", "expiresAt": 1767225600000, "subject": "policy:p1", "version": 2}

``expiresAt`` is UTC milliseconds. The request id is deliberately *not* in
the statement: what an approver consents to is the subject, the action and the
version, so the same signature cannot be moved to another policy, action or
version, and it stops counting at ``expiresAt``. Any Ed25519 implementation
with any JCS gives the same 64 bytes (Ed25519 is deterministic), which is what
lets an auditor re-check a quorum offline.

Subject and action conventions (other producers -- the remediation worker --
follow them so that a signature means one thing):

- policy activation: subject ``policy:<policyId>``, action ``activate``,
  version = the policy version;
- remediation: subject ``remediation:<idempotency key>`` (decision id and
  action), action = the remediation action's name, version = 1;
- approvers registry: subject ``approvers``, action ``add:<id>:<publicKey b64>``,
  ``remove:<id>`` or ``threshold:<k>``, version = the registry version the
  change applies to (so an approval cannot be replayed on a later registry).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.approvals.errors import ApprovalError
from streams.chain.canonical import canonicalize
from streams.chain.signing import Signer, Verifier, b64, unb64

__all__ = [
    "DAY_MS",
    "DEFAULT_TTL_MS",
    "Approval",
    "Statement",
    "activation_subject",
    "remediation_subject",
    "sign_statement",
]

DAY_MS = 86_400_000
DEFAULT_TTL_MS = 14 * DAY_MS
ACTIVATE = "activate"


def activation_subject(policy_id: str) -> str:
    return f"policy:{policy_id}"


def remediation_subject(idempotency_key: str) -> str:
    return f"remediation:{idempotency_key}"


@dataclass(frozen=True, slots=True)
class Statement:
    subject: str
    action: str
    version: int
    expires_at_ms: int

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "action": self.action,
            "version": self.version,
            "expiresAt": self.expires_at_ms,
        }

    def message(self) -> bytes:
        """The bytes an approver signs: the JCS of :meth:`to_json`."""
        return canonicalize(self.to_json())

    def same_target(self, other: Statement) -> bool:
        return (self.subject, self.action, self.version) == (
            other.subject,
            other.action,
            other.version,
        )


@dataclass(frozen=True, slots=True)
class Approval:
    """One approver's signature over one statement (as submitted, not yet judged)."""

    approver_id: str
    statement: Statement
    signature: str  # base64 of the 64-byte Ed25519 signature
    event_id: str | None = None

    def verifies(self, verifier: Verifier) -> bool:
        try:
            raw = unb64(self.signature)
        except ValueError:
            return False
        return verifier.verify(self.statement.message(), raw)

    def to_json(self) -> dict[str, Any]:
        return {
            "approverId": self.approver_id,
            **self.statement.to_json(),
            "signature": self.signature,
            "eventId": self.event_id,
        }

    @classmethod
    def from_json(cls, doc: Any) -> Approval:
        if not isinstance(doc, dict):
            raise ApprovalError("an approval is a JSON object")
        try:
            statement = Statement(
                str(doc["subject"]), str(doc["action"]), int(doc["version"]), int(doc["expiresAt"])
            )
            event_id = doc.get("eventId")
            return cls(
                str(doc["approverId"]),
                statement,
                str(doc["signature"]),
                None if event_id is None else str(event_id),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ApprovalError(
                f"an approval needs approverId, subject, action, version, expiresAt, signature: "
                f"{exc!r}"
            ) from exc


def sign_statement(
    signer: Signer, statement: Statement, approver_id: str | None = None
) -> Approval:
    """``signer``'s approval of ``statement`` (the approver id defaults to the key's id)."""
    signature = signer.sign(statement.message())
    return Approval(approver_id or signer.signer_id, statement, b64(signature))
