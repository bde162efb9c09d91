"""Whether a remediation may start: the approval seam.

:func:`approval` takes the request (with the decisions recorded for it so
far) and answers ``approved``, ``pending`` or ``rejected``. A request that is
not high-risk is approved as it arrives. A high-risk one waits for a human
decision (``kernel remediation approve|reject ID``, an ``approved`` or
``rejected`` remediation event): the first decision wins, a later one
changes nothing. The k-of-n quorum of issue 12 item 3 (``streams/approvals``)
plugs in here: a quorum is one more way to reach ``approved`` -- the function
keeps its signature, and the machine calls nothing else to decide.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["Approval", "HumanDecision", "approval"]

Approval = Literal["approved", "pending", "rejected"]


@dataclass(frozen=True, slots=True)
class HumanDecision:
    event_id: str
    actor: str
    approve: bool
    reason: str


def approval(high_risk: bool, decisions: Sequence[HumanDecision]) -> Approval:
    """``approved`` / ``pending`` / ``rejected`` for a request and its decisions, in log order."""
    if not high_risk:
        return "approved"
    if not decisions:
        return "pending"
    return "approved" if decisions[0].approve else "rejected"
