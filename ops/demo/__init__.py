"""The demo stream ``kernel demo`` publishes: a few agents doing ordinary and risky things."""

from __future__ import annotations

from typing import Any

__all__ = ["demo_actions"]

_SCRIPT: list[tuple[str, str, str, str | None, dict[str, Any]]] = [
    (
        "agent-billing",
        "acct-1001",
        "payments.transfer",
        "acct-2002",
        {"amount": 120, "currency": "EUR"},
    ),
    (
        "agent-billing",
        "acct-1001",
        "payments.transfer",
        "acct-9999",
        {"amount": 25000, "currency": "EUR"},
    ),
    ("agent-support", "ticket-77", "tickets.read", "ticket-77", {"pii": False}),
    ("agent-support", "ticket-77", "customers.export", "crm", {"pii": True, "rows": 5000}),
    ("svc-deploy", "cluster-eu1", "deploy.rollout", "api:v42", {"canary": True}),
    (
        "svc-deploy",
        "cluster-eu1",
        "deploy.rollout",
        "api:v43",
        {"canary": False, "approved": False},
    ),
    (
        "agent-billing",
        "acct-1002",
        "payments.refund",
        "acct-1002",
        {"amount": 40, "currency": "USD"},
    ),
    ("agent-ops", "db-main", "db.drop_table", "audit_events", {"environment": "prod"}),
]


def demo_actions() -> list[dict[str, Any]]:
    """The JSON mapping of each demo action, as ``kernel publish`` accepts it."""
    return [
        {
            "eventType": "kernelAction",
            "actor": actor,
            "subject": subject,
            "body": {"action": action, "resource": resource, "context": context},
        }
        for actor, subject, action, resource, context in _SCRIPT
    ]
