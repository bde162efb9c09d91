"""The built-in ``quarantine`` action: an event, not a call.

Quarantining a subject is a ``kernelAction`` ``kernel.quarantine`` on the
actions topic, written by the remediation worker in the same Kafka
transaction as the remediation's ``applied``: exactly once by construction.
Policies see it like any action (a policy can deny a quarantined subject's
next actions); a policy that *remediates* ``kernel.quarantine`` would feed
itself, so scope remediating policies away from it.
"""

from __future__ import annotations

from schemas.events import Event
from schemas.ids import uuid5_text
from streams.remediation.machine import NAMESPACE, WORKER, Remediation

__all__ = ["QUARANTINE_ACTION", "quarantine_event"]

QUARANTINE_ACTION = "kernel.quarantine"


def quarantine_event(item: Remediation, ts_ms: int) -> Event:
    return Event(
        event_id=uuid5_text(NAMESPACE, f"{item.key}/quarantine"),
        event_type="kernelAction",
        ts_ms=ts_ms,
        actor=WORKER,
        subject=item.subject,
        body={
            "action": QUARANTINE_ACTION,
            "resource": None,
            "requestId": item.key,
            "context": {
                "remediationId": item.remediation_id,
                "idempotencyKey": item.key,
                "reason": item.reason,
            },
        },
    )
